import fs from 'node:fs';
import type { OnChunk } from './index.js';

/**
 * Cuts a file into pieces of `size` bytes (the last one shorter). For files that never share a
 * run of bytes with another file, such as git bundles (every bundle is a fresh zlib-compressed
 * pack), content-defined cuts buy no dedupe and cost index bytes on every sync: ~12 bytes of
 * snapshot index per chunk, paid for every chunk of every file of the snapshot. One 256 KiB piece
 * costs what thirty-two 8 KiB chunks would. An empty file has no chunks.
 */
export async function chunkFileFixed(path: string, size: number, onChunk: OnChunk): Promise<void> {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`fixed chunk size must be a positive integer, got ${size}`);
  const fd = fs.openSync(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(size);
    for (;;) {
      let filled = 0;
      while (filled < size) {
        const n = fs.readSync(fd, buffer, filled, size - filled, null);
        if (n === 0) break;
        filled += n;
      }
      if (filled === 0) return;
      const pending = onChunk(buffer.subarray(0, filled));
      if (pending) await pending;
      if (filled < size) return;
    }
  } finally {
    fs.closeSync(fd);
  }
}
