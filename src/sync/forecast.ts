import { placedSize } from '../snapshot/snapshot.js';
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
    bytes: completing.reduce((n, f) => n + placedSize(f.file), 0),
  };
}
