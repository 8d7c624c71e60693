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

/**
 * Content from which a frame without a dictionary is compressed with long-distance matching (what
 * `zstd --long` adds): level 19's own match finder reaches back about its default window, 8 MiB,
 * and the rest of a long frame's window only through these matches. transformers 5.18.0's
 * stream (50.8 MB of Python, code repeated across model files), level 19 in one frame with a
 * 2^26 window: 3.66 MB without, 3.58 MB with (32.7 s of CPU against about the same).
 */
export const LONG_MATCH_MIN = 8 << 20;

export interface CompressOptions {
  level: number;
  /** Raw bytes the decoder will hold too; matches may point into them. */
  dictionary?: Uint8Array;
}

const windowLogFor = (bytes: number) => Math.min(MAX_WINDOW_LOG, Math.max(20, Math.ceil(Math.log2(Math.max(1, bytes)))));

/**
 * The binary-tree match finders of levels 13-22 (btlazy2 and the optimal parsers) find matches
 * only 2^(chainLog-1) bytes back, whatever the window: at level 19 chainLog is 24, so 8 MiB. A
 * pooled delta frame lays its files' base windows end to end before its content, and a file's
 * window then lies tens of MiB back: typescript 5.8.3→5.9.3 (10.5 MB of changed chunks against
 * 29.1 MB of windows, one pool) took 225.6 KB of frames at chainLog 24, 201.0 KB at 25, 174.3
 * KB at 26 and 27 (about the same CPU, 19 s). So a frame with a dictionary gets the chainLog of
 * its window, up to BT_CHAIN_LOG_MAX. The price is the compressor's memory (4 bytes per entry:
 * 256 MiB at 26, in each worker), not the reader's: decoding does not use the chain table.
 */
const BT_CHAIN_LOG_MAX = 26;
/** Levels whose match finder is a binary tree with a chainLog of at most 25 (20: 25; 21-22 have 26-27 already). */
const BT_LEVELS = { min: 13, max: 20 };

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
    const windowLog = windowLogFor(content.length + (opts.dictionary?.length ?? 0));
    cctx.setParameter(binding.CParameter.windowLog, windowLog);
    if (opts.dictionary?.length && opts.level >= BT_LEVELS.min && opts.level <= BT_LEVELS.max && windowLog > 24) {
      // Only ever raised: a window of 2^25 or more at these levels (level 20's own chainLog is 25).
      cctx.setParameter(binding.CParameter.chainLog, Math.min(windowLog, BT_CHAIN_LOG_MAX));
    }
    cctx.setParameter(binding.CParameter.checksumFlag, 0);
    if (!opts.dictionary?.length && content.length >= LONG_MATCH_MIN) cctx.setParameter(binding.CParameter.enableLongDistanceMatching, 1);
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
 * Largest content a frame may promise. Sizes come from signed indexes (frames hold at most 128
 * MiB, src/delta/build.ts; an index body is ~12 B a chunk), so this only keeps a bug from asking
 * for absurd memory up front.
 */
export const MAX_FRAME_CONTENT = 2 ** 30;

/** Output buffer of a decoder that hands its output on (`sink`): reused from piece to piece. */
const SINK_PIECE = 1 << 20;

/**
 * Streaming decoder of one frame whose content size is known from elsewhere (the index): bytes
 * come out as blocks complete, so a frame cut by the network still yields everything before the
 * cut. Without a `sink` they are decoded into one buffer of the promised size, so a caller cuts
 * chunks out of it with no copy (joining 1 MiB output pieces was a tenth of a first sync). With
 * one, each piece of output goes to the sink (a view, valid during the call) and is not kept:
 * the decode worker copies it out anyway, and a 128 MiB frame would otherwise be held twice,
 * once in zstd's window and once here. Anything that does not add up (more output than
 * promised, a frame that ends early, garbage) throws DAMAGED_PACK.
 */
export class FrameDecoder {
  private readonly dctx = new binding.DCtx();
  private readonly buffer: Buffer;
  /** Bytes decoded in all; with a sink, those before `buffer` went to it. */
  private produced = 0;
  /** With a sink: bytes of `buffer` not yet handed on. */
  private pending = 0;
  private finished = false;

  constructor(
    readonly expected: number,
    dictionary?: Uint8Array,
    private readonly sink?: (piece: Uint8Array) => void,
  ) {
    if (!Number.isInteger(expected) || expected < 0 || expected > MAX_FRAME_CONTENT) {
      throw new PaqueteError('DAMAGED_PACK', `a compressed frame may hold at most ${MAX_FRAME_CONTENT} bytes, not ${expected}`);
    }
    // One byte of room past the promise: a frame holding more shows itself by filling it.
    this.buffer = Buffer.allocUnsafe(sink ? Math.min(expected + 1, SINK_PIECE) : expected + 1);
    this.dctx.setParameter(binding.DParameter.windowLogMax, MAX_WINDOW_LOG);
    if (dictionary?.length) this.dctx.loadDictionary(dictionary);
  }

  /** The bytes decoded so far (a view, valid as long as the decoder); without a sink only. */
  get output(): Uint8Array {
    if (this.sink) throw new Error('a decoder with a sink keeps no output');
    return this.buffer.subarray(0, this.produced);
  }

  /** Decodes what `input` allows; returns how many new bytes came (in `output`, or to the sink). */
  push(input: Uint8Array): number {
    const before = this.produced;
    let src = input;
    try {
      while (src.length > 0 || !this.finished) {
        if (this.finished) throw new PaqueteError('DAMAGED_PACK', 'compressed frame has bytes after its end');
        const at = this.sink ? this.pending : this.produced;
        // Room past the promise stays one byte, whatever the piece (see the constructor).
        const room = Math.min(this.buffer.length, at + this.expected + 1 - this.produced);
        const [left, produced, consumed] = this.dctx.decompressStream(this.buffer.subarray(at, room), src);
        src = src.subarray(consumed);
        this.produced += produced;
        this.pending += produced;
        if (this.produced > this.expected) throw new PaqueteError('DAMAGED_PACK', `compressed frame holds more than the ${this.expected} bytes promised`);
        if (left === 0) this.finished = true;
        if (this.sink && this.pending === this.buffer.length) this.flush();
        if (consumed === 0 && produced === 0) break;
      }
    } catch (e) {
      if (e instanceof PaqueteError) throw e;
      throw new PaqueteError('DAMAGED_PACK', `compressed frame does not decode: ${(e as Error).message}`);
    }
    if (this.sink) this.flush();
    return this.produced - before;
  }

  private flush(): void {
    if (this.pending === 0) return;
    const piece = this.buffer.subarray(0, this.pending);
    this.pending = 0;
    this.sink!(piece);
  }

  /** Checks that the frame ended and gave exactly what was promised. */
  end(): void {
    if (!this.finished || this.produced !== this.expected) {
      throw new PaqueteError('DAMAGED_PACK', `compressed frame ended after ${this.produced} of ${this.expected} bytes`);
    }
  }
}
