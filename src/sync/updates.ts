import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { decodeUpdateHead, resolveBaseRanges, UpdateHead } from '../delta/update.js';
import { decompressExact } from '../delta/zstd.js';
import { Remote } from '../remote/remote.js';
import { checkSnapshotBytes, ManifestBody, ManifestSnapshot, sha256Hex, UpdateRef } from '../snapshot/manifest.js';
import { decodeSnapshot, Snapshot, snapshotBody, snapshotFileOfBody } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { LoadedUpdate } from './frames.js';
import { cachedIndex } from './catalog.js';
import { isSignedBytes, keptSigned, loadSigned, SignedRef } from './signed-file.js';

/**
 * Which of a snapshot's updates (src/delta/update.ts) this directory can use, fetching and
 * checking their heads, and rebuilding a snapshot index from an index delta.
 */
export interface DeltaChoice {
  ref: UpdateRef;
  baseEntry: ManifestSnapshot;
  baseBytes: Uint8Array;
  base: Snapshot;
}

/**
 * Base indexes decoded in this process, by directory and snapshot name (a name is its index's
 * hash): a sync asks for the choices while fetching the index and again while choosing its route,
 * and decoding a 10k-file index each time was a tenth of a 1% update sync.
 */
const decodedBases = new WeakMap<WorkDir, Map<string, Snapshot>>();

export function decodedBase(work: WorkDir, name: string, bytes: Uint8Array): Snapshot {
  let byName = decodedBases.get(work);
  if (!byName) decodedBases.set(work, (byName = new Map()));
  let base = byName.get(name);
  if (!base) byName.set(name, (base = decodeSnapshot(bytes)));
  return base;
}

/** Delta updates to `entry` whose base index this directory holds, newest base first. */
export function deltaChoices(work: WorkDir, manifest: ManifestBody, entry: ManifestSnapshot): DeltaChoice[] {
  const out: DeltaChoice[] = [];
  const position = new Map(manifest.snapshots.map((s, i) => [s.name, i]));
  const refs = (entry.updates ?? []).filter((u) => u.from !== '' && position.has(u.from));
  refs.sort((a, b) => position.get(b.from)! - position.get(a.from)!);
  for (const ref of refs) {
    const baseEntry = manifest.snapshots[position.get(ref.from)!];
    // A missing or damaged cached index is no base; the update from it is simply not used.
    const baseBytes = cachedIndex(work, baseEntry);
    if (!baseBytes) continue;
    try {
      out.push({ ref, baseEntry, baseBytes, base: decodedBase(work, baseEntry.name, baseBytes) });
    } catch {
      // an index that does not decode is no base either
    }
  }
  return out;
}

/** The update from nothing, if the publisher wrote one. */
export const solidUpdate = (entry: ManifestSnapshot): UpdateRef | undefined => (entry.updates ?? []).find((u) => u.from === '');

export const headPath = (ref: { name: string }): string => `updates/${ref.name}.upd`;

/** Decodes an update head's (already hash-checked) bytes and checks it is the update the manifest says, for the snapshot it builds. */
function checkUpdateHead(bytes: Uint8Array, ref: UpdateRef, entry: ManifestSnapshot, base: Snapshot | null): UpdateHead {
  const head = resolveBaseRanges(decodeUpdateHead(bytes), base);
  if (head.target !== entry.name || (head.base ?? '') !== ref.from) {
    throw new PaqueteError('BAD_FORMAT', `update ${ref.name.slice(0, 12)} is not the update the manifest says it is`);
  }
  return head;
}

/**
 * Update heads this directory fetched, kept in `.paquete/updates/` under the remote's own name
 * (`<sha256>.upd`): a dry run pays for the heads it plans with and the sync after it reuses them,
 * as does status, which plans with no network. Each use checks the bytes against the signed
 * manifest again, so a damaged copy is fetched afresh, never trusted.
 */
export const cachedUpdateHead = (work: WorkDir, ref: UpdateRef, entry: ManifestSnapshot, base: Snapshot | null): UpdateHead | undefined =>
  keptSigned(work, headPath(ref), ref, (bytes) => checkUpdateHead(bytes, ref, entry, base));

/** Whether the head of `ref` is kept here with its signed bytes (it costs nothing to use then). */
export function hasCachedHead(work: WorkDir, ref: SignedRef): boolean {
  const bytes = work.readOptional(headPath(ref));
  return bytes !== undefined && isSignedBytes(ref, bytes);
}

/** An update head from the cache, else fetched, checked and cached (a read-only directory only reads). */
export const loadUpdateHead = (
  work: WorkDir,
  remote: Remote,
  ref: UpdateRef,
  entry: ManifestSnapshot,
  base: Snapshot | null,
  opts: { signal?: AbortSignal } = {},
): Promise<UpdateHead> => loadSigned(work, remote, headPath(ref), ref, 'update', (bytes) => checkUpdateHead(bytes, ref, entry, base), opts);

/** Planning with no network (status, the forecast after a card): heads only from the cache, and told which one was missing. */
export interface HeadsOffline {
  offline?: boolean;
  uncached?: (why: string) => void;
}

/** Why a forecast made without `ref`'s head is an estimate. */
export const uncachedHead = (ref: { name: string; size: number }): string =>
  `the head of update ${ref.name.slice(0, 12)} (${ref.size} bytes) is not here yet: a dry run or sync fetches it to price that route, which may cost less`;

/**
 * Deletes cached heads that no update or offer of `manifest` names any more (its snapshots were
 * retired), but for a stream from nothing of a snapshot still listed (retiredStream: a card of it
 * may be finished after a release).
 */
export function pruneUpdateHeads(work: WorkDir, manifest: ManifestBody): void {
  if (work.readOnly) return;
  const named = new Set(manifest.snapshots.flatMap((s) => [...(s.updates ?? []), ...(s.offer ? [s.offer] : [])].map((u) => `${u.name}.upd`)));
  const listed = new Set(manifest.snapshots.map((s) => s.name));
  const dir = join(work.meta, 'updates');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (named.has(n)) continue;
    const stream = cachedStream(work, n);
    if (stream && listed.has(stream.head.target)) continue;
    rmSync(join(dir, n), { force: true });
  }
}

/** A cached head file `n` (`<sha256>.upd`) that is a stream from nothing, its bytes still its name's; undefined otherwise. */
function cachedStream(work: WorkDir, n: string): { ref: UpdateRef; head: UpdateHead } | undefined {
  const m = /^([0-9a-f]{64})\.upd$/.exec(n);
  const bytes = m ? work.readOptional(headPath({ name: m[1] })) : undefined;
  if (!m || !bytes || sha256Hex(bytes) !== m[1]) return undefined;
  try {
    const head = decodeUpdateHead(bytes);
    return head.base === null ? { ref: { from: '', name: m[1], size: bytes.length }, head } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The stream from nothing of `entry` that this directory fetched a head of and that the manifest
 * names no more: a publisher keeps the previous snapshot's stream named only while it fits within
 * twice the newest one (src/publish/prune.ts streamKept), and its files stay on the remote for
 * the prune grace period (7 days by default) after that. A card cut inside it, then a release,
 * resumes it meanwhile (src/sync/base-stream.ts). The head was checked against the manifest that
 * named it when it was cached, and its bytes are still their name's; every chunk its frames yield
 * is checked against the id in `entry`'s signed index, so a head gone wrong costs bytes, never a
 * wrong file. Undefined when there is none, or more than one of them.
 */
export function retiredStream(work: WorkDir, entry: ManifestSnapshot): { ref: UpdateRef; head: UpdateHead } | undefined {
  let names: string[];
  try {
    names = readdirSync(join(work.meta, 'updates'));
  } catch {
    return undefined;
  }
  const found = names.map((n) => cachedStream(work, n)).filter((s) => s?.head.target === entry.name);
  return found.length === 1 ? found[0] : undefined;
}

/** Rebuilds the target's index from a delta head; returns the index file to cache (uncompressed form). */
export function rebuildIndex(head: UpdateHead, choice: DeltaChoice, entry: ManifestSnapshot): Uint8Array {
  if (!entry.body) throw new PaqueteError('BAD_FORMAT', 'the manifest gives no index body hash to check a rebuilt index against');
  const body = decompressExact(head.indexDelta, head.indexBodySize, snapshotBody(choice.baseBytes));
  const file = snapshotFileOfBody(body, head.indexVersion);
  checkSnapshotBytes(entry, file);
  return file;
}

/**
 * The target's index through the newest delta update this directory can use: fetches its head
 * and rebuilds the index (a few bytes per changed entry instead of the whole index). Undefined
 * when no delta applies or it fails for any reason but an abort: the caller fetches the index.
 */
export async function indexThroughDelta(
  work: WorkDir,
  remote: Remote,
  manifest: ManifestBody,
  entry: ManifestSnapshot,
  opts: { signal?: AbortSignal } = {},
): Promise<{ bytes: Uint8Array; update: LoadedUpdate } | undefined> {
  const choice = deltaChoices(work, manifest, entry)[0];
  if (!choice) return undefined;
  try {
    const head = await loadUpdateHead(work, remote, choice.ref, entry, choice.base, opts);
    return { bytes: rebuildIndex(head, choice, entry), update: { head, base: choice.base } };
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    return undefined;
  }
}
