/**
 * The decode worker: zstd frames decoded on their own thread (src/delta/decode-thread.ts gives
 * the protocol and the why). After each piece of input, the new output goes back in a buffer of
 * its own, moved rather than copied across.
 */
import { parentPort } from 'node:worker_threads';
import type { FromDecoder, ToDecoder } from './decode-thread.js';
import { FrameDecoder } from './zstd.js';

const port = parentPort!;
const frames = new Map<number, FrameDecoder>();
port.on('message', (m: ToDecoder) => {
  try {
    if (m.t === 'start') {
      frames.set(m.id, new FrameDecoder(m.expected, m.dictionary));
      return;
    }
    const decoder = frames.get(m.id);
    if (!decoder) return; // failed before: its error was sent
    if (m.t === 'push') {
      const n = decoder.push(m.bytes);
      const out = decoder.output;
      const bytes = Buffer.allocUnsafeSlow(n);
      bytes.set(out.subarray(out.length - n));
      port.postMessage({ t: 'out', id: m.id, bytes, seq: m.seq } satisfies FromDecoder, [bytes.buffer]);
    } else if (m.t === 'end') {
      frames.delete(m.id);
      decoder.end();
      port.postMessage({ t: 'ended', id: m.id } satisfies FromDecoder);
    } else frames.delete(m.id);
  } catch (e) {
    frames.delete(m.id);
    port.postMessage({ t: 'failed', id: m.id, message: (e as Error).message } satisfies FromDecoder);
  }
});
