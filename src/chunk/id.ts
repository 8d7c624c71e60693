import xxhash from 'xxhash-wasm';

type XXHashAPI = Awaited<ReturnType<typeof xxhash>>;
let hasher: XXHashAPI | undefined;
let hasherLoading: Promise<XXHashAPI> | undefined;

/** Loads xxhash-wasm once per process (idempotent). Importing this module already awaits it. */
export async function initHash(): Promise<void> {
  if (hasher) return;
  hasherLoading ??= xxhash();
  hasher = await hasherLoading;
}

// Top-level await: whoever imports this module (or src/chunk/index.ts) can call chunkId at once.
await initHash();

/**
 * A chunk's id: xxh64 of its bytes, seed 0 (xxhash-wasm's h64Raw). The WebAssembly chunker
 * computes the same ids in its own module while cutting (Chunker.cutWithIds).
 */
export function chunkId(bytes: Uint8Array): bigint {
  if (!hasher) throw new Error('chunkId needs the hash module: call `await initHash()` first');
  return hasher.h64Raw(bytes, 0n);
}
