import fs from 'node:fs';
import { Chunker, createJsChunker } from './chunker.js';
import { ChunkParams, DEFAULT_PARAMS } from './params.js';
import { createWasmChunker, wasmAvailable } from './wasm.js';
import { chunkId } from './id.js';

export * from './params.js';
export type { Chunker } from './chunker.js';
export { nextCut, createJsChunker, cutAll, defaultBufferSize } from './chunker.js';
export { createWasmChunker, wasmAvailable } from './wasm.js';
export { chunkId, initHash } from './id.js';

/**
 * The chunker to use: the WebAssembly one (same cuts as the JS reference, about 1.5-3x faster),
 * or the JS reference where the runtime has no WebAssembly. A WebAssembly failure anywhere else
 * is an error, not a reason to fall back silently.
 */
export async function createChunker(params: ChunkParams = DEFAULT_PARAMS): Promise<Chunker> {
  return wasmAvailable() ? createWasmChunker(params) : createJsChunker(params);
}

/** Called with each chunk in order: a view into the chunker's buffer, valid only until it returns (or its promise settles). */
export type OnChunk = (chunk: Uint8Array) => void | Promise<void>;

/** The same, with the chunk's id (xxh64, seed 0: what `chunkId(chunk)` returns). */
export type OnChunkWithId = (chunk: Uint8Array, id: bigint) => void | Promise<void>;

/**
 * For chunk sources that have no chunker of their own to compute ids (fixed-size pieces, forced
 * cuts): adapts an OnChunkWithId by calling `chunkId` on each chunk.
 */
export function withIds(onChunk: OnChunkWithId): OnChunk {
  return (chunk) => onChunk(chunk, chunkId(chunk));
}

/** Chunkers in use by chunkFile/chunkBytes: a buffer can feed one stream at a time. */
const busy = new WeakSet<Chunker>();

/**
 * Drives a chunker over a stream: fills its buffer with `read` (which returns how many bytes it
 * put at buffer[offset, offset+length), 0 at the end), hands each chunk to onChunk, and moves the
 * unfinished tail to the front before reading more.
 */
async function drive(
  chunker: Chunker,
  read: (buffer: Uint8Array, offset: number, length: number) => number,
  onChunk: OnChunk | undefined,
  onChunkWithId?: OnChunkWithId,
): Promise<void> {
  const buffer = chunker.buffer;
  if (buffer.length < chunker.params.maxSize) {
    throw new RangeError(`chunker buffer (${buffer.length} bytes) is smaller than the maximum chunk (${chunker.params.maxSize})`);
  }
  if (busy.has(chunker)) throw new Error('this chunker is already chunking another input: use one chunker per concurrent stream');
  busy.add(chunker);
  try {
    let filled = 0;
    let eof = false;
    for (;;) {
      while (!eof && filled < buffer.length) {
        const n = read(buffer, filled, buffer.length - filled);
        if (n === 0) eof = true;
        else filled += n;
      }
      let start = 0;
      if (onChunkWithId) {
        // One call cuts the whole buffer and hashes every chunk (in WebAssembly: no copy, no
        // call per chunk).
        const { ends, ids } = chunker.cutWithIds(filled, eof);
        for (let i = 0; i < ends.length; i++) {
          const pending = onChunkWithId(buffer.subarray(start, ends[i]), ids[i]);
          if (pending) await pending;
          start = ends[i];
        }
      } else {
        for (const end of chunker.cut(filled, eof)) {
          const pending = onChunk!(buffer.subarray(start, end));
          if (pending) await pending;
          start = end;
        }
      }
      if (eof) return;
      // Not final: cut stopped with fewer than maxSize bytes left, and the buffer holds at least
      // maxSize, so something was consumed.
      buffer.copyWithin(0, start, filled);
      filled -= start;
    }
  } finally {
    busy.delete(chunker);
  }
}

/** Chunks a file read straight into the chunker's buffer. An empty file has no chunks. */
export async function chunkFile(path: string, chunker: Chunker, onChunk: OnChunk): Promise<void> {
  await driveFile(path, chunker, onChunk);
}

/** chunkFile, with each chunk's id computed by the chunker (see Chunker.cutWithIds). */
export async function chunkFileWithIds(path: string, chunker: Chunker, onChunk: OnChunkWithId): Promise<void> {
  await driveFile(path, chunker, undefined, onChunk);
}

/** Chunks an in-memory input (copied through the chunker's buffer, so the same cuts as chunkFile). */
export async function chunkBytes(data: Uint8Array, chunker: Chunker, onChunk: OnChunk): Promise<void> {
  await drive(chunker, bytesReader(data), onChunk);
}

/** chunkBytes, with each chunk's id computed by the chunker (see Chunker.cutWithIds). */
export async function chunkBytesWithIds(data: Uint8Array, chunker: Chunker, onChunk: OnChunkWithId): Promise<void> {
  await drive(chunker, bytesReader(data), undefined, onChunk);
}

async function driveFile(path: string, chunker: Chunker, onChunk: OnChunk | undefined, onChunkWithId?: OnChunkWithId): Promise<void> {
  const fd = fs.openSync(path, 'r');
  try {
    await drive(chunker, (buffer, offset, length) => fs.readSync(fd, buffer, offset, length, null), onChunk, onChunkWithId);
  } finally {
    fs.closeSync(fd);
  }
}

function bytesReader(data: Uint8Array): (buffer: Uint8Array, offset: number, length: number) => number {
  let pos = 0;
  return (buffer, offset, length) => {
    const n = Math.min(length, data.length - pos);
    buffer.set(data.subarray(pos, pos + n), offset);
    pos += n;
    return n;
  };
}

const U64 = (1n << 64n) - 1n;

function checkId(id: bigint): void {
  if (typeof id !== 'bigint' || id < 0n || id > U64) throw new RangeError(`chunk id must be a 64-bit unsigned bigint, got ${String(id)}`);
}

/** 16 lowercase hex digits. */
export function idToHex(id: bigint): string {
  checkId(id);
  return id.toString(16).padStart(16, '0');
}

export function idFromHex(hex: string): bigint {
  if (!/^[0-9a-f]{16}$/.test(hex)) throw new RangeError(`chunk id must be 16 lowercase hex digits, got ${JSON.stringify(hex)}`);
  return BigInt('0x' + hex);
}

/** 8 bytes, big-endian (so byte order sorts like the number). */
export function idToBytes(id: bigint, out: Uint8Array = new Uint8Array(8), offset = 0): Uint8Array {
  checkId(id);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(offset, id, false);
  return out;
}

export function idFromBytes(bytes: Uint8Array, offset = 0): bigint {
  if (offset < 0 || offset + 8 > bytes.length) throw new RangeError(`need 8 bytes at offset ${offset}, have ${bytes.length}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, false);
}
