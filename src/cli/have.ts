import type { Argv } from 'yargs';
import { resolve } from 'node:path';
import { encodeHave } from '../peer/have.js';
import { summarizeStore } from '../peer/local.js';
import { writeFileAtomic } from '../util/fsx.js';
import { formatSize } from '../util/size.js';
import { baseDir, GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  out: string;
}

export const haveCommand = {
  command: 'have',
  describe: 'Write a compact summary of what this store holds, for a friend to export against',
  builder: (y: Argv) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'file to write (give it to the friend who has the chunks)' })
      .example('$0 have --out /media/stick/have.pq', 'then the friend runs: paquete export --for have.pq --to /media/stick/'),
  handler: async (argv: Args) => {
    const path = resolve(baseDir(argv), argv.out);
    await withWorkDir(argv, 'have', async (work) => {
      const summary = await summarizeStore(work);
      const bytes = encodeHave(summary);
      writeFileAtomic(path, bytes);
      const n = summary.ids.length;
      out.result(
        `wrote ${path}: ${n} chunks in ${formatSize(bytes.length)}` +
          (n ? ` (${(bytes.length / n).toFixed(1)} bytes a chunk)` : '') +
          (summary.serial !== undefined ? `, manifest serial ${summary.serial}` : ', no snapshot yet'),
      );
      out.emitJson({ path, chunks: n, bytes: bytes.length, serial: summary.serial ?? null, snapshots: summary.snapshots });
    }, { shared: true });
  },
};
