import { deflateRawSync, inflateRawSync, brotliDecompressSync, type BrotliOptions } from 'node:zlib';
import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { idToHex } from '../chunk/index.js';

/**
 * The pack format, shared by remote packs and the local store: an 8-byte header, then chunk
 * records back to back. Each record describes itself, so a pack can be scanned and checked
 * without any index, and a range fetched from a remote is validated against what the snapshot
 * said it would hold. Layout in docs/FORMATS.md §Packs.
 */
export const PACK_MAGIC = Buffer.from('PQPK', 'ascii');
export const PACK_VERSION = 1;
export const PACK_HEADER_SIZE = 8;
export const RECORD_HEADER_SIZE = 17;
/** Packs stay below 4 GiB so they fit FAT32 sticks; leave room for the record that crosses. */
export const PACK_LIMIT = 4 * 2 ** 30 - 64 * 2 ** 20;

/** How a chunk's bytes are stored. New values may be added; old readers refuse them by name. */
export enum Repr {
  Raw = 0,
  Deflate = 1,
  Brotli = 2,
  /** Reserved: zstd frame. */
  Zstd = 3,
  /** Reserved: a delta against another chunk (payload starts with the base id). */
  Delta = 16,
}

export interface RecordHeader {
  id: bigint;
  repr: Repr;
  rawLength: number;
  storedLength: number;
}

export function packHeader(): Uint8Array {
  const h = Buffer.alloc(PACK_HEADER_SIZE);
  PACK_MAGIC.copy(h, 0);
  h[4] = PACK_VERSION;
  return h;
}

export function checkPackHeader(h: Uint8Array, what: string): void {
  if (h.length < PACK_HEADER_SIZE || !PACK_MAGIC.equals(h.subarray(0, 4))) {
    throw new PaqueteError('DAMAGED_PACK', `${what} is not a paquete pack (bad magic)`);
  }
  requireFormat(what, 'pack', h[4], [PACK_VERSION]);
}

/** Chooses the representation: compressed only when it saves something worth a header. */
export function encodeRecord(id: bigint, raw: Uint8Array, level = 6): Uint8Array {
  let repr = Repr.Raw;
  let payload: Uint8Array = raw;
  if (raw.length >= 64) {
    const z = deflateRawSync(raw, { level });
    if (z.length + 16 < raw.length) {
      repr = Repr.Deflate;
      payload = z;
    }
  }
  return recordOf(id, repr, raw.length, payload);
}

function recordOf(id: bigint, repr: Repr, rawLength: number, payload: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(RECORD_HEADER_SIZE + payload.length);
  writeRecordHeader(out, 0, { id, repr, rawLength, storedLength: payload.length });
  out.set(payload, RECORD_HEADER_SIZE);
  return out;
}

/** Writes a record header at out[at, at + RECORD_HEADER_SIZE). */
export function writeRecordHeader(out: Buffer, at: number, h: RecordHeader): void {
  out.writeBigUInt64BE(h.id, at);
  out[at + 8] = h.repr;
  out.writeUInt32LE(h.rawLength, at + 9);
  out.writeUInt32LE(h.storedLength, at + 13);
}

export function decodeRecordHeader(b: Uint8Array, offset = 0): RecordHeader {
  if (b.length - offset < RECORD_HEADER_SIZE) {
    throw new PaqueteError('DAMAGED_PACK', 'truncated chunk record header');
  }
  const buf = Buffer.from(b.buffer, b.byteOffset + offset, RECORD_HEADER_SIZE);
  return {
    id: buf.readBigUInt64BE(0),
    repr: buf[8] as Repr,
    rawLength: buf.readUInt32LE(9),
    storedLength: buf.readUInt32LE(13),
  };
}

/** Largest raw chunk any reader accepts: far above any chunker max, far below memory trouble. */
export const MAX_CHUNK = 64 * 2 ** 20;

/** The raw chunk bytes of a record's payload. Throws DAMAGED_PACK on anything inconsistent. */
export function decodePayload(h: RecordHeader, payload: Uint8Array): Uint8Array {
  if (h.rawLength > MAX_CHUNK) throw new PaqueteError('DAMAGED_PACK', `chunk record claims ${h.rawLength} bytes`);
  let raw: Uint8Array;
  try {
    switch (h.repr) {
      case Repr.Raw:
        raw = payload;
        break;
      case Repr.Deflate:
        raw = whole(inflateRawSync(payload, { maxOutputLength: h.rawLength || 1, info: true }) as unknown as Inflated, payload);
        break;
      case Repr.Brotli:
        raw = whole(brotliDecompressSync(payload, { maxOutputLength: h.rawLength || 1, info: true } as BrotliOptions) as unknown as Inflated, payload);
        break;
      default:
        throw new PaqueteError('DAMAGED_PACK', `chunk stored as representation ${h.repr}, which this paquete cannot decode`, 'upgrade paquete');
    }
  } catch (e) {
    if (e instanceof PaqueteError) throw e;
    throw new PaqueteError('DAMAGED_PACK', `chunk ${idToHex(h.id)} does not decompress: ${(e as Error).message}`);
  }
  if (raw.length !== h.rawLength) {
    throw new PaqueteError('DAMAGED_PACK', `chunk ${idToHex(h.id)} has ${raw.length} bytes, its record says ${h.rawLength}`);
  }
  return raw;
}

/** What zlib returns with `info: true`: the output, and how much input the stream took. */
interface Inflated {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

/**
 * The output of a stream that took the whole payload. Bytes after the end of a compressed stream
 * are damage: a stored length grown by a flipped bit would otherwise still decode, and a scan of
 * a pack would take the records that follow as that one's tail.
 */
function whole(r: Inflated, payload: Uint8Array): Uint8Array {
  if (r.engine.bytesWritten !== payload.length) {
    throw new PaqueteError('DAMAGED_PACK', `chunk record has ${payload.length - r.engine.bytesWritten} bytes past the end of its compressed stream`);
  }
  return r.buffer;
}

export interface ParsedRecord {
  header: RecordHeader;
  /** The whole record (header + payload), to store as is. */
  record: Uint8Array;
  payload: Uint8Array;
}

/**
 * Splits a byte stream (one fetched range) into whole records as they complete, so the bytes of
 * a connection cut midway are kept up to the last complete chunk.
 */
export class RecordStream {
  private pending: Uint8Array[] = [];
  private pendingLength = 0;

  push(bytes: Uint8Array): ParsedRecord[] {
    this.pending.push(bytes);
    this.pendingLength += bytes.length;
    const out: ParsedRecord[] = [];
    if (this.pendingLength < RECORD_HEADER_SIZE) return out;
    let buf = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    let pos = 0;
    while (buf.length - pos >= RECORD_HEADER_SIZE) {
      const header = decodeRecordHeader(buf, pos);
      if (header.storedLength > MAX_CHUNK + 1024) {
        throw new PaqueteError('DAMAGED_PACK', `chunk record claims ${header.storedLength} stored bytes`);
      }
      const total = RECORD_HEADER_SIZE + header.storedLength;
      if (buf.length - pos < total) break;
      const record = buf.subarray(pos, pos + total);
      out.push({ header, record, payload: record.subarray(RECORD_HEADER_SIZE) });
      pos += total;
    }
    buf = buf.subarray(pos);
    this.pending = buf.length ? [buf] : [];
    this.pendingLength = buf.length;
    return out;
  }

  /** Bytes received that do not (yet) make a whole record. */
  get leftover(): number {
    return this.pendingLength;
  }
}
