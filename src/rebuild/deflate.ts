import pako from 'pako';

/**
 * A faithful deflate: pako, a line-for-line port of zlib, whose output for given parameters is
 * the output of the zlib that made most zip and gzip files (Python's zipfile and gzip, setuptools,
 * pip's wheel builders). Measured on this machine's wheelhouse: pako's deflateRaw at level 6
 * reproduced every deflated member of numpy, transformers, scipy…; Node's own zlib (a fork with
 * other match finding) reproduced 54 of numpy's 1,042, so it is never used for rebuilds.
 * The pako version is pinned exactly in package.json: another version could deflate otherwise.
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

/**
 * Streaming raw deflate: push input in pieces of any size (zlib's output without flushes does
 * not depend on how its input was split; test/rebuild.test.ts checks it on real members), then
 * finish. Output goes to `onData` in pieces that the callee may keep.
 */
export class FaithfulDeflate {
  private readonly d: pako.Deflate;
  /** Bytes of output so far. */
  produced = 0;

  constructor(p: DeflateParams, onData: (chunk: Uint8Array) => void) {
    this.d = new pako.Deflate({ level: p.level as pako.DeflateOptions['level'], windowBits: p.windowBits, memLevel: p.memLevel, strategy: p.strategy as pako.DeflateOptions['strategy'], raw: true, chunkSize: 64 << 10 });
    this.d.onData = (chunk: Uint8Array) => {
      this.produced += chunk.length;
      onData(chunk);
    };
    this.d.onEnd = () => {};
  }

  push(data: Uint8Array): void {
    if (data.length) this.d.push(data, false);
  }

  finish(): void {
    this.d.push(new Uint8Array(0), true);
  }
}

/** Input is fed in pieces this big, so a mismatch stops the trial soon after the first wrong byte. */
const TRIAL_PIECE = 64 << 10;

/**
 * How many bytes pako with `p` deflates `raw` to when they are exactly the first bytes of
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
  for (let i = 0; i < raw.length && same; i += TRIAL_PIECE) d.push(raw.subarray(i, i + TRIAL_PIECE));
  if (!same) return undefined;
  d.finish();
  return same ? at : undefined;
}

/** Whether pako with `p` deflates `raw` to exactly `compressed`. */
export const reproduces = (raw: Uint8Array, compressed: Uint8Array, p: DeflateParams): boolean => reproducedLength(raw, compressed, p) === compressed.length;

/** The first candidate that reproduces `compressed` from `raw`, or undefined. */
export function findParams(raw: Uint8Array, compressed: Uint8Array, candidates: readonly DeflateParams[] = CANDIDATES): DeflateParams | undefined {
  return candidates.find((p) => reproduces(raw, compressed, p));
}
