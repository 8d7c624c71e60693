import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { DeflateParams, FaithfulDeflate, validParams } from './deflate.js';

/**
 * A rebuild stream: a compressed file (a wheel, an sdist) stored as a recipe followed by its
 * contents, so that what the chunker, the deltas and the streams see is the uncompressed
 * contents (numpy 2.4.0 → 2.4.1: 4.36 MB of patch over the wheels, 0.41 MB over the contents).
 * The recipe lists the file's bytes in order as operations: literal bytes (zip local headers,
 * data descriptors, the central directory, gzip headers and trailers), bytes copied from the
 * contents (stored members, and deflated members no parameters reproduce, kept compressed), and
 * members deflated again from the contents with the parameters that reproduce them (zlib).
 * Layout in docs/FORMATS.md §Rebuild streams. One encoder, one decoder, and the streaming
 * rebuilder, side by side.
 */
export const RECIPE_MAGIC = Buffer.from('PQRB', 'ascii');
export const RECIPE_VERSION = 1;
export const RECIPE_HEADER_SIZE = 12;
/** A recipe body beyond this is refused before it is buffered (numpy's is ~170 KB). */
export const RECIPE_MAX = 64 << 20;

export const enum Container {
  Zip = 1,
  Gzip = 2,
}

export type RecipeOp =
  | { kind: 'literal'; bytes: Uint8Array }
  /** The next `length` bytes of the contents, as they are. */
  | { kind: 'copy'; length: number }
  /** The next `rawLength` bytes of the contents, deflated with params[param]: `deflatedLength` bytes. */
  | { kind: 'deflate'; param: number; rawLength: number; deflatedLength: number };

const OP_LITERAL = 1;
const OP_COPY = 2;
const OP_DEFLATE = 3;

export interface Recipe {
  container: Container;
  /** Bytes of the file it rebuilds. */
  placedSize: number;
  params: DeflateParams[];
  ops: RecipeOp[];
}

/** Bytes of contents the ops read, after the recipe. */
export const contentLength = (r: Recipe): number => r.ops.reduce((n, op) => n + (op.kind === 'copy' ? op.length : op.kind === 'deflate' ? op.rawLength : 0), 0);

const outputOf = (op: RecipeOp): number => (op.kind === 'literal' ? op.bytes.length : op.kind === 'copy' ? op.length : op.deflatedLength);

/** The recipe as the first bytes of a rebuild stream: header, then body. */
export function encodeRecipe(r: Recipe): Uint8Array {
  const w = new ByteWriter(1 << 16);
  w.varint(r.placedSize).varint(r.params.length);
  for (const p of r.params) w.u8(p.level).u8(p.windowBits).u8(p.memLevel).u8(p.strategy);
  w.varint(r.ops.length);
  for (const op of r.ops) {
    if (op.kind === 'literal') w.u8(OP_LITERAL).varint(op.bytes.length).bytes(op.bytes);
    else if (op.kind === 'copy') w.u8(OP_COPY).varint(op.length);
    else w.u8(OP_DEFLATE).varint(op.param).varint(op.rawLength).varint(op.deflatedLength);
  }
  const body = w.finish();
  const header = Buffer.alloc(RECIPE_HEADER_SIZE);
  RECIPE_MAGIC.copy(header, 0);
  header[4] = RECIPE_VERSION;
  header[5] = r.container;
  header.writeUInt32LE(body.length, 8);
  return Buffer.concat([header, body]);
}

function bad(why: string): PaqueteError {
  return new PaqueteError('BAD_FORMAT', `damaged rebuild recipe: ${why}`);
}

/** Checks the 12-byte header; returns the body length. */
export function recipeBodyLength(header: Uint8Array): number {
  if (header.length < RECIPE_HEADER_SIZE || !RECIPE_MAGIC.equals(header.subarray(0, 4))) throw bad('bad magic');
  requireFormat('rebuild recipe', 'rebuild recipe', header[4], [RECIPE_VERSION]);
  if (header[5] !== Container.Zip && header[5] !== Container.Gzip) throw bad(`unknown container ${header[5]}`);
  const n = Buffer.from(header.buffer, header.byteOffset, RECIPE_HEADER_SIZE).readUInt32LE(8);
  if (n > RECIPE_MAX) throw bad(`a ${n}-byte recipe is more than ${RECIPE_MAX}`);
  return n;
}

/** Decodes header + body (exactly), checking that the ops add up to the size they claim. */
export function decodeRecipe(data: Uint8Array): Recipe {
  const n = recipeBodyLength(data);
  if (data.length !== RECIPE_HEADER_SIZE + n) throw bad(`${data.length - RECIPE_HEADER_SIZE} body bytes, the header says ${n}`);
  const r = new ByteReader(data.subarray(RECIPE_HEADER_SIZE), 'rebuild recipe');
  const placedSize = r.varint();
  const params: DeflateParams[] = [];
  for (let k = r.count(4, 'parameter set'); k > 0; k--) {
    const p = { level: r.u8(), windowBits: r.u8(), memLevel: r.u8(), strategy: r.u8() };
    if (!validParams(p)) r.fail(`deflate parameters ${JSON.stringify(p)} are not zlib's`);
    params.push(p);
  }
  const ops: RecipeOp[] = [];
  let total = 0;
  for (let k = r.count(2, 'operation'); k > 0; k--) {
    const kind = r.u8();
    let op: RecipeOp;
    if (kind === OP_LITERAL) op = { kind: 'literal', bytes: r.bytes(r.varint()) };
    else if (kind === OP_COPY) op = { kind: 'copy', length: r.varint() };
    else if (kind === OP_DEFLATE) {
      op = { kind: 'deflate', param: r.varint(), rawLength: r.varint(), deflatedLength: r.varint() };
      if (op.param >= params.length) r.fail(`an operation names parameter set ${op.param} of ${params.length}`);
    } else return r.fail(`unknown operation ${kind}`);
    total += outputOf(op);
    ops.push(op);
  }
  r.end();
  if (total !== placedSize) throw bad(`the operations make ${total} bytes, the recipe says ${placedSize}`);
  return { container: data[5] as Container, placedSize, params, ops };
}

/**
 * Rebuilds a file from its rebuild stream, pushed in pieces of any size: the recipe is buffered
 * (it is small), the contents stream through, so a wheel is never whole in memory. `out` gets
 * the rebuilt file's bytes in order; a view it gets is valid only during the call. Every
 * deviation (a bad recipe, a member that deflates to another length, contents too short or too
 * long) throws BAD_FORMAT; the caller checks the result's SHA-256, which catches everything else.
 */
export class Rebuilder {
  private head = new Uint8Array(RECIPE_HEADER_SIZE);
  /** Bytes of `head` received. */
  private filled = 0;
  private recipe: Recipe | undefined;
  private op = 0;
  /** Content bytes still due to the current op. */
  private left = 0;
  private deflate: FaithfulDeflate | undefined;
  /** Bytes given to `out`. */
  produced = 0;

  constructor(private readonly out: (bytes: Uint8Array) => void) {}

  push(data: Uint8Array): void {
    if (!this.recipe) {
      data = this.takeRecipe(data);
      if (!this.recipe) return;
      this.advance();
    }
    let at = 0;
    while (at < data.length) {
      const op = this.recipe.ops[this.op];
      if (!op) throw bad(`${data.length - at} bytes of contents past the last operation`);
      const n = Math.min(this.left, data.length - at);
      const piece = data.subarray(at, at + n);
      if (op.kind === 'copy') this.emit(piece);
      else this.deflate!.push(piece);
      at += n;
      this.left -= n;
      if (this.left === 0) this.endOp();
    }
  }

  /** Frees the member being deflated, if any: for a rebuild given up before its end. */
  close(): void {
    this.deflate?.close();
    this.deflate = undefined;
  }

  /** Ends the stream: throws unless every operation was carried out and the size is right. */
  end(): void {
    if (!this.recipe) throw bad('the stream ends inside the recipe');
    if (this.op < this.recipe.ops.length) throw bad(`the contents end at operation ${this.op} of ${this.recipe.ops.length}`);
    if (this.produced !== this.recipe.placedSize) throw bad(`rebuilt ${this.produced} bytes, the recipe says ${this.recipe.placedSize}`);
  }

  private emit(bytes: Uint8Array): void {
    this.produced += bytes.length;
    if (this.produced > (this.recipe?.placedSize ?? 0)) throw bad('more bytes than the recipe says');
    this.out(bytes);
  }

  /**
   * Buffers the recipe; returns what follows it. The buffer is sized once the header gives the
   * body's length (growing it per piece copied a large recipe once per chunk: quadratic).
   */
  private takeRecipe(data: Uint8Array): Uint8Array {
    if (this.filled < RECIPE_HEADER_SIZE) {
      const take = Math.min(RECIPE_HEADER_SIZE - this.filled, data.length);
      this.head.set(data.subarray(0, take), this.filled);
      this.filled += take;
      data = data.subarray(take);
      if (this.filled < RECIPE_HEADER_SIZE) return data;
      const whole = new Uint8Array(RECIPE_HEADER_SIZE + recipeBodyLength(this.head));
      whole.set(this.head);
      this.head = whole;
    }
    const take = Math.min(this.head.length - this.filled, data.length);
    this.head.set(data.subarray(0, take), this.filled);
    this.filled += take;
    if (this.filled === this.head.length) this.recipe = decodeRecipe(this.head);
    return data.subarray(take);
  }

  /** Carries out literal ops up to the next one that reads contents (or the end). */
  private advance(): void {
    const ops = this.recipe!.ops;
    while (this.op < ops.length) {
      const op = ops[this.op];
      if (op.kind === 'literal') {
        this.emit(op.bytes);
        this.op++;
        continue;
      }
      if (op.kind === 'copy') this.left = op.length;
      else {
        this.left = op.rawLength;
        this.deflate = new FaithfulDeflate(this.recipe!.params[op.param], (chunk) => this.emit(chunk));
      }
      if (this.left > 0) return;
      this.endOp();
      return;
    }
  }

  private endOp(): void {
    const op = this.recipe!.ops[this.op];
    if (op.kind === 'deflate') {
      const d = this.deflate!;
      this.deflate = undefined;
      d.finish();
      if (d.produced !== op.deflatedLength) throw bad(`member at operation ${this.op} deflated to ${d.produced} bytes, the recipe says ${op.deflatedLength}`);
    }
    this.op++;
    this.advance();
  }
}
