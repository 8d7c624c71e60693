import { brotliDecompressSync } from 'node:zlib';
import { brotli, BrotliCompress, BrotliParams } from '../util/brotli.js';
import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { INDEX_VERSIONS } from '../snapshot/snapshot.js';

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
/**
 * An update from nothing in *segments* (docs/DESIGN-REMOTE-V3.md decision 5): its frames lie in
 * several frames files, one per segment of N's files, so a segment whose files did not change keeps
 * its file, by name, from one snapshot's stream to the next. A reader of versions 1-2 refuses the
 * head by its version ("upgrade paquete") and fetches records; it never reads a segment's offsets
 * as offsets into one frames file.
 */
export const UPDATE_VERSION_SEGMENTS = 4;
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

/** One frames file of a segmented update from nothing, and how many of the head's frames lie in it. */
export interface Segment {
  /** Name (hex SHA-256) of `frames/<name>.frames`. */
  name: string;
  /** Its size in bytes (8 header bytes and its frames). */
  size: number;
  /** Its frames: the next `frames` of the head's table, back to back from its byte 8. */
  frames: number;
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
  /**
   * A segmented update from nothing (version 4): its frames files in order. Frame offsets are then
   * offsets into the segments laid end to end, whole (so the 8 header bytes of the next segment
   * lie between its frames and the previous segment's: no two frames of different files are ever
   * adjacent); `framesFile` is the first segment's and `framesSize` their total. frameSource
   * maps an offset to its file.
   */
  segments?: Segment[];
  frames: FrameEntry[];
}

/**
 * Where bytes [offset, end) of an update's frames lie: the frames file and the offset in it. For a
 * segmented head, the segment holding them (a range across two segments is a caller's bug: the
 * planner joins only adjacent frames, and frames of two segments never are).
 */
export function frameSource(u: Pick<UpdateHead, 'framesFile' | 'segments'>, offset: number, end = offset): { file: string; offset: number } {
  if (!u.segments) return { file: u.framesFile, offset };
  let at = 0;
  for (const s of u.segments) {
    if (offset < at + s.size) {
      if (end > at + s.size) throw new Error(`frames ${offset}-${end} run across segment ${s.name.slice(0, 12)}`);
      return { file: s.name, offset: offset - at };
    }
    at += s.size;
  }
  throw new Error(`frame offset ${offset} lies past the segments (${at} bytes)`);
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

/**
 * The 8-byte header (magic, version, brotli, reserved) and the brotli body: the shape of update
 * and offer heads, and of the index layers (src/snapshot/layers.ts) with their own magic.
 */
export function packHead(version: number, body: Uint8Array, magic: Buffer = UPDATE_MAGIC): Uint8Array {
  return headOfPacked(version, brotli(body, HEAD_BROTLI), magic);
}

/** The same, compressed wherever `compress` runs (a publish: on its worker threads); the same bytes. */
export async function packHeadVia(version: number, body: Uint8Array, magic: Buffer, compress: BrotliCompress): Promise<Uint8Array> {
  return headOfPacked(version, await compress(body, HEAD_BROTLI), magic);
}

/** Heads and layers: brotli at its best (they are small, and cross the paid link). */
const HEAD_BROTLI: BrotliParams = { quality: 11, lgwin: 22 };

const headOfPacked = (version: number, packed: Uint8Array, magic: Buffer): Uint8Array => Buffer.concat([magic, Buffer.from([version, BROTLI, 0, 0]), packed]);

/** The body of a head of one of `versions`; a head of another version is refused with "upgrade paquete". */
export function unpackHead(data: Uint8Array, what: string, versions: number[], magic: Buffer = UPDATE_MAGIC): Uint8Array {
  if (data.length < 8 || !magic.equals(data.subarray(0, 4))) throw new PaqueteError('BAD_FORMAT', `not a paquete ${what} (bad magic)`);
  requireFormat(what, what, data[4], versions);
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
  if (u.segments) {
    if (u.base || u.indexDelta.length) throw new Error('only an update from nothing comes in segments');
    w.varint(u.segments.length);
    for (const s of u.segments) w.bytes(Buffer.from(s.name, 'hex')).varint(s.size).varint(s.frames);
    w.varint(u.indexVersion);
  } else {
    w.bytes(Buffer.from(u.framesFile, 'hex')).varint(u.framesSize);
    w.varint(u.indexBodySize).varint(u.indexDelta.length).bytes(u.indexDelta);
  }
  w.varint(u.frames.length);
  const starts = frameStarts(u);
  if (starts.length !== u.frames.length) throw new Error("the segments' frame counts do not add up to the frames");
  for (const [k, f] of u.frames.entries()) {
    if (f.offset !== starts[k]) throw new Error('frames must lie back to back in table order');
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
  }
  return packHead(u.segments ? UPDATE_VERSION_SEGMENTS : u.indexVersion === 3 ? UPDATE_VERSION_REBUILT : UPDATE_VERSION, w.finish());
}

/**
 * Where each frame of a head must start, from the frames' lengths: back to back from byte 8 of
 * the frames file, or for a segmented head from byte 8 of each segment in turn, segments laid end
 * to end. Fails when a segment's frames do not fill it exactly.
 */
function frameStarts(u: Pick<UpdateHead, 'segments' | 'frames'>, fail: (m: string) => never = (m) => { throw new Error(m); }): number[] {
  const starts: number[] = [];
  if (!u.segments) {
    let at = FRAMES_HEADER_SIZE;
    for (const f of u.frames) {
      starts.push(at);
      at += f.length;
    }
    return starts;
  }
  let base = 0;
  let k = 0;
  for (const s of u.segments) {
    let at = base + FRAMES_HEADER_SIZE;
    for (let j = 0; j < s.frames; j++, k++) {
      if (k >= u.frames.length) fail('the segments name more frames than the head lists');
      starts.push(at);
      at += u.frames[k].length;
    }
    if (at !== base + s.size) fail(`segment ${s.name.slice(0, 12)}'s frames take ${at - base} bytes of its ${s.size}`);
    base += s.size;
  }
  if (k !== u.frames.length) fail('the head lists frames that no segment holds');
  return starts;
}

/** Decodes an update head; structural checks only (the caller checks indices against N and the base). */
export function decodeUpdateHead(data: Uint8Array): UpdateHead {
  const what = 'update head';
  const r = new ByteReader(unpackHead(data, what, [UPDATE_VERSION, UPDATE_VERSION_REBUILT, UPDATE_VERSION_SEGMENTS]), what);
  const target = Buffer.from(r.bytes(32)).toString('hex');
  const baseBytes = Buffer.from(r.bytes(32));
  const base = baseBytes.equals(NO_BASE) ? null : baseBytes.toString('hex');
  let framesFile: string;
  let framesSize: number;
  let indexBodySize = 0;
  let indexDelta: Uint8Array = Buffer.alloc(0);
  let indexVersion = data[4] === UPDATE_VERSION_REBUILT ? 3 : 2;
  let segments: Segment[] | undefined;
  if (data[4] === UPDATE_VERSION_SEGMENTS) {
    if (base !== null) r.fail('a segmented update names a base');
    segments = new Array(r.count(34, 'segment'));
    if (!segments.length) r.fail('a segmented update has no segment');
    for (let k = 0; k < segments.length; k++) segments[k] = { name: Buffer.from(r.bytes(32)).toString('hex'), size: r.varint(), frames: r.varint() };
    indexVersion = r.varint();
    requireFormat(`the index a segmented ${what} builds`, 'snapshot index', indexVersion, INDEX_VERSIONS);
    framesFile = segments[0].name;
    framesSize = segments.reduce((n, s) => n + s.size, 0);
  } else {
    framesFile = Buffer.from(r.bytes(32)).toString('hex');
    framesSize = r.varint();
    indexBodySize = r.varint();
    indexDelta = Buffer.from(r.bytes(r.count(1, 'index delta byte')));
  }
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
  if (segments) {
    if (frames.some((f) => f.bases.length)) r.fail('a frame of an update from nothing names base ranges');
    const starts = frameStarts({ segments, frames }, (m) => r.fail(m));
    frames.forEach((f, k) => (f.offset = starts[k]));
  } else if (offset > framesSize) r.fail(`frames end at ${offset}, past the frames file's ${framesSize} bytes`);
  r.end();
  return { target, base, framesFile, framesSize, indexDelta, indexBodySize, indexVersion, ...(segments ? { segments } : {}), frames };
}
