import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { EXIT, PaqueteError } from '../errors.js';
import { runSync, SyncResult } from '../sync/session.js';
import { formatSize, parseSize } from '../util/size.js';
import { baseDir, GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';
import { printNotPlaced } from './tree-report.js';
import { Progress } from './progress.js';

interface Args extends GlobalArgs {
  budget?: string;
  want?: string[];
  'dry-run'?: boolean;
  requirement?: string[];
  python?: string;
  platform?: string;
  'allow-expired'?: boolean;
  overwrite?: string[];
}

export const syncCommand = {
  command: 'sync',
  describe: 'Bring the latest snapshot in, fetching only missing chunks, within a budget',
  builder: (y: Argv) =>
    y
      .option('budget', { type: 'string', describe: 'most bytes to put on the wire (300MB, 300MiB, 1.5GB), headers included' })
      .option('want', { type: 'string', array: true, describe: 'globs of paths or source names to bring first, in priority order' })
      .option('dry-run', { type: 'boolean', describe: 'print the plan; spend only the bytes of the index' })
      .option('requirement', { alias: 'r', type: 'string', array: true, describe: 'a requirements file: each line is wanted as pypi:LINE' })
      .option('python', { type: 'string', describe: 'Python version that pypi: wants resolve for (default: this machine\'s python3)' })
      .option('platform', { type: 'string', describe: 'wheel platform tag that pypi: wants resolve for (manylinux_2_28_x86_64, win_amd64, …)' })
      .option('allow-expired', { type: 'boolean', describe: 'sync to the newest manifest even if it is past the expiry its publisher set (a frozen mirror, or a publisher who stopped signing)' })
      .option('overwrite', { type: 'string', array: true, describe: "paths or globs where the snapshot's file may replace yours (a file you changed or made); never a directory" })
      .example('$0 sync --overwrite site/config.ini', "take the snapshot's version of a file you changed")
      .example('$0 sync --want pypi:requests --budget 50MB', 'requests and its dependencies, for this machine\'s Python')
      .example('$0 sync --budget 300MB', 'spend at most 300 MB; finish whole files first; exit 3 if the budget stopped it')
      .example('$0 sync --want "docs/**" --want numpy --dry-run', 'show what docs and then numpy would cost'),
  handler: async (argv: Args) => {
    const budget = argv.budget !== undefined ? parseSize(argv.budget) : undefined;
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const progress = new Progress('sync', !argv.quiet && !argv.json);
    progress.budget(budget);
    progress.status('contacting the mirror…');
    try {
      const result = await withWorkDir(argv, 'sync', (work) =>
        runSync(work, {
          budget,
          wants: [...(argv.want ?? []), ...readRequirements((argv.requirement ?? []).map((f) => resolve(baseDir(argv), f)))],
          pypi: { python: argv.python, platform: argv.platform },
          dryRun: argv['dry-run'],
          allowExpired: argv['allow-expired'],
          overwrite: argv.overwrite,
          signal: abort.signal,
          events: {
            planned: (plan, spent) => {
              if (argv['dry-run']) return;
              progress.status(plan.cost > 0 ? 'fetching' : 'placing');
              progress.begin(spent + plan.cost, 'files', plan.files.filter((f) => f.outcome === 'complete').length, budget);
              progress.update(spent);
            },
            progress: (spent) => progress.update(spent),
            fileDone: (path) => progress.item(path),
            fileFailed: (p) => out.warn(`${p} did not match its checksum; its chunks will be fetched again`),
            retrying: (message, delayMs) => {
              if (!argv.quiet) out.warn(`link trouble (${message}); trying again in ${(delayMs / 1000).toFixed(1)} s`);
            },
            note: (m) => out.warn(m),
          },
        }),
      );
      progress.stop();
      report(result, budget);
      process.exitCode = result.completeFiles === result.wantedFiles || result.dryRun ? EXIT.ok : result.stoppedByBudget ? EXIT.budget : EXIT.error;
    } finally {
      progress.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};

const requests = (r: SyncResult) => r.plan.ranges.length + r.plan.frameRanges.length;
const framesNote = (r: SyncResult) => (r.plan.frameRanges.length ? ` (${r.plan.frameRanges.reduce((n, f) => n + f.frames.length, 0)} compressed frames)` : '');

function report(r: SyncResult, budget: number | undefined): void {
  const b = budget !== undefined ? ` of ${formatSize(budget)} budget` : '';
  if (r.dryRun) {
    const byOutcome = (o: string) => r.plan.files.filter((f) => f.outcome === o);
    out.result(`plan for snapshot ${r.snapshot.slice(0, 12)} (index cost ${formatSize(r.spent)}):`);
    for (const f of byOutcome('complete')) out.result(`  complete  ${f.file.path}  ${formatSize(f.missingBytes)}`);
    for (const f of byOutcome('partial')) out.result(`  advance   ${f.file.path}  ${formatSize(f.missingBytes)} missing`);
    out.result(
      `would fetch ${formatSize(r.plan.cost)} in ${requests(r)} requests${framesNote(r)}${b}; ` +
        `${byOutcome('complete').length} files complete, ${byOutcome('present').length} already here, ` +
        `${byOutcome('waiting').length + byOutcome('partial').length} left (${formatSize(r.plan.leftBytes)} still needed after)`,
    );
  } else {
    out.result(
      `synced snapshot ${r.snapshot.slice(0, 12)}: spent ${formatSize(r.spent)}${b}; ` +
        `${r.completeFiles}/${r.wantedFiles} files complete (${r.placed.length} new)` +
        (r.removed.length ? `, ${r.removed.length} removed` : '') +
        (r.leftBytes ? `; ${formatSize(r.leftBytes)} still needed` : ''),
    );
    if (r.stoppedByBudget) out.result('stopped by the budget; everything fetched is kept. Run paquete sync again with more budget to go on.');
    if (r.failed.length) out.warn(`${r.failed.length} files failed their checksum and will be fetched again: ${r.failed.slice(0, 3).join(', ')}`);
    printNotPlaced(r.tree, r.withheld);
  }
  out.emitJson({
    snapshot: r.snapshot,
    serial: r.serial,
    dryRun: r.dryRun,
    spent: r.spent,
    read: r.read,
    budget: budget ?? null,
    plannedCost: r.plan.cost,
    requests: requests(r),
    frameRequests: r.plan.frameRanges.length,
    completeFiles: r.completeFiles,
    wantedFiles: r.wantedFiles,
    placed: r.placed,
    failed: r.failed,
    removed: r.removed,
    kept: r.tree.kept,
    notPlaced: r.tree.failed,
    inconsistent: r.tree.inconsistent,
    withheld: r.withheld,
    leftBytes: r.leftBytes,
    stoppedByBudget: r.stoppedByBudget,
    plan: r.plan.files.map((f) => ({ path: f.file.path, size: f.file.size, outcome: f.outcome, missingBytes: f.missingBytes })),
  });
}

/** `-r FILE`: requirement lines as pypi: wants (comments, blank lines and pip options skipped). */
function readRequirements(files: string[]): string[] {
  return files.flatMap((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      throw new PaqueteError('USAGE', `cannot read the requirements file ${file}`);
    }
    return text
      .split(/\r?\n/)
      .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
      .filter((l) => l && !l.startsWith('-'))
      .map((l) => `pypi:${l}`);
  });
}
