import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { chunkId, idToHex as hex } from '../chunk/index.js';
import { decodePayload, decodeRecordHeader, MAX_CHUNK, PACK_HEADER_SIZE, RECORD_HEADER_SIZE, RecordHeader, Repr } from './pack.js';

/** Where a chunk's record lies in the local store. */
export interface Location {
  pack: number;
  offset: number;
  /** Whole record length, header included. */
  length: number;
}

/** A location and the chunk it must hold. */
export interface Located extends Location {
  id: bigint;
}

export const packFileName = (n: number) => `${String(n).padStart(8, '0')}.pack`;

/** The record at buf[at, at + loc.length): its header, checked against the location, and payload. */
export function recordAt(buf: Uint8Array, at: number, loc: Location): { header: RecordHeader; payload: Uint8Array } {
  const header = decodeRecordHeader(buf, at);
  if (RECORD_HEADER_SIZE + header.storedLength !== loc.length) {
    throw new PaqueteError('DAMAGED_PACK', `pack ${packFileName(loc.pack)} record at ${loc.offset} has the wrong length`);
  }
  return { header, payload: buf.subarray(at + RECORD_HEADER_SIZE, at + loc.length) };
}

/** Opens pack `pack` of the store at `storeDir`; a missing pack is store damage. */
export function openPack(storeDir: string, pack: number, flags: 'r' | 'r+'): number {
  try {
    return openSync(join(storeDir, 'packs', packFileName(pack)), flags);
  } catch {
    throw new PaqueteError('DAMAGED_STORE', `pack ${packFileName(pack)} is missing from the store`, 'run paquete verify --repair');
  }
}

/** Throws unless the record read at `loc` is the one of chunk `id`. */
export function expectId(header: RecordHeader, loc: Location, id: bigint): void {
  if (header.id !== id) throw new PaqueteError('DAMAGED_PACK', `pack ${packFileName(loc.pack)} at ${loc.offset} holds ${hex(header.id)}, not ${hex(id)}`, 'run paquete verify --repair');
}

/** Reads at most this much at once: records lying back to back are read together. */
const RUN_BYTES = 4 << 20;

/**
 * Reads chunks from a store's packs, given their locations: the place worker's way to the bytes
 * of the files it writes, with no index of its own (the main thread looked the locations up)
 * and no copy through the main thread. Records that lie back to back (a file's chunks, as they
 * arrived) are read in one call into a buffer reused from run to run. Bytes are not checked
 * against their ids here: the file's SHA-256 is, right after.
 */
export class PackReader {
  private readonly fds = new Map<number, number>();
  private buffer = Buffer.allocUnsafe(1 << 20);

  constructor(private readonly storeDir: string) {}

  /** Hands the raw bytes of `records`, in order, to `each` a run at a time (views valid during the call). */
  read(records: Located[], each: (raws: Uint8Array[]) => void): void {
    for (let start = 0; start < records.length; ) {
      const first = records[start];
      let end = start + 1;
      let bytes = first.length;
      while (end < records.length) {
        const r = records[end];
        const prev = records[end - 1];
        if (r.pack !== first.pack || r.offset !== prev.offset + prev.length || bytes + r.length > RUN_BYTES) break;
        bytes += r.length;
        end++;
      }
      if (this.buffer.length < bytes) this.buffer = Buffer.allocUnsafe(bytes);
      const n = readSync(this.fd(first.pack), this.buffer, 0, bytes, first.offset);
      if (n !== bytes) throw new PaqueteError('DAMAGED_PACK', `pack ${packFileName(first.pack)} is truncated at ${first.offset + n}`, 'run paquete verify --repair');
      const raws: Uint8Array[] = [];
      for (let k = start, at = 0; k < end; at += records[k].length, k++) {
        const { header, payload } = recordAt(this.buffer, at, records[k]);
        expectId(header, records[k], records[k].id);
        raws.push(decodePayload(header, payload));
      }
      each(raws);
      start = end;
    }
  }

  private fd(pack: number): number {
    let fd = this.fds.get(pack);
    if (fd === undefined) this.fds.set(pack, (fd = openPack(this.storeDir, pack, 'r')));
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** What a scan of one pack file found. */
export interface PackScan {
  size: number;
  /** End of the last intact record (PACK_HEADER_SIZE when there is none): where appending may go on. */
  end: number;
  /** Intact records found. */
  records: number;
  /** Byte ranges that hold no intact record: damage, or a torn tail when one ends at `size`. */
  damaged: { offset: number; length: number }[];
}

/** Bytes read at once while scanning (records up to MAX_CHUNK get a window of their own). */
const SCAN_WINDOW = 8 << 20;

/**
 * Walks a pack file record by record, from just after its header, and hands every intact record
 * (its header plausible, its payload decoding to exactly its raw length and hashing to its id)
 * (yielded in order). Packs describe themselves, so this is how an index is rebuilt without any other
 * file. Past a damaged record the scan moves on byte by byte until a record is intact again:
 * one flipped length must not cost the rest of a 4 GiB pack. A false resync needs 8 bytes of
 * garbage to equal the xxh64 of what follows them (2^-64 per offset); and any record accepted
 * hashes to its own id, so even then nothing wrong is indexed.
 */
export function* scanPack(fd: number, pack: number): Generator<Located, PackScan> {
  const size = fstatSync(fd).size;
  let window = Buffer.allocUnsafe(Math.min(SCAN_WINDOW, Math.max(size, 1)));
  let windowStart = 0;
  let windowEnd = 0;
  /** A view of file bytes [at, at + n), reading a new window when they are not in the current one. */
  const bytes = (at: number, n: number): Uint8Array => {
    if (at < windowStart || at + n > windowEnd) {
      const want = Math.min(Math.max(n, SCAN_WINDOW), size - at);
      if (window.length < want) window = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const r = readSync(fd, window, got, want - got, at + got);
        if (r === 0) break;
        got += r;
      }
      windowStart = at;
      windowEnd = at + got;
    }
    return window.subarray(at - windowStart, at - windowStart + n);
  };
  /** The intact record starting at `at`, or undefined. */
  const intact = (at: number): Located | undefined => {
    if (at + RECORD_HEADER_SIZE > size) return undefined;
    const h = decodeRecordHeader(bytes(at, RECORD_HEADER_SIZE));
    // Cheap checks first: while resyncing, almost every offset fails one of these.
    if (h.repr !== Repr.Raw && h.repr !== Repr.Deflate && h.repr !== Repr.Brotli) return undefined;
    if (h.rawLength > MAX_CHUNK || h.storedLength > MAX_CHUNK + 1024) return undefined;
    if (h.repr === Repr.Raw && h.storedLength !== h.rawLength) return undefined;
    const length = RECORD_HEADER_SIZE + h.storedLength;
    if (at + length > size) return undefined;
    try {
      const raw = decodePayload(h, bytes(at + RECORD_HEADER_SIZE, h.storedLength));
      return chunkId(raw) === h.id ? { id: h.id, pack, offset: at, length } : undefined;
    } catch {
      return undefined;
    }
  };
  const damaged: PackScan['damaged'] = [];
  let records = 0;
  let end = PACK_HEADER_SIZE;
  let badFrom = -1;
  for (let pos = PACK_HEADER_SIZE; pos < size; ) {
    const rec = intact(pos);
    if (!rec) {
      if (badFrom < 0) badFrom = pos;
      pos++;
      continue;
    }
    if (badFrom >= 0) damaged.push({ offset: badFrom, length: pos - badFrom });
    badFrom = -1;
    yield rec;
    records++;
    pos = end = pos + rec.length;
  }
  if (badFrom >= 0) damaged.push({ offset: badFrom, length: size - badFrom });
  return { size, end, records, damaged };
}
