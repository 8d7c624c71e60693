import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chunker, chunkFileWithIds, OnChunkWithId, withIds } from '../chunk/index.js';
import { chunkBytesWithCuts, chunkFileWithCuts } from '../chunk/forced.js';
import { buildStoredForm, rebuildContainer, StoredForm } from '../rebuild/form.js';
import { wheelCutPoints, withZipFile } from './wheel.js';

/**
 * How a file is cut into chunks: the one rule the publisher and `seed` share (a client chunking
 * local files must cut exactly where the publisher did, or nothing dedupes).
 *
 *   - a zip (`.whl`, `.zip`) or gzip (`.tar.gz`, `.tgz`) file that makes a rebuild stream
 *     (src/rebuild/form.ts): the stream, its recipe then its contents, with FastCDC restarted at
 *     the end of the recipe and at every member's contents;
 *   - another file whose name ends in `.whl` (any case) and that reads as a zip: FastCDC
 *     restarted at every member's local header, every member's data, and the central directory
 *     (src/sources/wheel.ts wheelCutPoints);
 *   - every other file: plain FastCDC.
 *
 * docs/FORMATS.md §Chunking, §Wheels and §Rebuild streams state it; changing it breaks dedupe
 * with existing remotes.
 */
export function forcedCutsFor(path: string): number[] | undefined {
  if (!/\.whl$/i.test(path)) return undefined;
  try {
    return withZipFile(path, wheelCutPoints);
  } catch {
    return undefined;
  }
}

/**
 * Chunks a local file by the rule above, each chunk with its id (computed by the chunker with
 * the cuts for plain FastCDC, or per chunk with forced cuts). Returns the rebuild stream's
 * description when the file was cut as one. A stream's contents are written to a scratch file in
 * `scratchDir` (the publisher's is in the remote directory) and removed afterwards.
 */
export async function chunkByRuleWithIds(path: string, chunker: Chunker, onChunk: OnChunkWithId, scratchDir = tmpdir()): Promise<StoredForm | undefined> {
  if (rebuildContainer(path) !== undefined) {
    const contents = join(scratchDir, `.tmp-${randomBytes(8).toString('hex')}.contents`);
    try {
      const form = buildStoredForm(path, contents);
      if (form) {
        await chunkBytesWithCuts(form.recipe, chunker.params, [], withIds(onChunk));
        await chunkFileWithCuts(contents, chunker.params, form.sections, withIds(onChunk));
        return form;
      }
    } finally {
      rmSync(contents, { force: true });
    }
  }
  const cuts = forcedCutsFor(path);
  if (cuts) await chunkFileWithCuts(path, chunker.params, cuts, withIds(onChunk));
  else await chunkFileWithIds(path, chunker, onChunk);
  return undefined;
}
