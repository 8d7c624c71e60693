import { isNameRefusal } from './tree-names.js';
import { factsOf, FileFacts, fileTableOf, Snapshot } from '../snapshot/snapshot.js';
import type { ChunkStore } from '../store/store.js';
import type { Generation } from '../workdir/generation.js';
import { WorkDir } from '../workdir/workdir.js';
import { FailedFile, KeptFile, Look, Restorer, stillComplete } from './restorer.js';
import type { ManifestSnapshot } from '../snapshot/manifest.js';

/**
 * What of a snapshot is complete in the working tree and what is still missing, per source:
 * the one reckoning `status` prints and `serve` shows on its catalog page. No network.
 *
 * A file is complete when it is in the tree as the snapshot has it (size, and SHA-256 checked
 * once then remembered by mtime in the tree state). Missing bytes are the records the store still
 * lacks, each chunk counted once, at the first file (in snapshot order) that needs it. A file
 * that is not complete and lacks nothing is not placed for a reason, and is named with it: the
 * user's file is there (kept), the publisher's data for it is inconsistent, or placing it failed.
 */
export interface SourceCompleteness {
  kind: string;
  name: string;
  /** "kind:name", as users name sources. */
  source: string;
  files: number;
  complete: number;
  bytes: number;
  completeBytes: number;
  /** Record bytes (compressed, as packed) the store lacks for them: not what fetching costs (a sync's forecast says that). */
  missingBytes: number;
  /** Size in the tree of the files a sync would still bring (not complete, nothing in their way). */
  missingSize: number;
  /** Files not complete that no fetch will bring: kept as the user's, inconsistent, failed. */
  notPlaced: number;
}

export interface NotPlaced {
  /** The user's files at the snapshot's paths. */
  kept: KeptFile[];
  /** Files whose publisher data never matches their signed SHA-256 (this snapshot). */
  inconsistent: string[];
  /** Files the last sync could not place, with why. */
  failed: FailedFile[];
}

export interface Completeness {
  /** Paths in place and verified. */
  complete: Set<string>;
  /** Record bytes still to fetch for each incomplete file. */
  missing: Map<string, number>;
  sources: SourceCompleteness[];
  total: { files: number; complete: number; bytes: number; missingBytes: number; missingSize: number; notPlaced: number };
  notPlaced: NotPlaced;
}

const row = (kind: string, name: string): SourceCompleteness => ({ kind, name, source: kind ? `${kind}:${name}` : name, files: 0, complete: 0, bytes: 0, completeBytes: 0, missingBytes: 0, missingSize: 0, notPlaced: 0 });

const totalOf = (sources: SourceCompleteness[]) =>
  sources.reduce(
    (a, r) => ({
      files: a.files + r.files,
      complete: a.complete + r.complete,
      bytes: a.bytes + r.bytes,
      missingBytes: a.missingBytes + r.missingBytes,
      missingSize: a.missingSize + r.missingSize,
      notPlaced: a.notPlaced + r.notPlaced,
    }),
    { files: 0, complete: 0, bytes: 0, missingBytes: 0, missingSize: 0, notPlaced: 0 },
  );

/**
 * The same reckoning without the index, when the last sync of everything left the tree complete
 * at `entry` and every file is still as placed (stillComplete): each file complete, nothing
 * missing. Undefined otherwise (assessCompleteness then).
 */
export function completeAsSynced(work: WorkDir, entry: ManifestSnapshot): Completeness | undefined {
  const here = stillComplete(work.root, work.scanTreeState(), entry.name, []);
  if (!here || here.wanted.length !== entry.files) return undefined;
  const rows = new Map(entry.sources.map((s) => [s.name, row(s.kind, s.name)]));
  const complete = new Set<string>();
  const missing = new Map<string, number>();
  const { paths, size } = here.files;
  for (const i of here.wanted) {
    const path = paths[i];
    const r = rows.get(path.slice(0, path.indexOf('/')));
    if (!r) return undefined;
    r.files++;
    r.complete++;
    r.bytes += size[i];
    r.completeBytes += size[i];
    complete.add(path);
  }
  const sources = [...rows.values()];
  return { complete, missing, sources, total: totalOf(sources), notPlaced: { kept: [], inconsistent: [], failed: [] } };
}

/**
 * `generation`: a reader's (serve): a file is complete when the generation placed it and its
 * bytes can still be read (src/workdir/generation.ts), whatever a running sync does to the tree;
 * `store` then is the reader's.
 */
export async function assessCompleteness(work: WorkDir, snapshot: Snapshot, generation?: { gen: Generation; store: ChunkStore }): Promise<Completeness> {
  const state = generation?.gen.state ?? work.treeState();
  const restorer = new Restorer(work, snapshot, state);
  const look = (f: FileFacts): Look => (generation ? (generation.gen.has(f.path, Buffer.from(f.sha256).toString('hex')) ? { is: 'in-place' } : { is: 'free' }) : restorer.look(f));
  const held = await (generation?.store ?? work.store).heldIn(snapshot.chunks.idWords);
  const rows = new Map<string, SourceCompleteness>();
  for (const src of snapshot.sources) rows.set(src.name, row(src.kind, src.name));
  const complete = new Set<string>();
  const missing = new Map<string, number>();
  const counted = new Uint8Array(snapshot.chunks.length);
  const notPlaced: NotPlaced = { kept: [], inconsistent: [], failed: [] };
  // From the table: a file's facts, not its entry (an object and a chunk array per file of 1M).
  const files = fileTableOf(snapshot);
  for (let k = 0; k < files.length; k++) {
    const f = factsOf(files, k);
    const size = files.placedSize(k);
    const name = files.sourceName(k);
    const r = rows.get(name) ?? row('', name);
    rows.set(name, r);
    r.files++;
    r.bytes += size;
    const l = look(f);
    if (l.is === 'in-place') {
      complete.add(f.path);
      r.complete++;
      r.completeBytes += size;
      continue;
    }
    if (l.is !== 'free') {
      // Nothing to fetch for it: a sync leaves it as it is.
      r.notPlaced++;
      if (l.is === 'yours') notPlaced.kept.push({ path: f.path, why: l.why });
      else notPlaced.inconsistent.push(f.path);
      missing.set(f.path, 0);
      continue;
    }
    const failed = state.failed?.[f.path];
    if (failed) {
      r.notPlaced++;
      notPlaced.failed.push({ path: f.path, code: failed.code, message: failed.message });
      if (isNameRefusal(failed.code)) {
        // Refused by its name before fetching: a sync on this disk will not fetch it either.
        missing.set(f.path, 0);
        continue;
      }
    }
    let lacking = 0;
    for (const i of files.chunks(k)) {
      if (counted[i] || held[i]) continue;
      counted[i] = 1;
      lacking += snapshot.chunks.recordLength(i);
    }
    r.missingBytes += lacking;
    r.missingSize += size;
    missing.set(f.path, lacking);
  }
  // look() may have hashed files placed by hand or after a crash: remember them (serve
  // reassesses every few seconds; saving writes only what changed, nothing when nothing did).
  if (!generation) work.saveTreeState(state);
  const sources = [...rows.values()];
  return { complete, missing, sources, total: totalOf(sources), notPlaced };
}
