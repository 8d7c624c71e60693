import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { exportBundle, ExportResult } from '../peer/export.js';
import { decodeHave, HaveSummary } from '../peer/have.js';
import { formatSize } from '../util/size.js';
import { baseDir, GlobalArgs, sizeOption, withWorkDir } from './common.js';
import { out } from './output.js';
import { Progress } from './progress.js';

interface Args extends GlobalArgs {
  for?: string;
  to: string;
  want?: string[];
  'max-size'?: number;
}

export const exportCommand = {
  command: 'export',
  describe: "Write the chunks a friend lacks (and the signed snapshot) to a stick, in volumes below 4 GiB",
  builder: (y: Argv) =>
    y
      .option('for', { type: 'string', describe: "the friend's have-summary (paquete have --out FILE); without it, everything the snapshot needs" })
      .option('to', { type: 'string', demandOption: true, describe: 'a directory for the volumes, or FILE.pqb' })
      .option('want', { type: 'string', array: true, describe: 'globs of paths or source names to include, in priority order (default: all)' })
      .option('max-size', { type: 'string', coerce: sizeOption('--max-size', 1), describe: 'largest volume (default 4GiB minus one byte, the FAT32 limit)' })
      .example('$0 export --for have.pq --to /media/stick/', "what the friend's store lacks for the latest snapshot")
      .example('$0 export --to /media/stick/docs.pqb --want "py312/**" --max-size 700MB', 'the py312 docs, whole, in volumes of at most 700 MB'),
  handler: async (argv: Args) => {
    const base = baseDir(argv);
    let have: HaveSummary | undefined;
    if (argv.for !== undefined) {
      const path = resolve(base, argv.for);
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch {
        throw new PaqueteError('USAGE', `cannot read the have-summary ${path}`);
      }
      have = decodeHave(bytes);
    }
    const progress = new Progress('export', !argv.quiet && !argv.json);
    try {
      const r = await withWorkDir(argv, 'export', (work) =>
        exportBundle(work, {
          have,
          to: resolve(base, argv.to),
          wants: argv.want ?? [],
          maxSize: argv['max-size'],
          onProgress: (() => {
            let volumes = -1;
            return (done: number, total: number, volumesDone: number) => {
              if (volumes < 0) progress.begin(total, 'volumes');
              for (volumes = Math.max(volumes, 0); volumes < volumesDone; volumes++) progress.item();
              progress.update(done);
            };
          })(),
        }),
        // Reads only: beside a sync, from a copy of the store's index.
        { shared: true },
      );
      progress.stop();
      report(r);
    } finally {
      progress.stop();
    }
  },
};

function report(r: ExportResult): void {
  const total = r.volumes.reduce((a, v) => a + v.bytes, 0);
  out.result(
    `bundle ${r.bundleId.slice(0, 8)} for snapshot ${r.snapshot.slice(0, 12)} (serial ${r.serial}): ` +
      `${r.chunks} chunks, ${formatSize(total)} in ${r.volumes.length} volume${r.volumes.length === 1 ? '' : 's'}`,
  );
  for (const v of r.volumes) out.result(`  ${v.path}  ${formatSize(v.bytes)}  ${v.chunks} chunks`);
  if (r.friendHas) out.line(`left out ${r.friendHas} chunks your friend already has`);
  out.result(`your friend can place ${r.completeFiles} of ${r.wantedFiles} wanted files after importing it`);
  if (r.unavailable.chunks) {
    out.result(`${r.unavailable.chunks} chunks (${formatSize(r.unavailable.bytes)}) they need are not in this store either; sync to get them`);
  }
  if (r.friendNewer) out.warn('your friend trusts a newer manifest than this store: they will keep theirs; only chunks they still need will be used');
  if (r.damaged.length) out.warn(`${r.damaged.length} chunks are damaged in this store and were left unusable in the bundle; run paquete verify --repair`);
  out.emitJson(r);
}
