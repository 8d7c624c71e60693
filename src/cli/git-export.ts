import type { Argv } from 'yargs';
import { resolve } from 'node:path';
import { gitExport } from '../sources/git.js';
import { WorkDir } from '../workdir/workdir.js';
import { baseDir, GlobalArgs } from './common.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  name: string;
  dir: string;
}

export const gitExportCommand = {
  command: 'git-export <name> <dir>',
  describe: 'Write a mirrored git repository to a folder as a bare repository (git clone works from it)',
  builder: (y: Argv) =>
    y
      .positional('name', { type: 'string', describe: 'the git source, as published (git:NAME=PATH)' })
      .positional('dir', { type: 'string', describe: 'a new or empty folder, or one written by an earlier git-export (it is updated)' })
      .example('$0 git-export cpython ~/src/cpython.git && git clone ~/src/cpython.git', 'a clone with no network'),
  handler: async (argv: Args) => {
    const base = baseDir(argv);
    const root = WorkDir.find(base);
    const r = await gitExport(root, argv.name, resolve(base, argv.dir), { onWarning: (m) => out.warn(m) });
    out.result(`wrote ${argv.name} to ${r.dir}: ${r.branches} branches, ${r.tags} tags${r.head ? `, HEAD ${r.head.replace(/^refs\/heads\//, '')}` : ''}`);
    out.line(`clone it with: git clone ${r.dir}`);
    out.emitJson({ name: argv.name, ...r });
  },
};
