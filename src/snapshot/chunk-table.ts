import { RECORD_HEADER_SIZE, Repr } from '../store/pack.js';

/** One chunk of a snapshot, as an object: for the few places that take chunks one at a time. */
export interface ChunkEntry {
  id: bigint;
  /** Index into Snapshot.packs. */
  pack: number;
  /** Byte offset of the record (its header) in the pack. */
  offset: number;
  repr: Repr;
  rawLength: number;
  storedLength: number;
}

/**
 * A snapshot's chunks as columns, one typed array per field, indexed by chunk number: no object
 * and no BigInt per chunk. A 10M-chunk index as ChunkEntry objects took 1.7 GiB and 22 s to
 * decode (issue 15); as columns it is 30 bytes a chunk. The planner, presence checks and the
 * fetcher read the columns; `entry(i)` makes an object for code that takes one chunk at a time.
 */
export class ChunkTable {
  /** Each id as two big-endian 32-bit halves: word 2i is the high half, 2i + 1 the low. */
  readonly idWords: Uint32Array;
  /** Index into Snapshot.packs. */
  readonly pack: Uint32Array;
  /** Byte offset of the record (its header) in its pack. */
  readonly offset: Float64Array;
  readonly repr: Uint8Array;
  readonly rawLength: Uint32Array;
  readonly storedLength: Uint32Array;

  constructor(readonly length: number) {
    this.idWords = new Uint32Array(length * 2);
    this.pack = new Uint32Array(length);
    this.offset = new Float64Array(length);
    this.repr = new Uint8Array(length);
    this.rawLength = new Uint32Array(length);
    this.storedLength = new Uint32Array(length);
  }

  static of(entries: readonly ChunkEntry[]): ChunkTable {
    const t = new ChunkTable(entries.length);
    entries.forEach((c, i) => t.set(i, c));
    return t;
  }

  /** A table of the chunks at `indices` of this one, in that order (repeats allowed). */
  select(indices: ArrayLike<number>): ChunkTable {
    const t = new ChunkTable(indices.length);
    for (let j = 0; j < indices.length; j++) t.copyFrom(j, this, indices[j]);
    return t;
  }

  set(i: number, c: ChunkEntry): void {
    this.idWords[2 * i] = Number(c.id >> 32n);
    this.idWords[2 * i + 1] = Number(c.id & 0xffffffffn);
    this.pack[i] = c.pack;
    this.offset[i] = c.offset;
    this.repr[i] = c.repr;
    this.rawLength[i] = c.rawLength;
    this.storedLength[i] = c.storedLength;
  }

  copyFrom(i: number, from: ChunkTable, j: number): void {
    this.idWords[2 * i] = from.idWords[2 * j];
    this.idWords[2 * i + 1] = from.idWords[2 * j + 1];
    this.pack[i] = from.pack[j];
    this.offset[i] = from.offset[j];
    this.repr[i] = from.repr[j];
    this.rawLength[i] = from.rawLength[j];
    this.storedLength[i] = from.storedLength[j];
  }

  id(i: number): bigint {
    return (BigInt(this.idWords[2 * i]) << 32n) | BigInt(this.idWords[2 * i + 1]);
  }

  /** Bytes of the chunk's record in its pack: header and stored payload. */
  recordLength(i: number): number {
    return RECORD_HEADER_SIZE + this.storedLength[i];
  }

  entry(i: number): ChunkEntry {
    return { id: this.id(i), pack: this.pack[i], offset: this.offset[i], repr: this.repr[i] as Repr, rawLength: this.rawLength[i], storedLength: this.storedLength[i] };
  }

  /** Every id, as BigInts: for small tables (an update's base, a bundle), not a mirror's index. */
  ids(): bigint[] {
    const out: bigint[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.id(i);
    return out;
  }

  /** The ids of the chunks marked in `held` (a bitmap by chunk index, as ChunkStore.heldIn gives). */
  idsOf(held: Uint8Array): Set<bigint> {
    const out = new Set<bigint>();
    for (let i = 0; i < this.length; i++) if (held[i]) out.add(this.id(i));
    return out;
  }

  *[Symbol.iterator](): IterableIterator<ChunkEntry> {
    for (let i = 0; i < this.length; i++) yield this.entry(i);
  }
}
