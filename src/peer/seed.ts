import { lstatSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createChunker } from '../chunk/index.js';
import { PaqueteError } from '../errors.js';
import { ChunkEntry, recordLength } from '../snapshot/snapshot.js';
import { chunkByRuleWithIds } from '../sources/cutting.js';
import { encodeRecord } from '../store/pack.js';
import { META_DIR, WorkDir } from '../workdir/workdir.js';
import { placeFromStore, PlaceResult, requireLatest } from './local.js';

export interface SeedOptions {
  /** Place the files that became complete (default true). */
  place?: boolean;
  /** Called after each file with its size. */
  onFile?: (path: string, bytes: number) => void;
}

export interface SeedResult {
  snapshot: string;
  /** Files read and their bytes. */
  files: number;
  bytesRead: number;
  /** Paths that could not be read (permissions, vanished). */
  unreadable: string[];
  /** Distinct chunks of the snapshot found in the files (whether or not the store had them). */
  matched: number;
  /** Of those, chunks the store lacked and now holds. */
  newChunks: number;
  /** Record bytes, as the remote stores them, that no longer need fetching. */
  savedBytes: number;
  /** Record bytes the snapshot lacked before seeding, and lacks now. */
  missingBefore: number;
  missingAfter: number;
  placement?: PlaceResult;
}

/**
 * Feeds local files (a pip cache, an old checkout, a folder from a stick) into the store. Each
 * file is cut with the remote's own chunking parameters (from the cached snapshot) and by the
 * publisher's own rule (src/sources/cutting.ts: wheels at member boundaries), so equal content
 * gives equal chunk ids; a chunk is stored when the latest snapshot needs it and the store lacks
 * it.
 *
 * Only chunks the latest snapshot references are kept, not everything: sync only ever fetches
 * the latest snapshot's chunks, so anything else would only take disk (a pip cache runs to
 * gigabytes) without saving a byte on the link. Chunks are stored from the local bytes (they
 * hash to the id, which is all a store entry promises); each file is still checked against its
 * SHA-256 before it is placed.
 */
export async function seedPaths(work: WorkDir, paths: string[], opts: SeedOptions = {}): Promise<SeedResult> {
  const { snapshot, entry } = requireLatest(work, 'seeding needs the remote\'s chunking parameters and the list of chunks it wants');
  const present = snapshot.chunks.idsOf(await work.store.heldIn(snapshot.chunks.idWords));
  const lacking = new Map<bigint, ChunkEntry>();
  for (const c of snapshot.chunks) if (!present.has(c.id)) lacking.set(c.id, c);
  const wanted = new Set(snapshot.chunks.ids());
  let missingBefore = 0;
  for (const c of lacking.values()) missingBefore += recordLength(c);

  const result: SeedResult = {
    snapshot: entry.name,
    files: 0,
    bytesRead: 0,
    unreadable: [],
    matched: 0,
    newChunks: 0,
    savedBytes: 0,
    missingBefore,
    missingAfter: missingBefore,
  };
  const seen = new Set<bigint>();
  const chunker = await createChunker(snapshot.params);
  const metaDir = join(work.root, META_DIR);
  try {
    for (const top of paths) {
      let st;
      try {
        st = statSync(top);
      } catch {
        throw new PaqueteError('USAGE', `${top}: no such file or directory`);
      }
      const files = st.isDirectory() ? walk(top, metaDir, result.unreadable) : st.isFile() ? [top] : [];
      for (const file of files) {
        let size = 0;
        try {
          await chunkByRuleWithIds(file, chunker, async (chunk, id) => {
            size += chunk.length;
            if (!wanted.has(id) || seen.has(id)) return;
            seen.add(id);
            result.matched++;
            const c = lacking.get(id);
            if (!c) return;
            await work.store.addRecord(id, encodeRecord(id, chunk));
            lacking.delete(id);
            result.newChunks++;
            result.savedBytes += recordLength(c);
          });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'EISDIR') {
            result.unreadable.push(file);
            continue;
          }
          throw e;
        }
        result.files++;
        result.bytesRead += size;
        opts.onFile?.(file, size);
      }
    }
  } finally {
    await work.store.flush();
  }
  result.missingAfter = missingBefore - result.savedBytes;
  if (opts.place !== false) result.placement = await placeFromStore(work);
  return result;
}

/** Regular files under dir, not following symlinks, never inside a working directory's .paquete. */
function walk(dir: string, metaDir: string, unreadable: string[]): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      unreadable.push(d);
      return;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name === META_DIR || p === metaDir) continue;
        visit(p);
      } else if (e.isFile()) out.push(p);
      else if (e.isSymbolicLink()) {
        // A link may point anywhere, even back up the tree: follow links to files only.
        try {
          if (statSync(p).isFile() && lstatSync(p).isSymbolicLink()) out.push(p);
        } catch {
          /* dangling */
        }
      }
    }
  };
  visit(dir);
  return out;
}
