import { brotliCompressSync, brotliDecompressSync, constants as zc } from 'node:zlib';
import { PaqueteError } from '../errors.js';
import { ByteReader, ByteWriter } from '../util/bytes.js';

/**
 * An update: how a client builds snapshot N cheaply from what it already holds. Its head
 * (`updates/<sha256>.upd`, named in the signed manifest) carries N's index as a delta against
 * the base snapshot's index and a table of frames; the frames themselves lie back to back in
 * `frames/<sha256>.frames`. A frame is one zstd frame whose content is a list of N's chunks laid
 * end to end, compressed against a dictionary made of byte ranges of the base snapshot's files
 * (a delta), or against nothing (an update "from nothing": a first download compressed as one
 * stream instead of chunk by chunk). Layout in docs/FORMATS.md §Updates.
 */
export const UPDATE_MAGIC = Buffer.from('PQUP', 'ascii');
export const UPDATE_VERSION = 1;
/**
 * The same layout, for a target index of version 3 (rebuilt files): an older client refuses the
 * head by its version, fetches the .snap instead and is told to upgrade by that, rather than
 * rebuilding an index it cannot read.
 */
export const UPDATE_VERSION_REBUILT = 2;
export const FRAMES_MAGIC = Buffer.from('PQFR', 'ascii');
export const FRAMES_VERSION = 1;
export const FRAMES_HEADER_SIZE = 8;
const BROTLI = 2;

/** A byte range of one of the base snapshot's files: part of a frame's dictionary. */
export interface BaseRange {
  /** Index into the base snapshot's files. */
  file: number;
  start: number;
  length: number;
  /** The range runs to the end of the file (written as length 0; `length` is filled in by resolveBaseRanges). */
  toEnd?: boolean;
}

/**
 * Fills in the length of ranges that run to the end of their base file, from the base snapshot
 * (a head alone does not know file sizes). A range naming a file the base lacks keeps length 0,
 * and the range checks (baseBytes, usableFrames) refuse it by its file.
 */
export function resolveBaseRanges(head: UpdateHead, base: { files: { size: number }[] } | null): UpdateHead {
  for (const f of head.frames) {
    for (const b of f.bases) {
      if (!b.toEnd) continue;
      const size = base?.files[b.file]?.size;
      b.length = size === undefined ? 0 : Math.max(0, size - b.start);
    }
  }
  return head;
}

export interface FrameEntry {
  /** Byte offset of the zstd frame in the frames file. */
  offset: number;
  length: number;
  /** Indices into N's chunk table, in the order their bytes follow one another in the frame's content. */
  yields: number[];
  /** The dictionary, in order; empty for a frame compressed against nothing. */
  bases: BaseRange[];
}

export interface UpdateHead {
  /** Name (hex SHA-256 of the .snap) of the snapshot this update builds. */
  target: string;
  /** Name of the snapshot it starts from, or null for an update from nothing. */
  base: string | null;
  /** Name (hex SHA-256) and size of the frames file. */
  framesFile: string;
  framesSize: number;
  /** zstd frame of N's index body with the base's index body as dictionary; empty when base is null. */
  indexDelta: Uint8Array;
  /** Length of N's index body (what indexDelta decodes to); 0 when base is null. */
  indexBodySize: number;
  /** Version of N's index (2, or 3 with rebuilt files): the head's version says it. */
  indexVersion: number;
  frames: FrameEntry[];
}

const NO_BASE = Buffer.alloc(32);

export function framesHeader(): Uint8Array {
  const h = Buffer.alloc(FRAMES_HEADER_SIZE);
  FRAMES_MAGIC.copy(h, 0);
  h[4] = FRAMES_VERSION;
  return h;
}

/** A frame's chunk indices: nYields, then each as a zigzag gap from the previous (−1 first). */
export function writeYields(w: ByteWriter, yields: number[]): void {
  w.varint(yields.length);
  let prev = -1;
  for (const i of yields) {
    w.zigzag(i - prev - 1);
    prev = i;
  }
}

export function readYields(r: ByteReader): number[] {
  const yields: number[] = new Array(r.count(1, 'frame chunk'));
  let prev = -1;
  for (let j = 0; j < yields.length; j++) {
    prev = prev + 1 + r.zigzag();
    if (prev < 0) r.fail('a frame names a negative chunk');
    yields[j] = prev;
  }
  return yields;
}

/** The 8-byte head header (magic, version, brotli, reserved) and the brotli body. */
export function packHead(version: number, body: Uint8Array): Uint8Array {
  const packed = brotliCompressSync(body, {
    params: { [zc.BROTLI_PARAM_QUALITY]: 11, [zc.BROTLI_PARAM_LGWIN]: 22, [zc.BROTLI_PARAM_SIZE_HINT]: body.length },
  });
  return Buffer.concat([UPDATE_MAGIC, Buffer.from([version, BROTLI, 0, 0]), packed]);
}

/** The body of a head of one of `versions`; a head of another version is refused with "upgrade paquete". */
export function unpackHead(data: Uint8Array, what: string, versions: number[]): Uint8Array {
  if (data.length < 8 || !UPDATE_MAGIC.equals(data.subarray(0, 4))) throw new PaqueteError('BAD_FORMAT', `not a paquete ${what} (bad magic)`);
  if (!versions.includes(data[4])) throw new PaqueteError('BAD_FORMAT', `${what} version ${data[4]} is not supported by this paquete`, 'upgrade paquete');
  if (data[5] !== BROTLI) throw new PaqueteError('BAD_FORMAT', `${what} uses unknown compression ${data[5]}`);
  try {
    return brotliDecompressSync(data.subarray(8), { maxOutputLength: 1 << 30 });
  } catch (e) {
    throw new PaqueteError('BAD_FORMAT', `damaged ${what}: ${(e as Error).message}`);
  }
}

export function encodeUpdateHead(u: UpdateHead): Uint8Array {
  const w = new ByteWriter(1 << 16);
  w.bytes(Buffer.from(u.target, 'hex'));
  w.bytes(u.base ? Buffer.from(u.base, 'hex') : NO_BASE);
  w.bytes(Buffer.from(u.framesFile, 'hex')).varint(u.framesSize);
  w.varint(u.indexBodySize).varint(u.indexDelta.length).bytes(u.indexDelta);
  w.varint(u.frames.length);
  let expected = FRAMES_HEADER_SIZE;
  for (const f of u.frames) {
    if (f.offset !== expected) throw new Error('frames must lie back to back in table order');
    w.varint(f.length);
    writeYields(w, f.yields);
    w.varint(f.bases.length);
    // Ranges mostly run through consecutive whole base files: file as a gap, and a length of 0
    // for "to the end of the file" (resolveBaseRanges fills it in), so such a range costs 3 zero bytes.
    let prevFile = -1;
    for (const b of f.bases) {
      w.zigzag(b.file - prevFile - 1).varint(b.start).varint(b.toEnd ? 0 : b.length);
      prevFile = b.file;
    }
    expected += f.length;
  }
  return packHead(u.indexVersion === 3 ? UPDATE_VERSION_REBUILT : UPDATE_VERSION, w.finish());
}

/** Decodes an update head; structural checks only (the caller checks indices against N and the base). */
export function decodeUpdateHead(data: Uint8Array): UpdateHead {
  const what = 'update head';
  const r = new ByteReader(unpackHead(data, what, [UPDATE_VERSION, UPDATE_VERSION_REBUILT]), what);
  const target = Buffer.from(r.bytes(32)).toString('hex');
  const baseBytes = Buffer.from(r.bytes(32));
  const base = baseBytes.equals(NO_BASE) ? null : baseBytes.toString('hex');
  const framesFile = Buffer.from(r.bytes(32)).toString('hex');
  const framesSize = r.varint();
  const indexBodySize = r.varint();
  const indexDelta = Buffer.from(r.bytes(r.count(1, 'index delta byte')));
  const frames: FrameEntry[] = [];
  let offset = FRAMES_HEADER_SIZE;
  for (let n = r.count(3, 'frame'); n > 0; n--) {
    const length = r.varint();
    const yields = readYields(r);
    const bases: BaseRange[] = new Array(r.count(3, 'base range'));
    let prevFile = -1;
    for (let j = 0; j < bases.length; j++) {
      const file = prevFile + 1 + r.zigzag();
      if (file < 0) r.fail('a frame names a negative base file');
      const start = r.varint();
      const length = r.varint();
      bases[j] = length === 0 ? { file, start, length: 0, toEnd: true } : { file, start, length };
      prevFile = file;
    }
    frames.push({ offset, length, yields, bases });
    offset += length;
  }
  if (offset > framesSize) r.fail(`frames end at ${offset}, past the frames file's ${framesSize} bytes`);
  r.end();
  return { target, base, framesFile, framesSize, indexDelta, indexBodySize, indexVersion: data[4] === UPDATE_VERSION_REBUILT ? 3 : 2, frames };
}
