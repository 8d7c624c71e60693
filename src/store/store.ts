import { closeSync, cpSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync, writeSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fdatasync } from 'node:fs';
import type { Level } from 'level';
import { PaqueteError } from '../errors.js';
import { IdSet } from './id-set.js';
import { HeldStamp, newToken, readHeldFile, writeHeldFile } from './held-file.js';
import { fsyncPath } from '../util/fsx.js';
import { chunkId, idToHex as hex, initHash } from '../chunk/index.js';
import {
  checkPackHeader, decodePayload, decodeRecordHeader, encodeRecord, PACK_HEADER_SIZE, PACK_LIMIT, PACK_MAGIC, PACK_VERSION, packHeader, RECORD_HEADER_SIZE, RecordHeader, Repr,
  writeRecordHeader,
} from './pack.js';
import { expectId, Located, Location, openPack, packFileName, PackScan, recordAt, scanPack } from './pack-reader.js';

export type { Location, Located } from './pack-reader.js';
export { packFileName } from './pack-reader.js';

const CHUNK_PREFIX = 0x63; // 'c'
const META_CURRENT_PACK = Buffer.from('m:current-pack');
const packEndKey = (n: number) => Buffer.from(`m:pack-end:${n}`);
const packDurableKey = (n: number) => Buffer.from(`m:pack-durable:${n}`);
const PACK_END_PREFIX = 'm:pack-end:';
/** The chunk entries' count and their records' total length, kept in the batch that changes them. */
const META_COUNT = Buffer.from('m:count');
/** A random token, new in every batch that changes a chunk entry: what the held-id file is stamped with (src/store/held-file.ts). */
const META_HELD_TOKEN = Buffer.from('m:held-token');
const CHUNK_RANGE = { gte: Buffer.from([CHUNK_PREFIX]), lt: Buffer.from([CHUNK_PREFIX + 1]) };
const PACK_FILE = /^(\d{8})\.pack$/;
/** Index entries written or deleted per batch while mending (one batch of 10M would not fit). */
const MEND_BATCH = 4096;
const u32Put = (key: Uint8Array, n: number) => {
  const value = Buffer.allocUnsafe(4);
  value.writeUInt32LE(n);
  return { type: 'put' as const, key, value };
};
const readU32BE = (b: Uint8Array, at: number) => ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
const idKey = (id: bigint) => {
  const k = Buffer.allocUnsafe(9);
  k[0] = CHUNK_PREFIX;
  k.writeBigUInt64BE(id, 1);
  return k;
};
const encodeLocation = (l: Location) => {
  const v = Buffer.allocUnsafe(12);
  v.writeUInt32LE(l.pack, 0);
  v.writeUInt32LE(l.offset, 4);
  v.writeUInt32LE(l.length, 8);
  return v;
};
const encodeCount = (c: StoreCount) => {
  const v = Buffer.allocUnsafe(16);
  v.writeBigUInt64LE(BigInt(c.chunks), 0);
  v.writeBigUInt64LE(BigInt(c.bytes), 8);
  return v;
};
const decodeCount = (v: Uint8Array | undefined): StoreCount | undefined => {
  if (!v || v.byteLength !== 16) return undefined;
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return { chunks: Number(b.readBigUInt64LE(0)), bytes: Number(b.readBigUInt64LE(8)) };
};
const stampKey = (s: HeldStamp) => `${Buffer.from(s.token).toString('hex')}:${Buffer.from(s.count).toString('hex')}`;
const isChunkKey = (k: Uint8Array) => k.byteLength === 9 && k[0] === CHUNK_PREFIX;
const decodeLocation = (v: Uint8Array): Location => {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return { pack: b.readUInt32LE(0), offset: b.readUInt32LE(4), length: b.readUInt32LE(8) };
};
const fdatasyncAsync = promisify(fdatasync);
/**
 * Records are gathered here and written to the pack in one call: a write per 4 KiB record was
 * a tenth of a first sync's time (typescript: 4,204 writes).
 */
const WRITE_BUFFER = 1 << 20;
/** Most locations remembered in `recent` (~100 B each). */
const RECENT_LIMIT = 1 << 18;

export interface VerifyProblem {
  id?: string;
  pack?: number;
  offset?: number;
  problem: string;
}

/** How many chunks the store's index names, and the length of their records. */
export interface StoreCount {
  chunks: number;
  bytes: number;
}

export interface OpenOptions {
  /**
   * Only read: the index is copied to a temporary directory and opened there (LevelDB cannot
   * open a database without writing: its LOCK file, a new log), packs are opened read-only,
   * nothing is mended, and any write throws. For status, verify and serve on a read-only disk.
   */
  readOnly?: boolean;
  /**
   * An index LevelDB cannot open at all is removed and rebuilt from the packs (verify --repair).
   * Without it, only an index LevelDB itself calls corrupt is.
   */
  rebuildUnreadableIndex?: boolean;
}

/** What `mend` found and did. */
export interface MendReport {
  /** Chunks the index named that no intact record holds any more: the next sync fetches them. */
  dropped: bigint[];
  /** Intact records the index did not name (a lost or partly lost index), now indexed again. */
  recovered: number;
  /** One line per pack that was missing, cut, rewritten or removed. */
  packs: string[];
}
/**
 * The content-addressed chunk store: append-only pack files plus a Level database mapping chunk
 * id → (pack, offset, length).
 *
 * Two kinds of commit. A *soft* commit (`flush(false)`, after every batch of records that
 * arrives) writes the index entries without fsync: the bytes are in the page cache, so a kill -9
 * or Ctrl-C loses nothing received. A *durable* commit (`flush()`, every second or so, at the end
 * of each range and of every command) fdatasyncs the pack first and then writes the index with
 * sync, recording the pack's durable end. After a power loss the index may point past what
 * reached the disk; on open, the records between the durable end and the committed end are
 * re-read and checked, and the tail from the first bad one is cut off and forgotten. Bytes past
 * the committed end are a killed writer's leftovers: the intact records among them are indexed
 * at open (keepLeftovers) and the rest cut off. So the store never points at bytes that are not
 * there.
 */
export class ChunkStore {
  private fds = new Map<number, number>();
  private writePack = -1;
  private writeEnd = 0;
  /** The current pack holds bytes up to here; [written, writeEnd) is still in writeBuffer. */
  private written = 0;
  private writeBuffer: Buffer | undefined;
  private pending = new Map<bigint, Location>();
  /**
   * Locations committed by this process lately: files are assembled right after their chunks
   * arrive, and asking LevelDB for them again took ~28 ms of a 23.6 MB first sync.
   */
  private recent = new Map<bigint, Location>();
  /**
   * Every committed id, built from the index once when first asked (heldIn) and kept up to date
   * by each batch: 10M ids asked of LevelDB one by one would take minutes per dry run. Dropped
   * when a batch deletes chunks (forget, gc, mend), to be built again when next asked.
   */
  private held: IdSet | undefined;
  private heldEpoch = 0;
  /** The index's m:held-token as last read or written. */
  private heldToken: Uint8Array | undefined;
  /** The stamp the held-id file on disk is known to be written for (read or written by us). */
  private heldOnDisk = '';
  private unsynced = 0;
  private lastDurable = Date.now();
  /**
   * When `addRecord` makes chunks durable on its own: after this many unsynced bytes, or this
   * many milliseconds. Soft commits cover kill -9; this bounds what a power loss can take.
   */
  flushEvery = { bytes: 16 << 20, ms: 60_000 };
  /** Where a pack ends and the next begins (below 4 GiB for FAT32); smaller in tests, to make many. */
  packLimit = PACK_LIMIT;
  /**
   * What `m:count` says, kept up to date by every batch that changes a chunk entry; undefined
   * when the index does not keep it (made by an older paquete, or rebuilt): count() then scans
   * once and keeps it from there.
   */
  private totals: StoreCount | undefined;
  /** Batches run one at a time: each reads the entries it replaces to keep `totals` exact. */
  private batching: Promise<unknown> = Promise.resolve();
  /** Committed and durable ends of the current pack, as the index records them. */
  private committed = { pack: -1, end: 0, durable: 0 };
  /**
   * What opening the store mended on its own (a lost index rebuilt, a missing or cut pack's
   * entries dropped), one line each, for the command to tell the user.
   */
  readonly mended: string[] = [];

  private constructor(
    readonly dir: string,
    private readonly db: Level<Uint8Array, Uint8Array>,
    readonly readOnly: boolean,
    /** The temporary copy of the index a read-only store reads, removed at close. */
    private readonly indexCopy?: string,
  ) {}

  static async open(dir: string, options: OpenOptions = {}): Promise<ChunkStore> {
    await initHash();
    if (options.readOnly) return ChunkStore.openReadOnly(dir);
    mkdirSync(join(dir, 'packs'), { recursive: true });
    const location = join(dir, 'index');
    let db: Level<Uint8Array, Uint8Array>;
    let rebuilt = '';
    try {
      db = await openIndex(location);
    } catch (e) {
      const why = indexError(e, dir);
      // The index is derived from the packs (every record names its chunk): one LevelDB cannot
      // read is only a cost, never a loss. LOCKED and DISK_FULL are not damage.
      if (why.code !== 'DAMAGED_STORE' || !(options.rebuildUnreadableIndex || /corrupt/i.test(why.message))) throw why;
      rmSync(location, { recursive: true, force: true });
      db = await openIndex(location).catch((e2) => {
        throw indexError(e2, dir);
      });
      rebuilt = `the store index could not be read (${why.message.replace(/^.*cannot be opened: /, '')})`;
    }
    const store = new ChunkStore(dir, db, false);
    if (rebuilt) store.mended.push(`${rebuilt}: rebuilding it from the packs`);
    return store.load();
  }

  private static async openReadOnly(dir: string): Promise<ChunkStore> {
    const copy = mkdtempSync(join(tmpdir(), 'paquete-index-'));
    try {
      if (existsSync(join(dir, 'index'))) {
        // LOCK is LevelDB's own lock file; a copy must not carry another process's.
        cpSync(join(dir, 'index'), copy, { recursive: true, filter: (src) => !src.endsWith('/LOCK') });
      }
      const db = await openIndex(copy);
      return await new ChunkStore(dir, db, true, copy).load();
    } catch (e) {
      rmSync(copy, { recursive: true, force: true });
      if (e instanceof PaqueteError) throw e;
      throw indexError(e, dir);
    }
  }

  private fd(pack: number): number {
    let fd = this.fds.get(pack);
    if (fd === undefined) this.fds.set(pack, (fd = openPack(this.dir, pack, this.readOnly ? 'r' : 'r+')));
    return fd;
  }

  /** Numbers of the pack files in the store directory, ascending. */
  private packsOnDisk(): number[] {
    let names: string[];
    try {
      names = readdirSync(join(this.dir, 'packs'));
    } catch {
      return [];
    }
    return names.flatMap((n) => {
      const m = PACK_FILE.exec(n);
      return m ? [Number(m[1])] : [];
    }).sort((a, b) => a - b);
  }

  private writable(): void {
    if (this.readOnly) throw new PaqueteError('IO', `the store at ${this.dir} is open read-only`);
  }

  async locate(id: bigint): Promise<Location | undefined> {
    const p = this.pending.get(id);
    if (p) return p;
    const v = await this.db.get(idKey(id));
    return v ? decodeLocation(v) : undefined;
  }

  async has(id: bigint): Promise<boolean> {
    return (await this.locate(id)) !== undefined;
  }

  /** The subset of `ids` present in the store. */
  async hasMany(ids: bigint[]): Promise<Set<bigint>> {
    const found = new Set<bigint>();
    const BATCH = 4096;
    for (let i = 0; i < ids.length; i += BATCH) {
      const slice = ids.slice(i, i + BATCH);
      const values = await this.db.getMany(slice.map(idKey));
      slice.forEach((id, j) => {
        if (values[j] !== undefined || this.pending.has(id)) found.add(id);
      });
    }
    return found;
  }

  private readRecord(loc: Location): { header: RecordHeader; payload: Uint8Array } {
    if (loc.pack === this.writePack && loc.offset + loc.length > this.written) this.writeOut();
    const buf = Buffer.allocUnsafe(loc.length);
    const n = readSync(this.fd(loc.pack), buf, 0, loc.length, loc.offset);
    if (n !== loc.length) throw new PaqueteError('DAMAGED_PACK', `pack ${packFileName(loc.pack)} is truncated at ${loc.offset}`);
    return recordAt(buf, 0, loc);
  }

  /**
   * Where each of `ids` lies, with every record written out to its pack first, so another
   * reader of the packs (the place worker's PackReader) finds the bytes there.
   */
  async locateMany(ids: bigint[]): Promise<Located[]> {
    this.writeOut();
    const known = ids.map((id) => this.pending.get(id) ?? this.recent.get(id));
    const unknown = ids.filter((_, i) => !known[i]);
    const values = unknown.length ? await this.db.getMany(unknown.map(idKey)) : [];
    let k = 0;
    return ids.map((id, i) => {
      let loc = known[i];
      if (!loc) {
        const v = values[k++];
        loc = v ? decodeLocation(v) : undefined;
      }
      if (!loc) throw new PaqueteError('DAMAGED_STORE', `chunk ${hex(id)} is not in the store`, 'run paquete sync to fetch it again');
      return { id, ...loc };
    });
  }

  /** The raw bytes of a chunk, checked against its id. */
  async get(id: bigint): Promise<Uint8Array> {
    return (await this.getMany([id]))[0];
  }

  /** The raw bytes of several chunks, in order, with one index lookup for all of them. */
  async getMany(ids: bigint[]): Promise<Uint8Array[]> {
    return (await this.locateMany(ids)).map((loc) => this.read(loc.id, loc));
  }

  private read(id: bigint, loc: Location): Uint8Array {
    const { header, payload } = this.readRecord(loc);
    expectId(header, loc, id);
    const raw = decodePayload(header, payload);
    if (chunkId(raw) !== id) throw new PaqueteError('DAMAGED_PACK', `chunk ${hex(id)} in pack ${packFileName(loc.pack)} is corrupt`, 'run paquete verify --repair, then sync');
    return raw;
  }

  /**
   * A chunk's record exactly as stored (header + payload), checked like `get`: it decodes and
   * hashes to its id. Lets a peer export copy records verbatim, with no recompression.
   */
  async getRecord(id: bigint): Promise<Uint8Array> {
    const loc = await this.locate(id);
    if (!loc) throw new PaqueteError('DAMAGED_STORE', `chunk ${hex(id)} is not in the store`);
    const { header, payload } = this.readRecord(loc);
    if (header.id !== id || chunkId(decodePayload(header, payload)) !== id) {
      throw new PaqueteError('DAMAGED_PACK', `chunk ${hex(id)} in pack ${packFileName(loc.pack)} is corrupt`, 'run paquete verify --repair');
    }
    return new Uint8Array(payload.buffer, payload.byteOffset - RECORD_HEADER_SIZE, loc.length);
  }

  /**
   * Which of the ids the store holds, as a bitmap by position: hasMany for a whole snapshot
   * index (its chunk table's idWords: each id as two big-endian 32-bit words), with no BigInt per
   * chunk (src/store/id-set.ts).
   */
  async heldIn(idWords: Uint32Array): Promise<Uint8Array> {
    if (!this.held) {
      const epoch = this.heldEpoch;
      // The file beside the index, when it was written for the index as it is now.
      const stamp = this.heldStamp();
      const saved = stamp && readHeldFile(this.dir, stamp);
      if (saved && this.heldEpoch === epoch) {
        this.held = saved;
        this.heldOnDisk = stampKey(stamp);
        return this.heldInWith(saved, idWords);
      }
      const held = new IdSet();
      const keys = this.db.keys({ ...CHUNK_RANGE });
      try {
        for (let batch = await keys.nextv(8192); batch.length; batch = await keys.nextv(8192)) {
          for (const k of batch) if (k.length === 9) held.add(readU32BE(k, 1), readU32BE(k, 5));
        }
      } finally {
        await keys.close();
      }
      // The keys are read from LevelDB's snapshot at the start: a batch written meanwhile is
      // not in them, so the set is kept only if none was.
      if (this.heldEpoch === epoch) this.held = held;
      else return this.heldInWith(held, idWords);
    }
    return this.heldInWith(this.held, idWords);
  }

  /** What ties the held-id file to the index now: undefined when the index keeps no token or no count. */
  private heldStamp(): HeldStamp | undefined {
    return this.heldToken && this.totals ? { token: this.heldToken, count: encodeCount(this.totals) } : undefined;
  }

  /** Writes the held-id set beside the index, unless the file there is already this state's. */
  private async saveHeld(): Promise<void> {
    if (this.readOnly || !this.held || !this.totals) return;
    if (!this.heldToken) {
      // An index from before the token (or a new one): given one now, so the file can name it.
      const token = newToken();
      await this.db.put(META_HELD_TOKEN, token);
      this.heldToken = token;
    }
    const stamp = this.heldStamp()!;
    if (stampKey(stamp) === this.heldOnDisk) return;
    writeHeldFile(this.dir, this.held, stamp);
    this.heldOnDisk = stampKey(stamp);
  }

  private heldInWith(held: IdSet, idWords: Uint32Array): Uint8Array {
    const out = held.heldIn(idWords);
    if (this.pending.size) {
      const pending = new IdSet(this.pending.size);
      for (const id of this.pending.keys()) pending.addId(id);
      pending.heldIn(idWords, out);
    }
    return out;
  }

  /** Every chunk id in the store, ascending (the index keys are big-endian ids). */
  async *ids(): AsyncGenerator<bigint> {
    await this.flush(false);
    for await (const k of this.db.keys(CHUNK_RANGE)) {
      yield Buffer.from(k.buffer, k.byteOffset, k.byteLength).readBigUInt64BE(1);
    }
  }

  /** Stores raw chunk bytes (compressing them). */
  async add(id: bigint, raw: Uint8Array): Promise<void> {
    if (await this.has(id)) return;
    await this.addRecord(id, encodeRecord(id, raw));
  }

  /**
   * Stores an already encoded record as it came from a pack. The caller has checked it decodes
   * to bytes whose id matches; storing the record as is spares recompressing it.
   */
  async addRecord(id: bigint, record: Uint8Array): Promise<void> {
    await this.append(id, record.length, (out, at) => out.set(record, at));
  }

  /**
   * Stores checked chunk bytes as a Raw record, uncompressed: what a client keeps for chunks that
   * came decoded from an update's frames (compressing them again would cost more CPU than
   * everything else on that path; `serve` re-encodes them as published when a LAN peer asks).
   */
  async addRaw(id: bigint, raw: Uint8Array): Promise<void> {
    await this.append(id, RECORD_HEADER_SIZE + raw.length, (out, at) => {
      writeRecordHeader(out, at, { id, repr: Repr.Raw, rawLength: raw.length, storedLength: raw.length });
      out.set(raw, at + RECORD_HEADER_SIZE);
    });
  }

  /** Appends a record of `length` bytes, which `fill` writes at out[at, at + length). */
  private async append(id: bigint, length: number, fill: (out: Buffer, at: number) => void): Promise<void> {
    if (this.pending.has(id)) return;
    await this.prepareWrite(length);
    if (this.writeEnd - this.written + length > WRITE_BUFFER) this.writeOut();
    if (length > WRITE_BUFFER) {
      const record = Buffer.allocUnsafe(length);
      fill(record, 0);
      this.writeAt(record, this.writeEnd);
      this.written = this.writeEnd + length;
    } else {
      this.writeBuffer ??= Buffer.allocUnsafe(WRITE_BUFFER);
      fill(this.writeBuffer, this.writeEnd - this.written);
    }
    this.pending.set(id, { pack: this.writePack, offset: this.writeEnd, length });
    this.writeEnd += length;
    this.unsynced += length;
    if (this.unsynced >= this.flushEvery.bytes || Date.now() - this.lastDurable >= this.flushEvery.ms) await this.flush();
  }

  /** Writes the buffered records to the pack. On failure they are dropped, never half-indexed. */
  private writeOut(): void {
    if (this.writeEnd === this.written) return;
    try {
      this.writeAt(this.writeBuffer!.subarray(0, this.writeEnd - this.written), this.written);
    } catch (e) {
      // A full disk: forget what never reached the pack, so the index cannot point at it; the
      // next write starts over at the same place.
      for (const [id, loc] of this.pending) if (loc.pack === this.writePack && loc.offset >= this.written) this.pending.delete(id);
      this.writeEnd = this.written;
      throw e;
    }
    this.written = this.writeEnd;
  }

  private writeAt(bytes: Uint8Array, position: number): void {
    writeFully(this.fd(this.writePack), bytes, position);
  }

  private async prepareWrite(size: number): Promise<void> {
    this.writable();
    if (this.writePack < 0) this.startWriting();
    if (this.writeEnd + size > this.packLimit) {
      // Only the current pack may have a non-durable tail: settle it before moving on.
      await this.flush();
      this.newPack(this.writePack + 1);
    }
  }

  /** Cuts off whatever a crash left past the committed end of the current pack. */
  private startWriting(): void {
    const { pack, end } = this.committed;
    if (pack < 0) {
      this.newPack(1);
      return;
    }
    const fd = this.fd(pack);
    if (fstatSync(fd).size !== end) ftruncateSync(fd, end);
    this.writePack = pack;
    this.writeEnd = end;
    this.written = end;
  }

  private newPack(first: number): void {
    // Never over a pack file already there: with the index lost, its records are still the
    // only copy of those chunks (and are indexed again from it).
    let n = first;
    while (existsSync(join(this.dir, 'packs', packFileName(n)))) n++;
    // Created whole under a temporary name, then renamed: a kill between creating the file and
    // writing its header must not leave an empty NNNNNNNN.pack that verify reports as damaged.
    const path = join(this.dir, 'packs', packFileName(n));
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w+');
    writeFully(fd, packHeader(), 0);
    fdatasyncSync(fd);
    renameSync(tmp, path);
    fsyncPath(join(this.dir, 'packs'));
    const stale = this.fds.get(n);
    if (stale !== undefined) closeSync(stale);
    this.fds.set(n, fd);
    this.writePack = n;
    this.writeEnd = PACK_HEADER_SIZE;
    this.written = PACK_HEADER_SIZE;
    // The index learns of the pack at the next commit; until then it is an orphan file that
    // the next writer simply overwrites.
  }

  /**
   * Reads the write position at open and mends what is cheap to find and safe to mend: an index
   * that names no current pack while pack files exist (lost, or rebuilt from nothing) is rebuilt
   * from the packs; a pack that is missing or shorter than the index says loses the entries
   * that point at bytes no longer there; a tail that may not have reached the disk is checked.
   * Flipped bytes inside a pack are found only when read (or by verify).
   */
  private async load(): Promise<this> {
    this.heldToken = await this.db.get(META_HELD_TOKEN);
    const cur = await this.db.get(META_CURRENT_PACK);
    this.totals = decodeCount(await this.db.get(META_COUNT));
    if (!cur) {
      const packs = this.packsOnDisk();
      // A new store counts from nothing; an index that lost its current pack is counted when asked.
      if (!packs.length && !this.totals && !(await this.db.keys({ ...CHUNK_RANGE, limit: 1 }).all()).length) this.totals = { chunks: 0, bytes: 0 };
      if (packs.length && !this.readOnly) {
        const r = await this.mend();
        if (!this.mended.length) this.mended.push(`the store index named no pack while ${packs.length} pack files were there: rebuilt from them`);
        this.mended.push(`indexed ${r.recovered} chunks found intact in the packs`, ...r.packs);
      }
      return this;
    }
    const pack = Buffer.from(cur).readUInt32LE(0);
    const end = await this.u32(packEndKey(pack), PACK_HEADER_SIZE);
    const durable = await this.u32(packDurableKey(pack), end);
    this.committed = { pack, end, durable };
    if (this.readOnly) return this;
    await this.dropLostPacks();
    await this.fixHeaders();
    if (this.committed.durable < this.committed.end) await this.recoverTail();
    await this.keepLeftovers();
    return this;
  }

  /**
   * A process killed between writing records to the pack and committing their index entries (a
   * soft commit is a pack write, then a LevelDB batch that takes a while under load) left whole
   * records past the committed end. They are what the link delivered: index the ones that are
   * intact (each decodes to its id), cut from the first that is not. Cutting them all lost about
   * one socket read (16-64 kB) per kill -9 and made park.test's kill loop pay 3-5% again.
   */
  private async keepLeftovers(): Promise<void> {
    const { pack, end } = this.committed;
    if (pack < 0) return;
    const fd = this.fd(pack);
    const size = fstatSync(fd).size;
    if (size <= end) return;
    const ops: BatchOp[] = [];
    const pos = this.intactRecords(pack, end, size, (id, loc) => ops.push({ type: 'put', key: idKey(id), value: encodeLocation(loc) }));
    if (pos < size) ftruncateSync(fd, pos);
    if (pos === end) return;
    // Durable as far as before: the kept records were never fsynced (recoverTail checks them after a power cut).
    ops.push(u32Put(packEndKey(pack), pos));
    await this.batch(ops, { sync: true });
    this.committed = { pack, end: pos, durable: this.committed.durable };
  }

  private async u32(key: Uint8Array, fallback: number): Promise<number> {
    const v = await this.db.get(key);
    return v ? Buffer.from(v).readUInt32LE(0) : fallback;
  }

  /** The committed end of every pack the index knows (the current one and every one before it). */
  private async knownPacks(): Promise<Map<number, number>> {
    const known = new Map<number, number>();
    const prefix = Buffer.from(PACK_END_PREFIX);
    for await (const [k, v] of this.db.iterator({ gte: prefix, lt: Buffer.from('m:pack-end;') })) {
      known.set(Number(Buffer.from(k).subarray(prefix.length).toString('ascii')), Buffer.from(v).readUInt32LE(0));
    }
    return known;
  }

  /**
   * A pack the index knows that is missing, or shorter than what the index committed there
   * (durable end for the current pack: past it a power cut may take bytes, and recoverTail
   * checks those): the entries pointing past what is left are dropped, so those chunks are
   * fetched again, and the current pack is cut back to its last entry. One pass over the
   * index, and only when a pack is found short: a stat per pack otherwise.
   */
  /**
   * A pack's first 8 bytes are a constant (magic, version): a damaged one is written again, which
   * restores it exactly, and costs one 8-byte read per pack at open. Without this a sync read the
   * records (each checked by its id) and left verify saying "bad magic" (store.test's damage
   * property found it: a flip at byte 0, then a sync first).
   */
  private async fixHeaders(): Promise<void> {
    const want = packHeader();
    for (const [pack] of await this.knownPacks()) {
      let fd: number;
      try {
        fd = this.fd(pack);
      } catch {
        continue;
      }
      const head = Buffer.alloc(PACK_HEADER_SIZE);
      if (readSync(fd, head, 0, head.length, 0) !== head.length || head.equals(want)) continue;
      writeFully(fd, want, 0);
      fdatasyncSync(fd);
      this.mended.push(`pack ${packFileName(pack)} had a damaged header: rewritten`);
    }
  }

  private async dropLostPacks(): Promise<void> {
    const short = new Map<number, number>();
    for (const [pack, end] of await this.knownPacks()) {
      const expected = pack === this.committed.pack ? this.committed.durable : end;
      let size = -1;
      try {
        size = statSync(join(this.dir, 'packs', packFileName(pack))).size;
      } catch {
        /* missing */
      }
      // Cut inside its header: nothing of it can be read, and the header must not be rebuilt as zeros.
      if (size < expected) short.set(pack, size < PACK_HEADER_SIZE ? 0 : size);
    }
    if (!short.size) return;
    const kept = new Map<number, number>();
    const lost = new Map<number, number>();
    const dels: BatchOp[] = [];
    for await (const [k, v] of this.db.iterator(CHUNK_RANGE)) {
      const loc = decodeLocation(v);
      const size = short.get(loc.pack);
      if (size === undefined) continue;
      if (loc.offset + loc.length <= size) kept.set(loc.pack, Math.max(kept.get(loc.pack) ?? PACK_HEADER_SIZE, loc.offset + loc.length));
      else {
        dels.push({ type: 'del', key: k });
        lost.set(loc.pack, (lost.get(loc.pack) ?? 0) + 1);
      }
    }
    for (let i = 0; i < dels.length; i += MEND_BATCH) await this.batch(dels.slice(i, i + MEND_BATCH), { sync: true });
    const meta: BatchOp[] = [];
    for (const [pack, size] of short) {
      const name = packFileName(pack);
      const what = size === 0 && !existsSync(join(this.dir, 'packs', name)) ? `pack ${name} is missing` : `pack ${name} is cut short ${size ? `at ${size} bytes` : 'inside its header'}`;
      // A pack gone with no entry left in it is only a stale record of its end (gc before it kept those).
      if (lost.get(pack) || size > 0) this.mended.push(`${what}: ${lost.get(pack) ?? 0} chunks dropped from the index, to be fetched again`);
      if (size === 0) {
        const fd = this.fds.get(pack);
        if (fd !== undefined) closeSync(fd);
        this.fds.delete(pack);
        rmSync(join(this.dir, 'packs', name), { force: true });
        meta.push({ type: 'del', key: packEndKey(pack) }, { type: 'del', key: packDurableKey(pack) });
        if (pack === this.committed.pack) meta.push({ type: 'del', key: META_CURRENT_PACK });
        continue;
      }
      const end = kept.get(pack) ?? PACK_HEADER_SIZE;
      meta.push(u32Put(packEndKey(pack), end), u32Put(packDurableKey(pack), end));
      if (pack === this.committed.pack) {
        // Appending goes on after the last record still indexed; what lies past it is a cut record.
        ftruncateSync(this.fd(pack), end);
        fdatasyncSync(this.fd(pack));
      }
    }
    await this.batch(meta, { sync: true });
    const cur = short.get(this.committed.pack);
    if (cur === 0) this.committed = { pack: -1, end: 0, durable: 0 };
    else if (cur !== undefined) {
      const end = kept.get(this.committed.pack) ?? PACK_HEADER_SIZE;
      this.committed = { pack: this.committed.pack, end, durable: end };
    }
  }

  /**
   * Walks the records of `pack` in [from, to) while each is whole and decodes to exactly its id,
   * handing each to `each`; returns where the first that is not begins (or `to`).
   */
  private intactRecords(pack: number, from: number, to: number, each: (id: bigint, loc: Location) => void): number {
    const fd = this.fd(pack);
    let pos = from;
    while (pos < to) {
      try {
        const head = Buffer.alloc(RECORD_HEADER_SIZE);
        if (readSync(fd, head, 0, head.length, pos) !== head.length) break;
        const h = decodeRecordHeader(head);
        const length = RECORD_HEADER_SIZE + h.storedLength;
        if (pos + length > to) break;
        const loc = { pack, offset: pos, length };
        this.read(h.id, loc); // throws unless the record decodes to exactly its id
        each(h.id, loc);
        pos += length;
      } catch {
        break;
      }
    }
    return pos;
  }

  /**
   * After a power loss: keeps the records between the durable and the committed end that are
   * intact, cuts the pack before the first that is not, and forgets index entries past the cut.
   */
  private async recoverTail(): Promise<void> {
    const { pack, end } = this.committed;
    const fd = this.fd(pack);
    const pos = this.intactRecords(pack, this.committed.durable, end, () => {});
    if (pos < end) {
      const lost: Uint8Array[] = [];
      for await (const [k, v] of this.db.iterator(CHUNK_RANGE)) {
        const loc = decodeLocation(v);
        if (loc.pack === pack && loc.offset >= pos) lost.push(k);
      }
      await this.batch(lost.map((key) => ({ type: 'del' as const, key })), { sync: true });
      ftruncateSync(fd, pos);
    }
    fdatasyncSync(fd);
    await this.batch([u32Put(packEndKey(pack), pos), u32Put(packDurableKey(pack), pos)], { sync: true });
    this.committed = { pack, end: pos, durable: pos };
  }

  /**
   * Commits every added chunk to the index. Durable (the default): pack bytes are fdatasync'ed
   * first and the index is written with sync. Soft: the index is written without sync, which a
   * killed process cannot lose but a power cut can (see the class comment).
   */
  async flush(durable = true): Promise<void> {
    if (this.writePack < 0 || (this.pending.size === 0 && (!durable || this.committed.durable === this.writeEnd))) return;
    this.writeOut();
    // Off the main thread, so a download beside us keeps reading its socket meanwhile.
    if (durable) await fdatasyncAsync(this.fd(this.writePack));
    const durableEnd = durable ? this.writeEnd : this.committed.pack === this.writePack ? this.committed.durable : PACK_HEADER_SIZE;
    const ops: BatchOp[] = [];
    for (const [id, loc] of this.pending) ops.push({ type: 'put', key: idKey(id), value: encodeLocation(loc) });
    ops.push(u32Put(META_CURRENT_PACK, this.writePack), u32Put(packEndKey(this.writePack), this.writeEnd), u32Put(packDurableKey(this.writePack), durableEnd));
    await this.batch(ops, { sync: durable });
    this.committed = { pack: this.writePack, end: this.writeEnd, durable: durableEnd };
    if (this.recent.size + this.pending.size > RECENT_LIMIT) this.recent.clear();
    for (const [id, loc] of this.pending) this.recent.set(id, loc);
    this.pending.clear();
    if (durable) {
      this.unsynced = 0;
      this.lastDurable = Date.now();
    }
  }

  /**
   * A batch on the index; a full disk there is reported as such, not as LevelDB's IO error.
   * Chained, not level's array form: that one copies and checks every operation object and took
   * 90 ms for 4,204 puts where the chained form takes 10-25.
   */
  private batch(ops: BatchOp[], options: { sync: boolean }): Promise<void> {
    const run = this.batching.then(() => this.writeBatch(ops, options));
    this.batching = run.catch(() => {});
    return run;
  }

  private async writeBatch(ops: BatchOp[], options: { sync: boolean }): Promise<void> {
    try {
      const batch = this.db.batch();
      const totals = this.totals && (await this.countAfter(ops, this.totals));
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      // In the same batch as the entries it counts: a kill -9 or power cut leaves both or neither.
      if (totals) batch.put(META_COUNT, encodeCount(totals));
      // And a new token whenever chunk entries change: a held-id file written before no longer matches.
      const token = ops.some((op) => isChunkKey(op.key)) ? newToken() : undefined;
      if (token) batch.put(META_HELD_TOKEN, token);
      await batch.write(options);
      if (totals) this.totals = totals;
      if (token) this.heldToken = token;
      this.noteHeld(ops);
    } catch (e) {
      const text = `${(e as Error).message} ${(e as { cause?: Error }).cause?.message ?? ''}`;
      if (/No space left|ENOSPC/i.test(text)) throw diskFull();
      throw e;
    }
  }

  /**
   * The count once `ops` are applied: each chunk entry they put or delete is read first (one
   * getMany per batch, ~1 µs an entry), so a put over an entry already there or a delete of one
   * that is not changes nothing. Undefined (nothing to add to the batch) when no chunk entry changes.
   */
  private async countAfter(ops: BatchOp[], totals: StoreCount): Promise<StoreCount | undefined> {
    const touched = ops.filter((op) => isChunkKey(op.key));
    if (!touched.length) return undefined;
    const before = await this.db.getMany(touched.map((op) => op.key));
    // Later operations on one key see the earlier ones: the value each key holds as they apply.
    const now = new Map<string, Uint8Array | undefined>();
    let { chunks, bytes } = totals;
    touched.forEach((op, i) => {
      const key = Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength).toString('latin1');
      const old = now.has(key) ? now.get(key) : before[i];
      const value = op.type === 'put' ? op.value : undefined;
      if (old) {
        chunks--;
        bytes -= decodeLocation(old).length;
      }
      if (value) {
        chunks++;
        bytes += decodeLocation(value).length;
      }
      now.set(key, value);
    });
    return { chunks, bytes };
  }

  /** Keeps the held-id set in step with a batch written to the index. */
  private noteHeld(ops: BatchOp[]): void {
    this.heldEpoch++;
    if (!this.held) return;
    for (const op of ops) {
      if (!isChunkKey(op.key)) continue;
      if (op.type === 'del') {
        this.held = undefined;
        return;
      }
      this.held.add(readU32BE(op.key, 1), readU32BE(op.key, 5));
    }
  }

  /** Drops chunks from the index (their bytes stay until gc) so they are fetched again. */
  async forget(ids: bigint[]): Promise<void> {
    this.writable();
    await this.flush();
    for (const id of ids) this.recent.delete(id);
    await this.batch(ids.map((id) => ({ type: 'del' as const, key: idKey(id) })), { sync: true });
  }

  /**
   * Removes every chunk not in `keep`. Packs holding dead records are rewritten: their live
   * records are copied to the end of the current pack and committed durably, then the dead
   * entries are dropped, and only then is the old pack file deleted. A crash at any point
   * leaves every index entry pointing at intact bytes; a pack no entry points at any more (a
   * crash between the last two steps) is removed by the next gc.
   */
  async gc(keep: Set<bigint>, onProgress?: (freed: number) => void): Promise<{ removedChunks: number; freedBytes: number; packsRewritten: number }> {
    this.writable();
    await this.flush();
    this.recent.clear();
    const byPack = new Map<number, { live: [bigint, Location][]; dead: [bigint, Location][] }>();
    for await (const [k, v] of this.db.iterator(CHUNK_RANGE)) {
      const id = Buffer.from(k.buffer, k.byteOffset, k.byteLength).readBigUInt64BE(1);
      const loc = decodeLocation(v);
      const entry = byPack.get(loc.pack) ?? { live: [], dead: [] };
      (keep.has(id) ? entry.live : entry.dead).push([id, loc]);
      byPack.set(loc.pack, entry);
    }
    let removedChunks = 0;
    let freedBytes = 0;
    let packsRewritten = 0;
    if (this.writePack < 0) this.startWriting();
    // The pack being appended to cannot be rewritten into itself: move on to a fresh one.
    if (byPack.get(this.writePack)?.dead.length) {
      await this.flush();
      this.newPack(this.writePack + 1);
    }
    for (const [pack, { live, dead }] of [...byPack].sort((a, b) => a[0] - b[0])) {
      if (dead.length === 0 || pack === this.writePack) continue;
      for (const [id, loc] of live) {
        const { header, payload } = this.readRecord(loc);
        if (header.id !== id) continue; // damaged: verify reports it; not worth carrying over
        const record = new Uint8Array(payload.buffer, payload.byteOffset - RECORD_HEADER_SIZE, loc.length);
        await this.addRecord(id, Uint8Array.from(record));
      }
      await this.flush();
      await this.batch(dead.map(([id]) => ({ type: 'del' as const, key: idKey(id) })), { sync: true });
      removedChunks += dead.length;
      freedBytes += dead.reduce((n, [, l]) => n + l.length, 0);
      await this.dropPack(pack);
      packsRewritten++;
      onProgress?.(freedBytes);
    }
    // Packs no entry points at: leftovers of an interrupted gc (the current pack stays).
    for (const n of this.packsOnDisk()) if (!byPack.has(n) && n !== this.writePack) await this.dropPack(n);
    return { removedChunks, freedBytes, packsRewritten };
  }

  /** Deletes a pack file, and then the index's record of its end (else the next open calls it missing). */
  private async dropPack(pack: number): Promise<void> {
    const fd = this.fds.get(pack);
    if (fd !== undefined) closeSync(fd);
    this.fds.delete(pack);
    rmSync(join(this.dir, 'packs', packFileName(pack)), { force: true });
    await this.batch([{ type: 'del', key: packEndKey(pack) }, { type: 'del', key: packDurableKey(pack) }], { sync: false });
  }

  /**
   * How many chunks the index names and their records' length: what `m:count` keeps (status at
   * 100k chunks spent ~1 s scanning LevelDB for it). An index without it is scanned once, between
   * batches, and the figure kept (not by a read-only store: its index is a copy).
   */
  async count(): Promise<StoreCount> {
    if (this.totals) return { ...this.totals };
    const counted = this.batching.then(async () => {
      if (this.totals) return { ...this.totals };
      let chunks = 0;
      let bytes = 0;
      for await (const [, v] of this.db.iterator(CHUNK_RANGE)) {
        chunks++;
        bytes += decodeLocation(v).length;
      }
      const totals = { chunks, bytes };
      if (!this.readOnly) {
        await this.db.put(META_COUNT, encodeCount(totals));
        this.totals = totals;
      }
      return { ...totals };
    });
    this.batching = counted.catch(() => {});
    return counted;
  }

  /**
   * Checks every pack header and every index entry: the record is where the index says, decodes,
   * and hashes to its id. With `repair`, entries that fail are removed from the index so the next
   * sync fetches those chunks again.
   */
  async verify(repair = false, onProgress?: (checked: number) => void): Promise<{ checked: number; problems: VerifyProblem[]; removed: number; damaged: bigint[] }> {
    const problems: VerifyProblem[] = [];
    for (const n of this.packsOnDisk()) {
      const name = packFileName(n);
      // A pack past the committed one, cut before its header was written (a kill inside newPack,
      // before it created packs whole), is an orphan the next writer replaces: not damage.
      if (n > this.committed.pack && fstatSync(this.fd(n)).size < PACK_HEADER_SIZE) continue;
      const h = Buffer.alloc(PACK_HEADER_SIZE);
      readSync(this.fd(n), h, 0, PACK_HEADER_SIZE, 0);
      try {
        checkPackHeader(h, `pack ${name}`);
      } catch (e) {
        problems.push({ pack: n, problem: (e as Error).message });
      }
    }
    const { checked, bad } = await this.checkEntries(onProgress);
    problems.push(...bad.map((b) => ({ id: hex(b.id), pack: b.pack, offset: b.offset, problem: b.problem })));
    const damaged = bad.map((b) => b.id);
    if (repair && bad.length) await this.forget(damaged);
    return { checked, problems, removed: repair ? bad.length : 0, damaged };
  }

  /** Re-reads every index entry's record: those not there, not decoding, or not their chunk. */
  private async checkEntries(onProgress?: (checked: number) => void): Promise<{ checked: number; bad: (Located & { problem: string })[] }> {
    const bad: (Located & { problem: string })[] = [];
    let checked = 0;
    for await (const [k, v] of this.db.iterator(CHUNK_RANGE)) {
      const id = Buffer.from(k).readBigUInt64BE(1);
      const loc = decodeLocation(v);
      try {
        this.read(id, loc);
      } catch (e) {
        bad.push({ id, ...loc, problem: (e as Error).message });
      }
      if (++checked % 1000 === 0) onProgress?.(checked);
    }
    return { checked, bad };
  }

  /**
   * Mends the store from whatever happened to its files, so that everything the index names is
   * an intact record and every intact record in the packs is named: (1) each index entry is
   * re-read and dropped unless its record is there, decodes, and hashes to its id (a missing
   * pack, a cut one, flipped bytes); (2) every pack is scanned record by record (scanPack) and
   * the intact records the index lacks are indexed again (a lost index is rebuilt this way);
   * a pack whose header alone is damaged gets it rewritten, one with no intact record is
   * removed; (3) the highest pack becomes the one appended to, cut after its last intact record
   * (a torn tail). Every entry written points at a checked record, so a kill midway leaves a
   * sound index, and the next mend finishes the job. The chunks dropped are the ones the next
   * sync fetches.
   */
  async mend(onProgress?: (checked: number) => void): Promise<MendReport> {
    this.writable();
    await this.flush();
    this.recent.clear();
    this.writePack = -1;
    const packs: string[] = [];
    // (1) Entries pointing at bytes that are not their chunk.
    const { bad } = await this.checkEntries(onProgress);
    for (let i = 0; i < bad.length; i += MEND_BATCH) {
      await this.batch(bad.slice(i, i + MEND_BATCH).map((b) => ({ type: 'del' as const, key: idKey(b.id) })), { sync: true });
    }
    const named = new Set([...bad.map((b) => b.pack), ...(await this.knownPacks()).keys()]);
    // (2) Intact records the index lacks.
    let recovered = 0;
    const ends = new Map<number, number>();
    let current = -1;
    for (const n of this.packsOnDisk()) {
      const name = packFileName(n);
      const fd = this.fd(n);
      const head = Buffer.alloc(PACK_HEADER_SIZE);
      readSync(fd, head, 0, PACK_HEADER_SIZE, 0);
      let headerOk = true;
      try {
        checkPackHeader(head, `pack ${name}`);
      } catch {
        headerOk = false;
      }
      // A pack of a later format: not ours to judge (verify says to upgrade).
      if (!headerOk && PACK_MAGIC.equals(head.subarray(0, 4)) && head[4] > PACK_VERSION) continue;
      let found: Located[] = [];
      const index = async () => {
        const have = await this.db.getMany(found.map((r) => idKey(r.id)));
        const puts: BatchOp[] = [];
        found.forEach((r, j) => have[j] === undefined && puts.push({ type: 'put', key: idKey(r.id), value: encodeLocation(r) }));
        recovered += puts.length;
        // Not synced one by one: the meta batch at the end is, and LevelDB's log keeps order.
        if (puts.length) await this.batch(puts, { sync: false });
        found = [];
      };
      const records = scanPack(fd, n);
      let scan: PackScan;
      for (;;) {
        const r = records.next();
        if (r.done) {
          scan = r.value;
          break;
        }
        found.push(r.value);
        if (found.length >= MEND_BATCH) await index();
      }
      await index();
      // Damage inside the pack; what lies past its last intact record is its tail, said below.
      const inside = scan.damaged.filter((d) => d.offset + d.length < scan.size);
      const damaged = inside.reduce((k, d) => k + d.length, 0);
      if (scan.records === 0 && !headerOk) {
        await this.dropPack(n);
        packs.push(`pack ${name} held no intact record: removed`);
        continue;
      }
      if (!headerOk) {
        writeFully(fd, packHeader(), 0);
        packs.push(`pack ${name} had a damaged header: rewritten (${scan.records} intact records in it)`);
      }
      if (damaged) packs.push(`pack ${name}: ${damaged} bytes in ${inside.length} places hold no intact record`);
      fdatasyncSync(fd);
      ends.set(n, scan.end);
      current = n;
    }
    // (3) Where appending goes on; the index's record of every pack's end.
    const meta: BatchOp[] = [];
    for (const pack of named) {
      if (ends.has(pack)) continue;
      meta.push({ type: 'del', key: packEndKey(pack) }, { type: 'del', key: packDurableKey(pack) });
      const lost = bad.filter((b) => b.pack === pack).length;
      if (lost && !existsSync(join(this.dir, 'packs', packFileName(pack)))) packs.push(`pack ${packFileName(pack)} is missing: ${lost} chunks`);
    }
    for (const [pack, end] of ends) {
      const size = fstatSync(this.fd(pack)).size;
      // Only the pack appended to is cut: in any other, bytes past its last intact record harm nothing.
      const cut = pack === current && size > end;
      if (!cut && size > end) packs.push(`pack ${packFileName(pack)}: its last ${size - end} bytes hold no intact record`);
      meta.push(u32Put(packEndKey(pack), cut ? end : size), u32Put(packDurableKey(pack), cut ? end : size));
    }
    if (current >= 0) meta.push(u32Put(META_CURRENT_PACK, current));
    else meta.push({ type: 'del', key: META_CURRENT_PACK });
    await this.batch(meta, { sync: true });
    if (current >= 0) {
      const end = ends.get(current)!;
      const fd = this.fd(current);
      const size = fstatSync(fd).size;
      if (size > end) {
        ftruncateSync(fd, end);
        fdatasyncSync(fd);
        packs.push(`pack ${packFileName(current)}: its torn tail of ${size - end} bytes was cut`);
      }
      this.committed = { pack: current, end, durable: end };
    } else this.committed = { pack: -1, end: 0, durable: 0 };
    const still = await this.hasMany(bad.map((b) => b.id));
    return { dropped: bad.filter((b) => !still.has(b.id)).map((b) => b.id), recovered, packs };
  }

  async close(): Promise<void> {
    await this.flush();
    await this.saveHeld();
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    await this.db.close();
    if (this.indexCopy) rmSync(this.indexCopy, { recursive: true, force: true });
  }
}

type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/**
 * LevelDB's module (its native binding and abstract-level) is loaded when a store is first
 * opened, not with every module that names the store: a sync with nothing new opens none, and
 * loading it cost ~0.06 s of that sync's CPU.
 */
async function openIndex(location: string): Promise<Level<Uint8Array, Uint8Array>> {
  const { Level } = await import('level');
  const db = new Level<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  return db;
}

/** Why LevelDB would not open the index, as the error a user can act on. */
function indexError(e: unknown, dir: string): PaqueteError {
  const cause = (e as { cause?: Error }).cause;
  const text = String(cause?.message ?? (e as Error).message);
  if (/No space left/i.test(text)) return diskFull();
  if (/lock/i.test(text)) return new PaqueteError('LOCKED', 'another paquete command is using this store', 'wait for it to finish');
  return new PaqueteError('DAMAGED_STORE', `the store index at ${dir} cannot be opened: ${text}`, 'run paquete verify --repair (it rebuilds the index from the packs)');
}

const diskFull = () => new PaqueteError('DISK_FULL', 'the disk is full', 'free some space and run the same command again; nothing received so far is lost');

function writeFully(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    try {
      done += writeSync(fd, data, done, data.length - done, position + done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw diskFull();
      throw e;
    }
  }
}
