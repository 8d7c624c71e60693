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
/** Output of the push being decoded, copied out of the decoder's reused buffer (into buffers of their own: moved, not cloned, to the main thread). */
let out: Buffer<ArrayBuffer>[] = [];
const collect = (piece: Uint8Array) => {
  const own = Buffer.allocUnsafeSlow(piece.length);
  own.set(piece);
  out.push(own);
};
port.on('message', (m: ToDecoder) => {
  try {
    if (m.t === 'start') {
      // A sink: the decoder keeps none of its output (zstd's window holds what it needs).
      frames.set(m.id, new FrameDecoder(m.expected, m.dictionary, collect));
      return;
    }
    const decoder = frames.get(m.id);
    if (!decoder) return; // failed before: its error was sent
    if (m.t === 'push') {
      out = [];
      const n = decoder.push(m.bytes);
      // Mostly one piece (a push is 64 KiB of input); joined when the output came in several.
      const bytes = out.length === 1 ? out[0] : Buffer.allocUnsafeSlow(n);
      if (out.length > 1) {
        let at = 0;
        for (const piece of out) {
          bytes.set(piece, at);
          at += piece.length;
        }
      }
      out = [];
      port.postMessage({ t: 'out', id: m.id, bytes, seq: m.seq } satisfies FromDecoder, [bytes.buffer]);
    } else if (m.t === 'end') {
      frames.delete(m.id);
      decoder.end();
      port.postMessage({ t: 'ended', id: m.id } satisfies FromDecoder);
    } else frames.delete(m.id);
  } catch (e) {
    out = [];
    frames.delete(m.id);
    port.postMessage({ t: 'failed', id: m.id, message: (e as Error).message } satisfies FromDecoder);
  }
});
