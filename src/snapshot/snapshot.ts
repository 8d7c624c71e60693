import { brotliDecompressSync } from 'node:zlib';
import { brotli, BrotliCompress, BrotliParams } from '../util/brotli.js';
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { ChunkParams, validateParams } from '../chunk/params.js';
import { PACK_HEADER_SIZE, RECORD_HEADER_SIZE, Repr, MAX_CHUNK } from '../store/pack.js';
import { checkSources, snapshotPathChecker } from './paths.js';
import { ChunkEntry, ChunkTable } from './chunk-table.js';
import { FileEntry, FileTable, FileTableBuilder } from './file-table.js';

/**
 * The snapshot index: every file of a snapshot with its chunk list, and where each chunk lies in
 * the remote's packs. Binary and compact because it crosses the paid link (8-byte ids, varints,
 * offsets as gaps from the previous record). Layout in docs/FORMATS.md §Snapshot index.
 */
export type { ChunkEntry } from './chunk-table.js';
export { ChunkTable } from './chunk-table.js';
export { FileTable } from './file-table.js';
export type { FileEntry } from './file-table.js';

export interface SourceEntry {
  kind: string;
  name: string;
}

export interface Snapshot {
  params: ChunkParams;
  /** Unix seconds. */
  created: number;
  sources: SourceEntry[];
  /** Pack names: hex SHA-256 of each pack file, found at packs/<name>.pack. */
  packs: string[];
  /** Every chunk's id and record, as columns (src/snapshot/chunk-table.ts). */
  chunks: ChunkTable;
  /**
   * Every file as an object. A decoded snapshot makes them on first read (and keeps them): the
   * paths that must stay cheap on a mirror's index (planning, completeness, status) read
   * fileTableOf(snapshot) instead, and never touch this.
   */
  files: FileEntry[];
}

/** The table of each decoded snapshot whose `files` was never read. */
const tables = new WeakMap<Snapshot, FileTable>();

/**
 * A snapshot's files as columns (src/snapshot/file-table.ts): the decoder's own table while
 * nobody read `files`; once they are objects, made from them (they may have been changed since),
 * so a mirror's hot paths read this and never `files`.
 */
export function fileTableOf(s: Snapshot): FileTable {
  return tables.get(s) ?? FileTable.of(s.files);
}

/** A snapshot whose files are a table: `files` made from it on first read only. */
export function snapshotOfTable(head: IndexHead, packs: string[], chunks: ChunkTable, table: FileTable): Snapshot {
  let files: FileEntry[] | undefined;
  const s: Snapshot = {
    ...head,
    packs,
    chunks,
    get files(): FileEntry[] {
      if (!files) {
        files = table.entries();
        tables.delete(s);
      }
      return files;
    },
  };
  tables.set(s, table);
  return s;
}

export const SNAPSHOT_MAGIC = Buffer.from('PQSN', 'ascii');
/**
 * Version 2, or 3 when a file is rebuilt (its chunks are contents plus a recipe): written only
 * then, so remotes without rebuilt files stay readable by older clients, and an older client
 * meeting a version 3 index says "upgrade paquete" instead of placing a recipe stream as a wheel.
 */
export const SNAPSHOT_VERSION = 2;
export const SNAPSHOT_VERSION_REBUILT = 3;
/** The index versions this paquete reads (the format gate's list for an index, a shard, a layer). */
export const INDEX_VERSIONS: readonly number[] = [SNAPSHOT_VERSION, SNAPSHOT_VERSION_REBUILT];
const KNOWN_VERSIONS = new Set(INDEX_VERSIONS);

/** The size of a file as placed in the tree (and served). */
export const placedSize = (f: Pick<FileEntry, 'size' | 'rebuiltSize'>): number => f.rebuiltSize ?? f.size;

/** What is known of a file without its chunks: what checking it in the tree needs. */
export type FileFacts = Pick<FileEntry, 'path' | 'sha256' | 'size' | 'rebuiltSize'>;

/** File i of a table as FileFacts: no chunk list copied (the tree's checks take one per file of the index). */
export function factsOf(files: FileTable, i: number): FileFacts {
  return { path: files.path(i), sha256: files.sha256(i), size: files.size[i], rebuiltSize: files.rebuiltSize(i) };
}

/** The index version a snapshot is written as. */
export const snapshotVersion = (s: Snapshot): number => (fileTableOf(s).anyRebuilt ? SNAPSHOT_VERSION_REBUILT : SNAPSHOT_VERSION);
const enum Compression {
  None = 0,
  Brotli = 2,
}

export const recordLength = (c: ChunkEntry): number => RECORD_HEADER_SIZE + c.storedLength;

export function encodeSnapshot(s: Snapshot): Uint8Array {
  return snapshotFileOfCompressedBody(encodeSnapshotBody(s), snapshotVersion(s));
}

/** Index bodies up to this size are compressed at brotli quality 11, larger ones at 6. */
export const INDEX_Q11_LIMIT = 256 << 10;

/**
 * The brotli quality of an index body. A publish compresses the whole index twice (the .snap
 * and its shards) whatever changed, and quality 11 runs at ~0.65 MB/s: at 10k files (a 708 kB
 * body) that was 4.8 of a 1% publish's 11.8 s. An index body is mostly ids and hashes, which no
 * quality squeezes: at 100k files (7.18 MB) quality 9 made 4.287 MB in 5.7 s of CPU, 7 4.292 MB
 * in 3.6 s, 6 4.326 MB in 2.0 s, 5 4.359 MB in 1.2 s, 4 4.629 MB; at 10k, 11 made 424.0 kB, 9
 * 436.2, 6 437.5 in a tenth of 9's time. Below 256 kB quality 11 costs under half a second and
 * keeps its 3% (caniuse-lite's 841-file index: 48.3 vs 49.9 kB at 9).
 */
export const indexQuality = (bodyLength: number): number => (bodyLength <= INDEX_Q11_LIMIT ? 11 : 6);

/** How an index body of this length is compressed (brotli). */
export const indexBrotli = (bodyLength: number): BrotliParams => ({ quality: indexQuality(bodyLength), lgwin: 22 });

/** The index file of an encoded body (brotli), as the publisher writes it. */
export function snapshotFileOfCompressedBody(body: Uint8Array, version: number): Uint8Array {
  return snapshotFileOfPacked(brotli(body, indexBrotli(body.length)), version);
}

/** The same, compressed wherever `compress` runs (a publish: on its worker threads); the same bytes. */
export async function snapshotFileOfBodyVia(body: Uint8Array, version: number, compress: BrotliCompress): Promise<Uint8Array> {
  return snapshotFileOfPacked(await compress(body, indexBrotli(body.length)), version);
}

/** The header, then the body as brotli packed it with indexBrotli. */
function snapshotFileOfPacked(packed: Uint8Array, version: number): Uint8Array {
  const header = Buffer.from([...SNAPSHOT_MAGIC, version, Compression.Brotli, 0, 0]);
  return Buffer.concat([header, packed]);
}

/**
 * The same index stored uncompressed: how a client keeps an index it rebuilt from an index delta
 * (its bytes differ from the publisher's .snap, so it is checked by the manifest's `body` hash).
 */
export function snapshotFileOfBody(body: Uint8Array, version: number): Uint8Array {
  return Buffer.concat([SNAPSHOT_MAGIC, Buffer.from([version, Compression.None, 0, 0]), body]);
}

export const isUncompressedSnapshot = (data: Uint8Array): boolean =>
  data.length >= 8 && SNAPSHOT_MAGIC.equals(data.subarray(0, 4)) && KNOWN_VERSIONS.has(data[4]) && data[5] === Compression.None;

/**
 * The pack list and the chunk count, then `entry` for each chunk in table order with its offset
 * as a gap from the end of the previous record of its pack (8 for a pack's first): the index's
 * chunk table and the where layer's (src/snapshot/layers.ts) share this layout.
 */
export function writeChunkPlaces(w: ByteWriter, s: Snapshot, entry: (i: number, gap: number) => void): void {
  w.varint(s.packs.length);
  for (const p of s.packs) w.bytes(Buffer.from(p, 'hex'));
  const t = s.chunks;
  w.varint(t.length);
  const nextOffset = new Float64Array(s.packs.length).fill(PACK_HEADER_SIZE);
  for (let i = 0; i < t.length; i++) {
    entry(i, t.offset[i] - nextOffset[t.pack[i]]);
    nextOffset[t.pack[i]] = t.offset[i] + t.recordLength(i);
  }
}

/** The index body (what the manifest's `body` hash and index deltas are about). */
export function encodeSnapshotBody(s: Snapshot): Uint8Array {
  const rebuilt = snapshotVersion(s) === SNAPSHOT_VERSION_REBUILT;
  const w = new ByteWriter(1 << 16);
  writeIndexHead(w, s);
  const t = s.chunks;
  writeChunkPlaces(w, s, (i, gap) => w.u32be(t.idWords[2 * i]).u32be(t.idWords[2 * i + 1]).varint(t.pack[i]).zigzag(gap).u8(t.repr[i]).varint(t.rawLength[i]).varint(t.storedLength[i]));
  const files = fileTableOf(s);
  w.varint(files.length);
  // Chunk indices are gaps from the previous index, across file boundaries too: files laid out
  // one after another then cost 0 per file instead of an absolute index, which also shifts, for
  // every file, whenever chunks come or go before it (and the index delta pays for each shift).
  let prev = -1;
  for (let f = 0; f < files.length; f++) {
    w.varint(files.pathStart[f + 1] - files.pathStart[f]).bytes(files.pathBytes.subarray(files.pathStart[f], files.pathStart[f + 1])).varint(files.mode[f]);
    // Version 3: the file's form, 0 its chunks are the file, 1 they rebuild a file of this size.
    if (rebuilt) {
      const size = files.rebuiltSize(f);
      if (size === undefined) w.varint(0);
      else w.varint(1).varint(size);
    }
    const list = files.chunks(f);
    w.varint(files.size[f]).bytes(files.sha256(f)).varint(list.length);
    for (const i of list) {
      w.zigzag(i - prev - 1);
      prev = i;
    }
  }
  return w.finish();
}

/** Decodes and checks a snapshot index: every reference in range, every path safe, sizes add up. */
export function decodeSnapshot(data: Uint8Array): Snapshot {
  return decodeSnapshotBody(snapshotBody(data), data[4]);
}

/** The uncompressed body of a snapshot index file, whichever way it is stored. */
export function snapshotBody(data: Uint8Array, maxBody = 1 << 30): Uint8Array {
  const what = 'snapshot index';
  if (data.length < 8 || !SNAPSHOT_MAGIC.equals(data.subarray(0, 4))) {
    throw new PaqueteError('BAD_FORMAT', `not a paquete ${what} (bad magic)`);
  }
  requireFormat(what, 'snapshot index', data[4], [...KNOWN_VERSIONS]);
  let body: Uint8Array;
  if (data[5] === Compression.None) body = data.subarray(8);
  else if (data[5] === Compression.Brotli) {
    try {
      body = brotliDecompressSync(data.subarray(8), { maxOutputLength: maxBody });
    } catch (e) {
      throw new PaqueteError('BAD_FORMAT', `damaged ${what}: ${(e as Error).message}`);
    }
  } else throw new PaqueteError('BAD_FORMAT', `${what} uses unknown compression ${data[5]}`);
  return body;
}

const readU32BE = (b: Uint8Array, at: number) => ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;

/** Where the last fastVarint ended. */
let varintEnd = 0;

/**
 * A varint as ByteReader.varint reads it, unchecked against the end (the caller knows 8 bytes
 * are there); -1 when it is longer than 8 bytes or not a safe integer (the checked reader then
 * says so).
 */
function fastVarint(b: Uint8Array, at: number): number {
  let byte = b[at];
  if (byte < 0x80) {
    varintEnd = at + 1;
    return byte;
  }
  let result = byte & 0x7f;
  let scale = 0x80;
  for (let i = 1; i < 8; i++) {
    byte = b[at + i];
    result += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      varintEnd = at + i + 1;
      return Number.isSafeInteger(result) ? result : -1;
    }
    scale *= 0x80;
  }
  return -1;
}

// Every representation a record may have; anything else is refused with the index, not met later.
const KNOWN_REPRS = new Set<number>(Object.values(Repr).filter((v): v is number => typeof v === 'number'));

/** What an index body and a root begin with: chunking parameters, creation time, sources. */
export interface IndexHead {
  params: ChunkParams;
  created: number;
  sources: SourceEntry[];
}

export function writeIndexHead(w: ByteWriter, h: IndexHead): void {
  w.varint(h.params.minSize).varint(h.params.avgSize).varint(h.params.maxSize);
  w.varint(h.created);
  w.varint(h.sources.length);
  for (const src of h.sources) w.string(src.kind).string(src.name);
}

export function readIndexHead(r: ByteReader, what: string): IndexHead {
  const params = { minSize: r.varint(), avgSize: r.varint(), maxSize: r.varint() };
  try {
    validateParams(params);
  } catch (e) {
    r.fail(`bad chunking parameters: ${(e as Error).message}`);
  }
  const created = r.varint();
  const sources: SourceEntry[] = [];
  for (let n = r.count(2, 'source'); n > 0; n--) sources.push({ kind: r.string(), name: r.string() });
  // Source names become folders and serve's /docs/NAME/ and /git/NAME.git: checked as names.
  checkSources(sources, what);
  return { params, created, sources };
}

/** Representations a record may have, by byte: anything else is refused with the index, not met later. */
const REPR_OK = new Uint8Array(256);
for (const v of KNOWN_REPRS) REPR_OK[v] = 1;

/**
 * The chunk section into the table's columns. Read from the body directly while a whole entry
 * surely fits (8 id bytes, 4 varints of at most 8 bytes and a byte), else, and for any varint
 * the fast path declines, by the checked
 * reader, which also words the error. ByteReader's calls took ~1 µs a chunk: 10 s of a
 * 10M-chunk index.
 */
function decodeChunks(r: ByteReader, body: Uint8Array, chunks: ChunkTable, packCount: number): void {
  const nextOffset = new Float64Array(packCount).fill(PACK_HEADER_SIZE);
  const end = body.length;
  const { idWords: ids, pack: packs, offset: offsets, repr: reprs, rawLength: raws, storedLength: storeds } = chunks;
  let pos = r.pos;
  for (let i = 0; i < chunks.length; i++) {
    let pack = -1;
    let gap = -1;
    let repr = 0;
    let rawLength = -1;
    let storedLength = -1;
    if (pos + 41 <= end) {
      ids[2 * i] = readU32BE(body, pos);
      ids[2 * i + 1] = readU32BE(body, pos + 4);
      pack = fastVarint(body, pos + 8);
      if (pack >= 0) gap = fastVarint(body, varintEnd);
      if (gap >= 0) {
        repr = body[varintEnd];
        rawLength = fastVarint(body, varintEnd + 1);
      }
      if (rawLength >= 0) storedLength = fastVarint(body, varintEnd);
      if (storedLength >= 0) pos = varintEnd;
    }
    if (storedLength < 0) {
      r.pos = pos;
      ids[2 * i] = r.u32be();
      ids[2 * i + 1] = r.u32be();
      pack = r.varint();
      gap = r.varint();
      repr = r.u8();
      rawLength = r.varint();
      storedLength = r.varint();
      pos = r.pos;
    }
    const offset = pack < packCount ? nextOffset[pack] + (gap % 2 === 0 ? gap / 2 : -(gap + 1) / 2) : 0;
    if (pack >= packCount || !REPR_OK[repr] || offset < PACK_HEADER_SIZE || rawLength > MAX_CHUNK || storedLength > MAX_CHUNK + 1024) {
      r.pos = pos;
      if (pack >= packCount) r.fail(`chunk ${i} names pack ${pack} of ${packCount}`);
      if (!REPR_OK[repr]) r.fail(`chunk ${i} has unknown representation ${repr}`);
      if (offset < PACK_HEADER_SIZE) r.fail(`chunk ${i} lies inside the pack header`);
      r.fail(`chunk ${i} claims ${rawLength} bytes`);
    }
    packs[i] = pack;
    offsets[i] = offset;
    reprs[i] = repr;
    raws[i] = rawLength;
    storeds[i] = storedLength;
    nextOffset[pack] = offset + RECORD_HEADER_SIZE + storedLength;
  }
  r.pos = pos;
}

export function decodeSnapshotBody(body: Uint8Array, version: number): Snapshot {
  const what = 'snapshot index';
  requireFormat(what, 'snapshot index', version, [...KNOWN_VERSIONS]);
  const r = new ByteReader(body, what);
  const { params, created, sources } = readIndexHead(r, what);
  const packs: string[] = [];
  for (let n = r.count(32, 'pack'); n > 0; n--) packs.push(Buffer.from(r.bytes(32)).toString('hex'));
  const chunkCount = r.count(13, 'chunk');
  const chunks = new ChunkTable(chunkCount);
  decodeChunks(r, body, chunks, packs.length);
  const table = decodeFiles(r, body, version, chunks);
  return snapshotOfTable({ params, created, sources }, packs, chunks, table);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The file section, into columns (src/snapshot/file-table.ts): no object and no kept string per
 * file. Paths are checked as strings made one at a time and dropped; "listed twice" is a
 * typed-array hash set over the path bytes (a Set of 1M strings held ~100 MB while decoding).
 */
function decodeFiles(r: ByteReader, body: Uint8Array, version: number, chunks: ChunkTable): FileTable {
  const chunkCount = chunks.length;
  const fileCount = r.count(36, 'file');
  // Every file names at least 0 chunks; most one or more: the list is sized for the chunk count
  // (each used about once) and grows if files share.
  const b = new FileTableBuilder(fileCount, Math.max(chunkCount, fileCount));
  const paths = snapshotPathChecker();
  const seen = new PathSet(fileCount, b);
  const raws = chunks.rawLength;
  const bodyEnd = body.length;
  let prev = -1;
  for (let i = 0; i < fileCount; i++) {
    const len = r.varint();
    const start = r.pos;
    r.need(len);
    const end = start + len;
    let ascii = true;
    let hash = 0x811c9dc5;
    for (let k = start; k < end; k++) {
      const c = body[k];
      if (c >= 0x80) ascii = false;
      hash = Math.imul(hash ^ c, 0x01000193);
    }
    let path: string;
    if (ascii) path = latin1(body, start, end);
    else {
      try {
        // Fatal: two different byte strings must never decode to one name.
        path = UTF8.decode(body.subarray(start, end));
      } catch {
        r.fail('a string is not valid UTF-8');
      }
    }
    r.pos = end;
    paths.check(path);
    const mode = r.varint();
    let rebuiltSize: number | undefined;
    if (version === SNAPSHOT_VERSION_REBUILT) {
      const form = r.varint();
      if (form === 1) rebuiltSize = r.varint();
      else if (form !== 0) r.fail(`file ${JSON.stringify(path)} has unknown form ${form}`);
    }
    const size = r.varint();
    r.need(32);
    const hashAt = r.pos;
    r.pos += 32;
    if (seen.find(body, start, end, hash >>> 0) >= 0) r.fail(`file ${JSON.stringify(path)} listed twice`);
    b.add(body, start, end, mode & 0o7777, size, rebuiltSize, body, hashAt);
    seen.insert(i, hash >>> 0);
    const n = r.count(1, 'file chunk');
    let total = 0;
    let pos = r.pos;
    for (let j = 0; j < n; j++) {
      // Unchecked while a longest varint surely fits (as the chunk section reads), else checked.
      let gap = pos + 8 <= bodyEnd ? fastVarint(body, pos) : -1;
      if (gap >= 0) pos = varintEnd;
      if (gap < 0) {
        r.pos = pos;
        gap = r.varint();
        pos = r.pos;
      }
      const idx = prev + 1 + (gap % 2 === 0 ? gap / 2 : -(gap + 1) / 2);
      if (idx < 0 || idx >= chunkCount) {
        r.pos = pos;
        r.fail(`file ${JSON.stringify(path)} names chunk ${idx} of ${chunkCount}`);
      }
      b.chunk(idx);
      total += raws[idx];
      prev = idx;
    }
    r.pos = pos;
    if (total !== size) r.fail(`file ${JSON.stringify(path)} is ${size} bytes but its chunks add up to ${total}`);
  }
  r.end();
  // A file "a" and a file "a/b" cannot both exist on disk: refuse before writing either.
  for (const dir of paths.dirs) {
    const bytes = Buffer.from(dir, 'utf8');
    if (seen.find(bytes, 0, bytes.length, fnv1a(bytes)) >= 0) r.fail(`${JSON.stringify(dir)} is both a file and a directory`);
  }
  return b.finish();
}

const latin1 = (b: Uint8Array, start: number, end: number): string => Buffer.prototype.latin1Slice.call(b, start, end) as string;

function fnv1a(b: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let k = 0; k < b.length; k++) hash = Math.imul(hash ^ b[k], 0x01000193);
  return hash >>> 0;
}

/** Paths added to a FileTableBuilder, by an FNV-1a hash of their bytes: open addressing, at most half full. */
class PathSet {
  private readonly slots: Int32Array;
  private readonly mask: number;
  constructor(
    count: number,
    private readonly files: FileTableBuilder,
  ) {
    let capacity = 16;
    while (capacity < 2 * count) capacity *= 2;
    this.slots = new Int32Array(capacity).fill(-1);
    this.mask = capacity - 1;
  }
  /** The file whose path is from[start, end), or -1. */
  find(from: Uint8Array, start: number, end: number, hash: number): number {
    for (let at = hash & this.mask; ; at = (at + 1) & this.mask) {
      const i = this.slots[at];
      if (i < 0) return -1;
      if (this.files.samePath(i, from, start, end)) return i;
    }
  }
  insert(i: number, hash: number): void {
    let at = hash & this.mask;
    while (this.slots[at] >= 0) at = (at + 1) & this.mask;
    this.slots[at] = i;
  }
}
