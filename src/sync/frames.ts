import { closeSync, existsSync, fstatSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { chunkId, idToHex as hex } from '../chunk/index.js';
import { BaseRange, FrameEntry, frameSource, UpdateHead } from '../delta/update.js';
import { decodeFrame, StreamingFrame } from '../delta/decode-thread.js';
import { baseBytes, fileRangeFromChunks, MAX_DICTIONARY } from '../delta/build.js';
import { Remote } from '../remote/remote.js';
import { ChunkStore } from '../store/store.js';
import { Snapshot } from '../snapshot/snapshot.js';
import { PieceChecker, StreamDerivation, VerifiedChunk } from '../snapshot/layers.js';
import { FetchEvents } from './fetcher.js';
import { FrameOption, FrameRange } from './planner.js';
import { TEMP_FILE } from './tree-writer.js';
import { Landing, readBack } from './landing.js';

const PART = /^frame-([0-9a-f]{16})-(\d+)\.part$/;
/** A kept prefix is read back and decoded this much at a time. */
const RESUME_PIECE = 4 << 20;

/** An update in use and the snapshot its frames yield chunks of. */
export interface UpdateInUse {
  head: UpdateHead;
  snapshot: Snapshot;
}

/**
 * Deletes what no session will resume (run under the working directory's lock): kept frame
 * prefixes of other updates than those in `keep` (an older snapshot's, say) and of their frames
 * whose chunks are all in the store already (a kill after the last byte of a frame, before its
 * prefix was deleted), and the temp files of assemblies a kill interrupted.
 */
export function removeStaleParts(partDir: string, keep: UpdateInUse[], present: Set<bigint>): void {
  const frameAt = new Map<string, { frame: FrameEntry; snapshot: Snapshot }>();
  for (const k of keep) for (const f of k.head.frames) frameAt.set(partKey(k.head, f), { frame: f, snapshot: k.snapshot });
  for (const name of readdirSync(partDir)) {
    const m = PART.exec(name);
    const kept = m ? frameAt.get(`${m[1]}-${m[2]}`) : undefined;
    const useless = m && (!kept || kept.frame.yields.every((i) => i < kept.snapshot.chunks.length && present.has(kept.snapshot.chunks.id(i))));
    if (useless || TEMP_FILE.test(name)) rmSync(join(partDir, name), { force: true });
  }
}

/** Whether any frame prefix is kept in `partDir` that belongs to none of `heads`. */
export function foreignParts(partDir: string, heads: (UpdateHead | undefined)[]): boolean {
  const ours = new Set(heads.flatMap((h) => (!h ? [] : h.segments ? h.segments.map((s) => s.name.slice(0, 16)) : [h.framesFile.slice(0, 16)])));
  return readdirSync(partDir).some((name) => {
    const m = PART.exec(name);
    return m !== null && !ours.has(m[1]);
  });
}

/**
 * A frame's `.part` is named by its frames file and its offset in that file: a segment that the
 * next snapshot's stream keeps by name keeps its frames' prefixes too (a card cut inside it, then
 * a release, resumes it in the new stream).
 */
function partKey(head: UpdateHead, f: FrameEntry): string {
  const at = frameSource(head, f.offset);
  return `${at.file.slice(0, 16)}-${at.offset}`;
}

const partPath = (partDir: string, head: UpdateHead, f: number) => join(partDir, `frame-${partKey(head, head.frames[f])}.part`);

/**
 * Compressed bytes an earlier session kept of each frame of `head` it was cut or killed inside
 * (frame index → bytes of its `.part`): what the planner no longer pays for. A `.part` as long as
 * its frame is the whole frame (a kill after its last byte landed, before its decoding ended): it
 * costs nothing more and is decoded from disk. One longer than its frame is no frame's: ignored
 * (and overwritten if the frame is fetched).
 */
export function keptPrefixes(partDir: string, head: UpdateHead): Map<number, number> {
  const kept = new Map<number, number>();
  for (let f = 0; f < head.frames.length; f++) {
    const p = partPath(partDir, head, f);
    const size = existsSync(p) ? statSync(p).size : 0;
    if (size > 0 && size <= head.frames[f].length) kept.set(f, size);
  }
  return kept;
}

/** An update head as a client uses it: with the base snapshot its dictionaries point into. */
export interface LoadedUpdate {
  head: UpdateHead;
  /** Null for an update from nothing. */
  base: Snapshot | null;
}

/** The frames file of an update (a segmented one's first: every segment's path is as long, so a request costs the same). */
export const framesPath = (u: UpdateHead): string => `frames/${u.framesFile}.frames`;

/** The chunks of `base` that a dictionary range touches; undefined for a range outside the file. */
export function baseChunks(base: Snapshot, r: BaseRange): number[] | undefined {
  const file = base.files[r.file];
  if (!file || r.start + r.length > file.size) return undefined;
  const chunks: number[] = [];
  let at = 0;
  for (const i of file.chunks) {
    const len = base.chunks.rawLength[i];
    if (at + len > r.start && at < r.start + r.length) chunks.push(i);
    at += len;
  }
  return chunks;
}

/**
 * The frames this client can decode and that bring something it lacks: every chunk their
 * dictionaries need is in the store (`baseHeld`: which of the base snapshot's chunks are). Anything out of range in the head makes the whole update
 * unusable (it is then ignored, and records are fetched instead).
 */
export function usableFrames(
  u: LoadedUpdate,
  snapshot: Snapshot,
  present: Set<bigint>,
  baseHeld: Set<bigint>,
  kept: Map<number, number> = new Map(),
): FrameOption[] {
  const out: FrameOption[] = [];
  for (let f = 0; f < u.head.frames.length; f++) {
    const fr = u.head.frames[f];
    if (fr.yields.some((i) => i >= snapshot.chunks.length)) return [];
    if (fr.yields.every((i) => present.has(snapshot.chunks.id(i)))) continue;
    let decodable = true;
    if (fr.bases.reduce((n, r) => n + r.length, 0) > MAX_DICTIONARY) return [];
    for (const r of fr.bases) {
      const touched = u.base ? baseChunks(u.base, r) : undefined;
      if (!touched) return [];
      if (touched.some((i) => !baseHeld.has(u.base!.chunks.id(i)))) decodable = false;
    }
    if (decodable) out.push({ frame: f, start: fr.offset, end: fr.offset + fr.length, yields: fr.yields, kept: kept.get(f) });
  }
  return out;
}

/** A frame's dictionary: its base ranges read from the store, laid end to end. */
async function dictionaryOf(u: LoadedUpdate, fr: FrameEntry, store: ChunkStore): Promise<Uint8Array | undefined> {
  if (fr.bases.length === 0) return undefined;
  const base = u.base!;
  const needed = [...new Set(fr.bases.flatMap((r) => baseChunks(base, r) ?? []))];
  const raw = await store.getMany(needed.map((i) => base.chunks.id(i)));
  const byIndex = new Map(needed.map((i, k) => [i, raw[k]]));
  return baseBytes(base, fr.bases, fileRangeFromChunks(base, (i) => byIndex.get(i)!));
}

export interface FrameFetchOptions extends FetchEvents {
  signal?: AbortSignal;
  /** Where the .part files of frames under way are kept. */
  partDir: string;
  /** Chunk ids the store already holds (a frame brings some of those too): not stored again. */
  present: Set<bigint>;
  /**
   * The frames are the stream from nothing of a skeleton index (src/sync/derived.ts): their
   * content is checked piece by piece against the file layer's signed hashes, which derives the
   * ids, instead of chunk by chunk against ids the client does not have.
   */
  derive?: { derivation: StreamDerivation; onDerived: (chunks: VerifiedChunk[], files: number[]) => void };
}

/**
 * Fetches frames of an update into the store. The compressed bytes of each frame are landed in
 * its `.part` file as they are read off the connection, and decoded behind (src/sync/landing.ts):
 * each chunk checked against its id and stored as the record the remote's pack holds for it (so
 * this store can serve it to LAN peers as virtual packs), and committed as it comes. A session
 * cut or killed mid-frame resumes at the next byte the `.part` lacks, and one killed after a
 * frame's last byte decodes it from the `.part` without fetching anything.
 */
export async function fetchFrames(
  remote: Remote,
  snapshot: Snapshot,
  u: LoadedUpdate,
  ranges: FrameRange[],
  store: ChunkStore,
  opts: FrameFetchOptions,
): Promise<void> {
  const partOf = (f: number) => partPath(opts.partDir, u.head, f);
  // The planner priced each range from its `resume`, the kept bytes it read (keptPrefixes).
  for (const request of ranges) {
    opts.signal?.throwIfAborted();
    const landing = new Landing(opts.signal);
    const readers: FrameReader[] = [];
    let landingInto: FrameReader | undefined; // the frame the next bytes belong to
    let next = 0;
    let pos = request.start;
    const open = (resumeFrom: number): FrameReader => {
      const f = request.frames[next++];
      const reader = new FrameReader(u, f, snapshot, store, partOf(f), opts, resumeFrom);
      readers.push(reader);
      landing.after(async () => reader.start(await dictionaryOf(u, u.head.frames[f], store)));
      return reader;
    };
    /** All of the frame's bytes are landed: decode its end behind the rest. */
    const landed = (reader: FrameReader) => {
      landing.after(() => reader.finish());
      landingInto = undefined;
    };
    try {
      if (request.resume) {
        landingInto = open(request.resume);
        if (landingInto.remaining === 0) landed(landingInto);
      }
      const sink = (bytes: Uint8Array): Promise<void> | undefined => {
        if (landing.failed) throw landing.failed.e;
        while (bytes.length) {
          const reader = (landingInto ??= open(0));
          const piece = bytes.subarray(0, Math.min(bytes.length, reader.remaining));
          const at = reader.land(piece);
          landing.use(piece, reader.fd, at, (b) => reader.decode(b));
          bytes = bytes.subarray(piece.length);
          pos += piece.length;
          if (reader.remaining === 0) landed(reader);
        }
        return remote.local ? landing.caughtUp() : undefined;
      };
      // A prefix that fits the budget is kept in the frame's .part file for the next session.
      const at = frameSource(u.head, request.start, request.end);
      const shift = request.start - at.offset;
      await remote.getRange(`frames/${at.file}.frames`, { start: at.offset, end: request.end - shift }, sink, { signal: landing.signal, prefixOk: true });
      await landing.drained();
      if (pos !== request.end) throw new PaqueteError('REMOTE_CHANGED', `frames file ended at ${pos}, before ${request.end}`);
      await landingInto?.settle();
    } catch (e0) {
      // Everything landed is used first (up to a use that fails).
      await landing.drained().catch(() => {});
      // A frame that did not decode stopped the fetch: that is the error, not the abort.
      const e = landing.failed ? landing.failed.e : e0;
      // The link went away mid-frame: what arrived is kept in the .part, and what it decodes to
      // is stored now, not left to the next session (a drop after 1 MB of a stream stored no
      // chunk while the decoder lagged).
      const cut = (e as PaqueteError).code !== 'DAMAGED_PACK' && landingInto !== undefined && !landing.failed;
      if (cut) await landingInto!.settle().catch(() => {});
      throw e;
    } finally {
      for (const r of readers) r.close();
      await store.flush();
    }
  }
}

/**
 * One frame being received: its `.part` file (the compressed bytes landed so far), and behind it
 * the decoder and the splitting into checked chunks.
 */
class FrameReader {
  private decoding: StreamingFrame | undefined;
  /** The `.part` file, open for appending and reading back. */
  fd: number;
  /** Bytes of the frame in the `.part` file. */
  private landedBytes: number;
  private nextYield = 0;
  private arrived: number[] = [];
  private readonly entry: FrameEntry;
  private readonly pieces: PieceChecker | undefined;

  constructor(
    private readonly u: LoadedUpdate,
    private readonly frame: number,
    private readonly snapshot: Snapshot,
    private readonly store: ChunkStore,
    private readonly partPath: string,
    private readonly opts: FrameFetchOptions,
    private readonly resumeFrom: number,
  ) {
    this.entry = u.head.frames[frame];
    this.pieces = opts.derive?.derivation.frame(frame, opts.derive.onDerived);
    this.fd = openSync(partPath, resumeFrom > 0 ? 'a+' : 'w+');
    this.landedBytes = resumeFrom;
    // Planned from this file's size under the same lock: another size means someone else touched it.
    const size = fstatSync(this.fd).size;
    if (size !== resumeFrom) this.fail(new PaqueteError('DAMAGED_PACK', `its kept prefix is ${size} bytes, not ${resumeFrom}`));
  }

  /** Compressed bytes of the frame not landed yet. */
  get remaining(): number {
    return this.entry.length - this.landedBytes;
  }

  /** Writes bytes of the frame to its `.part` (synchronously: see Landing); returns where they went. */
  land(bytes: Uint8Array): number {
    const at = this.landedBytes;
    for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done, bytes.length - done);
    this.landedBytes += bytes.length;
    return at;
  }

  /** Starts the decoder (its dictionary read from the store) on what an earlier session kept. */
  async start(dictionary: Uint8Array | undefined): Promise<void> {
    const expected = this.entry.yields.reduce((n, i) => n + this.snapshot.chunks.rawLength[i], 0);
    this.decoding = decodeFrame(expected, dictionary);
    // In pieces: a kept prefix of a 128 MiB frame of packed data is nearly that many bytes.
    for (let at = 0; at < this.resumeFrom; at += RESUME_PIECE) await this.decode(readBack(this.fd, at, Math.min(RESUME_PIECE, this.resumeFrom - at)));
  }

  /** Decodes landed bytes; stores, commits and reports the chunks they complete. */
  async decode(bytes: Uint8Array): Promise<void> {
    try {
      this.decoding!.push(bytes);
      await this.split();
    } catch (e) {
      await this.failAfterReporting(e);
    }
    await this.store.flush(false);
    await this.report();
  }

  /**
   * Reports the chunks checked and stored before the failure showed, then fails. On the decode
   * worker a frame's failure is a message that may come while `split` is storing its output: the
   * chunks stored up to then are in the store but were not reported, so the plan made after the
   * fallback counted them as held while the placer never heard of them, and their files were
   * never placed (delta-sync's corrupt-frame case exited 1 now and then on a busy machine).
   */
  private async failAfterReporting(e: unknown): Promise<never> {
    try {
      await this.store.flush(false);
      await this.report();
    } catch {
      // The frame's own failure is the one to tell; a store that cannot flush fails again next.
    }
    this.fail(e);
  }

  /** Drops the frame's kept bytes and rethrows, saying which frame is corrupt if that is it. */
  private fail(e: unknown): never {
    this.close();
    rmSync(this.partPath, { force: true });
    if (e instanceof PaqueteError && e.code === 'DAMAGED_PACK') {
      throw new PaqueteError('DAMAGED_PACK', `frame ${this.frame} of frames/${frameSource(this.u.head, this.entry.offset).file}.frames is corrupt: ${e.message}`);
    }
    throw e;
  }

  /** Cuts decoded bytes into the frame's chunks, checks and stores each. */
  private async split(): Promise<void> {
    const yields = this.entry.yields;
    while (this.nextYield < yields.length) {
      const i = yields[this.nextYield];
      const c = this.snapshot.chunks.entry(i);
      // Mostly a view of decoded output, which the store copies.
      const raw = this.decoding!.take(c.rawLength);
      if (!raw) return;
      this.nextYield++;
      if (this.pieces) {
        // Held until their piece checks; then their ids are derived from the same bytes.
        for (const v of this.pieces.push(i, raw)) {
          const id = this.snapshot.chunks.id(v.index);
          if (!this.opts.present.has(id)) await this.store.addRaw(id, v.raw);
          this.arrived.push(v.index);
        }
        continue;
      }
      if (chunkId(raw) !== c.id) throw new PaqueteError('DAMAGED_PACK', `chunk ${hex(c.id)} decodes to other bytes`);
      if (!this.opts.present.has(c.id)) await this.store.addRaw(c.id, raw);
      this.arrived.push(i);
    }
  }

  /** While the decode worker catches up: each piece of output stored, committed and reported as it comes. */
  private async splitAndReport(): Promise<void> {
    await this.split();
    await this.store.flush(false);
    await this.report();
  }

  /** Tells the session which chunks are now in the store. */
  async report(): Promise<void> {
    if (!this.arrived.length) return;
    const done = this.arrived;
    this.arrived = [];
    await this.opts.onChunks?.(done);
  }

  /**
   * Stores every chunk the bytes decoded so far yield: for a frame a request ends inside (a
   * prefix the budget allowed, a cut), whose decoding may still be under way on the decode worker.
   */
  async settle(): Promise<void> {
    if (!this.decoding) return;
    try {
      await this.decoding.settle(() => this.splitAndReport());
    } catch (e) {
      await this.failAfterReporting(e);
    }
    await this.store.flush(false);
    await this.report();
  }

  async finish(): Promise<void> {
    try {
      await this.decoding!.end(() => this.splitAndReport());
      await this.split();
      if (this.nextYield !== this.entry.yields.length) throw new PaqueteError('DAMAGED_PACK', 'ended before its last chunk');
    } catch (e) {
      await this.failAfterReporting(e);
    }
    await this.store.flush(false);
    await this.report();
    this.close();
    rmSync(this.partPath, { force: true });
  }

  close(): void {
    this.decoding?.close();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
