import type { Argv } from 'yargs';
import { resolve } from 'node:path';
import { EXIT } from '../errors.js';
import { importBundles, ImportResult } from '../peer/import.js';
import { formatSize } from '../util/size.js';
import { describeToFetch, ToFetch } from '../sync/forecast.js';
import { toFetchNow } from '../sync/session.js';
import { baseDir, GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';
import { printNotPlaced } from './tree-report.js';
import { Progress } from './progress.js';

interface Args extends GlobalArgs {
  bundles: string[];
  place?: boolean;
}

export const importCommand = {
  command: 'import <bundles..>',
  describe: "Check and take in a friend's bundle volumes (or directories of them); place the files that became complete",
  builder: (y: Argv) =>
    y
      .positional('bundles', { type: 'string', array: true, describe: 'volume files (*.pqb) or directories holding them' })
      .option('place', { type: 'boolean', default: true, describe: 'place files that became complete (--no-place: only fill the store)' })
      .example('$0 import /media/stick/', 'every volume on the stick; a missing or damaged volume is reported, the rest imported'),
  handler: async (argv: Args) => {
    const base = baseDir(argv);
    const progress = new Progress('import', !argv.quiet && !argv.json);
    try {
      const r = await withWorkDir(argv, 'import', async (work) => {
        let volumes = -1;
        const done = await importBundles(
          work,
          argv.bundles.map((b) => resolve(base, b)),
          {
            place: argv.place,
            onProgress: (done, total, volumesDone) => {
              if (volumes < 0) progress.begin(total, 'volumes');
              for (volumes = Math.max(volumes, 0); volumes < volumesDone; volumes++) progress.item();
              progress.update(done);
            },
          },
        );
        // What a sync would still spend, as status says it (not the records' compressed bytes).
        return { ...done, toFetch: done.placement?.missingBytes ? await toFetchNow(work) : null };
      });
      progress.stop();
      report(r);
    } finally {
      progress.stop();
    }
  },
};

function report(r: ImportResult & { toFetch: ToFetch | null }): void {
  for (const b of r.bundles) {
    out.result(
      `bundle ${b.id.slice(0, 8)} (serial ${b.serial}): volumes ${b.found.join(', ') || 'none'} of ${b.volumes}` +
        (b.earlier.length ? ` (${b.earlier.join(', ')} imported earlier)` : '') +
        (b.missing.length ? `, missing ${b.missing.map((m) => m.volume).join(', ')}` : '') +
        `; manifest ${b.manifest}`,
    );
  }
  for (const n of r.notes) out.line(`note: ${n}`);
  for (const p of r.problems) out.answer(`problem: ${p.where}: ${p.message}`);
  out.result(
    `imported ${r.imported.chunks} chunks (${formatSize(r.imported.bytes)}); ${r.alreadyHad} already here` +
      (r.rejected ? `; ${r.rejected} rejected` : '') +
      (r.lost ? `; ${r.lost} cut off` : '') +
      (r.notNeeded ? `; ${r.notNeeded} not needed by any snapshot you trust` : ''),
  );
  const p = r.placement;
  if (p) {
    out.result(
      `snapshot ${p.snapshot.slice(0, 12)} (serial ${p.serial}): ${p.completeFiles}/${p.totalFiles} files in place (${p.placed.length} new)` +
        (p.removed.length ? `, ${p.removed.length} old removed` : '') +
        (r.toFetch?.wire ? `; still to fetch: ${describeToFetch(r.toFetch)} (paquete sync, or another bundle)` : p.completeFiles === p.totalFiles ? '; complete' : ''),
    );
    if (p.failed.length) out.warn(`${p.failed.length} files did not match their checksum; their chunks were dropped: ${p.failed.slice(0, 3).join(', ')}`);
    printNotPlaced(p.tree);
  } else out.result('no snapshot yet: nothing to place');
  out.emitJson(r, r.problems.length || r.placement?.tree.failed.length ? EXIT.error : EXIT.ok);
}
