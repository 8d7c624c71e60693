import { PaqueteError } from '../errors.js';
import { Restorer, TreeReport } from '../sync/restorer.js';
import { cachedIndex, cachedLatest, trustedManifest } from '../sync/catalog.js';
import { coverageOf } from '../sync/shard-cache.js';
import { WorkDir } from '../workdir/workdir.js';
import type { NameProblem } from '../snapshot/paths.js';
import { refusalMessage, refusedNames, withoutRefused } from '../sync/tree-names.js';
import { HaveSummary } from './have.js';

/**
 * What a working directory holds and trusts, as the peer commands (have, export, import, seed)
 * need it, and placing files straight from the store with no network.
 */

/** The trusted latest snapshot, or a clear error naming what to do first. */
export function requireLatest(work: WorkDir, why: string): NonNullable<ReturnType<typeof cachedLatest>> {
  const latest = cachedLatest(work);
  if (!latest) {
    throw new PaqueteError(
      'NO_SNAPSHOT',
      `${work.root} has no snapshot yet: ${why}`,
      'run paquete sync (even --dry-run fetches the index), or import a bundle from a friend',
    );
  }
  return latest;
}

/** Names of the snapshots the trusted manifest lists whose index is cached and intact. */
export function cachedSnapshotNames(work: WorkDir): string[] {
  const m = trustedManifest(work);
  if (!m) return [];
  return m.body.snapshots.filter((e) => cachedIndex(work, e) !== undefined).map((e) => e.name);
}

/**
 * Chunk ids of the trusted latest snapshot: the only chunks worth taking from a peer or a local
 * file. Sync never fetches anything else, and anything else is dead weight a stranger could fill
 * a store with.
 */
export function latestChunkIds(work: WorkDir): Set<bigint> {
  const latest = cachedLatest(work);
  return new Set(latest ? latest.snapshot.chunks.ids() : []);
}

/** The have-summary of this working directory: every chunk id in its store, and what it trusts. */
export async function summarizeStore(work: WorkDir, now = new Date()): Promise<HaveSummary> {
  const list: bigint[] = [];
  for await (const id of work.store.ids()) list.push(id);
  const m = trustedManifest(work);
  return {
    publisher: Buffer.from(work.config.publisher, 'base64'),
    serial: m?.body.serial,
    snapshots: cachedSnapshotNames(work),
    created: Math.floor(now.getTime() / 1000),
    ids: BigUint64Array.from(list),
  };
}

export interface PlaceResult {
  snapshot: string;
  serial: number;
  /** Files written now. */
  placed: string[];
  /** Files whose bytes failed their SHA-256; their chunks were dropped from the store. */
  failed: string[];
  /** Files of an older snapshot that this one no longer has, removed (only if untouched). */
  removed: string[];
  /** What the placing did and left alone: the user's files kept, files that could not be placed. */
  tree: TreeReport;
  /** Files of the snapshot in place now, and in all. */
  completeFiles: number;
  totalFiles: number;
  /** Paths still lacking chunks. */
  incomplete: string[];
  /** Record bytes the snapshot still lacks (what a sync would fetch). */
  missingBytes: number;
  /** Files this disk cannot hold by their names: not placed (src/sync/tree-names.ts). */
  refused: NameProblem[];
}

/**
 * Places every file of the trusted latest snapshot whose chunks are all in the store, as sync
 * does (through the Restorer: the user's files are kept; temp file, SHA-256 check against the
 * signed snapshot, rename), with no network. This is how files from a friend's bundle or from
 * `seed` reach the tree: a user who imported a stick expects the files to be there.
 */
export async function placeFromStore(work: WorkDir): Promise<PlaceResult | undefined> {
  const latest = cachedLatest(work);
  if (!latest) return undefined;
  const { snapshot, entry, manifest } = latest;
  const state = work.treeState();
  const restorer = new Restorer(work, snapshot, state, entry.name, { covers: coverageOf(latest.partial) });
  let finished = false;
  const present = snapshot.chunks.idsOf(await work.store.heldIn(snapshot.chunks.idWords));
  const { complete, blocked, yours } = restorer.survey();
  restorer.report.kept.push(...yours);
  const refused = refusedNames(work, snapshot);
  for (const p of refused.values()) restorer.refuse(p.path, p.code, refusalMessage(p));
  const result: PlaceResult = {
    snapshot: entry.name,
    serial: manifest.body.serial,
    placed: restorer.report.placed,
    failed: restorer.report.mismatched,
    removed: restorer.report.removed,
    tree: restorer.report,
    completeFiles: complete.size,
    totalFiles: snapshot.files.length,
    incomplete: [],
    missingBytes: 0,
    refused: [...refused.values()],
  };
  const counted = new Set<number>();
  try {
    for (const f of withoutRefused(snapshot, refused).files) {
      if (complete.has(f.path) || blocked.has(f.path)) continue;
      const lacking = f.chunks.filter((i) => !present.has(snapshot.chunks.id(i)));
      if (lacking.length === 0) {
        const placed = await restorer.place(f);
        if (placed === 'placed') {
          result.completeFiles++;
          continue;
        }
        if (placed !== 'mismatched') continue;
        // place() dropped the file's chunks: they are missing again.
        for (const i of f.chunks) present.delete(snapshot.chunks.id(i));
        lacking.push(...f.chunks);
      }
      result.incomplete.push(f.path);
      for (const i of lacking) {
        if (counted.has(i)) continue;
        counted.add(i);
        result.missingBytes += snapshot.chunks.recordLength(i);
      }
    }
    restorer.removeStale();
    restorer.finish();
    finished = true;
  } finally {
    work.saveTreeState(state);
  }
  // What was placed is what readers (serve) see, from now on.
  if (finished) await work.switchGeneration();
  return result;
}
