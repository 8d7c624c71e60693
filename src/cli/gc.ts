import type { Argv } from 'yargs';
import { PaqueteError } from '../errors.js';
import { cachedLatest } from '../sync/catalog.js';
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
      // Everything the latest snapshot lists is kept, wanted or not: a later --want may need it.
      const keep = new Set(latest.snapshot.chunks.map((c) => c.id));
      const r = await work.store.gc(keep);
      out.result(`gc: removed ${r.removedChunks} chunks, freed ${formatSize(r.freedBytes)} (${r.packsRewritten} packs rewritten)`);
      out.emitJson(r);
    });
  },
};
