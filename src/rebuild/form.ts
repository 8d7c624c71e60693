import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { dataOffset, readZipDirectory, zipFromBytes } from '../sources/wheel.js';
import { CANDIDATES, DeflateParams, findParams, reproducedLength } from './deflate.js';
import { Container, contentLength, encodeRecipe, Recipe, RecipeOp } from './recipe.js';

/**
 * The publisher's side of rebuild streams: a zip (wheel) or gzip (sdist) file turned into a
 * recipe and its contents (src/rebuild/recipe.ts). For every deflated member the parameters
 * that make zlib (src/rebuild/deflate.ts) reproduce it byte for byte are searched (level 6 first); a member none
 * reproduces is kept as its compressed bytes. Pure but for reading the file and writing the
 * contents to `contentsPath`.
 */
export interface StoredForm {
  /** Header and body: the first bytes of the rebuild stream. */
  recipe: Uint8Array;
  /** Offsets in the contents where each member's bytes begin: where the chunker is forced to cut. */
  sections: number[];
  contentSize: number;
  placedSize: number;
  /** SHA-256 of the original file. */
  sha256: Uint8Array;
  /** Deflated members, those reproduced, and those kept compressed. */
  deflated: number;
  reproduced: number;
  opaque: number;
}

/** Which files get a rebuild stream, by name: zip files (wheels, .zip sdists) and gzip files. */
export function rebuildContainer(path: string): Container | undefined {
  if (/\.(whl|zip)$/i.test(path)) return Container.Zip;
  if (/\.(tar\.gz|tgz)$/i.test(path)) return Container.Gzip;
  return undefined;
}

/** A member (or gzip stream) inflates into memory up to this; a bigger one is kept compressed. */
const MAX_INFLATED = 512 << 20;

/** Files read whole at publish up to this; a bigger one is published as it is. */
const MAX_FILE = 1 << 30;

/**
 * Builds the stored form of the file at `path` and writes its contents to `contentsPath`.
 * Undefined when the file does not read as its container, or a rebuild stream would not pay
 * (less than half of its compressed bytes reproduced): it is then published as it is.
 */
export function buildStoredForm(path: string, contentsPath: string, candidates: readonly DeflateParams[] = CANDIDATES): StoredForm | undefined {
  const container = rebuildContainer(path);
  if (container === undefined) return undefined;
  const file = readFileSync(path);
  if (file.length > MAX_FILE) return undefined;
  let plan: Plan | undefined;
  try {
    plan = container === Container.Zip ? planZip(file, candidates) : planGzip(file, candidates);
  } catch {
    return undefined;
  }
  if (!plan || plan.reproducedBytes === 0 || plan.reproducedBytes < plan.opaqueBytes) return undefined;
  const recipe: Recipe = { container, placedSize: file.length, params: plan.params, ops: plan.ops };
  const fd = openSync(contentsPath, 'w');
  const sections: number[] = [];
  let size = 0;
  try {
    for (const piece of plan.contents) {
      sections.push(size);
      for (let done = 0; done < piece.length; ) done += writeSync(fd, piece, done);
      size += piece.length;
    }
  } finally {
    closeSync(fd);
  }
  if (size !== contentLength(recipe)) throw new Error(`stored form of ${path}: ${size} bytes of contents for a recipe of ${contentLength(recipe)}`);
  return {
    recipe: encodeRecipe(recipe),
    sections,
    contentSize: size,
    placedSize: file.length,
    sha256: createHash('sha256').update(file).digest(),
    deflated: plan.deflated,
    reproduced: plan.reproduced,
    opaque: plan.deflated - plan.reproduced,
  };
}

/** The stream's size: recipe then contents. */
export const storedSize = (f: StoredForm): number => f.recipe.length + f.contentSize;

/** Where the chunker must cut the stream: after the recipe and at every member's contents. */
export const streamCuts = (f: StoredForm): number[] => [f.recipe.length, ...f.sections.map((s) => f.recipe.length + s)];

interface Plan {
  params: DeflateParams[];
  ops: RecipeOp[];
  /** Content pieces, in the order the ops read them. */
  contents: Uint8Array[];
  deflated: number;
  reproduced: number;
  reproducedBytes: number;
  opaqueBytes: number;
}

/** Builds ops over a file: literals merge, and every byte of the file is covered once, in order. */
class PlanWriter {
  readonly plan: Plan = { params: [], ops: [], contents: [], deflated: 0, reproduced: 0, reproducedBytes: 0, opaqueBytes: 0 };
  /** Bytes of the file covered so far. */
  at = 0;
  private readonly paramIndex = new Map<string, number>();

  constructor(private readonly file: Uint8Array, private readonly candidates: readonly DeflateParams[]) {}

  literalTo(end: number): void {
    if (end < this.at) throw new Error('members overlap');
    if (end === this.at) return;
    const bytes = this.file.subarray(this.at, end);
    const last = this.plan.ops[this.plan.ops.length - 1];
    if (last?.kind === 'literal') last.bytes = Buffer.concat([last.bytes, bytes]);
    else this.plan.ops.push({ kind: 'literal', bytes });
    this.at = end;
  }

  copy(length: number): void {
    this.plan.ops.push({ kind: 'copy', length });
    this.plan.contents.push(this.file.subarray(this.at, this.at + length));
    this.at += length;
  }

  /**
   * A deflated stream at `at` whose inflated bytes are `raw`: a deflate op if reproduced (with
   * `known`, parameters already found to reproduce it, or by trying the candidates), else a copy.
   */
  deflated(raw: Uint8Array, deflatedLength: number, known?: DeflateParams): boolean {
    const compressed = this.file.subarray(this.at, this.at + deflatedLength);
    this.plan.deflated++;
    // The parameters that worked for the previous members first: a file is usually made by one zlib call pattern.
    const p = known ?? findParams(raw, compressed, this.tried());
    if (!p) {
      this.plan.opaqueBytes += deflatedLength;
      this.copy(deflatedLength);
      return false;
    }
    let param = this.paramIndex.get(key(p));
    if (param === undefined) {
      param = this.plan.params.length;
      this.plan.params.push(p);
      this.paramIndex.set(key(p), param);
    }
    this.plan.ops.push({ kind: 'deflate', param, rawLength: raw.length, deflatedLength });
    this.plan.contents.push(raw);
    this.plan.reproduced++;
    this.plan.reproducedBytes += deflatedLength;
    this.at += deflatedLength;
    return true;
  }

  /** The candidates, those already used in this file first. */
  tried(): DeflateParams[] {
    return [...this.plan.params, ...this.candidates.filter((c) => !this.paramIndex.has(key(c)))];
  }
}

const key = (p: DeflateParams) => `${p.level}/${p.windowBits}/${p.memLevel}/${p.strategy}`;

function inflateExact(compressed: Uint8Array, size: number): Uint8Array | undefined {
  if (size > MAX_INFLATED) return undefined;
  try {
    const raw = inflateRawSync(compressed, { maxOutputLength: Math.max(size, 1) });
    return raw.length === size ? raw : undefined;
  } catch {
    return undefined;
  }
}

/** A zip: every member in the order it lies; local headers, descriptors and the directory as literals. */
function planZip(file: Uint8Array, candidates: readonly DeflateParams[]): Plan {
  const zip = zipFromBytes(file);
  const entries = [...readZipDirectory(zip).entries].sort((a, b) => a.headerOffset - b.headerOffset);
  const w = new PlanWriter(file, candidates);
  for (const e of entries) {
    const start = dataOffset(zip, e);
    w.literalTo(start);
    if (e.compressedSize === 0) continue;
    const raw = e.method === 8 && !(e.flags & 1) ? inflateExact(file.subarray(start, start + e.compressedSize), e.size) : undefined;
    if (raw && crc32(raw) >>> 0 === e.crc32 >>> 0) w.deflated(raw, e.compressedSize);
    else {
      if (e.method === 8) {
        w.plan.deflated++;
        w.plan.opaqueBytes += e.compressedSize;
      }
      w.copy(e.compressedSize);
    }
  }
  w.literalTo(file.length);
  return w.plan;
}

/** A gzip file: each member's header and trailer as literals, its deflate stream reproduced. */
function planGzip(file: Uint8Array, candidates: readonly DeflateParams[]): Plan | undefined {
  const b = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const w = new PlanWriter(file, candidates);
  while (w.at + 18 <= b.length && b[w.at] === 0x1f && b[w.at + 1] === 0x8b) {
    if (b[w.at + 2] !== 8) return undefined;
    const flags = b[w.at + 3];
    let p = w.at + 10;
    if (flags & 4) p += 2 + b.readUInt16LE(p);
    if (flags & 8) p = b.indexOf(0, p) + 1;
    if (flags & 16) p = b.indexOf(0, p) + 1;
    if (flags & 2) p += 2;
    if (p <= 0 || p >= b.length) return undefined;
    w.literalTo(p);
    const raw = inflateStream(b.subarray(p));
    if (!raw) return undefined;
    // The stream's length is only known by deflating it again: reproduce it against the rest.
    const found = findStream(raw, b.subarray(p), w.tried());
    if (found === undefined) return undefined;
    const trailer = p + found.length;
    if (trailer + 8 > b.length || b.readUInt32LE(trailer) !== crc32(raw) >>> 0 || b.readUInt32LE(trailer + 4) !== raw.length % 2 ** 32) return undefined;
    w.deflated(raw, found.length, found.params);
    w.literalTo(trailer + 8);
  }
  if (w.plan.deflated === 0) return undefined;
  w.literalTo(b.length);
  return w.plan;
}

function inflateStream(rest: Uint8Array): Uint8Array | undefined {
  try {
    // A raw inflate stops at the end of the deflate stream; the trailer after it is not read.
    return inflateRawSync(rest, { maxOutputLength: MAX_INFLATED });
  } catch {
    return undefined;
  }
}

/** The deflate stream at the start of `rest`: its length, found by the parameters that reproduce it. */
function findStream(raw: Uint8Array, rest: Uint8Array, candidates: readonly DeflateParams[]): { length: number; params: DeflateParams } | undefined {
  for (const params of candidates) {
    const length = reproducedLength(raw, rest, params);
    if (length !== undefined) return { length, params };
  }
  return undefined;
}
