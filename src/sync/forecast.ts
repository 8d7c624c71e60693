import { formatSize } from '../util/size.js';
import type { WorkDir } from '../workdir/workdir.js';
import type { Plan } from './planner.js';

/**
 * What a sync would spend on the wire and what it would complete: the one figure every command
 * shows for what is left (status, the sync summary, the dry run, the catalog, --json). Always the
 * planner's own price of the route the sync takes (records, a delta's frames, a stream with its
 * kept prefixes at what remains), never a sum of record or file sizes: those are what files
 * weigh, not what fetching them costs.
 */
export interface Forecast {
  /** Wire bytes, headers included: what the budget would count. */
  wire: number;
  /** Requests it makes (ranges of packs and of frames files, and a manifest check when counted). */
  requests: number;
  /** Files it would complete, and their size in the tree. */
  files: number;
  bytes: number;
}

/** A plan's forecast; `check`: wire bytes the sync pays before it plans (its manifest check), a request of its own. */
export function forecastOf(plan: Plan, check = 0): Forecast {
  const completing = plan.files.filter((f) => f.outcome === 'complete');
  return {
    wire: check + plan.cost,
    requests: plan.ranges.length + plan.frameRanges.length + (check > 0 ? 1 : 0),
    files: completing.length,
    bytes: completing.reduce((n, f) => n + f.placedSize, 0),
  };
}

/** The forecast of what is left, and why it is an estimate when it is one. */
export interface ToFetch extends Forecast {
  /** Null when exact (to within request headers); else why not: a head the route needs is not here yet. */
  estimate: string | null;
}

/**
 * What a sync with no budget would spend and complete, from its plan (undefined: nothing left).
 * Nothing to fetch is 0 on the wire, though a sync would still check the manifest.
 */
export function toFetchOf(plan: Plan | undefined, check: number, estimate: string | null): ToFetch {
  if (!plan || plan.cost === 0) return { wire: 0, requests: 0, files: 0, bytes: 0, estimate };
  return { ...forecastOf(plan, check), estimate };
}

/** The words every command uses for it: "914 kB on the wire, completes 2 files (3.80 MB)". */
export function describeToFetch(t: ToFetch): string {
  if (t.wire === 0) return 'nothing';
  return `${t.estimate ? 'about ' : ''}${formatSize(t.wire)} on the wire, completes ${t.files} ${t.files === 1 ? 'file' : 'files'} (${formatSize(t.bytes)})`;
}

const KEPT = 'to-fetch.json';

/**
 * Keeps the last figure a sync, dry run or status made for `snapshot` (.paquete/to-fetch.json),
 * for what cannot plan itself: serve reads one generation's state beside a running sync, and
 * shows this figure on its catalog page while it is for the snapshot it serves. A cache: skipped
 * where the directory cannot be written.
 */
export function keepToFetch(work: WorkDir, snapshot: string, t: ToFetch): void {
  work.writeCache(KEPT, JSON.stringify({ snapshot, toFetch: t }) + '\n');
}

/** The figure kept for `snapshot`, if the last one made was for it. */
export function keptToFetch(work: WorkDir, snapshot: string): ToFetch | undefined {
  try {
    const kept = JSON.parse(work.readOptional(KEPT)?.toString() ?? 'null') as { snapshot: string; toFetch: ToFetch } | null;
    return kept && kept.snapshot === snapshot && typeof kept.toFetch?.wire === 'number' ? kept.toFetch : undefined;
  } catch {
    return undefined;
  }
}
