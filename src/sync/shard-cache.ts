import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { Remote } from '../remote/remote.js';
import { IndexRootRef, ManifestBody, ManifestSnapshot, sha256Hex } from '../snapshot/manifest.js';
import { decodeRoot, decodeRootBody, mergeShards, Root, rootBody, rootDeltaPath, ShardRef, shardLocator, shardOfPath, subSnapshot } from '../snapshot/shards.js';
import { decodeSnapshotBody, encodeSnapshotBody, FileEntry, isUncompressedSnapshot, Snapshot, snapshotBody, snapshotFileOfBody, snapshotVersion } from '../snapshot/snapshot.js';
import { cachedIndex } from './catalog.js';
import { decodedBase } from './updates.js';
import { decompressExact } from '../delta/zstd.js';
import { parseRequirement } from '../sources/pep440.js';
import { normalizeName } from '../sources/pypi.js';
import { SOURCE_KINDS } from '../sources/spec.js';
import { WorkDir } from '../workdir/workdir.js';
import { isSignedBytes, loadSigned } from './signed-file.js';

/**
 * The sharded index on the client (src/snapshot/shards.ts): which shards a want needs, fetching
 * them (whole, or as a delta from the version of the same key held here) within the budget, and
 * the partial index they merge into. Cached in .paquete/ as:
 *   roots/<name>.root    the publisher's root file (checked by its SHA-256 against the manifest)
 *   roots/<name>.body    or the root's uncompressed body rebuilt from a root delta (checked by the
 *                        manifest's `root.body`)
 *   shards/<name>.snap   each shard's index uncompressed (PQSN, compression 0), under its name
 *                        (the SHA-256 of its body), as the root names it and deltas name their base
 */
export interface PartialIndex {
  root: Root;
  /** Indices into root.shards of the shards merged into the snapshot. */
  held: Set<number>;
}

/** Whether a partial index describes `path` (its shard is held): only such paths are the index's to place or remove. */
export const covers = (p: PartialIndex, path: string): boolean => p.held.has(shardOfPath(p.root, path));

/** covers() as the Restorer takes it: undefined (every path) for a whole index. */
export const coverageOf = (p: PartialIndex | undefined): ((path: string) => boolean) | undefined => p && ((path) => covers(p, path));

/** What a partial index leaves out, per source name: the files and bytes of the shards not held (the root says). */
export function notIndexed(p: PartialIndex): Map<string, { files: number; bytes: number }> {
  const out = new Map<string, { files: number; bytes: number }>();
  p.root.shards.forEach((s, i) => {
    if (p.held.has(i) || s.files === 0) return;
    const name = p.root.sources[s.source].name;
    const o = out.get(name) ?? { files: 0, bytes: 0 };
    o.files += s.files;
    o.bytes += s.bytes;
    out.set(name, o);
  });
  return out;
}

const rootCache = (name: string) => `roots/${name}.root`;
const rootBodyCache = (name: string) => `roots/${name}.body`;
const shardCache = (name: string) => `shards/${name}.snap`;

/**
 * The shards `wants` need, or undefined when they need every shard (no wants, a glob whose first
 * part is a pattern): `pypi:REQ` its project's shards and those of every project their metadata
 * may require (the root's dependency lists, followed to the end); `KIND:NAME` and a glob whose
 * first part names a source, that source's shards. A name no source has needs nothing (the want's
 * own expansion reports it).
 */
export function shardsForWants(root: Root, wants: string[]): Set<number> | undefined {
  if (!wants.length) return undefined;
  const out = new Set<number>();
  const ofSource = (name: string) => root.shards.forEach((s, i) => root.sources[s.source].name === name && out.add(i));
  const projects: string[] = [];
  for (const w of wants) {
    const m = /^([a-z]+):(.+)$/s.exec(w);
    if (m && (SOURCE_KINDS as readonly string[]).includes(m[1])) {
      if (m[1] !== 'pypi') ofSource(m[2]);
      else {
        try {
          projects.push(normalizeName(parseRequirement(m[2].trim()).name));
        } catch {
          // an unreadable requirement: the resolver says so
        }
      }
      continue;
    }
    const first = w.split('/')[0];
    if (/[*?]/.test(first)) return undefined;
    ofSource(first);
  }
  const queue = root.shards.flatMap((s, i) => (root.sources[s.source].kind === 'pypi' && s.key !== '' && projects.includes(s.key) ? [i] : []));
  while (queue.length) {
    const i = queue.pop()!;
    if (out.has(i)) continue;
    out.add(i);
    queue.push(...root.shards[i].deps);
  }
  return out;
}

/**
 * The uncompressed body of root `ref` kept here: the remote's file (checked by its name), or a
 * body rebuilt from a delta (checked by the signed body hash); a damaged copy is none.
 */
function keptRootBody(work: WorkDir, ref: IndexRootRef): Uint8Array | undefined {
  const file = work.readOptional(rootCache(ref.name));
  if (file && sha256Hex(file) === ref.name) {
    try {
      return rootBody(file);
    } catch {
      // a file the publisher signed that does not inflate: fetched afresh
    }
  }
  const body = ref.body ? work.readOptional(rootBodyCache(ref.name)) : undefined;
  return body && sha256Hex(body) === ref.body ? body : undefined;
}

/** The cached root of `ref` if it is here and intact. */
export function cachedRoot(work: WorkDir, ref: IndexRootRef): Root | undefined {
  const body = keptRootBody(work, ref);
  try {
    return body && decodeRootBody(body);
  } catch {
    return undefined;
  }
}

/** How the root `ref` comes: kept here, as its delta from a root held here, or the root file. */
type RootRoute = { kind: 'kept'; root: Root } | { kind: 'delta'; base: Uint8Array; path: string; size: number } | { kind: 'file'; path: string; size: number };

function rootRoute(work: WorkDir, manifest: ManifestBody, ref: IndexRootRef): RootRoute {
  const kept = cachedRoot(work, ref);
  if (kept) return { kind: 'kept', root: kept };
  const d = ref.delta;
  const baseRef = d && (manifest.snapshots.find((e) => e.root?.name === d.from)?.root ?? { name: d.from, size: 0 });
  const base = baseRef && keptRootBody(work, baseRef);
  if (d && base && ref.body && ref.bodyLength !== undefined) return { kind: 'delta', base, path: rootDeltaPath(d.name), size: d.size };
  return { kind: 'file', path: rootCache(ref.name), size: ref.size };
}

/** Wire bytes of having root `ref` here: 0 when kept, else the one request rootRoute makes (the budget's price). */
export function rootCost(work: WorkDir, remote: Remote, manifest: ManifestBody, ref: IndexRootRef): number {
  const r = rootRoute(work, manifest, ref);
  return r.kind === 'kept' ? 0 : remote.requestCost(r.path, r.size);
}

/**
 * The root a manifest entry names: from the cache; else as its delta from the earlier root it
 * names when that one is here (what changed in the root, not the root, which lists every shard
 * of the mirror); else the root file. Each fetch asks for its signed size, so the budget owner
 * reserves exactly that.
 */
export async function loadRoot(work: WorkDir, remote: Remote, manifest: ManifestBody, ref: IndexRootRef, opts: { signal?: AbortSignal } = {}): Promise<Root> {
  const route = rootRoute(work, manifest, ref);
  if (route.kind === 'kept') return route.root;
  if (route.kind === 'delta') {
    const body = await patchedBody(remote, route.path, ref.delta!, route.base, ref.bodyLength!, ref.body!, opts.signal);
    let root: Root | undefined;
    try {
      root = body && decodeRootBody(body);
    } catch {
      // damaged on the way: the whole root below
    }
    if (root && body) {
      if (!work.readOnly) work.writeMeta(rootBodyCache(ref.name), body);
      return root;
    }
  }
  return loadSigned(work, remote, rootCache(ref.name), ref, 'index root', decodeRoot, opts);
}

/**
 * A body rebuilt from a delta (a zstd frame against `base`, fetched with its signed size): the
 * signed delta, inflated to at most the signed length, hashing to `bodyHash`; undefined when any
 * of that fails (damaged on the way), so the caller falls back to the whole file.
 */
async function patchedBody(
  remote: Remote,
  path: string,
  delta: { name: string; size: number },
  base: Uint8Array,
  length: number,
  bodyHash: string,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  const frame = await remote.get(path, { signal, size: delta.size });
  try {
    if (!isSignedBytes(delta, frame)) return undefined;
    const body = decompressExact(frame, length, base);
    return sha256Hex(body) === bodyHash ? body : undefined;
  } catch {
    return undefined;
  }
}

/** The cached body of shard `name` (its SHA-256), if here and intact. */
function cachedBody(work: WorkDir, name: string): Uint8Array | undefined {
  const bytes = work.readOptional(shardCache(name));
  if (!bytes || !isUncompressedSnapshot(bytes) || sha256Hex(bytes.subarray(8)) !== name) return undefined;
  return bytes.subarray(8);
}

/**
 * The first of `ref`'s deltas whose base `baseOf` gives (the body of that older shard), or none:
 * what shardBody fetches and shardFetchCost prices, one rule for both.
 */
function usableDelta(ref: ShardRef, baseOf: (name: string) => Uint8Array | undefined): { delta: ShardRef['deltas'][number]; base: Uint8Array } | undefined {
  for (const delta of ref.deltas) {
    const base = baseOf(delta.from);
    if (base) return { delta, base };
  }
  return undefined;
}

/** Wire bytes of shard `ref` when bases come from `hasBase`: its delta from the first base held, else its file. */
function shardFetchCost(remote: Remote, ref: ShardRef, hasBase: (name: string) => boolean): number {
  const d = ref.deltas.find((x) => hasBase(x.from));
  return d ? remote.requestCost(shardDeltaPath(d.name), d.size) : remote.requestCost(shardFilePath(ref.name), ref.size);
}

const shardFilePath = (name: string) => `shards/${name}.shard`;
const shardDeltaPath = (name: string) => `shards/${name}.sd`;

/**
 * One shard's body fetched: as a delta from the first older version of its key that `baseOf`
 * gives (a zstd frame against that body) when the root offers one; else (or when that delta does
 * not rebuild it) the shard file. Each fetch asks for its signed size, so the budget owner
 * reserves exactly that.
 */
async function shardBody(remote: Remote, ref: ShardRef, baseOf: (name: string) => Uint8Array | undefined, signal?: AbortSignal): Promise<Uint8Array> {
  const usable = usableDelta(ref, baseOf);
  const patched = usable && (await patchedBody(remote, shardDeltaPath(usable.delta.name), usable.delta, usable.base, ref.bodyLength, ref.name, signal));
  if (patched) return patched;
  const bytes = await remote.get(shardFilePath(ref.name), { signal, size: ref.size });
  // Named by its body: inflated (to at most the signed body length) before it can be checked.
  let whole: Uint8Array | undefined;
  try {
    whole = bytes.length === ref.size && bytes[4] === ref.version ? snapshotBody(bytes, ref.bodyLength) : undefined;
  } catch {
    // damaged: refused below
  }
  if (!whole || sha256Hex(whole) !== ref.name) {
    throw new PaqueteError('BAD_SIGNATURE', `index shard ${ref.name.slice(0, 12)} does not match its signed root (tampered or damaged in transit)`);
  }
  return whole;
}

/** One shard's index: from the cache, else fetched (shardBody, bases from the cache) and cached. */
async function loadShard(work: WorkDir, remote: Remote, ref: ShardRef, opts: { signal?: AbortSignal }): Promise<Snapshot> {
  const body = cachedBody(work, ref.name) ?? (await shardBody(remote, ref, (name) => cachedBody(work, name), opts.signal));
  if (!work.readOnly && !work.readOptional(shardCache(ref.name))) work.writeMeta(shardCache(ref.name), snapshotFileOfBody(body, ref.version));
  return decodeSnapshotBody(body, ref.version);
}

/**
 * Updates over which a root fetched whole must repay itself. A client without --want that holds
 * no root fetches the newest one whole (once) when that costs at most this many times what one
 * update saves by the shard route (its index delta less the root's delta): from then on its
 * updates take that route. The saving grows with the tree and the root with its shards, about
 * 37 bytes each: a mirror of real wheels (hundreds of chunks each) repays it in an update or
 * two; 1,000 synthetic one-chunk wheels in about 24.
 */
export const ROOT_REPAID = 32;

/** A budget as the index routes read it: the bytes it has left (Infinity without one). */
export interface BudgetLeft {
  readonly left: number;
}

/**
 * The whole index of `entry` for a client that wants everything, in proportion to the change
 * (docs/FORMATS.md §Root and shards, "Without --want"): the root (kept, its delta, or its file),
 * then only the shards whose names the root of the newest index held here does not list, each as
 * its delta from that index's shard of the same key (sliced out of the index held) or its file;
 * every other shard is sliced out of the index held; merged, the body must hash to the signed
 * `body`. Taken only when cheaper than `alternative` (the wire bytes of the index delta or the
 * `.snap`), each step priced exactly before it is asked, and when the budget covers the root and
 * the alternative too (a root paid must never leave the index unpayable). Undefined when the
 * route does not apply or fails but for an abort or the budget: the caller reads the index as
 * before. A client holding an index but no root fetches the root whole, without using it yet,
 * when ROOT_REPAID says it pays.
 */
export async function indexThroughShards(
  work: WorkDir,
  remote: Remote,
  manifest: ManifestBody,
  entry: ManifestSnapshot,
  opts: { signal?: AbortSignal; budget: BudgetLeft; alternative: number },
): Promise<Uint8Array | undefined> {
  const ref = entry.root;
  if (!ref || !entry.body || remote.free) return undefined;
  const held = heldIndex(work, manifest, entry);
  if (!held) return undefined;
  const cost = rootCost(work, remote, manifest, ref);
  if (cost + opts.alternative > opts.budget.left) return undefined;
  // An update changes a shard at least: one more request's heads, whatever its body.
  const oneShard = remote.requestCost(shardDeltaPath(ref.name), 0);
  if (!held.root) {
    const next = ref.delta && remote.requestCost(rootDeltaPath(ref.delta.name), ref.delta.size) + oneShard;
    if (next && cost <= ROOT_REPAID * (opts.alternative - next)) await loadRoot(work, remote, manifest, ref, opts);
    return undefined;
  }
  if (cost + oneShard >= opts.alternative) return undefined;
  const root = await loadRoot(work, remote, manifest, ref, opts);
  const base = decodedBase(work, held.entry.name, held.bytes);
  // The index held, cut as its own root cut it: a shard of the new root with a name the old one
  // lists is those files, sliced out; another comes from the remote.
  const locate = shardLocator(held.root);
  const groups = held.root.shards.map((): FileEntry[] => []);
  for (const f of base.files) {
    const j = locate(f.path);
    if (j < 0) return undefined; // the index held does not fit its root: the index as before
    groups[j].push(f);
  }
  const heldByName = new Map(held.root.shards.map((s, j) => [s.name, j]));
  const sliceBody = (name: string): Uint8Array | undefined => {
    const j = heldByName.get(name);
    if (j === undefined) return cachedBody(work, name);
    const body = encodeSnapshotBody(subSnapshot(base, held.root!.sources[held.root!.shards[j].source], groups[j]));
    return sha256Hex(body) === name ? body : undefined;
  };
  const hasBase = (name: string) => heldByName.has(name) || cachedBody(work, name) !== undefined;
  const kept = new Map<number, FileEntry[]>();
  const changed: number[] = [];
  let shardsCost = 0;
  for (const [i, s] of root.shards.entries()) {
    const j = heldByName.get(s.name);
    if (j !== undefined && groups[j].length === s.files) {
      const files = kept.get(s.source) ?? [];
      for (const f of groups[j]) files.push(f);
      kept.set(s.source, files);
    } else {
      changed.push(i);
      if (!cachedBody(work, s.name)) shardsCost += shardFetchCost(remote, s, hasBase);
    }
  }
  // The root is paid: the shards are weighed against the alternative alone.
  if (shardsCost >= opts.alternative || shardsCost > opts.budget.left) return undefined;
  const shards: { ref: ShardRef; snapshot: Snapshot }[] = [];
  for (const [source, files] of kept) {
    shards.push({ ref: { ...root.shards.find((s) => s.source === source)!, name: 'kept' }, snapshot: subSnapshot(base, root.sources[source], files) });
  }
  for (const i of changed) {
    const s = root.shards[i];
    const body = cachedBody(work, s.name) ?? (await shardBody(remote, s, sliceBody, opts.signal));
    shards.push({ ref: s, snapshot: decodeSnapshotBody(body, s.version) });
  }
  const merged = mergeShards(root, shards);
  const body = encodeSnapshotBody(merged);
  if (sha256Hex(body) !== entry.body) return undefined;
  pruneShards(work, manifest);
  return snapshotFileOfBody(body, snapshotVersion(merged));
}

/** The newest index of an earlier entry cached here (a delta route's base), with its root when that is kept too. */
function heldIndex(work: WorkDir, manifest: ManifestBody, entry: ManifestSnapshot): { entry: ManifestSnapshot; bytes: Uint8Array; root?: Root } | undefined {
  for (let k = manifest.snapshots.length - 1; k >= 0; k--) {
    const e = manifest.snapshots[k];
    if (e.name === entry.name) continue;
    const bytes = cachedIndex(work, e);
    if (!bytes) continue;
    return { entry: e, bytes, root: e.root && cachedRoot(work, e.root) };
  }
  return undefined;
}

/**
 * The partial index of `selected` shards, fetched where not cached, merged with every other shard
 * of the root already here (a source wanted by an earlier sync stays described).
 */
export async function fetchPartial(
  work: WorkDir,
  remote: Remote,
  manifest: ManifestBody,
  root: Root,
  selected: Set<number>,
  opts: { signal?: AbortSignal } = {},
): Promise<{ snapshot: Snapshot; partial: PartialIndex }> {
  const shards: { ref: ShardRef; snapshot: Snapshot }[] = [];
  const held = new Set<number>();
  for (let i = 0; i < root.shards.length; i++) {
    const ref = root.shards[i];
    if (!selected.has(i) && !cachedBody(work, ref.name)) continue;
    shards.push({ ref, snapshot: await loadShard(work, remote, ref, opts) });
    held.add(i);
  }
  pruneShards(work, manifest);
  return { snapshot: mergeShards(root, shards), partial: { root, held } };
}

/** The partial index from the cache alone (status, serve): every shard of the root held here. */
export function cachedPartial(work: WorkDir, entry: ManifestSnapshot): { snapshot: Snapshot; partial: PartialIndex } | undefined {
  const root = entry.root && cachedRoot(work, entry.root);
  if (!root) return undefined;
  const shards: { ref: ShardRef; snapshot: Snapshot }[] = [];
  const held = new Set<number>();
  root.shards.forEach((ref, i) => {
    const body = cachedBody(work, ref.name);
    if (!body) return;
    shards.push({ ref, snapshot: decodeSnapshotBody(body, ref.version) });
    held.add(i);
  });
  if (!shards.length) return undefined;
  return { snapshot: mergeShards(root, shards), partial: { root, held } };
}

/**
 * Cached roots and shards no entry of `manifest` names go: a shard stays while a root of the
 * manifest (an older snapshot a reader such as serve may still answer from) names it, or offers
 * a delta from it.
 */
function pruneShards(work: WorkDir, manifest: ManifestBody): void {
  if (work.readOnly) return;
  const roots = new Set(manifest.snapshots.flatMap((e) => (e.root ? [`${e.root.name}.root`, `${e.root.name}.body`] : [])));
  const named = new Set<string>();
  for (const e of manifest.snapshots) {
    const root = e.root && cachedRoot(work, e.root);
    for (const s of root?.shards ?? []) for (const b of [s.name, ...s.deltas.map((d) => d.from)]) named.add(`${b}.snap`);
  }
  for (const [dir, keep] of [['roots', roots], ['shards', named]] as const) {
    let names: string[] = [];
    try {
      names = readdirSync(join(work.meta, dir));
    } catch {
      continue;
    }
    for (const n of names) if (!keep.has(n)) rmSync(join(work.meta, dir, n), { force: true });
  }
}
