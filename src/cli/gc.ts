import type { Argv } from 'yargs';
import { PaqueteError } from '../errors.js';
import { cachedLatest, cachedSnapshotBytes } from '../sync/catalog.js';
import { cachedPartial } from '../sync/shard-cache.js';
import { decodeSnapshot } from '../snapshot/snapshot.js';
import { readersSnapshots } from '../workdir/generation.js';
import { formatSize } from '../util/size.js';
import { GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';

export const gcCommand = {
  command: 'gc',
  describe: 'Free the space of chunks the latest snapshot no longer needs',
  builder: (y: Argv) => y.example('$0 gc -C mirror', 'after an update: drop what only older snapshots used'),
  handler: async (argv: GlobalArgs) => {
    await withWorkDir(argv, 'gc', async (work) => {
      const latest = cachedLatest(work);
      if (!latest) throw new PaqueteError('NO_SNAPSHOT', 'nothing synced yet, so nothing to keep or drop', 'run paquete sync first');
      // Everything the latest snapshot lists is kept, wanted or not: a later --want may need it;
      // and every chunk of the snapshots a reader (serve) still answers from.
      const keep = new Set(latest.snapshot.chunks.ids());
      for (const name of readersSnapshots(work.meta).snapshots) {
        const bytes = cachedSnapshotBytes(work, name);
        if (bytes) for (const c of decodeSnapshot(bytes).chunks) keep.add(c.id);
        // A reader on a partial index (sync --want): the shards of it held here.
        const entry = latest.manifest.body.snapshots.find((e) => e.name === name);
        if (!bytes && entry) for (const c of cachedPartial(work, entry)?.snapshot.chunks ?? []) keep.add(c.id);
      }
      const r = await work.store.gc(keep);
      // Packs were rewritten: readers take a fresh copy of the index with the next generation.
      await work.switchGeneration();
      out.result(`gc: removed ${r.removedChunks} chunks, freed ${formatSize(r.freedBytes)} (${r.packsRewritten} packs rewritten)`);
      out.emitJson(r);
    });
  },
};
