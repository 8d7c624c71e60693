import { PaqueteError } from '../errors.js';
import { chunkId, idToHex as hex } from '../chunk/index.js';
import { Remote } from '../remote/remote.js';
import { decodePayload, PACK_HEADER_SIZE, RecordStream } from '../store/pack.js';
import { ChunkStore } from '../store/store.js';
import { recordLength, Snapshot } from '../snapshot/snapshot.js';
import { FetchRange } from './planner.js';

export interface FetchEvents {
  /** Some chunks arrived and are durable in the store. */
  onChunks?: (chunkIndices: number[]) => void | Promise<void>;
}

/**
 * Fetches ranges of remote packs into the store. Each arriving record is checked against the
 * snapshot before it is kept: the id, length and representation it was promised at that offset,
 * and its decoded bytes must hash to that id. Each batch of whole records is committed as it
 * arrives, so a cut connection or a killed process re-fetches at most the one chunk in flight.
 */
export async function fetchRanges(
  remote: Remote,
  snapshot: Snapshot,
  ranges: FetchRange[],
  store: ChunkStore,
  opts: FetchEvents & { signal?: AbortSignal } = {},
): Promise<void> {
  for (const range of ranges) {
    opts.signal?.throwIfAborted();
    const expected = new Map(range.chunks.map((i) => [snapshot.chunks[i].offset, i]));
    const stream = new RecordStream();
    let offset = Math.max(range.start, PACK_HEADER_SIZE);
    // A range from byte 0 (servers that ignore Range) begins with the pack header: skip it.
    let skip = offset - range.start;
    let arrived: number[] = [];
    const sink = async (bytes: Uint8Array) => {
      if (skip > 0) {
        const n = Math.min(skip, bytes.length);
        skip -= n;
        bytes = bytes.subarray(n);
      }
      for (const rec of stream.push(bytes)) {
        const at = offset;
        offset += rec.record.length;
        const i = expected.get(at);
        if (i === undefined) continue; // a gap record fetched to save a request
        const c = snapshot.chunks[i];
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
        const done = arrived;
        arrived = [];
        await opts.onChunks?.(done);
      }
    };
    try {
      // The remote reserves each try from the session's budget; where the budget ends inside the
      // range (retries spent some), the prefix it pays for still brings whole records.
      await remote.getRange(`packs/${range.pack}.pack`, { start: range.start, end: range.end }, sink, { signal: opts.signal, prefixOk: true });
    } finally {
      // Whatever arrived whole is made durable even when the range failed midway.
      await store.flush();
    }
  }
}
