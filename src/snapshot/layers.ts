import { createHash } from 'node:crypto';
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { PaqueteError } from '../errors.js';
import { chunkId } from '../chunk/id.js';
import { requireFormat } from '../util/format-gate.js';
import { ChunkTable, decodeSnapshotBody, INDEX_VERSIONS, encodeSnapshotBody, FileEntry, FileTable, fileTableOf, IndexHead, readIndexHead, Snapshot, snapshotVersion, writeChunkPlaces, writeIndexHead } from './snapshot.js';
import { PACK_HEADER_SIZE, RECORD_HEADER_SIZE } from '../store/pack.js';
import { packHead, packHeadVia, unpackHead } from '../delta/update.js';
import { BrotliCompress } from '../util/brotli.js';

/**
 * A snapshot index in two layers (docs/DESIGN-REMOTE-V3.md decision 2; layout in docs/FORMATS.md
 * §Index layers), for a first download that pays no chunk id and no per-file SHA-256:
 *
 * - the **file layer** (`layers/<name>.files`): paths, modes, sizes, each chunk's length and
 *   which chunks each file is, the SHA-256 of the files whose hash cannot be derived, and the
 *   SHA-256 of every *piece* of the update from nothing's content (runs of consecutive chunks of
 *   about 128 KiB, cut where no small file's chunks are open);
 * - the **where layer** (`layers/<name>.where`): the packs and each chunk's record in them.
 *
 * Both together, with every chunk id and file hash filled in, are the whole index (`.snap`) byte
 * for byte: its body hashes to the manifest entry's `body`. A client taking the stream from
 * nothing checks each piece of decoded content against its SHA-256 in the signed file layer, and
 * computes from those authenticated bytes each chunk's id (xxh64) and the SHA-256 of each file
 * whose chunks lie consecutive in one piece. The ids and hashes of the whole index are then
 * derived, never received: lucide-react's 4,920 files had 157 kB of hashes and 40 kB of ids.
 */
export const FILES_MAGIC = Buffer.from('PQSF', 'ascii');
export const WHERE_MAGIC = Buffer.from('PQSW', 'ascii');
export const LAYER_VERSION = 1;

/**
 * Content of the stream a piece covers, at least (then cut at the next chunk where no file of at
 * most this size is open). A card cut inside a piece places none of its files until the next
 * session decodes the piece whole from its kept prefix, so pieces are small: at 1 MiB a card of
 * 40% of a 2.4 MB tree's first download placed nothing. 32 bytes of hash per 128 KiB of content.
 */
export const PIECE_BYTES = 128 << 10;
/**
 * A frame's first pieces are smaller, each at least what came before it in the frame (from 4 KiB
 * up to PIECE_BYTES): a card of a quarter of a 150 KB tree's first download placed none of the 7
 * files it paid for in one 128 KiB piece. A handful more hashes a frame.
 */
export const FIRST_PIECE_BYTES = 4 << 10;

export interface StreamPiece {
  /** Consecutive yields of its frame the piece covers. */
  yields: number;
  /** SHA-256 of those chunks' bytes end to end. */
  sha256: Uint8Array;
}

export interface FileLayer {
  /** Name (hex SHA-256) of the `.snap` this layer is half of. */
  snapshot: string;
  /** The index version (2, or 3 with rebuilt files). */
  version: number;
  head: IndexHead;
  rawLength: Uint32Array;
  /** sha256 is all zero where `hashed` is 0 (derived from the stream). */
  files: FileEntry[];
  hashed: Uint8Array;
  /** Name of the update from nothing's head whose frames the pieces cut. */
  stream: string;
  /** Per frame of that head, its pieces in order. */
  pieces: StreamPiece[][];
}

export interface WhereLayer {
  snapshot: string;
  packs: string[];
  pack: Uint32Array;
  offset: Float64Array;
  repr: Uint8Array;
  storedLength: Uint32Array;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const packLayer = (magic: Buffer, body: Uint8Array): Uint8Array => packHead(LAYER_VERSION, body, magic);
/** A layer body (fileLayerBody, whereLayerBody) packed as encodeFileLayer and encodeWhereLayer pack it, compressed wherever `compress` runs. */
export const packLayerVia = (magic: Buffer, body: Uint8Array, compress: BrotliCompress): Promise<Uint8Array> => packHeadVia(LAYER_VERSION, body, magic, compress);
const unpackLayer = (magic: Buffer, data: Uint8Array, what: string): Uint8Array => unpackHead(data, what, [LAYER_VERSION], magic);

/** Where each chunk first lies in the stream (its position among all frames' yields, end to end). */
function streamPositions(chunks: number, frames: number[][]): Int32Array {
  const pos = new Int32Array(chunks).fill(-1);
  let p = 0;
  for (const yields of frames) for (const i of yields) if (pos[i] < 0) pos[i] = p++;
  return pos;
}

/** Whether a file's chunks are consecutive in the stream: its hash is then one run's. */
function runOf(f: { chunks: ArrayLike<number> }, pos: Int32Array): number {
  const first = pos[f.chunks[0]];
  for (let j = 1; j < f.chunks.length; j++) if (pos[f.chunks[j]] !== first + j) return -1;
  return first;
}

/**
 * How the publisher cuts the stream into pieces and which files carry their hash (pure: a
 * choice, readers take any cut). A file is derived when it is not rebuilt, not in a PyPI source
 * (serve lists those hashes before the files are here), at most PIECE_BYTES, and its chunks lie
 * consecutive inside one piece; pieces end at a frame's end or, once they hold as much as came
 * before them in the frame (at least FIRST_PIECE_BYTES, at most PIECE_BYTES), at the first chunk
 * where no such file is open.
 */
export function planPieces(s: Snapshot, frames: number[][]): { pieces: number[][]; hashed: Uint8Array } {
  const pos = streamPositions(s.chunks.length, frames);
  const pypi = new Set(s.sources.filter((x) => x.kind === 'pypi').map((x) => x.name + '/'));
  const candidate = (f: FileEntry) => f.rebuiltSize === undefined && f.size <= PIECE_BYTES && !pypi.has(f.path.slice(0, f.path.indexOf('/') + 1));
  // The end (exclusive, a stream position) of the longest candidate run starting at each position.
  const runEnd = new Int32Array(pos.length).fill(-1);
  const start = new Int32Array(s.files.length).fill(-1);
  s.files.forEach((f, k) => {
    if (!f.chunks.length || !candidate(f)) return;
    const p = runOf(f, pos);
    if (p < 0) return;
    start[k] = p;
    runEnd[p] = Math.max(runEnd[p], p + f.chunks.length);
  });
  const pieces: number[][] = [];
  const pieceOf = new Int32Array(pos.length); // stream position → global piece number
  let p = 0;
  let piece = 0;
  for (const yields of frames) {
    const cuts: number[] = [];
    let count = 0;
    let bytes = 0;
    let before = 0; // content of the frame before this piece
    let openUntil = 0;
    for (const i of yields) {
      count++;
      bytes += s.chunks.rawLength[i];
      if (pos[i] === p) {
        openUntil = Math.max(openUntil, runEnd[p]);
        pieceOf[p++] = piece;
      }
      if (bytes >= Math.max(FIRST_PIECE_BYTES, Math.min(PIECE_BYTES, before)) && openUntil <= p) {
        cuts.push(count);
        piece++;
        before += bytes;
        count = bytes = 0;
      }
    }
    if (count > 0) {
      cuts.push(count);
      piece++;
    }
    pieces.push(cuts);
  }
  const hashed = new Uint8Array(s.files.length);
  s.files.forEach((f, k) => {
    if (!f.chunks.length && candidate(f)) return; // the empty file's hash is known
    hashed[k] = start[k] >= 0 && pieceOf[start[k]] === pieceOf[start[k] + f.chunks.length - 1] ? 0 : 1;
  });
  return { pieces, hashed };
}

/** The file layer of snapshot `s` (named `snapshot`), its stream `stream` cut into `pieces` with their hashes. */
export function encodeFileLayer(s: Snapshot, snapshot: string, hashed: Uint8Array, stream: string, pieces: StreamPiece[][]): Uint8Array {
  return packLayer(FILES_MAGIC, fileLayerBody(s, snapshot, hashed, stream, pieces));
}

/** The file layer before brotli (encodeFileLayer packs it). */
export function fileLayerBody(s: Snapshot, snapshot: string, hashed: Uint8Array, stream: string, pieces: StreamPiece[][]): Uint8Array {
  const version = snapshotVersion(s);
  const w = new ByteWriter(1 << 16);
  w.bytes(Buffer.from(snapshot, 'hex')).u8(version);
  writeIndexHead(w, s);
  const t = s.chunks;
  w.varint(t.length);
  for (let i = 0; i < t.length; i++) w.varint(t.rawLength[i]);
  w.varint(s.files.length);
  let prev = -1;
  s.files.forEach((f, k) => {
    w.string(f.path).varint(f.mode);
    if (version === 3) {
      if (f.rebuiltSize === undefined) w.varint(0);
      else w.varint(1).varint(f.rebuiltSize);
    }
    w.varint(f.size).u8(hashed[k]);
    if (hashed[k]) w.bytes(f.sha256);
    w.varint(f.chunks.length);
    for (const i of f.chunks) {
      w.zigzag(i - prev - 1);
      prev = i;
    }
  });
  w.bytes(Buffer.from(stream, 'hex')).varint(pieces.length);
  for (const frame of pieces) {
    w.varint(frame.length);
    for (const pc of frame) w.varint(pc.yields).bytes(pc.sha256);
  }
  return w.finish();
}

export function decodeFileLayer(data: Uint8Array): FileLayer {
  const what = 'file layer';
  const r = new ByteReader(unpackLayer(FILES_MAGIC, data, what), what);
  const snapshot = hex(r.bytes(32));
  const version = r.u8();
  requireFormat(what, 'snapshot index', version, INDEX_VERSIONS);
  const head = readIndexHead(r, what);
  const n = r.count(1, 'chunk');
  const rawLength = new Uint32Array(n);
  for (let i = 0; i < n; i++) rawLength[i] = r.varint();
  const nFiles = r.count(4, 'file');
  const files: FileEntry[] = new Array(nFiles);
  const hashed = new Uint8Array(nFiles);
  const hashes = Buffer.alloc(32 * nFiles);
  let prev = -1;
  for (let k = 0; k < nFiles; k++) {
    const path = r.string();
    const mode = r.varint();
    let rebuiltSize: number | undefined;
    if (version === 3) {
      const form = r.varint();
      if (form === 1) rebuiltSize = r.varint();
      else if (form !== 0) r.fail(`file ${JSON.stringify(path)} has unknown form ${form}`);
    }
    const size = r.varint();
    hashed[k] = r.u8();
    if (hashed[k] > 1) r.fail(`file ${JSON.stringify(path)} has hash flag ${hashed[k]}`);
    if (hashed[k]) hashes.set(r.bytes(32), 32 * k);
    const chunks: number[] = new Array(r.count(1, 'file chunk'));
    for (let j = 0; j < chunks.length; j++) {
      prev = prev + 1 + r.zigzag();
      if (prev < 0 || prev >= n) r.fail(`file ${JSON.stringify(path)} names chunk ${prev} of ${n}`);
      chunks[j] = prev;
    }
    files[k] = { path, mode, size, sha256: hashes.subarray(32 * k, 32 * k + 32), chunks, ...(rebuiltSize !== undefined ? { rebuiltSize } : {}) };
  }
  const stream = hex(r.bytes(32));
  const pieces: StreamPiece[][] = new Array(r.count(1, 'frame'));
  for (let f = 0; f < pieces.length; f++) {
    pieces[f] = new Array(r.count(33, 'piece'));
    for (let j = 0; j < pieces[f].length; j++) pieces[f][j] = { yields: r.varint(), sha256: r.bytes(32) };
  }
  r.end();
  return { snapshot, version, head, rawLength, files, hashed, stream, pieces };
}

/** The where layer: `s`'s packs and every chunk's record, as in the index's chunk table without ids. */
export function encodeWhereLayer(s: Snapshot, snapshot: string): Uint8Array {
  return packLayer(WHERE_MAGIC, whereLayerBody(s, snapshot));
}

/** The where layer before brotli (encodeWhereLayer packs it). */
export function whereLayerBody(s: Snapshot, snapshot: string): Uint8Array {
  const w = new ByteWriter(1 << 16);
  w.bytes(Buffer.from(snapshot, 'hex'));
  const t = s.chunks;
  writeChunkPlaces(w, s, (i, gap) => w.varint(t.pack[i]).zigzag(gap).u8(t.repr[i]).varint(t.storedLength[i]));
  return w.finish();
}

export function decodeWhereLayer(data: Uint8Array): WhereLayer {
  const what = 'where layer';
  const r = new ByteReader(unpackLayer(WHERE_MAGIC, data, what), what);
  const snapshot = hex(r.bytes(32));
  const packs: string[] = new Array(r.count(32, 'pack'));
  for (let p = 0; p < packs.length; p++) packs[p] = hex(r.bytes(32));
  const n = r.count(4, 'chunk');
  const layer: WhereLayer = { snapshot, packs, pack: new Uint32Array(n), offset: new Float64Array(n), repr: new Uint8Array(n), storedLength: new Uint32Array(n) };
  const nextOffset = new Float64Array(packs.length).fill(PACK_HEADER_SIZE);
  for (let i = 0; i < n; i++) {
    const pack = r.varint();
    if (pack >= packs.length) r.fail(`chunk ${i} names pack ${pack} of ${packs.length}`);
    const offset = nextOffset[pack] + r.zigzag();
    layer.pack[i] = pack;
    layer.offset[i] = offset;
    layer.repr[i] = r.u8();
    layer.storedLength[i] = r.varint();
    nextOffset[pack] = offset + RECORD_HEADER_SIZE + layer.storedLength[i];
  }
  r.end();
  return layer;
}

/**
 * The index the two layers are, every id and derived hash zero until the stream fills them in:
 * put through the index's own decoder (so every path, range, length and pack is checked as a
 * `.snap`'s is), and refused when the layers are not halves of the same index.
 */
export function skeletonOf(files: FileLayer, where: WhereLayer): Snapshot {
  const bad = (why: string): never => {
    throw new PaqueteError('BAD_FORMAT', `the index layers do not fit together: ${why}`);
  };
  if (files.snapshot !== where.snapshot) bad('they are of two snapshots');
  const n = files.rawLength.length;
  if (where.pack.length !== n) bad(`${n} chunks against ${where.pack.length}`);
  const chunks = new ChunkTable(n);
  chunks.rawLength.set(files.rawLength);
  chunks.pack.set(where.pack);
  chunks.offset.set(where.offset);
  chunks.repr.set(where.repr);
  chunks.storedLength.set(where.storedLength);
  const s: Snapshot = { ...files.head, packs: where.packs, chunks, files: files.files };
  if (snapshotVersion(s) !== files.version) bad(`index version ${files.version} with ${files.version === 3 ? 'no' : 'a'} rebuilt file`);
  const checked = decodeSnapshotBody(encodeSnapshotBody(s), files.version);
  // The decoder copied every hash into one buffer: the explicit ones carried over.
  return checked;
}

/** The chunks of one verified piece, in stream order, each with its bytes. */
export interface VerifiedChunk {
  index: number;
  raw: Uint8Array;
}

/**
 * Ids and hashes derived from the stream from nothing: for each frame, its pieces' bytes are
 * checked against their SHA-256 in the file layer (signed through the manifest), and only then
 * does each chunk get its id (xxh64 of those bytes) and each derived file its SHA-256 (of its
 * run of consecutive chunks in the piece). `known` says which chunks and files are derived; the
 * skeleton's columns are filled in place, so every reader of the snapshot sees them.
 */
export class StreamDerivation {
  readonly knownChunk: Uint8Array;
  readonly knownFile: Uint8Array;
  /** Derived files whose run starts at each chunk index (its first chunk). */
  private readonly filesAt = new Map<number, number[]>();
  private unknown: number;
  /** The skeleton's files as the decoder laid them out: hashes are written into its buffer, which every entry made from it views. */
  private readonly table: FileTable;

  constructor(
    readonly snapshot: Snapshot,
    readonly layer: FileLayer,
    readonly frames: number[][],
  ) {
    this.table = fileTableOf(snapshot);
    const bad = (why: string): never => {
      throw new PaqueteError('BAD_FORMAT', `the file layer does not fit the stream from nothing: ${why}`);
    };
    if (layer.pieces.length !== frames.length) bad(`${layer.pieces.length} frames of pieces for ${frames.length} frames`);
    frames.forEach((y, f) => {
      if (layer.pieces[f].reduce((n, p) => n + p.yields, 0) !== y.length) bad(`frame ${f}'s pieces do not cover its chunks`);
      if (layer.pieces[f].some((p) => p.yields === 0)) bad(`frame ${f} has an empty piece`);
    });
    const pos = streamPositions(snapshot.chunks.length, frames);
    if (pos.some((p) => p < 0)) bad('a chunk the stream does not bring');
    // Stream position → piece number, to check that each derived file's run lies in one piece.
    const pieceOf = new Int32Array(snapshot.chunks.length);
    let p = 0;
    let piece = 0;
    frames.forEach((yields, f) => {
      let j = 0;
      for (const pc of layer.pieces[f]) {
        for (let k = 0; k < pc.yields; k++, j++) if (pos[yields[j]] === p) pieceOf[p++] = piece;
        piece++;
      }
    });
    const t = this.table;
    this.knownChunk = new Uint8Array(snapshot.chunks.length);
    this.knownFile = new Uint8Array(t.length);
    for (let k = 0; k < t.length; k++) {
      const chunks = t.chunks(k);
      if (layer.hashed[k]) this.knownFile[k] = 1;
      else if (!chunks.length) {
        t.sha256(k).set(sha256(new Uint8Array(0)));
        this.knownFile[k] = 1;
      } else {
        const start = runOf({ chunks }, pos);
        if (start < 0 || pieceOf[start] !== pieceOf[start + chunks.length - 1]) bad(`${t.path(k)} has no hash and its chunks are not one run of a piece`);
        const at = this.filesAt.get(chunks[0]) ?? [];
        at.push(k);
        this.filesAt.set(chunks[0], at);
      }
    }
    this.unknown = this.knownChunk.length + this.knownFile.length - this.knownFile.reduce((n, b) => n + b, 0);
  }

  /** Every id and hash derived: the skeleton is the whole index. */
  get complete(): boolean {
    return this.unknown === 0;
  }

  knows(chunk: number): boolean {
    return this.knownChunk[chunk] === 1;
  }

  /** Takes an id or a hash from the derivation log of an earlier session (already checked there). */
  restoreChunk(i: number, id: bigint): void {
    if (i >= this.knownChunk.length) return;
    this.snapshot.chunks.idWords[2 * i] = Number(id >> 32n);
    this.snapshot.chunks.idWords[2 * i + 1] = Number(id & 0xffffffffn);
    if (!this.knownChunk[i]) this.unknown--;
    this.knownChunk[i] = 1;
  }

  /** File k's SHA-256 (zero until derived): a view into the skeleton's table. */
  fileHash(k: number): Uint8Array {
    return this.table.sha256(k);
  }

  restoreFile(k: number, hash: Uint8Array): void {
    if (k >= this.knownFile.length) return;
    this.table.sha256(k).set(hash);
    if (!this.knownFile[k]) this.unknown--;
    this.knownFile[k] = 1;
  }

  /** A checker for one frame's content from its first byte. */
  frame(f: number, onDerived?: (chunks: VerifiedChunk[], files: number[]) => void): PieceChecker {
    return new PieceChecker(this, f, onDerived);
  }

  /** @internal The piece `pc` of frame `f` verified: ids and hashes from its bytes. */
  accept(chunks: VerifiedChunk[]): number[] {
    const ids = this.snapshot.chunks.idWords;
    const raw = new Map<number, Uint8Array>();
    for (const c of chunks) {
      raw.set(c.index, c.raw);
      if (this.knownChunk[c.index]) continue;
      const id = chunkId(c.raw);
      ids[2 * c.index] = Number(id >> 32n);
      ids[2 * c.index + 1] = Number(id & 0xffffffffn);
      this.knownChunk[c.index] = 1;
      this.unknown--;
    }
    const derived: number[] = [];
    for (const c of chunks) {
      for (const k of this.filesAt.get(c.index) ?? []) {
        if (this.knownFile[k]) continue;
        const h = createHash('sha256');
        for (const i of this.table.chunks(k)) h.update(raw.get(i)!);
        this.table.sha256(k).set(h.digest());
        this.knownFile[k] = 1;
        this.unknown--;
        derived.push(k);
      }
    }
    return derived;
  }
}

/**
 * One frame's content checked piece by piece: chunks are held until the piece they end is
 * complete and hashes to its signed SHA-256; then they are released (the caller stores them) and
 * their ids and the piece's files' hashes are derived. A piece that does not match is a damaged
 * frame (`DAMAGED_PACK`): nothing of it was derived or stored.
 */
export class PieceChecker {
  private piece = 0;
  private inPiece = 0;
  private held: VerifiedChunk[] = [];
  private hash = createHash('sha256');

  constructor(
    private readonly d: StreamDerivation,
    private readonly f: number,
    private readonly onDerived?: (chunks: VerifiedChunk[], files: number[]) => void,
  ) {}

  /** The next chunk of the frame (`raw` is copied); the verified chunks of the piece it ends, else none. */
  push(index: number, raw: Uint8Array): VerifiedChunk[] {
    const pieces = this.d.layer.pieces[this.f];
    const pc = pieces[this.piece];
    if (!pc) throw new PaqueteError('DAMAGED_PACK', 'yields more chunks than its pieces cover');
    this.held.push({ index, raw: Uint8Array.from(raw) });
    this.hash.update(raw);
    if (++this.inPiece < pc.yields) return [];
    const got = this.hash.digest();
    const done = this.held;
    this.held = [];
    this.hash = createHash('sha256');
    this.inPiece = 0;
    this.piece++;
    if (!got.equals(pc.sha256)) throw new PaqueteError('DAMAGED_PACK', `piece ${this.piece - 1} does not match its signed SHA-256`);
    const files = this.d.accept(done);
    this.onDerived?.(done, files);
    return done;
  }
}
