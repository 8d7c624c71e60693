/**
 * The compress worker: zstd frames compressed on their own thread, one context per worker
 * (src/delta/compress-pool.ts gives the protocol and the why).
 */
import { parentPort } from 'node:worker_threads';
import type { FromCompressor, ToCompressor } from './compress-pool.js';
import { FrameCompressor } from './zstd.js';

const port = parentPort!;
const compressor = new FrameCompressor();
port.on('message', (m: ToCompressor) => {
  try {
    const frame = compressor.compress(m.content, { level: m.level, dictionary: m.dictionary });
    // A buffer of its own, moved rather than copied across.
    const bytes = Buffer.allocUnsafeSlow(frame.length);
    bytes.set(frame);
    port.postMessage({ id: m.id, frame: bytes } satisfies FromCompressor, [bytes.buffer]);
  } catch (e) {
    port.postMessage({ id: m.id, message: (e as Error).message } satisfies FromCompressor);
  }
});
