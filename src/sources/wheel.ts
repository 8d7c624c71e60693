import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { PaqueteError } from '../errors.js';

/**
 * A small reader of zip files (wheels are zip files): the central directory, the local headers,
 * and one member's bytes. Written for our two jobs, not as a general unzip:
 *   - where each member's local header and data begin, so the publisher can force chunk cuts
 *     there (unchanged members then dedupe across versions of a wheel);
 *   - the `*.dist-info/METADATA` of a wheel, for the PyPI index and the dependency planner.
 * Zip64 is read; encryption, multi-disk archives and compression other than stored/deflate are
 * refused by name. Everything a file claims is checked against its size before it is believed.
 */

/** Random access to the bytes of a zip: an in-memory buffer or an open file. */
export interface ZipInput {
  readonly size: number;
  /** Exactly `length` bytes at `position` (fails if the input is shorter). */
  read(position: number, length: number): Uint8Array;
}

export function zipFromBytes(bytes: Uint8Array): ZipInput {
  return {
    size: bytes.length,
    read(position, length) {
      if (position < 0 || position + length > bytes.length) throw bad(`read past the end (${position}+${length} of ${bytes.length})`);
      return bytes.subarray(position, position + length);
    },
  };
}

/** Runs `fn` with the file at `path` opened as a ZipInput; the file is closed afterwards. */
/** `path`: a file's path, or a descriptor open for reading (closed here). */
export function withZipFile<T>(path: string | number, fn: (zip: ZipInput) => T): T {
  const fd = typeof path === 'number' ? path : openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    return fn({
      size,
      read(position, length) {
        if (position < 0 || position + length > size) throw bad(`read past the end (${position}+${length} of ${size})`);
        const buf = Buffer.allocUnsafe(length);
        let done = 0;
        while (done < length) {
          const n = readSync(fd, buf, done, length - done, position + done);
          if (n === 0) throw bad('the file ended early');
          done += n;
        }
        return buf;
      },
    });
  } finally {
    closeSync(fd);
  }
}

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the member's local file header. */
  headerOffset: number;
}

export interface ZipDirectory {
  entries: ZipEntry[];
  /** Offset of the central directory (where the members end). */
  directoryOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_END64_LOCATOR = 0x07064b50;
const END_SIZE = 22;
const MAX_COMMENT = 0xffff;
/** A member we inflate into memory (METADATA, PKG-INFO) is refused beyond this. */
const MAX_MEMBER = 64 << 20;

function bad(why: string): PaqueteError {
  return new PaqueteError('BAD_FORMAT', `not a readable zip file: ${why}`);
}

const view = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Reads the central directory: every member with its sizes and local header offset. */
export function readZipDirectory(zip: ZipInput): ZipDirectory {
  if (zip.size < END_SIZE) throw bad('too short');
  // The end record sits in the last 22 bytes plus a comment of up to 64 KiB: search backwards.
  const tailLength = Math.min(zip.size, END_SIZE + MAX_COMMENT);
  const tailStart = zip.size - tailLength;
  const tail = view(zip.read(tailStart, tailLength));
  let end = -1;
  for (let i = tail.length - END_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_END && i + END_SIZE + tail.readUInt16LE(i + 20) === tail.length) {
      end = i;
      break;
    }
  }
  if (end < 0) throw bad('no end of central directory record');
  if (tail.readUInt16LE(end + 4) !== 0 || tail.readUInt16LE(end + 6) !== 0) throw bad('multi-disk archives are not supported');
  let count = tail.readUInt16LE(end + 10);
  let dirSize = tail.readUInt32LE(end + 12);
  let dirOffset = tail.readUInt32LE(end + 16);
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    const locAt = tailStart + end - 20;
    if (locAt < 0) throw bad('zip64 locator missing');
    const loc = view(zip.read(locAt, 20));
    if (loc.readUInt32LE(0) !== SIG_END64_LOCATOR) throw bad('zip64 locator missing');
    const end64At = Number(loc.readBigUInt64LE(8));
    if (end64At + 56 > zip.size) throw bad('zip64 end record out of range');
    const e64 = view(zip.read(end64At, 56));
    if (e64.readUInt32LE(0) !== SIG_END64) throw bad('bad zip64 end record');
    count = Number(e64.readBigUInt64LE(32));
    dirSize = Number(e64.readBigUInt64LE(40));
    dirOffset = Number(e64.readBigUInt64LE(48));
  }
  if (dirOffset + dirSize > zip.size) throw bad('central directory out of range');
  if (count > dirSize / 46) throw bad(`claims ${count} members in a ${dirSize}-byte directory`);
  const dir = view(zip.read(dirOffset, dirSize));
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > dir.length || dir.readUInt32LE(p) !== SIG_CENTRAL) throw bad(`central directory entry ${i} is damaged`);
    const flags = dir.readUInt16LE(p + 8);
    const method = dir.readUInt16LE(p + 10);
    const crc = dir.readUInt32LE(p + 16);
    let compressedSize = dir.readUInt32LE(p + 20);
    let size = dir.readUInt32LE(p + 24);
    const nameLength = dir.readUInt16LE(p + 28);
    const extraLength = dir.readUInt16LE(p + 30);
    const commentLength = dir.readUInt16LE(p + 32);
    let headerOffset = dir.readUInt32LE(p + 42);
    const next = p + 46 + nameLength + extraLength + commentLength;
    if (next > dir.length) throw bad(`central directory entry ${i} runs past the directory`);
    const name = dir.toString('utf8', p + 46, p + 46 + nameLength);
    // Zip64 extra field: the 64-bit values, in this order, for those marked 0xFFFFFFFF.
    for (let x = p + 46 + nameLength; x + 4 <= p + 46 + nameLength + extraLength; ) {
      const id = dir.readUInt16LE(x);
      const len = dir.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let q = x + 4;
        const take = () => {
          if (q + 8 > x + 4 + len) throw bad(`zip64 field of ${name} is short`);
          const v = Number(dir.readBigUInt64LE(q));
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (headerOffset === 0xffffffff) headerOffset = take();
      }
      x += 4 + len;
    }
    if (headerOffset + 30 > dirOffset) throw bad(`member ${name} lies outside the archive`);
    entries.push({ name, method, flags, crc32: crc, compressedSize, size, headerOffset });
    p = next;
  }
  return { entries, directoryOffset: dirOffset };
}

/** Offset where a member's (compressed) data begins, read from its local header. */
export function dataOffset(zip: ZipInput, e: ZipEntry): number {
  const h = view(zip.read(e.headerOffset, 30));
  if (h.readUInt32LE(0) !== SIG_LOCAL) throw bad(`no local header for ${e.name}`);
  const at = e.headerOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
  if (at + e.compressedSize > zip.size) throw bad(`member ${e.name} runs past the end`);
  return at;
}

/** A member's bytes, inflated and checked against its CRC-32 and size. */
export function readZipMember(zip: ZipInput, e: ZipEntry, limit = MAX_MEMBER): Uint8Array {
  if (e.flags & 1) throw bad(`${e.name} is encrypted`);
  if (e.size > limit) throw bad(`${e.name} is ${e.size} bytes, more than the ${limit} read into memory`);
  const raw = zip.read(dataOffset(zip, e), e.compressedSize);
  let out: Uint8Array;
  if (e.method === 0) out = raw;
  else if (e.method === 8) {
    try {
      out = inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
    } catch (err) {
      throw bad(`${e.name} does not inflate: ${(err as Error).message}`);
    }
  } else throw bad(`${e.name} uses compression method ${e.method}`);
  if (out.length !== e.size || crc32(out) >>> 0 !== e.crc32 >>> 0) throw bad(`${e.name} fails its CRC check`);
  return out;
}

/**
 * Where the publisher forces chunk cuts in a wheel: at every member's local header and at the
 * start of its data, and at the central directory. Unchanged members across versions usually
 * keep their compressed bytes but not their local headers (the timestamp changes with every
 * build: in docutils 0.22.4 → 0.23, 185 of 212 members have the same CRC and none the same
 * time), so the header must be a chunk of its own for the data to dedupe. Sorted, distinct,
 * strictly inside (0, size). A function of the file's bytes alone, so `seed` can reproduce it.
 * Undefined when the file does not read as a zip: it is then cut by FastCDC alone.
 */
export function wheelCutPoints(zip: ZipInput): number[] | undefined {
  let dir: ZipDirectory;
  const cuts = new Set<number>();
  try {
    dir = readZipDirectory(zip);
    for (const e of dir.entries) {
      cuts.add(e.headerOffset);
      cuts.add(dataOffset(zip, e));
    }
  } catch {
    return undefined;
  }
  cuts.add(dir.directoryOffset);
  return [...cuts].filter((c) => c > 0 && c < zip.size).sort((a, b) => a - b);
}

/**
 * The core metadata of a wheel: its `NAME-VERSION.dist-info/METADATA` member. When several
 * dist-info directories exist (a broken wheel), the one matching `distPrefix` (the file name's
 * `name-version`, as wheel file names escape it) wins.
 */
export function wheelMetadata(zip: ZipInput, distPrefix?: string): Uint8Array {
  const { entries } = readZipDirectory(zip);
  const candidates = entries.filter((e) => /^[^/]+\.dist-info\/METADATA$/.test(e.name));
  if (candidates.length === 0) throw new PaqueteError('BAD_FORMAT', 'the wheel has no .dist-info/METADATA');
  const wanted = distPrefix?.toLowerCase();
  const pick = candidates.find((e) => e.name.split('/')[0].toLowerCase() === `${wanted}.dist-info`) ?? candidates[0];
  return readZipMember(zip, pick);
}
