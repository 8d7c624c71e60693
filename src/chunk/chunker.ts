import { chunkId } from './id.js';
import { ChunkParams, GEAR, masks, validateParams } from './params.js';

/**
 * A content-defined chunker (FastCDC with normalized chunking). It owns an input buffer so the
 * WebAssembly implementation can have files read straight into its memory, with no copy.
 */
export interface Chunker {
  readonly params: ChunkParams;
  /** Where to put input. Its length is the most that can be passed to `cut` at once. */
  readonly buffer: Uint8Array;
  /**
   * End offsets of the chunks found in buffer[0, length). When `final` is false the chunker stops
   * once fewer than maxSize bytes remain, since a boundary there could depend on bytes not yet
   * read: the caller moves buffer[lastEnd, length) to the front and appends more.
   */
  cut(length: number, final: boolean): number[];
  /**
   * The same cuts, plus each chunk's id (xxh64 with seed 0, what `chunkId` returns): ids[i] is
   * the id of the chunk ending at ends[i]. The WebAssembly chunker hashes each chunk in its own
   * memory right after cutting it, so a whole buffer costs one call instead of one per chunk.
   */
  cutWithIds(length: number, final: boolean): { ends: number[]; ids: BigUint64Array };
}

/** Length of the first chunk of data[start, end). The reference algorithm; pure. */
export function nextCut(data: Uint8Array, start: number, end: number, p: ChunkParams, m = masks(p)): number {
  let n = end - start;
  if (n <= p.minSize) return n;
  if (n > p.maxSize) n = p.maxSize;
  const normal = n < p.avgSize ? n : p.avgSize;
  let hash = 0;
  let i = p.minSize;
  for (; i < normal; i++) {
    hash = ((hash << 1) + GEAR[data[start + i]]) | 0;
    if ((hash & m.small) === 0) return i + 1;
  }
  for (; i < n; i++) {
    hash = ((hash << 1) + GEAR[data[start + i]]) | 0;
    if ((hash & m.large) === 0) return i + 1;
  }
  return n;
}

/** The pure-JavaScript chunker: the reference the WebAssembly one must match cut for cut. */
export function createJsChunker(params: ChunkParams, bufferSize = defaultBufferSize(params)): Chunker {
  validateParams(params);
  const m = masks(params);
  const buffer = new Uint8Array(bufferSize);
  const cut = (length: number, final: boolean): number[] => {
    const ends: number[] = [];
    let pos = 0;
    while (pos < length && (final || length - pos >= params.maxSize)) {
      pos += nextCut(buffer, pos, length, params, m);
      ends.push(pos);
    }
    return ends;
  };
  return {
    params,
    buffer,
    cut,
    cutWithIds(length, final) {
      const ends = cut(length, final);
      const ids = new BigUint64Array(ends.length);
      for (let i = 0; i < ends.length; i++) ids[i] = chunkId(buffer.subarray(i ? ends[i - 1] : 0, ends[i]));
      return { ends, ids };
    },
  };
}

export function defaultBufferSize(p: ChunkParams): number {
  return Math.max(4 << 20, p.maxSize * 4);
}

/** All chunk end offsets of a whole in-memory input (tests, small inputs). */
export function cutAll(data: Uint8Array, params: ChunkParams): number[] {
  const m = masks(params);
  const ends: number[] = [];
  let pos = 0;
  while (pos < data.length) {
    pos += nextCut(data, pos, data.length, params, m);
    ends.push(pos);
  }
  return ends;
}
