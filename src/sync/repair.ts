import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { chunkId } from '../chunk/index.js';
import { recordLength } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { Restorer } from './restorer.js';
import { cachedLatest } from './catalog.js';

export interface RepairReport {
  /** Damaged chunks rebuilt from intact files in the working tree. */
  repaired: number;
  /** Files of the latest snapshot that still lack chunks: the next sync fetches them. */
  refetch: { path: string; bytes: number }[];
  /** Damaged chunks no file of the latest snapshot uses (nothing to fetch for them). */
  unused: number;
}

/**
 * After `verify --repair` dropped damaged chunks from the index: rebuilds each from a file in the
 * tree that still matches its SHA-256 (the chunk's bytes lie at a known offset of it), and lists
 * the files whose chunks must be fetched again.
 */
export async function repairFromTree(work: WorkDir, damaged: bigint[]): Promise<RepairReport> {
  const latest = cachedLatest(work);
  if (!latest || damaged.length === 0) return { repaired: 0, refetch: [], unused: damaged.length };
  const { snapshot } = latest;
  const wanted = new Set(damaged);
  const restorer = new Restorer(work, snapshot, work.treeState());
  const used = new Set<bigint>();
  for (const f of snapshot.files) {
    if (!f.chunks.some((i) => wanted.has(snapshot.chunks[i].id))) continue;
    f.chunks.forEach((i) => wanted.has(snapshot.chunks[i].id) && used.add(snapshot.chunks[i].id));
    if (!restorer.isInPlace(f)) continue;
    const fd = openSync(join(work.root, f.path), 'r');
    try {
      let offset = 0;
      for (const i of f.chunks) {
        const c = snapshot.chunks[i];
        if (wanted.has(c.id) && !(await work.store.has(c.id))) {
          const bytes = Buffer.allocUnsafe(c.rawLength);
          if (readSync(fd, bytes, 0, c.rawLength, offset) === c.rawLength && chunkId(bytes) === c.id) await work.store.add(c.id, bytes);
        }
        offset += c.rawLength;
      }
    } finally {
      closeSync(fd);
    }
  }
  await work.store.flush();
  const present = await work.store.hasMany([...wanted]);
  const refetch: RepairReport['refetch'] = [];
  for (const f of snapshot.files) {
    const missing = new Set(f.chunks.filter((i) => wanted.has(snapshot.chunks[i].id) && !present.has(snapshot.chunks[i].id)));
    if (missing.size) refetch.push({ path: f.path, bytes: [...missing].reduce((n, i) => n + recordLength(snapshot.chunks[i]), 0) });
  }
  return { repaired: present.size, refetch, unused: damaged.length - used.size };
}
