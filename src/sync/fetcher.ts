import { closeSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { chunkId, idToHex as hex } from '../chunk/index.js';
import { Remote } from '../remote/remote.js';
import { decodePayload, PACK_HEADER_SIZE, RecordStream } from '../store/pack.js';
import { ChunkStore } from '../store/store.js';
import { recordLength, Snapshot } from '../snapshot/snapshot.js';
import { FetchRange } from './planner.js';
import { Landing } from './landing.js';

export interface FetchEvents {
  /** Some chunks arrived and are durable in the store. */
  onChunks?: (chunkIndices: number[]) => void | Promise<void>;
}

/** A range's journal: `range-<first 16 hex digits of the pack>-<offset of its first byte>.part`. */
const JOURNAL = /^range-[0-9a-f]{16}-\d+\.part$/;

/**
 * Fetches ranges of remote packs into the store. Each arriving record is checked against the
 * snapshot before it is kept: the id, length and representation it was promised at that offset,
 * and its decoded bytes must hash to that id. With `partDir`, the bytes of a range are landed in
 * a journal there as they are read off the connection, before they are parsed (src/sync/
 * landing.ts), and the journal is deleted once they are all used: a process killed meanwhile
 * leaves them on disk, and the next session stores every intact record of it
 * (absorbLandedRanges) before it plans. Whole records are committed as they are checked, so a
 * cut connection costs at most the one record it was inside.
 */
export async function fetchRanges(
  remote: Remote,
  snapshot: Snapshot,
  ranges: FetchRange[],
  store: ChunkStore,
  opts: FetchEvents & { signal?: AbortSignal; partDir?: string } = {},
): Promise<void> {
  for (const range of ranges) {
    opts.signal?.throwIfAborted();
    const expected = new Map(Array.from(range.chunks, (i) => [snapshot.chunks.offset[i], i] as const));
    const stream = new RecordStream();
    let offset = Math.max(range.start, PACK_HEADER_SIZE);
    // A range from byte 0 (servers that ignore Range) begins with the pack header: skip it.
    let skip = offset - range.start;
    const landing = new Landing(opts.signal);
    // A directory on this machine cannot be cut half way: nothing to land ahead.
    const journalPath = opts.partDir && !remote.local ? join(opts.partDir, `range-${range.pack.slice(0, 16)}-${offset}.part`) : undefined;
    let fd = journalPath ? openSync(journalPath, 'w+') : -1;
    let landed = 0;
    const use = async (bytes: Uint8Array) => {
      const arrived: number[] = [];
      for (const rec of stream.push(bytes)) {
        const at = offset;
        offset += rec.record.length;
        const i = expected.get(at);
        if (i === undefined) continue; // a gap record fetched to save a request
        const c = snapshot.chunks.entry(i);
        if (rec.header.id !== c.id || rec.record.length !== recordLength(c) || rec.header.repr !== c.repr || rec.header.rawLength !== c.rawLength) {
          throw new PaqueteError('REMOTE_CHANGED', `pack ${range.pack.slice(0, 12)} at ${at} does not hold chunk ${hex(c.id)} as the snapshot says`);
        }
        const raw = decodePayload(rec.header, rec.payload);
        if (chunkId(raw) !== c.id) {
          throw new PaqueteError('DAMAGED_PACK', `chunk ${hex(c.id)} from the remote is corrupt (its bytes do not match its id)`);
        }
        await store.addRecord(c.id, rec.record);
        arrived.push(i);
      }
      if (arrived.length) {
        // A soft commit per arrival: a kill -9 from here on loses none of these chunks.
        await store.flush(false);
        await opts.onChunks?.(arrived);
      }
    };
    const sink = (bytes: Uint8Array): Promise<void> | undefined => {
      if (landing.failed) throw landing.failed.e;
      if (skip > 0) {
        const n = Math.min(skip, bytes.length);
        skip -= n;
        bytes = bytes.subarray(n);
        if (!bytes.length) return undefined;
      }
      if (fd < 0) {
        landing.after(() => use(bytes));
        return landing.caughtUp();
      }
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
      landing.use(bytes, fd, landed, use);
      landed += bytes.length;
      return undefined;
    };
    try {
      // The remote reserves each try from the session's budget; where the budget ends inside the
      // range (retries spent some), the prefix it pays for still brings whole records.
      await remote.getRange(`packs/${range.pack}.pack`, { start: range.start, end: range.end }, sink, { signal: landing.signal, prefixOk: true });
      await landing.drained();
    } catch (e) {
      // Every landed byte is used before the fetch ends (a record that fails its check is the error).
      await landing.drained().catch(() => {});
      throw landing.failed ? landing.failed.e : e;
    } finally {
      // All that landed is stored now (but the torn record at its end, which no session resumes).
      if (fd >= 0) closeSync(fd);
      fd = -1;
      if (journalPath) rmSync(journalPath, { force: true });
      // Whatever arrived whole is made durable even when the range failed midway.
      await store.flush();
    }
  }
}

/**
 * Stores the intact records of the range journals a killed session left in `partDir` (each
 * must decode to exactly the id its header names: content-addressed, so whichever snapshot they
 * were fetched for, they are those chunks), then deletes the journals. Run under the working
 * directory's lock, before planning, so the plan counts them as held. Returns the chunks stored.
 */
export async function absorbLandedRanges(partDir: string, store: ChunkStore): Promise<number> {
  let stored = 0;
  for (const name of readdirSync(partDir)) {
    if (!JOURNAL.test(name)) continue;
    const path = join(partDir, name);
    const stream = new RecordStream();
    try {
      for (const rec of stream.push(readFileSync(path))) {
        if (chunkId(decodePayload(rec.header, rec.payload)) !== rec.header.id) break;
        if (await store.has(rec.header.id)) continue;
        await store.addRecord(rec.header.id, rec.record);
        stored++;
      }
    } catch (e) {
      // A record that does not decode ends what is usable; anything else (the disk) is an error.
      if (!(e instanceof PaqueteError)) throw e;
    }
    await store.flush();
    rmSync(path, { force: true });
  }
  return stored;
}
