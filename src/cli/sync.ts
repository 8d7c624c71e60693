import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { EXIT, PaqueteError } from '../errors.js';
import type { Plan, PlannedFile } from '../sync/planner.js';
import { describeToFetch, forecastOf } from '../sync/forecast.js';
import { runSync, SyncResult } from '../sync/session.js';
import { SOURCE_KINDS } from '../sources/spec.js';
import { globToRegExp } from '../util/glob.js';
import { formatSize } from '../util/size.js';
import { baseDir, GlobalArgs, sizeOption, withWorkDir } from './common.js';
import { interruptSignal } from './interrupt.js';
import { out } from './output.js';
import { printNotPlaced } from './tree-report.js';
import { Progress } from './progress.js';

interface Args extends GlobalArgs {
  budget?: number;
  'min-rate'?: number;
  want?: string[];
  'dry-run'?: boolean;
  list?: boolean;
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
      .option('budget', { type: 'string', coerce: sizeOption('--budget', 1), describe: 'most bytes to put on the wire (300MB, 300MiB, 1.5GB), headers included' })
      .option('min-rate', {
        type: 'string',
        coerce: sizeOption('--min-rate', 0),
        describe: 'slowest link worth paying for, per second, judged over 30 s (default 1kB; 0: any): a slower one ends the sync with exit 4, everything received kept',
      })
      .option('want', { type: 'string', array: true, describe: 'globs of paths or source names to bring first, in priority order' })
      .option('dry-run', { type: 'boolean', describe: 'print the plan, a summary per source; spend only the bytes of the index' })
      .option('list', { type: 'boolean', describe: 'with --dry-run: every file of the plan, not only the summary per source' })
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
    const budget = argv.budget;
    const minRate = argv['min-rate'];
    const wants = [...(argv.want ?? []), ...readRequirements((argv.requirement ?? []).map((f) => resolve(baseDir(argv), f)))];
    const progress = new Progress('sync', !argv.quiet && !argv.json);
    progress.budget(budget);
    progress.status('contacting the mirror…');
    try {
      const result = await withWorkDir(argv, 'sync', (work) =>
        runSync(work, {
          budget,
          minRate,
          wants,
          pypi: { python: argv.python, platform: argv.platform },
          dryRun: argv['dry-run'],
          allowExpired: argv['allow-expired'],
          overwrite: argv.overwrite,
          signal: interruptSignal(),
          events: {
            planned: (plan, spent) => {
              // Before any byte of content: a want that matches nothing is a typo to fix, not a
              // session to pay for.
              checkWants(wants, plan);
              if (argv['dry-run']) return;
              progress.status(plan.cost > 0 ? 'fetching' : 'placing');
              progress.begin(spent + plan.cost, 'files', plan.files.filter((f) => f.outcome === 'complete').length, budget);
              progress.update(spent);
            },
            progress: (spent) => progress.update(spent),
            fileDone: (path) => progress.item(path),
            fileFailed: (p, reason) => out.warn(`${p}: ${reason ?? 'it did not match its checksum'}; not placed, its chunks will be fetched again`),
            retrying: (message, delayMs) => {
              if (!argv.quiet) out.warn(`link trouble (${message}); trying again in ${(delayMs / 1000).toFixed(1)} s`);
            },
            note: (m) => out.warn(m),
          },
        }),
        // Opened only when there is something to do (src/sync/session.ts).
        { deferStore: true },
      );
      progress.stop();
      report(result, budget, !!argv.list);
    } finally {
      progress.stop();
    }
  },
};

/**
 * Every `--want` must match at least one file of the snapshot: a path glob or a source name
 * (`docs:NAME` as NAME), checked against the plan's files, which are exactly the files the
 * wants matched. `pypi:` requirements resolve through their metadata (src/sync/wants.ts, which
 * warns of each one it cannot satisfy); only when nothing at all is wanted are they an error here.
 */
function checkWants(wants: string[], plan: Plan): void {
  if (wants.length === 0) return;
  const kinds = SOURCE_KINDS as readonly string[];
  const hint = 'paquete status lists the sources; a glob is a path like "site/docs/**" (quote it)';
  if (plan.files.length === 0) {
    throw new PaqueteError('USAGE', `nothing in the snapshot matches ${wants.map((w) => `--want ${w}`).join(' ')}`, hint);
  }
  for (const w of wants) {
    const m = /^([a-z]+):(.+)$/s.exec(w);
    if (m && m[1] === 'pypi') continue;
    const glob = m && kinds.includes(m[1]) ? m[2] : w;
    const re = globToRegExp(glob);
    if (!plan.files.some((f) => re.test(f.path))) throw new PaqueteError('USAGE', `--want ${w} matches no file of the snapshot`, hint);
  }
}

const requests = (r: SyncResult) => r.plan.ranges.length + r.plan.frameRanges.length;
const framesNote = (r: SyncResult) => (r.plan.frameRanges.length ? ` (${r.plan.frameRanges.reduce((n, f) => n + f.frames.length, 0)} compressed frames)` : '');

/** The exit code of a finished session, as the contract has it (DESIGN.md, docs/GUIDE.md). */
function exitOf(r: SyncResult): number {
  // Refused names are files the user wants and will not get on this disk: not done.
  if (r.dryRun || (r.completeFiles === r.wantedFiles && r.refused.length === 0)) return EXIT.ok;
  return r.stoppedByBudget ? EXIT.budget : EXIT.error;
}

/** The plan's files per source (a path's first part), for the dry run's summary. */
function bySource(files: PlannedFile[]): Map<string, PlannedFile[]> {
  const groups = new Map<string, PlannedFile[]>();
  // Files of one source come together: the name is cut only when the path leaves the last one
  // (a slice per file was ~0.3 s of a 100k-file dry run with nothing new).
  let name = '';
  let group: PlannedFile[] | undefined;
  for (const f of files) {
    const path = f.path;
    if (!group || path.length <= name.length || path.charCodeAt(name.length) !== 47 || !path.startsWith(name)) {
      const cut = path.indexOf('/');
      name = cut < 0 ? path : path.slice(0, cut);
      group = groups.get(name);
      if (!group) groups.set(name, (group = []));
    }
    // Pushed, not copied: a copy per file was quadratic (0.6 s of a 10k-file dry run).
    group.push(f);
  }
  return new Map([...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A plan's files by outcome, in one pass. */
function byOutcome(files: PlannedFile[]): Record<PlannedFile['outcome'], PlannedFile[]> {
  const out: Record<string, PlannedFile[]> = { complete: [], partial: [], waiting: [], present: [] };
  for (const f of files) (out[f.outcome] ??= []).push(f);
  return out as Record<PlannedFile['outcome'], PlannedFile[]>;
}

function report(r: SyncResult, budget: number | undefined, list: boolean): void {
  const b = budget !== undefined ? ` of ${formatSize(budget)} budget` : '';
  if (r.dryRun) {
    out.result(`plan for snapshot ${r.snapshot.slice(0, 12)} (its index and update heads cost ${formatSize(r.spent)} now; the sync reuses them):`);
    const groups = bySource(r.plan.files);
    const width = Math.max(...[...groups.keys()].map((k) => k.length), 6);
    let present = 0;
    let left = 0;
    let leftSize = 0;
    for (const [name, files] of groups) {
      const { complete: done, partial, waiting, present: here } = byOutcome(files);
      present += here.length;
      left += waiting.length + partial.length;
      for (const f of waiting) leftSize += f.placedSize;
      for (const f of partial) leftSize += f.placedSize;
      const size = done.reduce((n, f) => n + f.placedSize, 0);
      out.result(
        `  ${name.padEnd(width)}  ${`${done.length} to complete`.padStart(15)}, ${partial.length} to advance, ${waiting.length} left, ${here.length} already here` +
          (size ? `  (completes ${formatSize(size)})` : ''),
      );
      if (!list) continue;
      for (const f of done) out.result(`    complete  ${f.path}  ${formatSize(f.placedSize)}`);
      for (const f of partial) out.result(`    advance   ${f.path}  ${formatSize(f.missingBytes)} of records`);
    }
    const card = forecastOf(r.plan, r.checkCost);
    out.result(
      `would fetch ${formatSize(card.wire)} on the wire${b} in ${card.requests} requests, the manifest check included${framesNote(r)}: ` +
        `completes ${card.files} files, ${formatSize(card.bytes)}; ${present} already here; ` +
        `${left} left${left ? ` (${formatSize(leftSize)})` : ''}`,
    );
    if (budget !== undefined && r.toFetch.wire > card.wire) out.result(`everything wanted, with no budget: ${describeToFetch(r.toFetch)}`);
    if (r.toFetch.estimate) out.line(`(an estimate: ${r.toFetch.estimate})`);
    if (!list && r.plan.files.length) out.line('(--list shows every file)');
    printNotPlaced(r.tree, r.withheld, false);
  } else {
    out.result(
      `synced snapshot ${r.snapshot.slice(0, 12)}: spent ${formatSize(r.spent)}${b}; ` +
        `${r.completeFiles}/${r.wantedFiles + r.refused.length} files complete (${r.placed.length} new)` +
        (r.removed.length ? `, ${r.removed.length} removed` : '') +
        (r.toFetch.wire ? `; still to fetch: ${describeToFetch(r.toFetch)}` : ''),
    );
    if (r.toFetch.estimate) out.line(`(an estimate: ${r.toFetch.estimate})`);
    if (r.stoppedByBudget && r.placed.length === 0) {
      // Nothing completed: say what the next file needs, so the user knows what budget would do.
      const cheapest = Math.min(...r.plan.files.filter((f) => f.outcome !== 'present').map((f) => f.missingBytes));
      out.result(`the budget was too small to complete any file (the cheapest needs ${formatSize(cheapest)} more); what was fetched is kept`);
    }
    if (r.stoppedByBudget) out.result('stopped by the budget; everything fetched is kept. Run paquete sync again with more budget to go on.');
    if (r.failed.length) out.warn(`${r.failed.length} files failed their checksum and will be fetched again: ${r.failed.slice(0, 3).join(', ')}`);
    printNotPlaced(r.tree, r.withheld);
  }
  out.emitJson(
    () => ({
      snapshot: r.snapshot,
      serial: r.serial,
      dryRun: r.dryRun,
      spent: r.spent,
      read: r.read,
      budget: budget ?? null,
      plannedCost: r.plan.cost,
      card: forecastOf(r.plan, r.checkCost),
      toFetch: r.toFetch,
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
      refused: r.refused,
      leftBytes: r.leftBytes,
      stoppedByBudget: r.stoppedByBudget,
      plan: r.plan.files.map((f) => ({ path: f.path, size: f.placedSize, outcome: f.outcome, missingBytes: f.missingBytes })),
    }),
    exitOf(r),
  );
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
