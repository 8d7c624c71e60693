/**
 * The compress worker: zstd frames (and brotli index files) compressed on their own thread, one zstd context per worker
 * (src/delta/compress-pool.ts gives the protocol and the why).
 */
import { parentPort } from 'node:worker_threads';
import type { FromCompressor, ToCompressor } from './compress-pool.js';
import { FrameCompressor } from './zstd.js';
import { brotli } from '../util/brotli.js';

const port = parentPort!;
const compressor = new FrameCompressor();
port.on('message', (m: ToCompressor) => {
  try {
    const frame = 'brotli' in m ? brotli(m.content, m.brotli) : compressor.compress(m.content, { level: m.level, dictionary: m.dictionary });
    // A buffer of its own, moved rather than copied across.
    const bytes = Buffer.allocUnsafeSlow(frame.length);
    bytes.set(frame);
    port.postMessage({ id: m.id, frame: bytes } satisfies FromCompressor, [bytes.buffer]);
  } catch (e) {
    port.postMessage({ id: m.id, message: (e as Error).message } satisfies FromCompressor);
  }
});
