import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { chunkId, idToHex as hex } from '../chunk/index.js';
import { BaseRange, FrameEntry, UpdateHead } from '../delta/update.js';
import { decodeFrame, StreamingFrame } from '../delta/decode-thread.js';
import { baseBytes, fileRangeFromChunks, MAX_DICTIONARY } from '../delta/build.js';
import { Remote } from '../remote/remote.js';
import { ChunkStore } from '../store/store.js';
import { Snapshot } from '../snapshot/snapshot.js';
import { FetchEvents } from './fetcher.js';
import { FrameOption, FrameRange } from './planner.js';
import { TEMP_FILE } from './tree-writer.js';

const PART = /^frame-([0-9a-f]{16})-(\d+)\.part$/;

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
  for (const k of keep) for (const f of k.head.frames) frameAt.set(`${k.head.framesFile.slice(0, 16)}-${f.offset}`, { frame: f, snapshot: k.snapshot });
  for (const name of readdirSync(partDir)) {
    const m = PART.exec(name);
    const kept = m ? frameAt.get(`${m[1]}-${m[2]}`) : undefined;
    const useless = m && (!kept || kept.frame.yields.every((i) => present.has(kept.snapshot.chunks[i]?.id)));
    if (useless || TEMP_FILE.test(name)) rmSync(join(partDir, name), { force: true });
  }
}

/** Whether any frame prefix is kept in `partDir` that belongs to none of `heads`. */
export function foreignParts(partDir: string, heads: (UpdateHead | undefined)[]): boolean {
  const ours = new Set(heads.map((h) => h?.framesFile.slice(0, 16)));
  return readdirSync(partDir).some((name) => {
    const m = PART.exec(name);
    return m !== null && !ours.has(m[1]);
  });
}

const partPath = (partDir: string, head: UpdateHead, f: number) => join(partDir, `frame-${head.framesFile.slice(0, 16)}-${head.frames[f].offset}.part`);

/**
 * Compressed bytes an earlier session kept of each frame of `head` it was cut inside (frame index
 * → bytes of its `.part`): what the planner no longer pays for. A `.part` as long as its frame or
 * longer is no resumable prefix (a kill after the last byte): it counts for nothing.
 */
export function keptPrefixes(partDir: string, head: UpdateHead): Map<number, number> {
  const kept = new Map<number, number>();
  for (let f = 0; f < head.frames.length; f++) {
    const p = partPath(partDir, head, f);
    const size = existsSync(p) ? statSync(p).size : 0;
    if (size > 0 && size < head.frames[f].length) kept.set(f, size);
  }
  return kept;
}

/** An update head as a client uses it: with the base snapshot its dictionaries point into. */
export interface LoadedUpdate {
  head: UpdateHead;
  /** Null for an update from nothing. */
  base: Snapshot | null;
}

export const framesPath = (u: UpdateHead): string => `frames/${u.framesFile}.frames`;

/** The chunks of `base` that a dictionary range touches; undefined for a range outside the file. */
export function baseChunks(base: Snapshot, r: BaseRange): number[] | undefined {
  const file = base.files[r.file];
  if (!file || r.start + r.length > file.size) return undefined;
  const chunks: number[] = [];
  let at = 0;
  for (const i of file.chunks) {
    const len = base.chunks[i].rawLength;
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
    if (fr.yields.every((i) => present.has(snapshot.chunks[i].id))) continue;
    let decodable = true;
    if (fr.bases.reduce((n, r) => n + r.length, 0) > MAX_DICTIONARY) return [];
    for (const r of fr.bases) {
      const touched = u.base ? baseChunks(u.base, r) : undefined;
      if (!touched) return [];
      if (touched.some((i) => !baseHeld.has(u.base!.chunks[i].id))) decodable = false;
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
  const raw = await store.getMany(needed.map((i) => base.chunks[i].id));
  const byIndex = new Map(needed.map((i, k) => [i, raw[k]]));
  return baseBytes(base, fr.bases, fileRangeFromChunks(base, (i) => byIndex.get(i)!));
}

export interface FrameFetchOptions extends FetchEvents {
  signal?: AbortSignal;
  /** Where the .part files of frames under way are kept. */
  partDir: string;
  /** Chunk ids the store already holds (a frame brings some of those too): not stored again. */
  present: Set<bigint>;
}

/**
 * Fetches frames of an update into the store. Bytes are decoded as they arrive, each chunk
 * checked against its id and stored as the record the remote's pack holds for it (so this store
 * can serve it to LAN peers as virtual packs), and committed in batches like fetchRanges. The
 * compressed bytes of the frame under way are kept in a `.part` file beside, so a session cut
 * mid-frame resumes at the next byte instead of fetching the frame again.
 */
export async function fetchFrames(
  remote: Remote,
  snapshot: Snapshot,
  u: LoadedUpdate,
  ranges: FrameRange[],
  store: ChunkStore,
  opts: FrameFetchOptions,
): Promise<void> {
  const path = framesPath(u.head);
  const partOf = (f: number) => partPath(opts.partDir, u.head, f);
  // The planner priced each range from its `resume`, the kept bytes it read (keptPrefixes).
  for (const request of ranges) {
    opts.signal?.throwIfAborted();
    let current: FrameReader | undefined;
    let next = 0;
    let pos = request.start;
    const open = async (resumeFrom: number) => {
      const f = request.frames[next++];
      current = new FrameReader(u, f, snapshot, store, partOf(f), opts);
      await current.start(await dictionaryOf(u, u.head.frames[f], store), resumeFrom);
    };
    if (request.resume) await open(request.resume);
    const sink = async (bytes: Uint8Array) => {
      while (bytes.length) {
        if (!current) await open(0);
        const take = Math.min(bytes.length, current!.remaining);
        await current!.push(bytes.subarray(0, take));
        bytes = bytes.subarray(take);
        pos += take;
        if (current!.remaining === 0) {
          await current!.finish();
          current = undefined;
        }
      }
      await store.flush(false);
      await current?.report();
    };
    try {
      // A prefix that fits the budget is kept in the frame's .part file for the next session.
      await remote.getRange(path, { start: request.start, end: request.end }, sink, { signal: opts.signal, prefixOk: true });
      if (pos !== request.end) throw new PaqueteError('REMOTE_CHANGED', `frames file ended at ${pos}, before ${request.end}`);
      await current?.settle();
    } catch (e) {
      // The link went away mid-frame: what arrived is kept in the .part, and what it decodes to
      // is stored now, not left to the next session (a drop after 1 MB of a stream stored no
      // chunk while the decoder lagged). A frame that does not decode is the first error.
      const cut = (e as PaqueteError).code !== 'DAMAGED_PACK' && current !== undefined;
      if (cut) await current!.settle().catch(() => {});
      throw e;
    } finally {
      current?.close();
      await store.flush();
    }
  }
}

/** One frame being received: decoder, chunk splitter, and the .part file of what came so far. */
class FrameReader {
  private decoding!: StreamingFrame;
  private fd: number | undefined;
  private nextYield = 0;
  private arrived: number[] = [];
  remaining: number;
  private readonly entry: FrameEntry;

  constructor(
    private readonly u: LoadedUpdate,
    private readonly frame: number,
    private readonly snapshot: Snapshot,
    private readonly store: ChunkStore,
    private readonly partPath: string,
    private readonly opts: FrameFetchOptions,
  ) {
    this.entry = u.head.frames[frame];
    this.remaining = this.entry.length;
  }

  async start(dictionary: Uint8Array | undefined, resumeFrom: number): Promise<void> {
    const expected = this.entry.yields.reduce((n, i) => n + this.snapshot.chunks[i].rawLength, 0);
    this.decoding = decodeFrame(expected, dictionary);
    if (resumeFrom > 0) {
      const kept = readFileSync(this.partPath).subarray(0, resumeFrom);
      // Planned from this file's size under the same lock: shorter means someone else touched it.
      if (kept.length !== resumeFrom) this.fail(new PaqueteError('DAMAGED_PACK', `its kept prefix is ${kept.length} bytes, not ${resumeFrom}`));
      this.remaining -= kept.length;
      await this.decode(kept);
    }
    this.fd = openSync(this.partPath, resumeFrom > 0 ? 'a' : 'w');
  }

  async push(bytes: Uint8Array): Promise<void> {
    // Kept before decoding: a kill between the two re-decodes these bytes, never refetches them.
    writeSync(this.fd!, bytes);
    this.remaining -= bytes.length;
    await this.decode(bytes);
  }

  private async decode(bytes: Uint8Array): Promise<void> {
    try {
      this.decoding.push(bytes);
      await this.split();
    } catch (e) {
      this.fail(e);
    }
  }

  /** Drops the frame's kept bytes and rethrows, saying which frame is corrupt if that is it. */
  private fail(e: unknown): never {
    this.close();
    rmSync(this.partPath, { force: true });
    if (e instanceof PaqueteError && e.code === 'DAMAGED_PACK') {
      throw new PaqueteError('DAMAGED_PACK', `frame ${this.frame} of ${framesPath(this.u.head)} is corrupt: ${e.message}`);
    }
    throw e;
  }

  /** Cuts decoded bytes into the frame's chunks, checks and stores each. */
  private async split(): Promise<void> {
    const yields = this.entry.yields;
    while (this.nextYield < yields.length) {
      const i = yields[this.nextYield];
      const c = this.snapshot.chunks[i];
      // Mostly a view of decoded output, which the store copies.
      const raw = this.decoding.take(c.rawLength);
      if (!raw) return;
      this.nextYield++;
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
   * Stores every chunk the bytes pushed so far decode to: for a frame a request ends inside (a
   * prefix the budget allowed), whose decoding may still be under way on the decode worker.
   */
  async settle(): Promise<void> {
    try {
      await this.decoding.settle(() => this.splitAndReport());
    } catch (e) {
      this.fail(e);
    }
    await this.store.flush(false);
    await this.report();
  }

  async finish(): Promise<void> {
    try {
      await this.decoding.end(() => this.splitAndReport());
      await this.split();
      if (this.nextYield !== this.entry.yields.length) throw new PaqueteError('DAMAGED_PACK', 'ended before its last chunk');
    } catch (e) {
      this.fail(e);
    }
    await this.store.flush(false);
    await this.report();
    this.close();
    rmSync(this.partPath, { force: true });
  }

  close(): void {
    this.decoding?.close();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
