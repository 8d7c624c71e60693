import { DEFLATE_WASM_BASE64 } from './deflate-wasm-bytes.js';

/**
 * A faithful deflate: zlib's own, whose output for given parameters is the output of the zlib
 * that made most zip and gzip files (Python's zipfile and gzip, setuptools, pip's wheel
 * builders). Measured on this machine's wheelhouse: zlib at level 6 (and pako, its JS port)
 * reproduced every deflated member of numpy, transformers, scipy…; Node's own zlib (a fork with
 * other match finding) reproduced 54 of numpy's 1,042, so it is never used for rebuilds. The
 * zlib is vendored (vendor/zlib-1.3.1) and compiled into the build: another zlib version could
 * deflate otherwise.
 */
export interface DeflateParams {
  /** 0-9. */
  level: number;
  /** 8-15: log2 of the window. */
  windowBits: number;
  /** 1-9. */
  memLevel: number;
  /** 0 default, 1 filtered, 2 huffman only, 3 rle, 4 fixed. */
  strategy: number;
}

export const ZLIB_DEFAULT: DeflateParams = { level: 6, windowBits: 15, memLevel: 8, strategy: 0 };

/** What the publisher tries, most common first (level 6, then 9 as Python's gzip, then the rest). */
export const CANDIDATES: DeflateParams[] = [6, 9, 1, 2, 3, 4, 5, 7, 8].flatMap((level) => [
  { level, windowBits: 15, memLevel: 8, strategy: 0 },
  { level, windowBits: 15, memLevel: 9, strategy: 0 },
]);

export function validParams(p: DeflateParams): boolean {
  return p.level >= 0 && p.level <= 9 && p.windowBits >= 8 && p.windowBits <= 15 && p.memLevel >= 1 && p.memLevel <= 9 && p.strategy >= 0 && p.strategy <= 4;
}

interface ZlibExports {
  memory: WebAssembly.Memory;
  pq_new(level: number, windowBits: number, memLevel: number, strategy: number): number;
  pq_in(s: number): number;
  pq_out(s: number): number;
  pq_deflate(s: number, len: number, finish: number): number;
  pq_pending_in(s: number): number;
  pq_free(s: number): void;
}

/** The glue's buffer size (PIECE in deflate-wasm.c). */
const PIECE = 65536;

let zlib: ZlibExports | undefined;

/** This thread's zlib instance, compiled on first use (40 KB: synchronous compile is fine in Node). */
function zlibInstance(): ZlibExports {
  zlib ??= new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(DEFLATE_WASM_BASE64, 'base64')), {}).exports as unknown as ZlibExports;
  return zlib;
}

/** Streams not closed by their owner (a trial that stopped at a mismatch, a failed rebuild) are freed when collected. */
const unfreed = new FinalizationRegistry<number>((s) => zlibInstance().pq_free(s));

/**
 * Streaming raw deflate by zlib 1.3.1's own code, compiled to WebAssembly
 * (src/rebuild/deflate-wasm.c, scripts/build-deflate-wasm.sh). Measured on numpy 2.4.1's 1,042
 * members (57 MB in, 16.5 MB out, one thread, same run): 2.9 s against pako's 4.4 s and native
 * zlib's ~1.9 s, with output identical to pako's for every member. Push input in pieces of any
 * size (zlib's output without flushes does not depend on how its input was split;
 * test/rebuild.test.ts checks it on real members), then finish. `onData` gets the output in
 * pieces of at most 64 KiB; a piece is a view into the module's memory, valid only during the call.
 */
export class FaithfulDeflate {
  private readonly z = zlibInstance();
  private s: number;
  /** Bytes of output so far. */
  produced = 0;

  constructor(p: DeflateParams, private readonly onData: (chunk: Uint8Array) => void) {
    if (!validParams(p)) throw new RangeError(`deflate parameters ${JSON.stringify(p)} are not zlib's`);
    this.s = this.z.pq_new(p.level, p.windowBits, p.memLevel, p.strategy);
    if (this.s === 0) throw new Error('zlib could not start a deflate stream (out of memory)');
    unfreed.register(this, this.s, this);
  }

  push(data: Uint8Array): void {
    for (let at = 0; at < data.length; at += PIECE) {
      const piece = data.subarray(at, at + PIECE);
      new Uint8Array(this.z.memory.buffer, this.z.pq_in(this.live()), piece.length).set(piece);
      this.run(piece.length, 0);
    }
  }

  /** Ends the stream (its last output goes to `onData`) and frees it. */
  finish(): void {
    this.run(0, 1);
    this.close();
  }

  /** Frees the stream without finishing it (idempotent). */
  close(): void {
    if (this.s === 0) return;
    this.z.pq_free(this.s);
    unfreed.unregister(this);
    this.s = 0;
  }

  private live(): number {
    if (this.s === 0) throw new Error('deflate stream used after it was finished or closed');
    return this.s;
  }

  /** One call with `len` new bytes of input, then more while zlib has output or input left. */
  private run(len: number, finish: number): void {
    const s = this.live();
    const out = this.z.pq_out(s);
    for (;;) {
      const got = this.z.pq_deflate(s, len, finish);
      len = 0;
      if (got < 0) throw new Error('zlib refused the deflate stream');
      if (got > 0) {
        this.produced += got;
        this.onData(new Uint8Array(this.z.memory.buffer, out, got));
      }
      if (got < PIECE && this.z.pq_pending_in(s) === 0) return;
    }
  }
}

/** Input is fed in pieces this big, so a mismatch stops the trial soon after the first wrong byte. */
const TRIAL_PIECE = 64 << 10;

/**
 * How many bytes zlib with `p` deflates `raw` to when they are exactly the first bytes of
 * `compressed`, else undefined; stops at the first differing byte (a wrong level shows within
 * the first block, so trying the candidates costs little more than the one that fits).
 */
export function reproducedLength(raw: Uint8Array, compressed: Uint8Array, p: DeflateParams): number | undefined {
  let at = 0;
  let same = true;
  const d = new FaithfulDeflate(p, (chunk) => {
    if (!same) return;
    if (at + chunk.length > compressed.length || Buffer.compare(chunk, compressed.subarray(at, at + chunk.length)) !== 0) same = false;
    at += chunk.length;
  });
  try {
    for (let i = 0; i < raw.length && same; i += TRIAL_PIECE) d.push(raw.subarray(i, i + TRIAL_PIECE));
    if (same) d.finish();
  } finally {
    d.close();
  }
  return same ? at : undefined;
}

/** Whether zlib with `p` deflates `raw` to exactly `compressed`. */
export const reproduces = (raw: Uint8Array, compressed: Uint8Array, p: DeflateParams): boolean => reproducedLength(raw, compressed, p) === compressed.length;

/** The first candidate that reproduces `compressed` from `raw`, or undefined. */
export function findParams(raw: Uint8Array, compressed: Uint8Array, candidates: readonly DeflateParams[] = CANDIDATES): DeflateParams | undefined {
  return candidates.find((p) => reproduces(raw, compressed, p));
}
