import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fdatasync } from 'node:fs';
import { Level } from 'level';
import { PaqueteError } from '../errors.js';
import { fsyncPath } from '../util/fsx.js';
import { chunkId, idToHex as hex, initHash } from '../chunk/index.js';
import {
  checkPackHeader, decodePayload, decodeRecordHeader, encodeRecord, PACK_HEADER_SIZE, PACK_LIMIT, packHeader, RECORD_HEADER_SIZE, RecordHeader, Repr,
  writeRecordHeader,
} from './pack.js';
import { expectId, Located, Location, openPack, packFileName, recordAt } from './pack-reader.js';

export type { Location, Located } from './pack-reader.js';
export { packFileName } from './pack-reader.js';

const CHUNK_PREFIX = 0x63; // 'c'
const META_CURRENT_PACK = Buffer.from('m:current-pack');
const packEndKey = (n: number) => Buffer.from(`m:pack-end:${n}`);
const packDurableKey = (n: number) => Buffer.from(`m:pack-durable:${n}`);
const u32Put = (key: Uint8Array, n: number) => {
  const value = Buffer.allocUnsafe(4);
  value.writeUInt32LE(n);
  return { type: 'put' as const, key, value };
};
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
 * the committed end are a crash's leftovers and are cut off before the next write. So the store
 * never points at bytes that are not there.
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
  private unsynced = 0;
  private lastDurable = Date.now();
  /**
   * When `addRecord` makes chunks durable on its own: after this many unsynced bytes, or this
   * many milliseconds. Soft commits cover kill -9; this bounds what a power loss can take.
   */
  flushEvery = { bytes: 16 << 20, ms: 60_000 };
  /** Committed and durable ends of the current pack, as the index records them. */
  private committed = { pack: -1, end: 0, durable: 0 };

  private constructor(
    readonly dir: string,
    private readonly db: Level<Uint8Array, Uint8Array>,
  ) {}

  static async open(dir: string): Promise<ChunkStore> {
    await initHash();
    mkdirSync(join(dir, 'packs'), { recursive: true });
    const db = new Level<Uint8Array, Uint8Array>(join(dir, 'index'), { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: Error }).cause;
      if (/No space left/i.test(String(cause?.message ?? ''))) throw diskFull();
      if (/lock/i.test(String(cause?.message ?? ''))) {
        throw new PaqueteError('LOCKED', 'another paquete command is using this store', 'wait for it to finish');
      }
      throw new PaqueteError('DAMAGED_STORE', `the store index at ${dir} cannot be opened: ${cause?.message ?? (e as Error).message}`, 'run paquete verify --repair');
    }
    return new ChunkStore(dir, db).load();
  }

  private fd(pack: number): number {
    let fd = this.fds.get(pack);
    if (fd === undefined) this.fds.set(pack, (fd = openPack(this.dir, pack, 'r+')));
    return fd;
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

  /** Every chunk id in the store, ascending (the index keys are big-endian ids). */
  async *ids(): AsyncGenerator<bigint> {
    await this.flush(false);
    for await (const k of this.db.keys({ gte: Buffer.from([CHUNK_PREFIX]), lt: Buffer.from([CHUNK_PREFIX + 1]) })) {
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
    if (this.writePack < 0) this.startWriting();
    if (this.writeEnd + size > PACK_LIMIT) {
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

  private newPack(n: number): void {
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

  /** Reads the write position at open, and checks a tail that may not have reached the disk. */
  private async load(): Promise<this> {
    const cur = await this.db.get(META_CURRENT_PACK);
    if (!cur) return this;
    const pack = Buffer.from(cur).readUInt32LE(0);
    const u32 = async (key: Uint8Array, fallback: number) => {
      const v = await this.db.get(key);
      return v ? Buffer.from(v).readUInt32LE(0) : fallback;
    };
    const end = await u32(packEndKey(pack), PACK_HEADER_SIZE);
    const durable = await u32(packDurableKey(pack), end);
    this.committed = { pack, end, durable };
    if (durable < end) await this.recoverTail();
    return this;
  }

  /**
   * After a power loss: keeps the records between the durable and the committed end that are
   * intact, cuts the pack before the first that is not, and forgets index entries past the cut.
   */
  private async recoverTail(): Promise<void> {
    const { pack, end } = this.committed;
    const fd = this.fd(pack);
    let pos = this.committed.durable;
    while (pos < end) {
      try {
        const head = Buffer.alloc(RECORD_HEADER_SIZE);
        if (readSync(fd, head, 0, head.length, pos) !== head.length) break;
        const h = decodeRecordHeader(head);
        const length = RECORD_HEADER_SIZE + h.storedLength;
        if (pos + length > end) break;
        this.read(h.id, { pack, offset: pos, length });
        pos += length;
      } catch {
        break;
      }
    }
    if (pos < end) {
      const lost: Uint8Array[] = [];
      for await (const [k, v] of this.db.iterator({ gte: Buffer.from([CHUNK_PREFIX]), lt: Buffer.from([CHUNK_PREFIX + 1]) })) {
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
  private async batch(ops: BatchOp[], options: { sync: boolean }): Promise<void> {
    try {
      const batch = this.db.batch();
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      await batch.write(options);
    } catch (e) {
      const text = `${(e as Error).message} ${(e as { cause?: Error }).cause?.message ?? ''}`;
      if (/No space left|ENOSPC/i.test(text)) throw diskFull();
      throw e;
    }
  }

  /** Drops chunks from the index (their bytes stay until gc) so they are fetched again. */
  async forget(ids: bigint[]): Promise<void> {
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
    await this.flush();
    this.recent.clear();
    const byPack = new Map<number, { live: [bigint, Location][]; dead: [bigint, Location][] }>();
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from([CHUNK_PREFIX]), lt: Buffer.from([CHUNK_PREFIX + 1]) })) {
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
      this.dropPack(pack);
      packsRewritten++;
      onProgress?.(freedBytes);
    }
    // Packs no entry points at: leftovers of an interrupted gc (the current pack stays).
    for (const name of readdirSync(join(this.dir, 'packs'))) {
      const m = /^(\d{8})\.pack$/.exec(name);
      if (m && !byPack.has(Number(m[1])) && Number(m[1]) !== this.writePack) this.dropPack(Number(m[1]));
    }
    return { removedChunks, freedBytes, packsRewritten };
  }

  private dropPack(pack: number): void {
    const fd = this.fds.get(pack);
    if (fd !== undefined) closeSync(fd);
    this.fds.delete(pack);
    rmSync(join(this.dir, 'packs', packFileName(pack)), { force: true });
  }

  async count(): Promise<{ chunks: number; bytes: number }> {
    let chunks = 0;
    let bytes = 0;
    for await (const [, v] of this.db.iterator({ gte: Buffer.from([CHUNK_PREFIX]), lt: Buffer.from([CHUNK_PREFIX + 1]) })) {
      chunks++;
      bytes += decodeLocation(v).length;
    }
    return { chunks, bytes };
  }

  /**
   * Checks every pack header and every index entry: the record is where the index says, decodes,
   * and hashes to its id. With `repair`, entries that fail are removed from the index so the next
   * sync fetches those chunks again.
   */
  async verify(repair = false, onProgress?: (checked: number) => void): Promise<{ checked: number; problems: VerifyProblem[]; removed: number; damaged: bigint[] }> {
    const problems: VerifyProblem[] = [];
    const badPacks = new Set<number>();
    for (const name of readdirSync(join(this.dir, 'packs'))) {
      const m = /^(\d{8})\.pack$/.exec(name);
      if (!m) continue;
      const n = Number(m[1]);
      // A pack past the committed one, cut before its header was written (a kill inside newPack,
      // before it created packs whole), is an orphan the next writer replaces: not damage.
      if (n > this.committed.pack && fstatSync(this.fd(n)).size < PACK_HEADER_SIZE) continue;
      const h = Buffer.alloc(PACK_HEADER_SIZE);
      readSync(this.fd(n), h, 0, PACK_HEADER_SIZE, 0);
      try {
        checkPackHeader(h, `pack ${name}`);
      } catch (e) {
        problems.push({ pack: n, problem: (e as Error).message });
        badPacks.add(n);
      }
    }
    const bad: bigint[] = [];
    let checked = 0;
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from([CHUNK_PREFIX]), lt: Buffer.from([CHUNK_PREFIX + 1]) })) {
      const id = Buffer.from(k).readBigUInt64BE(1);
      const loc = decodeLocation(v);
      try {
        this.read(id, loc);
      } catch (e) {
        problems.push({ id: hex(id), pack: loc.pack, offset: loc.offset, problem: (e as Error).message });
        bad.push(id);
      }
      if (++checked % 1000 === 0) onProgress?.(checked);
    }
    if (repair && bad.length) await this.forget(bad);
    return { checked, problems, removed: repair ? bad.length : 0, damaged: bad };
  }

  async close(): Promise<void> {
    await this.flush();
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    await this.db.close();
  }
}

type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

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
