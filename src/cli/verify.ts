import type { Argv } from 'yargs';
import { EXIT } from '../errors.js';
import type { VerifyProblem } from '../store/store.js';
import { repairFromTree } from '../sync/repair.js';
import { cachedLatest } from '../sync/catalog.js';
import { Restorer } from '../sync/restorer.js';
import type { WorkDir } from '../workdir/workdir.js';
import { refuseWhileRead } from '../workdir/generation.js';
import { formatSize } from '../util/size.js';
import { GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  repair?: boolean;
  tree?: boolean;
}

/** The working tree's files read whole against the signed snapshot (see Restorer.audit). */
function auditTree(work: WorkDir, repair: boolean): { checked: number; damaged: string[]; yours: number } | undefined {
  const latest = cachedLatest(work);
  if (!latest) return undefined;
  const state = work.treeState();
  const restorer = new Restorer(work, latest.snapshot, state);
  const a = restorer.audit();
  for (const p of a.damaged.slice(0, SHOWN)) {
    out.answer(`damaged in the tree: ${p} (its bytes no longer match the signed snapshot, though nobody changed it through paquete)`);
  }
  if (a.damaged.length > SHOWN) out.answer(`… and ${a.damaged.length - SHOWN} more damaged files (see --json)`);
  if (repair && a.damaged.length) {
    for (const p of a.damaged) restorer.markDamaged(p);
    work.saveTreeState(state);
    out.result(`${a.damaged.length} damaged files will be placed again by the next paquete sync`);
  }
  const yours = a.yours.length ? `; ${a.yours.length} files of yours kept as they are` : '';
  if (!a.damaged.length) out.result(`tree ok: ${a.checked} files read and checked against the signed snapshot${yours}`);
  return { checked: a.checked, damaged: a.damaged, yours: a.yours.length };
}

/** Problems printed one per line before the rest are counted (a lost pack names thousands). */
const SHOWN = 20;

export const verifyCommand = {
  command: 'verify',
  describe: 'Check every pack and index entry of the store; say exactly what is damaged',
  builder: (y: Argv) =>
    y
      .option('tree', { type: 'boolean', default: true, describe: 'also read every file in the folder and check it against the signed snapshot (--no-tree: the store only)' })
      .option('repair', { type: 'boolean', describe: 'mend the store: drop what is damaged or missing, rebuild the index from the packs, cut torn tails; the next sync fetches what was lost' })
      .example('$0 verify --repair', 'mend the store, then run paquete sync'),
  handler: async (argv: Args) => {
    if (argv.repair) {
      await withWorkDir(argv, 'verify', async (work) => {
        refuseWhileRead(work.meta, 'paquete verify --repair');
        const m = await work.store.mend();
        for (const line of m.packs) out.result(`mended: ${line}`);
        const repair = await repairFromTree(work, m.dropped);
        out.result(`${m.dropped.length} damaged chunks removed from the index; ${repair.repaired} rebuilt from intact files in the tree`);
        if (m.recovered) out.result(`${m.recovered} intact chunks the index did not name were indexed again from the packs`);
        for (const f of repair.refetch.slice(0, SHOWN)) out.result(`  to fetch again: ${f.path} (${formatSize(f.bytes)})`);
        if (repair.refetch.length > SHOWN) out.result(`  … and ${repair.refetch.length - SHOWN} more files (see --json)`);
        const tree = argv.tree ? auditTree(work, true) : undefined;
        out.result(repair.refetch.length || tree?.damaged.length ? 'run paquete sync to fetch them' : 'nothing needs fetching');
        await work.switchGeneration();
        out.emitJson({ removed: m.dropped.length, recovered: m.recovered, packs: m.packs, repair, tree: tree ?? null });
      }, { store: { rebuildUnreadableIndex: true } });
      return;
    }
    await withWorkDir(argv, 'verify', async (work) => {
      const r = await work.store.verify(false);
      for (const p of r.problems.slice(0, SHOWN)) out.answer(`damaged: ${describe(p)}`);
      if (r.problems.length > SHOWN) out.answer(`… and ${r.problems.length - SHOWN} more (see --json)`);
      if (r.problems.length === 0) out.result(`store ok: ${r.checked} chunks checked${work.readOnly ? ' (read-only directory)' : ''}`);
      else out.result(`${r.problems.length} problems in ${r.checked} chunks; run paquete verify --repair, then paquete sync`);
      const tree = argv.tree ? auditTree(work, false) : undefined;
      if (tree?.damaged.length) out.result(`${tree.damaged.length} damaged files in the tree; run paquete verify --repair, then paquete sync`);
      const bad = r.problems.length > 0 || !!tree?.damaged.length;
      out.emitJson({ checked: r.checked, problems: r.problems, removed: 0, tree: tree ?? null }, bad ? EXIT.error : EXIT.ok);
    }, { readOnlyFallback: true, shared: true });
  },
};

const describe = (p: VerifyProblem) =>
  `${p.id ? `chunk ${p.id} ` : ''}${p.pack !== undefined ? `(pack ${p.pack}${p.offset !== undefined ? ` at ${p.offset}` : ''}) ` : ''}${p.problem}`;
