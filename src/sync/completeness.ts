import { recordLength, Snapshot } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { Assembler } from './assembler.js';

/**
 * What of a snapshot is complete in the working tree and what is still missing, per source:
 * the one reckoning `status` prints and `serve` shows on its catalog page. No network.
 *
 * A file is complete when it is in the tree as the snapshot has it (size, and SHA-256 checked
 * once then remembered by mtime in tree.json). Missing bytes are the records the store still
 * lacks, each chunk counted once, at the first file (in snapshot order) that needs it.
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
  missingBytes: number;
}

export interface Completeness {
  /** Paths in place and verified. */
  complete: Set<string>;
  /** Record bytes still to fetch for each incomplete file. */
  missing: Map<string, number>;
  sources: SourceCompleteness[];
  total: { files: number; complete: number; bytes: number; missingBytes: number };
}

export async function assessCompleteness(work: WorkDir, snapshot: Snapshot): Promise<Completeness> {
  const state = work.treeState();
  const before = JSON.stringify(state);
  const assembler = new Assembler(work.root, work.tmpDir, work.store, snapshot, state);
  const present = await work.store.hasMany(snapshot.chunks.map((c) => c.id));
  const rows = new Map<string, SourceCompleteness>();
  const row = (kind: string, name: string) => ({ kind, name, source: kind ? `${kind}:${name}` : name, files: 0, complete: 0, bytes: 0, completeBytes: 0, missingBytes: 0 });
  for (const src of snapshot.sources) rows.set(src.name, row(src.kind, src.name));
  const complete = new Set<string>();
  const missing = new Map<string, number>();
  const counted = new Set<number>();
  for (const f of snapshot.files) {
    const name = f.path.split('/')[0];
    const r = rows.get(name) ?? row('', name);
    rows.set(name, r);
    r.files++;
    r.bytes += f.size;
    if (assembler.isInPlace(f)) {
      complete.add(f.path);
      r.complete++;
      r.completeBytes += f.size;
      continue;
    }
    let lacking = 0;
    for (const i of f.chunks) {
      if (counted.has(i) || present.has(snapshot.chunks[i].id)) continue;
      counted.add(i);
      lacking += recordLength(snapshot.chunks[i]);
    }
    r.missingBytes += lacking;
    missing.set(f.path, lacking);
  }
  // isInPlace may have hashed files placed by hand or after a crash: remember them (serve
  // reassesses every few seconds, so only when something changed).
  if (JSON.stringify(state) !== before) work.saveTreeState(state);
  const sources = [...rows.values()];
  const total = sources.reduce(
    (a, r) => ({ files: a.files + r.files, complete: a.complete + r.complete, bytes: a.bytes + r.bytes, missingBytes: a.missingBytes + r.missingBytes }),
    { files: 0, complete: 0, bytes: 0, missingBytes: 0 },
  );
  return { complete, missing, sources, total };
}
