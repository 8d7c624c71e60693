import { brotliCompressSync, constants as zc } from 'node:zlib';

/** What decides brotli's output besides the input: quality and window (the size hint is always the input's length). */
export interface BrotliParams {
  quality: number;
  /** log2 of the window; brotli's default (22) when absent. */
  lgwin?: number;
}

/** `content` compressed with `params`: the same bytes on any thread, so a worker may do it (src/delta/compress-pool.ts). */
export function brotli(content: Uint8Array, params: BrotliParams): Uint8Array {
  return brotliCompressSync(content, {
    params: {
      [zc.BROTLI_PARAM_QUALITY]: params.quality,
      ...(params.lgwin !== undefined ? { [zc.BROTLI_PARAM_LGWIN]: params.lgwin } : {}),
      [zc.BROTLI_PARAM_SIZE_HINT]: content.length,
    },
  });
}

/** Compresses with brotli somewhere: a worker pool's (CompressPool.brotli), or this thread. */
export type BrotliCompress = (content: Uint8Array, params: BrotliParams) => Promise<Uint8Array>;

export const brotliHere: BrotliCompress = async (content, params) => brotli(content, params);
