import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { chunkId } from '../chunk/id.js';
import { Remote } from '../remote/remote.js';
import { LayersRef, ManifestBody, ManifestSnapshot, RootRef, sha256Hex } from '../snapshot/manifest.js';
import { decodeFileLayer, decodeWhereLayer, skeletonOf, StreamDerivation, VerifiedChunk } from '../snapshot/layers.js';
import { encodeSnapshotBody, Snapshot, snapshotFileOfBody, snapshotVersion } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { LoadedUpdate } from './frames.js';
import type { UpdateHead } from '../delta/update.js';
import { keptSigned, loadSigned } from './signed-file.js';
import type { BudgetLeft } from './shard-cache.js';
import { cachedUpdateHead, deltaChoices, headPath, loadUpdateHead, solidUpdate } from './updates.js';

/**
 * A first download that pays for no chunk id and no file hash (src/snapshot/layers.ts): the
 * index's file and where layers instead of the `.snap`, the stream from nothing, and the ids and
 * hashes derived from the stream's bytes as each piece of them checks against its signed SHA-256.
 * The one owner of "a derived id or hash comes only from authenticated bytes" is
 * StreamDerivation; this module fetches the layers, keeps what was derived across sessions in a
 * log, and turns a finished derivation into the whole index (checked by the manifest's `body`
 * hash) or, when something other than the stream is needed (records: a card that falls back to
 * them, a damaged frame, a server without Range), into the `.snap` fetched after all.
 *
 * Cached in .paquete/layers/: `<name>.files`, `<name>.where` (the publisher's files, checked by
 * their SHA-256 against the manifest), `<snapshot name>.log` (what was derived, see FORMATS.md
 * §Working directory).
 */
export interface Derived {
  derivation: StreamDerivation;
  /** The update from nothing whose frames the derivation checks. */
  update: LoadedUpdate;
}

const layerCache = (ref: RootRef, kind: 'files' | 'where') => `layers/${ref.name}.${kind}`;
const logCache = (snapshot: string) => `layers/${snapshot}.log`;
const CHUNK_RECORD = 1;
const FILE_RECORD = 2;

/** Whether a derivation of snapshot `name` is under way here (its log was begun). */
export const hasDerivation = (work: WorkDir, name: string): boolean => existsSync(join(work.meta, logCache(name)));

/** Whether a first download of `entry` may take the derived route here; true also to resume one. */
export async function derivedApplies(work: WorkDir, manifest: ManifestBody, entry: ManifestSnapshot, wants: string[] | undefined): Promise<boolean> {
  if (wants?.length || !entry.layers || !entry.body || !solidUpdate(entry) || deltaChoices(work, manifest, entry).length) return false;
  if (hasDerivation(work, entry.name)) return true;
  // A store with chunks may dedupe them (that takes the ids), and a file already at a snapshot's
  // path is compared by its hash: both need the whole index.
  if ((await work.store.count()).chunks > 0) return false;
  return !entry.sources.some((s) => existsSync(join(work.root, s.name)));
}

const cachedLayer = (work: WorkDir, ref: RootRef, kind: 'files' | 'where'): Uint8Array | undefined => keptSigned(work, layerCache(ref, kind), ref, (b) => b);

const layerBytes = (work: WorkDir, remote: Remote, ref: RootRef, kind: 'files' | 'where', signal?: AbortSignal): Promise<Uint8Array> =>
  loadSigned(work, remote, layerCache(ref, kind), ref, `index ${kind} layer`, (b) => b, { signal });

/**
 * The skeleton index of `entry` and its derivation, from the layers and the stream's head (fetched
 * or cached), with what earlier sessions derived. A derivation is begun only when the layers
 * still to fetch and the whole stream fit in what the budget has left (always, without one): a
 * card that could not finish it would pay for the layers and then, for records or the next
 * card's snapshot, for the whole index too. Undefined then (read the whole index); the head
 * fetched to know is the stream route's own, which that route reuses.
 */
export async function loadDerived(
  work: WorkDir,
  remote: Remote,
  entry: ManifestSnapshot,
  opts: { signal?: AbortSignal; budget: BudgetLeft },
): Promise<{ snapshot: Snapshot; derived: Derived } | undefined> {
  const refs = entry.layers!;
  const ref = solidUpdate(entry)!;
  const begun = hasDerivation(work, entry.name);
  // A budget that cannot carry the layers and the head asks for neither.
  const head0 = cachedUpdateHead(work, ref, entry, null) ? 0 : remote.requestCost(headPath(ref), ref.size);
  if (!begun && layersCost(work, remote, refs) + head0 > opts.budget.left) return undefined;
  // The head first: a mirror without updates/ costs the layers nothing.
  const head = await loadUpdateHead(work, remote, ref, entry, null, opts);
  if (!begun && layersCost(work, remote, refs) + framesCost(remote, head) > opts.budget.left) return undefined;
  const files = await layerBytes(work, remote, refs.files, 'files', opts.signal);
  const where = await layerBytes(work, remote, refs.where, 'where', opts.signal);
  return derivedOf(work, entry, files, where, head);
}

/** Wire bytes of the layers not kept here, each one request of its signed size. */
const layersCost = (work: WorkDir, remote: Remote, refs: LayersRef): number =>
  (['files', 'where'] as const).reduce((n, kind) => (cachedLayer(work, refs[kind], kind) ? n : n + remote.requestCost(layerCache(refs[kind], kind), refs[kind].size)), 0);

/** Wire bytes of the whole stream: every frames file of it, each one request. */
function framesCost(remote: Remote, head: UpdateHead): number {
  const segments = head.segments ?? [{ name: head.framesFile, size: head.framesSize }];
  return segments.reduce((n, sg) => n + remote.requestCost(`frames/${sg.name}.frames`, sg.size), 0);
}

function derivedOf(work: WorkDir, entry: ManifestSnapshot, filesBytes: Uint8Array, whereBytes: Uint8Array, head: UpdateHead): { snapshot: Snapshot; derived: Derived } {
  const files = decodeFileLayer(filesBytes);
  const where = decodeWhereLayer(whereBytes);
  if (files.snapshot !== entry.name || files.stream !== solidUpdate(entry)!.name) throw new PaqueteError('BAD_FORMAT', 'the index layers are not those of this snapshot and its stream');
  const snapshot = skeletonOf(files, where);
  const derivation = new StreamDerivation(snapshot, files, head.frames.map((f) => f.yields));
  replayLog(work, entry.name, derivation);
  return { snapshot, derived: { derivation, update: { head, base: null } } };
}

/** A derivation under way (or planned by a dry run), from .paquete alone (status, serve, planning offline): undefined when none is. */
export function cachedDerived(work: WorkDir, entry: ManifestSnapshot): { snapshot: Snapshot; derived: Derived } | undefined {
  const ref = solidUpdate(entry);
  if (!entry.layers || !ref) return undefined;
  const files = cachedLayer(work, entry.layers.files, 'files');
  const where = cachedLayer(work, entry.layers.where, 'where');
  const head = cachedUpdateHead(work, ref, entry, null);
  if (!files || !where || !head) return undefined;
  try {
    return derivedOf(work, entry, files, where, head);
  } catch {
    return undefined;
  }
}

/** One record of the log: tag, index (u32 BE), an id (8 bytes) or a hash (32), then 4 check bytes (low half of the xxh64 of what precedes). */
function record(tag: number, index: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + payload.length + 4);
  b[0] = tag;
  b.writeUInt32BE(index, 1);
  b.set(payload, 5);
  b.writeUInt32BE(Number(chunkId(b.subarray(0, 5 + payload.length)) & 0xffffffffn), 5 + payload.length);
  return b;
}

function replayLog(work: WorkDir, snapshot: string, d: StreamDerivation): void {
  const log = work.readOptional(logCache(snapshot));
  if (!log) return;
  for (let at = 0; at < log.length; ) {
    const len = log[at] === CHUNK_RECORD ? 17 : log[at] === FILE_RECORD ? 41 : 0;
    // A torn or damaged tail (a kill mid-append, a power cut) ends the log: those come again.
    if (!len || at + len > log.length) break;
    const rec = log.subarray(at, at + len);
    if (Number(chunkId(rec.subarray(0, len - 4)) & 0xffffffffn) !== rec.readUInt32BE(len - 4)) break;
    const index = rec.readUInt32BE(1);
    if (rec[0] === CHUNK_RECORD) d.restoreChunk(index, rec.readBigUInt64BE(5));
    else d.restoreFile(index, rec.subarray(5, 37));
    at += len;
  }
}

/**
 * What the frame reader calls after each verified piece: appends its ids and hashes to the log
 * (no fsync: a log shorter than the store only costs those chunks again, and nothing in it is
 * written before its piece checked).
 */
export function derivedLogger(work: WorkDir, snapshot: Snapshot, name: string, derivation: StreamDerivation): { onDerived: (chunks: VerifiedChunk[], files: number[]) => void; close: () => void } {
  mkdirSync(join(work.meta, 'layers'), { recursive: true });
  const fd = openSync(join(work.meta, logCache(name)), 'a');
  const id = new Uint8Array(8);
  const view = new DataView(id.buffer);
  return {
    onDerived: (chunks, files) => {
      const recs: Buffer[] = [];
      for (const c of chunks) {
        view.setUint32(0, snapshot.chunks.idWords[2 * c.index]);
        view.setUint32(4, snapshot.chunks.idWords[2 * c.index + 1]);
        recs.push(record(CHUNK_RECORD, c.index, id));
      }
      for (const k of files) recs.push(record(FILE_RECORD, k, derivation.fileHash(k)));
      const all = Buffer.concat(recs);
      for (let done = 0; done < all.length; ) done += writeSync(fd, all, done, all.length - done);
    },
    close: () => closeSync(fd),
  };
}

function forget(work: WorkDir, entry: ManifestSnapshot): void {
  if (work.readOnly) return;
  for (const name of [logCache(entry.name), ...(entry.layers ? [layerCache(entry.layers.files, 'files'), layerCache(entry.layers.where, 'where')] : [])]) {
    rmSync(join(work.meta, name), { force: true });
  }
}

/**
 * A derivation with every id and hash found becomes the whole index: encoded, checked against the
 * manifest's `body` hash, and cached as a `.snap` (uncompressed), as an index rebuilt from a delta
 * is. Returns whether it did; a body that does not match is the publisher's inconsistency (the
 * `.snap` is read next time instead).
 */
export function finishDerived(work: WorkDir, entry: ManifestSnapshot, snapshot: Snapshot, d: Derived): boolean {
  if (!d.derivation.complete || work.readOnly) return false;
  const body = encodeSnapshotBody(snapshot);
  forget(work, entry);
  if (sha256Hex(body) !== entry.body) throw new PaqueteError('BAD_SIGNATURE', `the ids and hashes derived from the stream of ${entry.name.slice(0, 12)} do not make its signed index`);
  work.writeMeta(`snapshots/${entry.name}.snap`, snapshotFileOfBody(body, snapshotVersion(snapshot)));
  return true;
}

/**
 * The chunk layer after all: the `.snap` fetched (signed size and SHA-256, through `load`), and its
 * ids and hashes copied into the skeleton in place, so every reader of the snapshot keeps its
 * object. What was derived already must agree with it.
 */
export async function completeFromIndex(work: WorkDir, entry: ManifestSnapshot, snapshot: Snapshot, load: () => Promise<Snapshot>): Promise<void> {
  const whole = await load();
  const bad = (why: string): never => {
    throw new PaqueteError('BAD_SIGNATURE', `the index of ${entry.name.slice(0, 12)} does not match its layers: ${why}`);
  };
  if (whole.chunks.length !== snapshot.chunks.length || whole.files.length !== snapshot.files.length) bad('other counts');
  const ids = snapshot.chunks.idWords;
  snapshot.files.forEach((f, k) => {
    if (whole.files[k].path !== f.path) bad(`${f.path} against ${whole.files[k].path}`);
    const known = f.sha256.some((b) => b !== 0);
    if (known && Buffer.compare(f.sha256, whole.files[k].sha256) !== 0) bad(`${f.path}'s hash`);
    f.sha256.set(whole.files[k].sha256);
  });
  for (let w = 0; w < ids.length; w++) {
    if (ids[w] !== 0 && ids[w] !== whole.chunks.idWords[w]) bad(`chunk ${w >> 1}'s id`);
  }
  ids.set(whole.chunks.idWords);
  forget(work, entry);
}


/** Derivations no sync will resume (the index was read whole, or another snapshot is the newest): their layers and logs go. */
export function dropDerivations(work: WorkDir): void {
  if (!work.readOnly) rmSync(join(work.meta, 'layers'), { recursive: true, force: true });
}
