import fs from 'node:fs';
import { nextCut } from './chunker.js';
import { ChunkParams, masks } from './params.js';
import type { OnChunk } from './index.js';

/**
 * FastCDC with forced cuts: the input is split at the given offsets into regions, and each
 * region is chunked by FastCDC as if it were a file of its own (restarting at its first byte,
 * its end taken as the end of the data). So a chunk never spans a forced cut, and a region's
 * chunks depend on its bytes alone: an unchanged zip member gives the same chunks wherever it
 * moved. Pure given (bytes, params, cuts); docs/FORMATS.md §Chunking states the rule.
 *
 * Uses the JavaScript reference cut (`nextCut`), which the WebAssembly chunker matches cut for
 * cut, and reads the file through a window so a large wheel is never held whole in memory.
 */
export async function chunkFileWithCuts(path: string, params: ChunkParams, cuts: readonly number[], onChunk: OnChunk): Promise<void> {
  const fd = fs.openSync(path, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    await chunkWithCuts(size, params, cuts, (buf, off, len, pos) => {
      let done = 0;
      while (done < len) {
        const n = fs.readSync(fd, buf, off + done, len - done, pos + done);
        if (n === 0) throw new Error(`${path} shrank while being chunked`);
        done += n;
      }
    }, onChunk);
  } finally {
    fs.closeSync(fd);
  }
}

/** The same over bytes in memory (tests, benches, small inputs). */
export async function chunkBytesWithCuts(data: Uint8Array, params: ChunkParams, cuts: readonly number[], onChunk: OnChunk): Promise<void> {
  await chunkWithCuts(data.length, params, cuts, (buf, off, len, pos) => buf.set(data.subarray(pos, pos + len), off), onChunk);
}

/** End offsets of every chunk of `data` under the forced-cut rule (synchronous; tests, benches). */
export function cutAllWithCuts(data: Uint8Array, params: ChunkParams, cuts: readonly number[]): number[] {
  const m = masks(params);
  const ends: number[] = [];
  const bounds = regionEnds(data.length, cuts);
  let pos = 0;
  for (const end of bounds) {
    while (pos < end) {
      pos += nextCut(data, pos, end, params, m);
      ends.push(pos);
    }
  }
  return ends;
}

/** Sorted region ends: the cuts inside (0, size), then size. */
function regionEnds(size: number, cuts: readonly number[]): number[] {
  const inside = [...new Set(cuts)].filter((c) => c > 0 && c < size).sort((a, b) => a - b);
  return size > 0 ? [...inside, size] : [];
}

type ReadAt = (buffer: Uint8Array, offset: number, length: number, position: number) => void;

async function chunkWithCuts(size: number, params: ChunkParams, cuts: readonly number[], readAt: ReadAt, onChunk: OnChunk): Promise<void> {
  const m = masks(params);
  const buffer = new Uint8Array(Math.max(4 << 20, params.maxSize * 4));
  // The window: file bytes [winStart, winStart + winLength) are in buffer[0, winLength).
  let winStart = 0;
  let winLength = 0;
  let pos = 0;
  for (const end of regionEnds(size, cuts)) {
    while (pos < end) {
      // A cut needs at most maxSize bytes from pos, and never looks past the region end.
      const need = Math.min(params.maxSize, end - pos);
      if (pos + need > winStart + winLength) {
        const keep = winStart + winLength - pos;
        if (keep > 0) buffer.copyWithin(0, pos - winStart, winLength);
        const have = Math.max(keep, 0);
        const want = Math.min(buffer.length - have, size - pos - have);
        readAt(buffer, have, want, pos + have);
        winStart = pos;
        winLength = have + want;
      }
      const at = pos - winStart;
      const n = nextCut(buffer, at, at + need, params, m);
      const pending = onChunk(buffer.subarray(at, at + n));
      if (pending) await pending;
      pos += n;
    }
  }
}
