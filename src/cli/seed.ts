import type { Argv } from 'yargs';
import { resolve } from 'node:path';
import { seedPaths } from '../peer/seed.js';
import { formatSize } from '../util/size.js';
import { describeToFetch } from '../sync/forecast.js';
import { toFetchNow } from '../sync/session.js';
import { baseDir, GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';
import { printNotPlaced } from './tree-report.js';

interface Args extends GlobalArgs {
  paths: string[];
  place?: boolean;
}

export const seedCommand = {
  command: 'seed <paths..>',
  describe: 'Feed local files (a pip cache, an old checkout, a folder from a stick) into the store, so sync need not fetch their chunks',
  builder: (y: Argv) =>
    y
      .positional('paths', { type: 'string', array: true, describe: 'files or directories to read' })
      .option('place', { type: 'boolean', default: true, describe: 'place files that became complete (--no-place: only fill the store)' })
      .example('$0 seed ~/.cache/pip ~/old-checkout', 'chunks of the latest snapshot found there no longer cost anything'),
  handler: async (argv: Args) => {
    const base = baseDir(argv);
    const r = await withWorkDir(argv, 'seed', async (work) => {
      const done = await seedPaths(work, argv.paths.map((p) => resolve(base, p)), { place: argv.place });
      // What a sync would still spend, as status says it (not the records' compressed bytes).
      return { ...done, toFetch: done.missingAfter ? await toFetchNow(work) : null };
    });
    out.result(
      `read ${r.files} files (${formatSize(r.bytesRead)}): ${r.matched} chunks of snapshot ${r.snapshot.slice(0, 12)} found, ${r.newChunks} new to the store; ` +
        `${formatSize(r.savedBytes)} of records no longer need fetching` +
        (r.toFetch?.wire ? `; still to fetch: ${describeToFetch(r.toFetch)}` : ''),
    );
    if (r.unreadable.length) out.warn(`${r.unreadable.length} paths could not be read: ${r.unreadable.slice(0, 3).join(', ')}`);
    if (r.placement?.placed.length) out.result(`placed ${r.placement.placed.length} files that became complete`);
    if (r.placement) printNotPlaced(r.placement.tree);
    out.emitJson(r);
  },
};
