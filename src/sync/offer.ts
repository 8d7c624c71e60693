import { PaqueteError } from '../errors.js';
import { decodeOfferHead, OfferFrame, OfferHead } from '../delta/offer.js';
import { FrameEntry, UpdateHead } from '../delta/update.js';
import { Remote } from '../remote/remote.js';
import { ManifestBody, ManifestSnapshot, OfferRef } from '../snapshot/manifest.js';
import { ChunkEntry, ChunkTable, decodeSnapshot, FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { cachedIndex, loadSnapshot } from './catalog.js';
import type { BaseStream } from './base-stream.js';
import { LoadedUpdate } from './frames.js';
import { headPath } from './updates.js';
import { loadSigned } from './signed-file.js';

/**
 * Using an offer (src/delta/offer.ts) from this directory: which old contents it holds, which
 * frames it can decode, and which of those to take when several bring the same new file (a client
 * holding two old versions of it). The result is an ordinary LoadedUpdate whose "base" is a
 * snapshot made of the held old contents, so the planner prices it and the frame fetcher decodes
 * it as any delta: a route among the others, compared whole (src/sync/session.ts).
 */

/** An offer head lies where update heads do (it is one, of version 3). */
export const offerPath = (ref: OfferRef): string => headPath(ref);

/**
 * The offer head from `.paquete/updates/` (where a dry run or an earlier sync kept it, as update
 * heads are: src/sync/updates.ts), else fetched; checked against the signed manifest and the
 * snapshot it builds on every use.
 */
export function loadOfferHead(work: WorkDir, remote: Remote, ref: OfferRef, entry: ManifestSnapshot, opts: { signal?: AbortSignal } = {}): Promise<OfferHead> {
  return loadSigned(work, remote, offerPath(ref), ref, 'offer', (bytes) => {
    const head = decodeOfferHead(bytes);
    if (head.target !== entry.name) throw new PaqueteError('BAD_FORMAT', `offer ${ref.name.slice(0, 12)} is not the offer the manifest says it is`);
    return head;
  }, opts);
}

/** Where this directory has an old content described: a file of one of its cached indexes. */
export interface HeldContent {
  snapshot: Snapshot;
  file: FileEntry;
}

/**
 * The contents `wanted` (SHA-256 hex) that this directory's cached snapshot indexes describe,
 * newest snapshot first (its chunks are the likeliest still in the store). Indexes of entries the
 * manifest no longer lists, or that are damaged, describe nothing.
 */
export function describedContents(work: WorkDir, manifest: ManifestBody, wanted: Set<string>): Map<string, HeldContent> {
  const found = new Map<string, HeldContent>();
  for (const entry of [...manifest.snapshots].reverse()) {
    if (found.size === wanted.size) break;
    const bytes = cachedIndex(work, entry);
    if (!bytes) continue;
    let snapshot: Snapshot;
    try {
      snapshot = decodeSnapshot(bytes);
    } catch {
      continue;
    }
    for (const file of snapshot.files) {
      const sha = Buffer.from(file.sha256).toString('hex');
      if (wanted.has(sha) && !found.has(sha)) found.set(sha, { snapshot, file });
    }
  }
  return found;
}

/**
 * The offer as an update this client can use: its frames into N (`into` 0) or into waypoint
 * `into` − 1 (`target` then being that snapshot) whose every base content it holds (described by
 * a cached index, and every chunk of it in the store: `held`), and among frames bringing the
 * same missing chunks the cheapest per byte first, each taken only while it brings something no
 * frame taken before brings. `present`: chunk ids of `target` the store holds.
 */
export function resolveOffer(
  head: OfferHead,
  target: Snapshot,
  described: Map<string, HeldContent>,
  held: Set<bigint>,
  present: Set<bigint>,
  into = 0,
): { update: LoadedUpdate; baseHeld: Set<bigint> } {
  // The base "snapshot": one file per usable old content, its chunks copied into one table.
  const chunks: ChunkEntry[] = [];
  const files: FileEntry[] = [];
  const fileOf = new Map<number, number>();
  head.contents.forEach((c, k) => {
    const d = described.get(c.sha256);
    if (!d || d.file.size !== c.size) return;
    if (!d.file.chunks.every((i) => held.has(d.snapshot.chunks.id(i)))) return;
    const first = chunks.length;
    for (const i of d.file.chunks) chunks.push(d.snapshot.chunks.entry(i));
    fileOf.set(k, files.length);
    files.push({ ...d.file, chunks: d.file.chunks.map((_, j) => first + j) });
  });
  const base: Snapshot = { ...target, packs: [], chunks: ChunkTable.of(chunks), files };

  const missingRaw = (f: { yields: number[] }) =>
    f.yields.reduce((n, i) => n + (i < target.chunks.length && !present.has(target.chunks.id(i)) ? target.chunks.rawLength[i] : 0), 0);
  const usable = head.frames.filter(
    (f) => f.target === into && f.bases.every((b) => fileOf.has(b.content)) && f.yields.every((i) => i < target.chunks.length) && missingRaw(f) > 0,
  );
  usable.sort((a, b) => a.length / missingRaw(a) - b.length / missingRaw(b) || a.offset - b.offset);
  const covered = new Set<number>();
  const taken: FrameEntry[] = [];
  for (const f of usable) {
    const brings = f.yields.filter((i) => !covered.has(i) && !present.has(target.chunks.id(i)));
    if (!brings.length) continue;
    brings.forEach((i) => covered.add(i));
    taken.push({ offset: f.offset, length: f.length, yields: f.yields, bases: f.bases.map((b) => ({ file: fileOf.get(b.content)!, start: b.start, length: b.length })) });
  }
  taken.sort((a, b) => a.offset - b.offset);
  const updateHead: UpdateHead = {
    target: into === 0 ? head.target : head.waypoints[into - 1],
    base: null,
    framesFile: head.framesFile,
    framesSize: head.framesSize,
    indexDelta: new Uint8Array(0),
    indexBodySize: 0,
    indexVersion: 2,
    frames: taken,
  };
  return { update: { head: updateHead, base }, baseHeld: new Set(chunks.map((c) => c.id)) };
}

/** What cheapestRoute learnt of the offer, for a waypoint route after it. */
export interface OfferSeen {
  head: OfferHead;
  described: Map<string, HeldContent>;
  held: Set<bigint>;
}

/**
 * Two hops through a waypoint (src/delta/offer-plan.ts planWaypoints): the waypoint frames this
 * client can decode, into the waypoint snapshot W's versions of files, then the offer's frames
 * from W's contents into N. Shaped as a BaseStream (src/sync/base-stream.ts), which the session
 * prices whole against the other routes and fetches in that order. W's index is fetched (and
 * cached) only when the records of the best route so far cost `worth` times it. Undefined when
 * no waypoint frame is usable here.
 */
export async function waypointStream(
  work: WorkDir,
  remote: Remote,
  manifest: ManifestBody,
  target: Snapshot,
  seen: OfferSeen,
  present: Set<bigint>,
  worth: (path: string, size: number) => boolean,
  opts: { signal?: AbortSignal } = {},
): Promise<BaseStream | undefined> {
  const { head, described, held } = seen;
  // The waypoint most of whose frames this client can decode.
  const usableBy = (f: OfferFrame) => f.bases.every((b) => described.has(head.contents[b.content].sha256));
  const counts = new Map<number, number>();
  for (const f of head.frames) if (f.target > 0 && usableBy(f)) counts.set(f.target, (counts.get(f.target) ?? 0) + 1);
  const into = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0];
  if (into === undefined) return undefined;
  const entry = manifest.snapshots.find((s) => s.name === head.waypoints[into - 1]);
  if (!entry || (!cachedIndex(work, entry) && !worth(`snapshots/${entry.name}.snap`, entry.size))) return undefined;
  const waypoint = await loadSnapshot(work, remote, entry, opts);
  const presentW = await work.store.hasMany(waypoint.chunks.ids());
  const stream = resolveOffer(head, waypoint, described, held, presentW, into);
  if (!stream.update.head.frames.length) return undefined;
  // After the first hop: W's versions of the files the waypoint frames rebuild are held too.
  const rebuilt = new Set(stream.update.head.frames.flatMap((f) => f.yields));
  const after = new Map(described);
  const afterHeld = new Set([...held, ...presentW]);
  waypoint.files.forEach((file) => {
    const sha = Buffer.from(file.sha256).toString('hex');
    if (after.has(sha) || !file.chunks.every((i) => presentW.has(waypoint.chunks.id(i)) || rebuilt.has(i))) return;
    after.set(sha, { snapshot: waypoint, file });
    for (const i of file.chunks) afterHeld.add(waypoint.chunks.id(i));
  });
  const delta = resolveOffer(head, target, after, afterHeld, present);
  return { base: waypoint, stream: stream.update, delta: delta.update, streamHeld: stream.baseHeld, afterHeld: new Set([...delta.baseHeld, ...afterHeld]) };
}

/** The contents an offer names, for describedContents. */
export const offerContents = (head: OfferHead): Set<string> => new Set(head.contents.map((c) => c.sha256));
