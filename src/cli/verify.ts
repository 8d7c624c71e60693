import type { Argv } from 'yargs';
import { EXIT } from '../errors.js';
import { repairFromTree, RepairReport } from '../sync/repair.js';
import { formatSize } from '../util/size.js';
import { GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  repair?: boolean;
}

export const verifyCommand = {
  command: 'verify',
  describe: 'Check every pack and index entry of the store; say exactly what is damaged',
  builder: (y: Argv) =>
    y
      .option('repair', { type: 'boolean', describe: 'drop damaged chunks from the index so the next sync fetches them again' })
      .example('$0 verify --repair', 'check the store and forget what is damaged'),
  handler: async (argv: Args) => {
    await withWorkDir(argv, 'verify', async (work) => {
      const r = await work.store.verify(!!argv.repair);
      for (const p of r.problems) out.result(`damaged: ${p.id ? `chunk ${p.id} ` : ''}${p.pack !== undefined ? `(pack ${p.pack}${p.offset !== undefined ? ` at ${p.offset}` : ''}) ` : ''}${p.problem}`);
      let repair: RepairReport | undefined;
      if (r.problems.length === 0) out.result(`store ok: ${r.checked} chunks checked`);
      else if (argv.repair) {
        repair = await repairFromTree(work, r.damaged);
        out.result(`${r.removed} damaged chunks removed from the index; ${repair.repaired} rebuilt from intact files in the tree`);
        for (const f of repair.refetch) out.result(`  to fetch again: ${f.path} (${formatSize(f.bytes)})`);
        out.result(repair.refetch.length ? 'run paquete sync to fetch them' : 'nothing needs fetching');
      } else out.result(`${r.problems.length} problems in ${r.checked} chunks; run paquete verify --repair, then paquete sync`);
      out.emitJson({ checked: r.checked, problems: r.problems, removed: r.removed, repair });
      process.exitCode = r.problems.length && !argv.repair ? EXIT.error : EXIT.ok;
    });
  },
};
