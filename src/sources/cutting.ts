import { Chunker, chunkFile, chunkFileWithIds, OnChunk, OnChunkWithId, withIds } from '../chunk/index.js';
import { chunkFileWithCuts } from '../chunk/forced.js';
import { wheelCutPoints, withZipFile } from './wheel.js';

/**
 * How a file is cut into chunks: the one rule the publisher and `seed` share (a client chunking
 * local files must cut exactly where the publisher did, or nothing dedupes).
 *
 *   - a file whose name ends in `.whl` (any case) and that reads as a zip: FastCDC restarted at
 *     every member's local header, every member's data, and the central directory
 *     (src/sources/wheel.ts wheelCutPoints);
 *   - every other file, or a `.whl` that does not read as a zip: plain FastCDC.
 *
 * docs/FORMATS.md §Chunking states it; changing it breaks dedupe with existing remotes.
 */
export function forcedCutsFor(path: string): number[] | undefined {
  if (!/\.whl$/i.test(path)) return undefined;
  try {
    return withZipFile(path, wheelCutPoints);
  } catch {
    return undefined;
  }
}

/** Chunks a local file by the rule above. */
export async function chunkByRule(path: string, chunker: Chunker, onChunk: OnChunk): Promise<void> {
  const cuts = forcedCutsFor(path);
  if (cuts) await chunkFileWithCuts(path, chunker.params, cuts, onChunk);
  else await chunkFile(path, chunker, onChunk);
}

/** chunkByRule with each chunk's id: computed by the chunker with the cuts (plain FastCDC), or per chunk (forced cuts). */
export async function chunkByRuleWithIds(path: string, chunker: Chunker, onChunk: OnChunkWithId): Promise<void> {
  const cuts = forcedCutsFor(path);
  if (cuts) await chunkFileWithCuts(path, chunker.params, cuts, withIds(onChunk));
  else await chunkFileWithIds(path, chunker, onChunk);
}
