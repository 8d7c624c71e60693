import { createRequire } from 'node:module';
import type * as Binding from 'zstd-napi/binding.js';
import { PaqueteError } from '../errors.js';

/**
 * Zstandard through zstd-napi's thin binding (libzstd compiled at install). Node 20's zlib has no
 * zstd, and only zstd gives both what updates need (a raw-content dictionary: "compress this
 * against bytes the client already holds", like `zstd --patch-from`) and what first downloads
 * need (a long window over megabytes). Everything zstd in paquete goes through this module.
 */
const binding = createRequire(import.meta.url)('zstd-napi/binding') as typeof Binding;

/** Largest window a reader accepts (128 MiB, as `zstd --long=27`): bounds a hostile frame's memory. */
export const MAX_WINDOW_LOG = 27;

export interface CompressOptions {
  level: number;
  /** Raw bytes the decoder will hold too; matches may point into them. */
  dictionary?: Uint8Array;
}

const windowLogFor = (bytes: number) => Math.min(MAX_WINDOW_LOG, Math.max(20, Math.ceil(Math.log2(Math.max(1, bytes)))));

/** One zstd frame of `content`, with its size in the frame header. */
export function compressFrame(content: Uint8Array, opts: CompressOptions): Uint8Array {
  return new FrameCompressor().compress(content, opts);
}

/**
 * One compression context for many frames. zstd-napi frees a context only in a finalizer, and
 * Node runs those on a later turn of the event loop: a synchronous loop of compressFrame calls
 * kept every context alive (typescript 5.8.3→5.9.3, 34 delta frames at level 19: 1.3 GB
 * resident). Reset between frames, one context reuses its workspace.
 */
export class FrameCompressor {
  private readonly cctx = new binding.CCtx();

  compress(content: Uint8Array, opts: CompressOptions): Uint8Array {
    const cctx = this.cctx;
    // Parameters and the previous frame's dictionary go; the workspace stays.
    cctx.reset(binding.ResetDirective.sessionAndParameters);
    cctx.setParameter(binding.CParameter.compressionLevel, opts.level);
    // The window must reach back over the dictionary as well as the content.
    cctx.setParameter(binding.CParameter.windowLog, windowLogFor(content.length + (opts.dictionary?.length ?? 0)));
    cctx.setParameter(binding.CParameter.checksumFlag, 0);
    if (opts.dictionary?.length) cctx.loadDictionary(opts.dictionary);
    const out = Buffer.allocUnsafe(binding.compressBound(content.length));
    const n = cctx.compress2(out, content);
    return out.subarray(0, n);
  }
}

/** Whole-buffer decompression for small things (records, index deltas); `expected` is exact. */
export function decompressExact(frame: Uint8Array, expected: number, dictionary?: Uint8Array): Uint8Array {
  const decoder = new FrameDecoder(expected, dictionary);
  decoder.push(frame);
  decoder.end();
  return decoder.output;
}

/**
 * Largest content a frame may promise. Sizes come from signed indexes (frames are cut at 32 MiB,
 * src/delta/build.ts; an index body is ~12 B a chunk), so this only keeps a bug from asking for
 * absurd memory up front.
 */
export const MAX_FRAME_CONTENT = 2 ** 30;

/**
 * Streaming decoder of one frame whose content size is known from elsewhere (the index): bytes
 * come out as blocks complete, so a frame cut by the network still yields everything before the
 * cut. They are decoded into one buffer of the promised size, so a caller cuts chunks out of it
 * with no copy (joining 1 MiB output pieces was a tenth of a first sync). Anything that does not
 * add up (more output than promised, a frame that ends early, garbage) throws DAMAGED_PACK.
 */
export class FrameDecoder {
  private readonly dctx = new binding.DCtx();
  private readonly buffer: Buffer;
  private produced = 0;
  private finished = false;

  constructor(
    readonly expected: number,
    dictionary?: Uint8Array,
  ) {
    if (!Number.isInteger(expected) || expected < 0 || expected > MAX_FRAME_CONTENT) {
      throw new PaqueteError('DAMAGED_PACK', `a compressed frame may hold at most ${MAX_FRAME_CONTENT} bytes, not ${expected}`);
    }
    // One byte of room past the promise: a frame holding more shows itself by filling it.
    this.buffer = Buffer.allocUnsafe(expected + 1);
    this.dctx.setParameter(binding.DParameter.windowLogMax, MAX_WINDOW_LOG);
    if (dictionary?.length) this.dctx.loadDictionary(dictionary);
  }

  /** The bytes decoded so far (a view, valid as long as the decoder). */
  get output(): Uint8Array {
    return this.buffer.subarray(0, this.produced);
  }

  /** Decodes what `input` allows; returns how many new bytes `output` holds (possibly none). */
  push(input: Uint8Array): number {
    const before = this.produced;
    let src = input;
    try {
      while (src.length > 0 || !this.finished) {
        if (this.finished) throw new PaqueteError('DAMAGED_PACK', 'compressed frame has bytes after its end');
        const [left, produced, consumed] = this.dctx.decompressStream(this.buffer.subarray(this.produced), src);
        src = src.subarray(consumed);
        this.produced += produced;
        if (this.produced > this.expected) throw new PaqueteError('DAMAGED_PACK', `compressed frame holds more than the ${this.expected} bytes promised`);
        if (left === 0) this.finished = true;
        if (consumed === 0 && produced === 0) break;
      }
    } catch (e) {
      if (e instanceof PaqueteError) throw e;
      throw new PaqueteError('DAMAGED_PACK', `compressed frame does not decode: ${(e as Error).message}`);
    }
    return this.produced - before;
  }

  /** Checks that the frame ended and gave exactly what was promised. */
  end(): void {
    if (!this.finished || this.produced !== this.expected) {
      throw new PaqueteError('DAMAGED_PACK', `compressed frame ended after ${this.produced} of ${this.expected} bytes`);
    }
  }
}
