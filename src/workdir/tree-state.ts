import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PlacedFile, TreeState } from './workdir.js';

/**
 * The tree state file (`.paquete/tree.state`): what paquete placed in the working tree, as a log
 * of changes, so that a sync writes in proportion to what it changed (tree.json, rewritten whole,
 * was 14.5 MB at 100k files, every time) and a sync with nothing new reads it in a fraction of
 * the time JSON took (100k files: 0.70 s for JSON.parse of tree.json, mostly its strings).
 * Byte layout in docs/FORMATS.md §Working directory. One encoder and one decoder, side by side.
 *
 *   "PQTS" u8 version (1) u8 0 u8 0 u8 0, then records until the end:
 *   u8 1  file placed:   varint n, n bytes UTF-8 path, varint size, f64 LE mtimeMs, 32 bytes SHA-256
 *   u8 2  file dropped:  varint n, n bytes UTF-8 path
 *   u8 3  the rest:      varint n, n bytes UTF-8 JSON {snapshot?, inconsistent?, failed?, complete?}
 *
 * Later records win. A record cut short (a kill during an append) ends the log: everything
 * before it stands, and the next append starts where it began.
 */
export const TREE_STATE_MAGIC = Buffer.from('PQTS', 'ascii');
export const TREE_STATE_VERSION = 1;
const HEADER = Buffer.from([...TREE_STATE_MAGIC, TREE_STATE_VERSION, 0, 0, 0]);

const enum Rec {
  Placed = 1,
  Dropped = 2,
  Rest = 3,
}

/** What a log holds: the state it replays to, how many bytes of it are whole, how many records. */
export interface DecodedTreeState {
  state: TreeState;
  /** How many files it holds. */
  count: number;
  /** Bytes up to the end of the last whole record: where the next append goes. */
  validLength: number;
  records: number;
}

/** The parts of TreeState beside `files`, as the one JSON record holds them. */
export function restOf(s: TreeState): string {
  return JSON.stringify({ snapshot: s.snapshot, inconsistent: s.inconsistent, failed: s.failed, complete: s.complete });
}

/**
 * A tree state log read as columns: one path string per file and its size and mtime in typed
 * arrays, the SHA-256 left in the buffer until asked for. A sync with nothing new reads only
 * these (100k files: building an object and a hex string per file, then freezing it, was most
 * of decodeTreeState's 0.75 s and much of the collector's 0.8 s).
 */
export class PlacedFiles {
  constructor(
    /** Paths in the order of their first record (a log written whole: sorted). */
    readonly paths: string[],
    readonly size: Float64Array,
    readonly mtimeMs: Float64Array,
    /** Where each file's SHA-256 starts in `buf`. */
    private readonly shaAt: Uint32Array,
    private readonly buf: Buffer,
  ) {}

  get length(): number {
    return this.paths.length;
  }

  sha256(i: number): string {
    return this.buf.toString('hex', this.shaAt[i], this.shaAt[i] + 32);
  }

  placed(i: number): PlacedFile {
    return { size: this.size[i], mtimeMs: this.mtimeMs[i], sha256: this.sha256(i) };
  }
}

/** What a log holds as columns (scanTreeState), before any object per file is built. */
export interface ScannedTreeState {
  files: PlacedFiles;
  /** The last record of the rest: snapshot, inconsistent, failed, complete. */
  rest: Partial<TreeState>;
  /** Bytes up to the end of the last whole record: where the next append goes. */
  validLength: number;
  records: number;
}

/** Reads a tree state log into columns. Undefined when it is not one (bad magic or version). */
export function scanTreeState(buf: Buffer): ScannedTreeState | undefined {
  if (buf.length < HEADER.length || !HEADER.subarray(0, 5).equals(buf.subarray(0, 5))) return undefined;
  // A log written whole has one record per file and ~60 bytes each: sized for that, grown if not.
  let cap = Math.max(16, Math.ceil(buf.length / 48));
  let size = new Float64Array(cap);
  let mtime = new Float64Array(cap);
  let shaAt = new Uint32Array(cap);
  const paths: string[] = [];
  // Later records of a path overwrite its slot; a dropped file's slot is marked and cut at the end.
  // While every path comes after the one before (a log written whole lists each file once, in
  // path order), each is new: the map of slots is built at the first that does not (100k
  // files: ~0.1 s of a sync with nothing new, when the log was compacted).
  let slot: Map<string, number> | undefined;
  const slotOf = () => (slot ??= new Map(paths.map((p, i) => [p, i])));
  let dropped = 0;
  let rest: Partial<TreeState> = {};
  let at = HEADER.length;
  let valid = at;
  let records = 0;
  const end = buf.length;
  // Each read checks what is left; a record that does not fit is a cut tail.
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (at >= end) return -1;
      const b = buf[at++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 0x80;
      if (scale > 2 ** 49) return -1;
    }
  };
  for (;;) {
    if (at >= end) break;
    const type = buf[at++];
    if (type !== Rec.Placed && type !== Rec.Dropped && type !== Rec.Rest) break;
    const n = varint();
    if (n < 0 || at + n > end) break;
    const text = buf.toString('utf8', at, at + n);
    at += n;
    if (type === Rec.Placed) {
      const bytes = varint();
      if (bytes < 0 || at + 40 > end) break;
      let i = !slot && (paths.length === 0 || text > paths[paths.length - 1]) ? undefined : slotOf().get(text);
      if (i === undefined) {
        i = paths.length;
        if (i === cap) {
          cap *= 2;
          size = grown(size, cap);
          mtime = grown(mtime, cap);
          shaAt = grown(shaAt, cap);
        }
        paths.push(text);
        slot?.set(text, i);
      } else if (size[i] < 0) dropped--;
      size[i] = bytes;
      mtime[i] = buf.readDoubleLE(at);
      shaAt[i] = at + 8;
      at += 40;
    } else if (type === Rec.Dropped) {
      const i = slotOf().get(text);
      if (i !== undefined && size[i] >= 0) {
        size[i] = -1;
        dropped++;
      }
    } else {
      try {
        rest = JSON.parse(text) as Partial<TreeState>;
      } catch {
        break;
      }
    }
    valid = at;
    records++;
  }
  let count = paths.length;
  if (dropped) {
    // Squeezed out in place, order kept.
    let k = 0;
    for (let i = 0; i < count; i++) {
      if (size[i] < 0) continue;
      paths[k] = paths[i];
      size[k] = size[i];
      mtime[k] = mtime[i];
      shaAt[k] = shaAt[i];
      k++;
    }
    paths.length = count = k;
  }
  const files = new PlacedFiles(paths, size.subarray(0, count), mtime.subarray(0, count), shaAt.subarray(0, count), buf);
  return { files, rest: dropUndefined(rest), validLength: valid, records };
}

function grown<T extends Float64Array | Uint32Array>(a: T, cap: number): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a);
  return b;
}

/** Replays a tree state log. Undefined when it is not one (bad magic or version): treat as lost. */
export function decodeTreeState(buf: Buffer): DecodedTreeState | undefined {
  const scanned = scanTreeState(buf);
  if (!scanned) return undefined;
  // Paths always have a source name and a '/': never a key like __proto__.
  const files: Record<string, PlacedFile> = {};
  const f = scanned.files;
  for (let i = 0; i < f.length; i++) files[f.paths[i]] = Object.freeze(f.placed(i));
  return { state: { ...scanned.rest, files }, count: f.length, validLength: scanned.validLength, records: scanned.records };
}

function dropUndefined(rest: Partial<TreeState>): Partial<TreeState> {
  const out: Partial<TreeState> = {};
  if (rest.snapshot !== undefined) out.snapshot = rest.snapshot;
  if (rest.inconsistent !== undefined) out.inconsistent = rest.inconsistent;
  if (rest.failed !== undefined) out.failed = rest.failed;
  if (rest.complete !== undefined) out.complete = rest.complete;
  return out;
}

/** Appends records to `w`: files placed or changed, files dropped, and the rest when given. */
export class TreeStateWriter {
  private parts: Buffer[] = [];
  length = 0;
  records = 0;

  header(): this {
    return this.push(HEADER);
  }

  placed(path: string, f: PlacedFile): this {
    const p = Buffer.from(path, 'utf8');
    const head = Buffer.allocUnsafe(1 + 10 + 10);
    let k = 0;
    head[k++] = Rec.Placed;
    k = putVarint(head, k, p.length);
    const tail = Buffer.allocUnsafe(10 + 8 + 32);
    let t = putVarint(tail, 0, f.size);
    tail.writeDoubleLE(f.mtimeMs, t);
    t += 8;
    if (tail.write(f.sha256, t, 32, 'hex') !== 32) throw new RangeError(`${path}: sha256 is not 64 hex digits`);
    t += 32;
    this.records++;
    return this.push(head.subarray(0, k)).push(p).push(tail.subarray(0, t));
  }

  dropped(path: string): this {
    return this.text(Rec.Dropped, path);
  }

  rest(json: string): this {
    return this.text(Rec.Rest, json);
  }

  /** A record of a type byte and one length-prefixed UTF-8 text. */
  private text(type: Rec, text: string): this {
    const p = Buffer.from(text, 'utf8');
    const head = Buffer.allocUnsafe(11);
    head[0] = type;
    this.records++;
    return this.push(head.subarray(0, putVarint(head, 1, p.length))).push(p);
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
}

function putVarint(buf: Buffer, at: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
  while (v >= 0x80) {
    buf[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[at++] = v;
  return at;
}

/**
 * The whole state as one log: a header, every file in path order (UTF-16 code units, as the
 * planner orders them: a sync with nothing new then lists them without sorting), the rest.
 */
export function encodeTreeState(s: TreeState): Buffer {
  const w = new TreeStateWriter().header();
  for (const path of Object.keys(s.files).sort()) w.placed(path, s.files[path]);
  return w.rest(restOf(s)).finish();
}

/** The tree state file, the JSON file older versions kept, and a generation's record of the log's length. */
export const TREE_STATE = 'tree.state';
export const LEGACY_TREE_JSON = 'tree.json';
export const TREE_STATE_LENGTH = 'tree.state.length';

/**
 * The tree state kept in `dir` (the working directory's .paquete, or a generation): tree.state,
 * read up to tree.state.length when that is there (a generation: the log kept growing after the
 * link), else tree.json; empty when neither can be read (a damaged state names nothing).
 */
export function readTreeStateIn(dir: string): TreeState {
  const read = (f: string) => {
    try {
      return readFileSync(join(dir, f));
    } catch {
      return undefined;
    }
  };
  const log = read(TREE_STATE);
  if (log) {
    const length = Number(read(TREE_STATE_LENGTH)?.toString('latin1').trim() ?? log.length);
    const decoded = decodeTreeState(Number.isSafeInteger(length) && length <= log.length ? log.subarray(0, length) : log);
    return decoded?.state ?? { files: {} };
  }
  try {
    const json = read(LEGACY_TREE_JSON);
    return json ? (JSON.parse(json.toString('utf8')) as TreeState) : { files: {} };
  } catch {
    return { files: {} };
  }
}

/** Two records of one file say the same. */
export const samePlaced = (a: PlacedFile, b: PlacedFile): boolean => a === b || (a.size === b.size && a.mtimeMs === b.mtimeMs && a.sha256 === b.sha256);
