import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { encodeFrames, fileRangeFromChunks, planDeltaFrames, PlannedSegment, planSegments, ReadFileRange, withoutDictMagic } from '../delta/build.js';
import { decodeUpdateHead, encodeUpdateHead, FrameEntry, framesHeader, FRAMES_HEADER_SIZE, Segment, UpdateHead } from '../delta/update.js';
import { BaseContent, decodeOfferHead, encodeOfferHead, OfferFrame } from '../delta/offer.js';
import { changeMatrix, chooseRungs, fileVersions, OFFER_REACH, planOffer, PlannedOfferFrame, Version } from '../delta/offer-plan.js';
import { MAX_WINDOW_LOG } from '../delta/zstd.js';
import { CompressPool } from '../delta/compress-pool.js';
import { checkSnapshotBytes, ManifestSnapshot, sha256Hex, UpdateRef } from '../snapshot/manifest.js';
import { decodeSnapshotBody, encodeSnapshotBody, Snapshot, snapshotBody, snapshotVersion } from '../snapshot/snapshot.js';
import { ContentNamedFile, fsyncPath, writeFileAtomic } from '../util/fsx.js';
import { readRemoteSnapshot, RemoteChunkReader } from './published-file.js';
import { StreamPieceHashes } from './layers.js';

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
  /** Worker threads to compress on (one per core); a pool of its own, closed after, by default. */
  pool?: CompressPool;
  /**
   * Earlier snapshots already read, by name: one publish's updates and offer read each base
   * once (at 30k files, reading and encoding the same bases again was 3 s of a 1% publish).
   */
  bases?: Map<string, Named>;
  /** Takes the layers' piece hashes as the stream's chunks are read (src/publish/layers.ts). */
  pieces?: StreamPieceHashes;
}

/** Runs `work` with opts' pool, or a pool of its own that is closed after. */
async function withPool<T>(opts: UpdatesOptions, work: (pool: CompressPool) => Promise<T>): Promise<T> {
  const pool = opts.pool ?? new CompressPool();
  try {
    return await work(pool);
  } finally {
    if (!opts.pool) await pool.close();
  }
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
  /** Bytes of its frames files (a segmented stream's: all its segments, kept ones too). */
  framesBytes: number;
  /** The stream from nothing: its segments, and how many were kept from the previous stream by name (not compressed again). */
  segments?: number;
  reusedSegments?: number;
  /** Wall time spent building this update. */
  ms: number;
}

/** A snapshot with its name and index body (the bytes an index delta is made against). */
export interface Named {
  name: string;
  snapshot: Snapshot;
  body: Uint8Array;
}

/**
 * The update from nothing and the delta updates from the newest `updatesFrom` earlier snapshots
 * of `earlier` (manifest order, oldest first) whose index can be read; a base that cannot be
 * read (deleted, damaged) is passed over: it only costs its clients a larger download.
 */
export function writeUpdates(remoteDir: string, target: { name: string; snapshot: Snapshot; body?: Uint8Array }, earlier: ManifestSnapshot[], opts: UpdatesOptions): Promise<UpdateWritten[]> {
  return withPool(opts, async (pool) => {
    const n: Named = { ...target, body: target.body ?? encodeSnapshotBody(target.snapshot) };
    const io: UpdateIO = { remoteDir, reader: new RemoteChunkReader(remoteDir), pool, level: opts.level, onProgress: opts.onProgress, pieces: opts.pieces };
    const written: UpdateWritten[] = [];
    try {
      const bases = readableBases(remoteDir, earlier, opts.updatesFrom, opts.bases);
      if (opts.solid) written.push(await writeStream(io, n, previousStream(remoteDir, earlier[earlier.length - 1], bases[0])));
      let first = true;
      for (const b of bases) {
        // Frames from the newest base only: clients further behind take the offer's frames, and
        // what they need of a delta from them is its index delta (a few bytes a changed entry).
        written.push(await writeUpdate(io, n, b, first));
        first = false;
      }
    } finally {
      io.reader.close();
    }
    return written;
  });
}

/**
 * The newest `reach` earlier snapshots of `earlier` (manifest order, oldest first) whose index
 * can be read, newest first; a base that cannot be read (deleted, damaged) is passed over: it
 * only costs its clients a larger download.
 */
function readableBases(remoteDir: string, earlier: ManifestSnapshot[], reach: number, read: Map<string, Named> = new Map()): Named[] {
  const out: Named[] = [];
  const seen = new Set<string>();
  for (const entry of reach > 0 ? earlier.slice(-reach).reverse() : []) {
    if (seen.has(entry.name)) continue;
    seen.add(entry.name);
    let named = read.get(entry.name);
    if (!named) {
      try {
        const bytes = readFileSync(join(remoteDir, 'snapshots', `${entry.name}.snap`));
        checkSnapshotBytes(entry, bytes);
        const body = snapshotBody(bytes);
        named = { name: entry.name, snapshot: decodeSnapshotBody(body, bytes[4]), body };
      } catch {
        continue;
      }
      read.set(entry.name, named);
    }
    out.push(named);
  }
  return out;
}

/** What every update of one publish shares: the compression workers, open packs. */
interface UpdateIO {
  remoteDir: string;
  reader: RemoteChunkReader;
  pool: CompressPool;
  level: number;
  onProgress?: (p: UpdateProgress) => void;
  pieces?: StreamPieceHashes;
}

/** The previous snapshot's stream from nothing, when it is segmented and its index reads: what the new stream may keep of it. */
function previousStream(remoteDir: string, entry: ManifestSnapshot | undefined, newestBase: Named | undefined): { name: string; head: UpdateHead; snapshot: Snapshot } | undefined {
  const ref = entry?.updates?.find((u) => u.from === '');
  if (!entry || !ref) return undefined;
  try {
    const head = decodeUpdateHead(readFileSync(join(remoteDir, 'updates', `${ref.name}.upd`)));
    if (!head.segments) return undefined;
    return { name: ref.name, head, snapshot: newestBase?.name === entry.name ? newestBase.snapshot : readRemoteSnapshot(remoteDir, entry) };
  } catch {
    return undefined;
  }
}

/** What makes two segments the same bytes: the zstd level and each frame's chunks (frameKey of each, in order). */
function segmentKey(level: number, frames: { yields: number[] }[], s: Snapshot): string {
  const h = createHash('sha256');
  for (const f of frames) h.update(frameKey(level, f.yields.map((i) => s.chunks.id(i)), []));
  return h.digest('hex');
}

/**
 * The update from nothing in segments (src/delta/build.ts planSegments), one frames file each. A
 * segment whose chunks and cut are those of a segment of the previous snapshot's stream keeps
 * that segment's file, by name, still on disk: a publish compresses only the segments whose files
 * changed, and the remote holds one copy of what did not. The frames of the segments compressed
 * afresh go through the pool together (one worker per core), each landing in its segment's file.
 */
async function writeStream(
  { remoteDir, reader, pool, level, onProgress, pieces }: UpdateIO,
  target: Named,
  previous: { name: string; head: UpdateHead; snapshot: Snapshot } | undefined,
): Promise<UpdateWritten> {
  const started = performance.now();
  const framesDir = join(remoteDir, 'frames');
  const planned = planSegments(target.snapshot);
  const kept = new Map<string, { segment: Segment; lengths: number[]; firstFrame: number }>();
  if (previous) {
    let k = 0;
    for (const segment of previous.head.segments!) {
      const firstFrame = k;
      const frames = previous.head.frames.slice(k, (k += segment.frames));
      if (frames.some((f) => f.yields.some((i) => i >= previous.snapshot.chunks.length))) continue;
      kept.set(segmentKey(level, frames, previous.snapshot), { segment, lengths: frames.map((f) => f.length), firstFrame });
    }
  }
  const reuse = planned.map((p) => {
    const old = kept.get(segmentKey(level, p.frames, target.snapshot));
    return old && existsSync(join(framesDir, `${old.segment.name}.frames`)) ? old : undefined;
  });
  const fresh = planned.filter((_, k) => !reuse[k]);
  // Frames in head order, and those of fresh segments in the order encodeFrames reads them.
  // Kept segments' frames by their frame in the previous stream, whose layer hashed their pieces.
  const freshFrames: number[] = [];
  const keptFrames = new Map<number, number>();
  let frameAt = 0;
  planned.forEach((p, k) => {
    for (let j = 0; j < p.frames.length; j++, frameAt++) {
      if (!reuse[k]) freshFrames.push(frameAt);
      else keptFrames.set(frameAt, reuse[k]!.firstFrame + j);
    }
  });
  pieces?.plan(target.snapshot, planned.flatMap((p) => p.frames.map((f) => f.yields)), freshFrames, previous && { stream: previous.name, frames: keptFrames });
  const contentOf = (f: PlannedSegment['frames'][number]) => f.yields.reduce((n, i) => n + target.snapshot.chunks.rawLength[i], 0);
  const bytesTotal = fresh.reduce((n, p) => n + p.frames.reduce((m, f) => m + contentOf(f), 0), 0);
  let bytesDone = 0;
  onProgress?.({ phase: 'updates', from: '', bytesDone, bytesTotal });
  // Frames of the fresh segments in one run through the pool; `write` opens and finishes their files in turn.
  const plan = fresh.flatMap((p) => p.frames);
  const written: { segment: Segment; lengths: number[] }[] = [];
  let file: ContentNamedFile | undefined;
  let lengths: number[] = [];
  let seg = 0;
  let frameNo = 0;
  try {
    await encodeFrames(plan, {
      target: target.snapshot,
      readChunk: (s, i) => {
        const bytes = reader.read(s, i);
        pieces?.feed(i, bytes);
        return bytes;
      },
      level,
      write: (frame) => {
        if (!file) {
          file = new ContentNamedFile(framesDir, 'frames');
          file.write(framesHeader());
        }
        file.write(frame);
        lengths.push(frame.length);
        bytesDone += contentOf(plan[frameNo++]);
        if (lengths.length === fresh[seg].frames.length) {
          const size = file.size;
          written.push({ segment: { name: file.finish(), size, frames: lengths.length }, lengths });
          file = undefined;
          lengths = [];
          seg++;
        }
        onProgress?.({ phase: 'updates', from: '', bytesDone, bytesTotal });
      },
      compress: (content, o) => pool.compress(content, o),
      inFlight: pool.size + 1,
    });
  } catch (e) {
    (file as ContentNamedFile | undefined)?.abort();
    throw e;
  }
  if (!planned.length) {
    // Nothing to stream (no file has content): one segment of no frames, so the head still names a file.
    const empty = new ContentNamedFile(framesDir, 'frames');
    empty.write(framesHeader());
    written.push({ segment: { name: empty.finish(), size: FRAMES_HEADER_SIZE, frames: 0 }, lengths: [] });
    planned.push({ files: [], frames: [] });
  }
  if (written.length) fsyncPath(framesDir);
  const segments: Segment[] = [];
  const frames: FrameEntry[] = [];
  let at = 0;
  let w = 0;
  planned.forEach((p, k) => {
    const s = reuse[k] ?? written[w++];
    let offset = at + FRAMES_HEADER_SIZE;
    p.frames.forEach((f, j) => {
      frames.push({ offset, length: s.lengths[j], yields: f.yields, bases: [] });
      offset += s.lengths[j];
    });
    segments.push(s.segment);
    at += s.segment.size;
  });
  const head = encodeUpdateHead({
    target: target.name,
    base: null,
    framesFile: segments[0]?.name ?? '',
    framesSize: at,
    indexDelta: new Uint8Array(0),
    indexBodySize: 0,
    indexVersion: snapshotVersion(target.snapshot),
    segments,
    frames,
  });
  const name = sha256Hex(head);
  writeFileAtomic(join(remoteDir, 'updates', `${name}.upd`), head);
  return {
    from: '',
    name,
    size: head.length,
    frames: frames.length,
    framesBytes: at,
    segments: segments.length,
    reusedSegments: reuse.filter(Boolean).length,
    ms: performance.now() - started,
  };
}

async function writeUpdate({ remoteDir, reader, pool, level, onProgress }: UpdateIO, target: Named, base: Named, withFrames = true): Promise<UpdateWritten> {
  const started = performance.now();
  const plan = withFrames ? planDeltaFrames(target.snapshot, base.snapshot) : [];
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
    frames = await encodeFrames(plan, {
      target: target.snapshot,
      base: base?.snapshot,
      readChunk: (s, i) => reader.read(s, i),
      level,
      write: (frame) => {
        file.write(frame);
        bytesDone += contentOf(plan[frameNo++]);
        onProgress?.({ phase: 'updates', from, bytesDone, bytesTotal });
      },
      compress: (content, o) => pool.compress(content, o),
      inFlight: pool.size + 1,
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
    indexDelta: base ? await pool.compress(target.body, { level: INDEX_DELTA_LEVEL, dictionary: base.body }) : new Uint8Array(0),
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
  /** Positions back from N whose contents have direct deltas (the ladder's rungs); the others take a waypoint. */
  rungs: number[];
  /** Frames planned but left out to keep within the budget (their clients take the stream or records). */
  dropped: number;
  ms: number;
}

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
 * The offer to N (src/delta/offer.ts, planned by src/delta/offer-plan.ts): direct deltas into N
 * from the contents of the ladder's rungs among the newest OFFER_REACH earlier snapshots, and
 * waypoint deltas into the rungs' versions from the snapshots between, while its frames stay
 * within `budget` bytes (docs/DESIGN-REMOTE-V3.md decision 4: the offer is at most one
 * compressed copy of N). Frames come planned newest origins first; one that does not fit is
 * passed over and smaller ones after it still tried. A frame the previous offer (`previous`: the
 * entry before N) holds with the same content and dictionary is copied from its frames file, not
 * compressed again: a publish then compresses what changed. Frames are compressed into a scratch
 * file first (the cut is known only once they are), then laid out in the frames file. Undefined
 * when there is nothing to offer (no earlier snapshot, or nothing changed).
 */
export function writeOffer(
  remoteDir: string,
  target: { name: string; snapshot: Snapshot },
  earlier: ManifestSnapshot[],
  opts: UpdatesOptions & { budget: number },
): Promise<OfferWritten | undefined> {
  return withPool(opts, (pool) => offerOn(pool, remoteDir, target, earlier, opts));
}

async function offerOn(
  pool: CompressPool,
  remoteDir: string,
  target: { name: string; snapshot: Snapshot },
  earlier: ManifestSnapshot[],
  opts: UpdatesOptions & { budget: number },
): Promise<OfferWritten | undefined> {
  const started = performance.now();
  const bases = opts.updatesFrom > 0 ? readableBases(remoteDir, earlier, OFFER_REACH, opts.bases) : [];
  if (!bases.length) return undefined;
  const nameOf = new Map(bases.map((b) => [b.snapshot, b.name]));
  const reader = new RemoteChunkReader(remoteDir);
  const readers = new Map<Snapshot, ReadFileRange>();
  const rangeOf = (s: Snapshot): ReadFileRange => {
    let r = readers.get(s);
    if (!r) readers.set(s, (r = fileRangeFromChunks(s, (i) => reader.read(s, i))));
    return r;
  };
  const earlierSnaps = bases.map((b) => b.snapshot);
  let rungs: number[];
  let plan: PlannedOfferFrame[];
  try {
    rungs = chooseRungs(await measuredChange(remoteDir, target.snapshot, earlierSnaps, rangeOf, pool));
    plan = planOffer(target.snapshot, earlierSnaps, rungs);
  } catch (e) {
    reader.close();
    throw e;
  }
  if (!plan.length) {
    reader.close();
    return undefined;
  }
  const newest = earlier[earlier.length - 1];
  const reuse = previousFrames(remoteDir, newest, bases[0]?.name === newest?.name ? bases[0].snapshot : undefined, new Map(bases.map((b) => [b.name, b.snapshot])), opts.level);
  const framesDir = join(remoteDir, 'frames');
  mkdirSync(framesDir, { recursive: true });
  const scratchPath = join(framesDir, `.tmp-scratch-${process.pid}.frames`);
  const scratch = openSync(scratchPath, 'w+');
  let scratchSize = 0;
  const contentOf = (f: PlannedOfferFrame) => f.yields.reduce((n, i) => n + (f.waypoint ?? target.snapshot).chunks.rawLength[i], 0);
  const bytesTotal = plan.reduce((n, f) => n + contentOf(f), 0);
  let bytesDone = 0;
  /**
   * Every planned frame compressed (copied when the previous offer has it) on the pool, a few
   * at a time, and laid in the scratch file in plan order.
   */
  const compressAll = async (): Promise<Compressed[]> => {
    const out: Compressed[] = [];
    const pending: { planned: PlannedOfferFrame; ranges: Compressed['ranges']; frame: Promise<Uint8Array>; reused: boolean; content: number }[] = [];
    const settle = async () => {
      const p = pending.shift()!;
      const frame = await p.frame;
      let done = 0;
      while (done < frame.length) done += writeSync(scratch, frame, done, frame.length - done, scratchSize + done);
      out.push({ planned: p.planned, ranges: p.ranges, at: scratchSize, length: frame.length, reused: p.reused });
      scratchSize += frame.length;
      bytesDone += p.content;
      opts.onProgress?.({ phase: 'updates', from: 'offer', bytesDone, bytesTotal });
    };
    try {
      for (const f of plan) {
        const from = f.waypoint ?? target.snapshot;
        const content = Buffer.concat(f.yields.map((i) => reader.read(from, i)));
        let ranges = f.bases.map(({ sha256, size, start, length }) => ({ sha256, size, start, length }));
        let dictionary: Uint8Array | undefined;
        if (f.bases.length) {
          const parts = f.bases.map((b) => rangeOf(b.snapshot)(b.snapshot.files[b.file], b.start, b.length));
          ({ dictionary, bases: ranges } = withoutDictMagic(parts.length === 1 ? parts[0] : Buffer.concat(parts), ranges));
        }
        const old = reuse.read(frameKey(opts.level, f.yields.map((i) => from.chunks.id(i)), ranges));
        const frame = old ? Promise.resolve(old) : pool.compress(content, { level: opts.level, dictionary });
        // Not awaited yet: a rejection is taken when its turn to be laid out comes.
        frame.catch(() => undefined);
        pending.push({ planned: f, ranges, frame, reused: old !== undefined, content: content.length });
        if (pending.length > pool.size) await settle();
      }
      while (pending.length) await settle();
    } finally {
      pending.length = 0;
    }
    return out;
  };
  /** In plan order, those whose total stays within `limit`; one that does not fit is passed over and smaller ones after it still tried. */
  const within = (all: Compressed[], limit: number): Compressed[] => {
    let total = 0;
    return all.filter((c) => total + c.length <= limit && (total += c.length) >= 0);
  };
  const file = new ContentNamedFile(framesDir, 'frames');
  const contents: BaseContent[] = [];
  const contentIndex = new Map<string, number>();
  const waypoints: string[] = [];
  const frames: OfferFrame[] = [];
  let kept: Compressed[];
  try {
    kept = within(await compressAll(), opts.budget);
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
    rungs,
    dropped: plan.length - frames.length,
    ms: performance.now() - started,
  };
}

/**
 * zstd level the ladder's change matrix is measured at: its pairs are every two versions of each
 * changed file (136 for vite's bundle over 16 releases), so level 19 would cost more than the
 * offer. Level 6 is the fastest that finds a large dictionary's matches: two vite bundles (1.4 MB)
 * one release apart took 1,074 B at level 6 in 78 ms (level 19: 702 B in 3.1 s), and 99,833 B at
 * level 3, 416,026 B at level 1 (their match finders miss most of a dictionary that size).
 */
const MEASURE_LEVEL = 6;

/**
 * The publisher's record of pairs of file contents it measured (remote root; never read by
 * clients): a pair's size depends on the two contents alone, so only pairs with a content new in
 * N are compressed again. Without it every publish measured every pair over the last 52
 * snapshots again: 136 pairs of vite's 1.4 MB bundle at level 6, most of a 13 s publish.
 */
export const CHANGE_RECORD = '.paquete-change.json';

/** Sizes by "old sha256>new sha256" ("" for from nothing), at MEASURE_LEVEL; empty when the record is missing, damaged or of another level. */
function readChangeRecord(remoteDir: string): Map<string, number> {
  try {
    const r = JSON.parse(readFileSync(join(remoteDir, CHANGE_RECORD), 'utf8')) as { version: number; level: number; pairs: Record<string, number> };
    if (r.version !== 1 || r.level !== MEASURE_LEVEL || typeof r.pairs !== 'object' || r.pairs === null) return new Map();
    return new Map(Object.entries(r.pairs).filter(([, n]) => Number.isSafeInteger(n) && n >= 0));
  } catch {
    return new Map();
  }
}

/**
 * src/delta/offer-plan.ts changeMatrix over [N, ...earlier], each pair of versions compressed at
 * MEASURE_LEVEL on the pool unless CHANGE_RECORD has its size. changeMatrix asks for its pairs
 * in a fixed order: a first pass lists them, those not recorded are compressed a few at a time,
 * and a second pass reads the sizes back in that order. The record is rewritten with this
 * matrix's pairs only (older ones name contents no retained snapshot holds).
 */
async function measuredChange(remoteDir: string, target: Snapshot, earlier: Snapshot[], rangeOf: (s: Snapshot) => ReadFileRange, pool: CompressPool): Promise<number[][]> {
  const files = fileVersions(target, earlier);
  const n = earlier.length + 1;
  const pairs: { from?: Version; to: Version }[] = [];
  changeMatrix(files, n, (_, from, to) => pairs.push({ from, to }) && 0);
  const read = (v: Version) => {
    const f = v.snapshot.files[v.file];
    return rangeOf(v.snapshot)(f, 0, f.size);
  };
  const recorded = readChangeRecord(remoteDir);
  const keyOf = (p: { from?: Version; to: Version }) => `${p.from?.sha256 ?? ''}>${p.to.sha256}`;
  const sizes: number[] = pairs.map((p) => recorded.get(keyOf(p)) ?? -1);
  let next = 0;
  const lane = async () => {
    for (let k = next++; k < pairs.length; k = next++) {
      if (sizes[k] >= 0) continue;
      const content = read(pairs[k].to);
      let dictionary = pairs[k].from ? read(pairs[k].from!) : undefined;
      // Within the window a reader accepts: the old version's end, nearest what follows it.
      const room = 2 ** MAX_WINDOW_LOG - content.length;
      if (dictionary && dictionary.length > room) dictionary = room > 0 ? dictionary.subarray(dictionary.length - room) : undefined;
      if (dictionary) dictionary = withoutDictMagic(dictionary, [{ start: 0, length: dictionary.length }]).dictionary;
      sizes[k] = (await pool.compress(content, { level: MEASURE_LEVEL, dictionary })).length;
    }
  };
  await Promise.all(Array.from({ length: pool.size + 1 }, lane));
  const record: Record<string, number> = {};
  pairs.forEach((p, k) => (record[keyOf(p)] = sizes[k]));
  writeFileAtomic(join(remoteDir, CHANGE_RECORD), Buffer.from(JSON.stringify({ version: 1, level: MEASURE_LEVEL, pairs: record }) + '\n'));
  let k = 0;
  return changeMatrix(files, n, () => sizes[k++]);
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
function previousFrames(remoteDir: string, entry: ManifestSnapshot | undefined, snapshot: Snapshot | undefined, byName: Map<string, Snapshot>, level: number) {
  const at = new Map<string, { offset: number; length: number }>();
  let fd: number | undefined;
  try {
    if (entry?.offer && snapshot) {
      const head = decodeOfferHead(readFileSync(join(remoteDir, 'updates', `${entry.offer.name}.upd`)));
      for (const f of head.frames) {
        // A waypoint frame yields chunks of its waypoint: reused while that snapshot is still read.
        const from = f.target === 0 ? snapshot : byName.get(head.waypoints[f.target - 1]);
        if (!from || f.yields.some((i) => i >= from.chunks.length)) continue;
        const ids = f.yields.map((i) => from.chunks.id(i));
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
