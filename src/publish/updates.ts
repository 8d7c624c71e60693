import { closeSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { encodeFrames, fileRangeFromChunks, planDeltaFrames, planSolidFrames, ReadFileRange, withoutDictMagic } from '../delta/build.js';
import { encodeUpdateHead, FrameEntry, framesHeader } from '../delta/update.js';
import { BaseContent, decodeOfferHead, encodeOfferHead, OfferFrame } from '../delta/offer.js';
import { OFFER_REACH, planOffer, planWaypoints, PlannedOfferFrame } from '../delta/offer-plan.js';
import { FrameCompressor } from '../delta/zstd.js';
import { ManifestSnapshot, sha256Hex, UpdateRef } from '../snapshot/manifest.js';
import { encodeSnapshotBody, Snapshot, snapshotVersion } from '../snapshot/snapshot.js';
import { ContentNamedFile, fsyncPath, writeFileAtomic } from '../util/fsx.js';
import { readRemoteSnapshot, RemoteChunkReader } from './published-file.js';

/**
 * Writes a new snapshot's updates into the remote: `frames/<sha256>.frames`, then the head
 * `updates/<sha256>.upd` that names it, each durable before the next and all before the manifest
 * that names the heads, so a crash leaves only files nothing names yet.
 */

/** zstd level of index deltas: the index is small next to the frames, and crosses the paid link on every update. */
const INDEX_DELTA_LEVEL = 19;

export interface UpdatesOptions {
  /** zstd level of the frames (1–22). */
  level: number;
  /** Write the update from nothing. */
  solid: boolean;
  /**
   * Delta updates from this many of the newest earlier snapshots: frames from the newest, the
   * index delta alone from the others (clients further behind fetch the index; an index delta
   * from 8 vite releases back was 5-7.7 kB against 9.5 kB for the index). 0: no deltas and no offer.
   */
  updatesFrom: number;
  /** Called after each frame is compressed (an update from nothing at level 19 takes minutes). */
  onProgress?: (p: UpdateProgress) => void;
}

export interface UpdateProgress {
  phase: 'updates';
  /** The base snapshot's name; "" for the update from nothing; "offer" for the offer. */
  from: string;
  /** Content bytes compressed so far, of this update's total. */
  bytesDone: number;
  bytesTotal: number;
}

export interface UpdateWritten extends UpdateRef {
  frames: number;
  framesBytes: number;
  /** Wall time spent building this update. */
  ms: number;
}

interface Named {
  name: string;
  snapshot: Snapshot;
  body: Uint8Array;
}

/**
 * The update from nothing and the delta updates from the newest `updatesFrom` earlier snapshots
 * of `earlier` (manifest order, oldest first) whose index can be read; a base that cannot be
 * read (deleted, damaged) is passed over: it only costs its clients a larger download.
 */
export function writeUpdates(remoteDir: string, target: { name: string; snapshot: Snapshot }, earlier: ManifestSnapshot[], opts: UpdatesOptions): UpdateWritten[] {
  const n: Named = { ...target, body: encodeSnapshotBody(target.snapshot) };
  const io: UpdateIO = { remoteDir, reader: new RemoteChunkReader(remoteDir), compressor: new FrameCompressor(), level: opts.level, onProgress: opts.onProgress };
  const written: UpdateWritten[] = [];
  try {
    if (opts.solid) written.push(writeUpdate(io, n, undefined));
    let first = true;
    for (const b of readableBases(remoteDir, earlier, opts.updatesFrom)) {
      // Frames from the newest base only: clients further behind take the offer's frames, and
      // what they need of a delta from them is its index delta (a few bytes a changed entry).
      written.push(writeUpdate(io, n, b, first));
      first = false;
    }
  } finally {
    io.reader.close();
  }
  return written;
}

/**
 * The newest `reach` earlier snapshots of `earlier` (manifest order, oldest first) whose index
 * can be read, newest first; a base that cannot be read (deleted, damaged) is passed over: it
 * only costs its clients a larger download.
 */
function readableBases(remoteDir: string, earlier: ManifestSnapshot[], reach: number): Named[] {
  const out: Named[] = [];
  const seen = new Set<string>();
  for (const entry of reach > 0 ? earlier.slice(-reach).reverse() : []) {
    if (seen.has(entry.name)) continue;
    seen.add(entry.name);
    try {
      const snapshot = readRemoteSnapshot(remoteDir, entry);
      out.push({ name: entry.name, snapshot, body: encodeSnapshotBody(snapshot) });
    } catch {
      continue;
    }
  }
  return out;
}

/** What every update of one publish shares: one compression context (see FrameCompressor), open packs. */
interface UpdateIO {
  remoteDir: string;
  reader: RemoteChunkReader;
  compressor: FrameCompressor;
  level: number;
  onProgress?: (p: UpdateProgress) => void;
}

function writeUpdate({ remoteDir, reader, compressor, level, onProgress }: UpdateIO, target: Named, base: Named | undefined, withFrames = true): UpdateWritten {
  const started = performance.now();
  const plan = !base ? planSolidFrames(target.snapshot) : withFrames ? planDeltaFrames(target.snapshot, base.snapshot) : [];
  const contentOf = (f: (typeof plan)[number]) => f.yields.reduce((n, i) => n + target.snapshot.chunks.rawLength[i], 0);
  const bytesTotal = plan.reduce((n, f) => n + contentOf(f), 0);
  let bytesDone = 0;
  let frameNo = 0;
  const from = base?.name ?? '';
  onProgress?.({ phase: 'updates', from, bytesDone, bytesTotal });
  const framesDir = join(remoteDir, 'frames');
  const file = new ContentNamedFile(framesDir, 'frames');
  let frames: FrameEntry[];
  try {
    file.write(framesHeader());
    frames = encodeFrames(plan, {
      target: target.snapshot,
      base: base?.snapshot,
      readChunk: (s, i) => reader.read(s, i),
      level,
      write: (frame) => {
        file.write(frame);
        bytesDone += contentOf(plan[frameNo++]);
        onProgress?.({ phase: 'updates', from, bytesDone, bytesTotal });
      },
      compressor,
    });
  } catch (e) {
    file.abort();
    throw e;
  }
  const framesSize = file.size;
  const framesFile = file.finish();
  fsyncPath(framesDir);
  const head = encodeUpdateHead({
    target: target.name,
    base: base?.name ?? null,
    framesFile,
    framesSize,
    // The index as a delta too: at 11 bytes a chunk it is most of a small update otherwise.
    indexDelta: base ? compressor.compress(target.body, { level: INDEX_DELTA_LEVEL, dictionary: base.body }) : new Uint8Array(0),
    indexBodySize: base ? target.body.length : 0,
    indexVersion: snapshotVersion(target.snapshot),
    frames,
  });
  const name = sha256Hex(head);
  writeFileAtomic(join(remoteDir, 'updates', `${name}.upd`), head);
  return { from: base?.name ?? '', name, size: head.length, frames: frames.length, framesBytes: framesSize, ms: performance.now() - started };
}

export interface OfferWritten {
  name: string;
  size: number;
  frames: number;
  framesBytes: number;
  /** Old contents the frames start from. */
  contents: number;
  /** Waypoint frames among them (two hops for contents the budget left without a direct delta). */
  waypointFrames: number;
  /** Frames copied from the previous offer's frames file instead of compressed again. */
  reused: number;
  /** Frames planned but left out to keep within the budget (their clients take the stream or records). */
  dropped: number;
  ms: number;
}

/**
 * Direct frames take at most this share of the budget when not all fit; waypoints have the rest.
 * vite 8.2.4 … 8.4.0: direct deltas from every old content took 1.42x one compressed copy of N;
 * cut at the budget, clients 11 releases behind paid 5.1x their floor through the stream. With
 * 75% for direct frames, 8 behind lost its direct deltas and the waypoints of vite's 1.4 MB bundle
 * (rewritten every release) did not fit the rest: 8 and 11 behind both paid 5.2-5.6x. So direct
 * frames keep the whole budget, and waypoints take what it leaves.
 */
const DIRECT_SHARE = 1;

/** A frame compressed, before it is placed in the frames file. */
interface Compressed {
  planned: PlannedOfferFrame;
  ranges: { sha256: string; size: number; start: number; length: number }[];
  /** Where its bytes lie in the scratch file. */
  at: number;
  length: number;
  reused: boolean;
}

/**
 * The offer to N (src/delta/offer.ts): deltas keyed by old file content from the contents of the
 * newest OFFER_REACH earlier snapshots, newest contents first, while its frames stay within
 * `budget` bytes (docs/DESIGN-REMOTE-V3.md decision 4: the offer is at most one compressed copy
 * of N, so the remote holds at most two). When direct deltas from every old content do not fit,
 * they take DIRECT_SHARE of it, newest first, and the old contents left out get waypoint frames
 * (two hops) while the rest lasts. A frame the previous offer (`previous`: the entry before N)
 * holds with the same content and dictionary is copied from its frames file, not compressed
 * again: a publish then compresses what changed. Frames are compressed into a scratch file first
 * (the cut is known only once they are), then laid out in the frames file. Undefined when there
 * is nothing to offer (no earlier snapshot, or nothing changed).
 */
export function writeOffer(
  remoteDir: string,
  target: { name: string; snapshot: Snapshot },
  earlier: ManifestSnapshot[],
  opts: UpdatesOptions & { budget: number },
): OfferWritten | undefined {
  const started = performance.now();
  const bases = opts.updatesFrom > 0 ? readableBases(remoteDir, earlier, OFFER_REACH) : [];
  if (!bases.length) return undefined;
  const nameOf = new Map(bases.map((b) => [b.snapshot, b.name]));
  const direct = planOffer(target.snapshot, bases.map((b) => b.snapshot));
  if (!direct.length) return undefined;
  const reader = new RemoteChunkReader(remoteDir);
  const compressor = new FrameCompressor();
  const newest = earlier[earlier.length - 1];
  const reuse = previousFrames(remoteDir, newest, bases[0]?.name === newest?.name ? bases[0].snapshot : undefined, opts.level);
  const readers = new Map<Snapshot, ReadFileRange>();
  const rangeOf = (s: Snapshot): ReadFileRange => {
    let r = readers.get(s);
    if (!r) readers.set(s, (r = fileRangeFromChunks(s, (i) => reader.read(s, i))));
    return r;
  };
  const framesDir = join(remoteDir, 'frames');
  mkdirSync(framesDir, { recursive: true });
  const scratchPath = join(framesDir, `.tmp-scratch-${process.pid}.frames`);
  const scratch = openSync(scratchPath, 'w+');
  let scratchSize = 0;
  const contentOf = (f: PlannedOfferFrame) => f.yields.reduce((n, i) => n + (f.waypoint ?? target.snapshot).chunks.rawLength[i], 0);
  const bytesTotal = direct.reduce((n, f) => n + contentOf(f), 0);
  let bytesDone = 0;
  /**
   * Compresses planned frames in order while their total stays within `limit`; returns those that
   * fit. `skip`: a frame past the limit is passed over and smaller ones after it still tried
   * (waypoints); else it ends the list (direct frames: what is left out comes last in priority).
   */
  const compressWithin = (plan: PlannedOfferFrame[], limit: number, skip = false): Compressed[] => {
    const out: Compressed[] = [];
    let total = 0;
    for (const f of plan) {
      const from = f.waypoint ?? target.snapshot;
      const content = Buffer.concat(f.yields.map((i) => reader.read(from, i)));
      let ranges = f.bases.map(({ sha256, size, start, length }) => ({ sha256, size, start, length }));
      let dictionary: Uint8Array | undefined;
      if (f.bases.length) {
        const parts = f.bases.map((b) => rangeOf(b.snapshot)(b.snapshot.files[b.file], b.start, b.length));
        ({ dictionary, bases: ranges } = withoutDictMagic(parts.length === 1 ? parts[0] : Buffer.concat(parts), ranges));
      }
      const key = frameKey(opts.level, f.yields.map((i) => from.chunks.id(i)), ranges);
      const old = reuse.read(key);
      const frame = old ?? compressor.compress(content, { level: opts.level, dictionary });
      if (total + frame.length > limit) {
        if (skip) continue;
        break;
      }
      total += frame.length;
      let done = 0;
      while (done < frame.length) done += writeSync(scratch, frame, done, frame.length - done, scratchSize + done);
      out.push({ planned: f, ranges, at: scratchSize, length: frame.length, reused: old !== undefined });
      scratchSize += frame.length;
      bytesDone += content.length;
      opts.onProgress?.({ phase: 'updates', from: 'offer', bytesDone, bytesTotal });
    }
    return out;
  };
  const file = new ContentNamedFile(framesDir, 'frames');
  const contents: BaseContent[] = [];
  const contentIndex = new Map<string, number>();
  const waypoints: string[] = [];
  const frames: OfferFrame[] = [];
  let kept: Compressed[];
  try {
    kept = compressWithin(direct, opts.budget);
    if (kept.length < direct.length) {
      // Not every old content fits a direct delta: the newest take DIRECT_SHARE, waypoints the rest.
      let total = 0;
      kept = kept.filter((c) => total + c.length <= DIRECT_SHARE * opts.budget && (total += c.length) > 0);
      const keptUnits = kept.flatMap((c) => c.planned.units);
      const keptSet = new Set(kept.map((c) => c.planned));
      const dropped = direct.filter((f) => !keptSet.has(f)).flatMap((f) => f.units);
      kept.push(...compressWithin(planWaypoints(keptUnits, dropped), opts.budget - total, true));
    }
    file.write(framesHeader());
    for (const c of kept) {
      const bytes = Buffer.allocUnsafe(c.length);
      if (readSync(scratch, bytes, 0, c.length, c.at) !== c.length) throw new Error('offer scratch file ended early');
      const offset = file.write(bytes);
      const baseRanges = c.ranges.map((r) => {
        let k = contentIndex.get(r.sha256);
        if (k === undefined) {
          contentIndex.set(r.sha256, (k = contents.length));
          contents.push({ sha256: r.sha256, size: r.size });
        }
        return { content: k, start: r.start, length: r.length };
      });
      let into = 0;
      if (c.planned.waypoint) {
        const name = nameOf.get(c.planned.waypoint)!;
        into = waypoints.indexOf(name) + 1 || waypoints.push(name);
      }
      frames.push({ target: into, offset, length: c.length, yields: c.planned.yields, bases: baseRanges });
    }
  } catch (e) {
    file.abort();
    throw e;
  } finally {
    reader.close();
    reuse.close();
    closeSync(scratch);
    rmSync(scratchPath, { force: true });
  }
  if (!frames.length) {
    file.abort();
    return undefined;
  }
  const framesBytes = file.size;
  const framesFile = file.finish();
  fsyncPath(framesDir);
  const head = encodeOfferHead({ target: target.name, framesFile, framesSize: framesBytes, contents, waypoints, frames });
  const name = sha256Hex(head);
  writeFileAtomic(join(remoteDir, 'updates', `${name}.upd`), head);
  const waypointFrames = frames.filter((f) => f.target > 0).length;
  return {
    name,
    size: head.length,
    frames: frames.length,
    framesBytes,
    contents: contents.length,
    waypointFrames,
    reused: kept.filter((c) => c.reused).length,
    dropped: direct.length - (frames.length - waypointFrames),
    ms: performance.now() - started,
  };
}

/** What makes two frames the same bytes: the zstd level, the chunks of their content, their dictionary. */
function frameKey(level: number, ids: bigint[], bases: { sha256: string; start: number; length: number }[]): string {
  const h = createHash('sha256').update(`${level}\n`);
  const b = Buffer.allocUnsafe(8);
  for (const id of ids) {
    b.writeBigUInt64BE(id);
    h.update(b);
  }
  for (const r of bases) h.update(`${r.sha256}:${r.start}:${r.length}\n`);
  return h.digest('hex');
}

/**
 * The frames of the previous snapshot's offer by frameKey, read from its frames file on demand.
 * Nothing when it has none, or its head or snapshot cannot be read (then every frame is compressed).
 */
function previousFrames(remoteDir: string, entry: ManifestSnapshot | undefined, snapshot: Snapshot | undefined, level: number) {
  const at = new Map<string, { offset: number; length: number }>();
  let fd: number | undefined;
  try {
    if (entry?.offer && snapshot) {
      const head = decodeOfferHead(readFileSync(join(remoteDir, 'updates', `${entry.offer.name}.upd`)));
      // Waypoint frames index other snapshots' chunks: compressed again (they are few).
      for (const f of head.frames.filter((x) => x.target === 0)) {
        const ids = f.yields.map((i) => snapshot.chunks.id(i));
        const ranges = f.bases.map((r) => ({ sha256: head.contents[r.content].sha256, start: r.start, length: r.length }));
        at.set(frameKey(level, ids, ranges), f);
      }
      fd = openSync(join(remoteDir, 'frames', `${head.framesFile}.frames`), 'r');
    }
  } catch {
    at.clear();
  }
  return {
    read(key: string): Uint8Array | undefined {
      const f = at.get(key);
      if (!f || fd === undefined) return undefined;
      const out = Buffer.allocUnsafe(f.length);
      if (readSync(fd, out, 0, f.length, f.offset) !== f.length) return undefined;
      return out;
    },
    close: () => {
      if (fd !== undefined) closeSync(fd);
    },
  };
}
