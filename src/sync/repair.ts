import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { chunkId } from '../chunk/index.js';
import { WorkDir } from '../workdir/workdir.js';
import { Restorer } from './restorer.js';
import { cachedLatest } from './catalog.js';

export interface RepairReport {
  /** Chunks the store lacked, rebuilt from intact files in the working tree. */
  repaired: number;
  /** Files of the latest snapshot that still lack chunks: the next sync fetches them. */
  refetch: { path: string; bytes: number }[];
  /** Chunks dropped from the store that no file of the latest snapshot uses (nothing to fetch for them). */
  unused: number;
}

/**
 * After the store was mended (ChunkStore.mend dropped what no intact record holds): every chunk
 * of the latest snapshot the store lacks is rebuilt from a file in the tree that still matches
 * its SHA-256 (the chunk's bytes lie at a known offset of it); then the files that still lack
 * chunks are listed: those that used a dropped chunk, and those paquete had placed (the tree state)
 * that are gone from the tree. Files never wanted are not. The store's index is the mark: the
 * next sync fetches exactly what these files lack.
 */
export async function repairFromTree(work: WorkDir, dropped: bigint[]): Promise<RepairReport> {
  const latest = cachedLatest(work);
  if (!latest) return { repaired: 0, refetch: [], unused: dropped.length };
  const { snapshot } = latest;
  const id = (i: number) => snapshot.chunks.id(i);
  const state = work.treeState();
  const placedBefore = new Set(Object.keys(state.files));
  const restorer = new Restorer(work, snapshot, state);
  const present = snapshot.chunks.idsOf(await work.store.heldIn(snapshot.chunks.idWords));
  const lost = new Set(dropped);
  const used = new Set<bigint>();
  let repaired = 0;
  for (const f of snapshot.files) {
    for (const i of f.chunks) if (lost.has(id(i))) used.add(id(i));
    if (f.chunks.every((i) => present.has(id(i))) || !restorer.isInPlace(f)) continue;
    const fd = openSync(join(work.root, f.path), 'r');
    try {
      let offset = 0;
      for (const i of f.chunks) {
        const c = snapshot.chunks.entry(i);
        if (!present.has(c.id)) {
          const bytes = Buffer.allocUnsafe(c.rawLength);
          if (readSync(fd, bytes, 0, c.rawLength, offset) === c.rawLength && chunkId(bytes) === c.id) {
            await work.store.add(c.id, bytes);
            present.add(c.id);
            repaired++;
          }
        }
        offset += c.rawLength;
      }
    } finally {
      closeSync(fd);
    }
  }
  await work.store.flush();
  const refetch: RepairReport['refetch'] = [];
  for (const f of snapshot.files) {
    const lacking = new Set(f.chunks.filter((i) => !present.has(id(i))));
    if (!lacking.size || !(placedBefore.has(f.path) || [...lacking].some((i) => lost.has(id(i))))) continue;
    refetch.push({ path: f.path, bytes: [...lacking].reduce((n, i) => n + snapshot.chunks.recordLength(i), 0) });
  }
  work.saveTreeState(state);
  return { repaired, refetch, unused: dropped.length - used.size };
}
