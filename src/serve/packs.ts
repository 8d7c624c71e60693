import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeManifest } from '../snapshot/manifest.js';
import { ChunkEntry, decodeSnapshot, recordLength } from '../snapshot/snapshot.js';
import { packHeader, PACK_HEADER_SIZE, RECORD_HEADER_SIZE, decodeRecordHeader, encodeRecord } from '../store/pack.js';
import { ChunkStore, packFileName } from '../store/store.js';
import { WorkDir } from '../workdir/workdir.js';
import { cachedPartial } from '../sync/shard-cache.js';
import { ifRangeHolds, parseRange, sendText, write } from './http.js';

/**
 * Virtual remote packs, so a LAN peer can sync from this working directory as from the
 * publisher: the store keeps records as they came in the remote's pack (ChunkStore.addRecord),
 * or raw when they came through an update's frames (then encoded again as the publisher did, which
 * gives the same bytes with the same zlib), and the cached snapshots say at which offset of which
 * remote pack each record lies. A byte range of a remote pack is the pack header (constant) and the records
 * laid end to end at their offsets, read from the local store.
 *
 * What cannot be answered is refused, never made up: a range touching a chunk the store lacks
 * (or holds in a form that does not encode again to the published bytes), or a stretch of the pack no cached snapshot
 * describes, gets 404; a range past the end, 416. The client then tries another remote.
 */
interface Placed {
  offset: number;
  length: number;
  chunk: ChunkEntry;
}

type Part = { placed: Placed; pack: number; at: number } | { placed: Placed; record: Uint8Array };

export class VirtualPacks {
  /** Pack name → its records by offset, from every cached snapshot of the trusted manifest. */
  private packs = new Map<string, Placed[]>();
  private fds = new Map<number, number>();

  constructor(
    private readonly work: WorkDir,
    private readonly store: ChunkStore,
    /** The trusted manifest whose cached snapshots describe the packs (a generation's). */
    manifest: Uint8Array | undefined,
  ) {
    this.load(manifest);
  }

  private load(bytes: Uint8Array | undefined): void {
    const packs = new Map<string, Map<number, Placed>>();
    if (bytes) {
      for (const entry of decodeManifest(bytes, 'the trusted manifest').body.snapshots) {
        const snap = this.work.readOptional(`snapshots/${entry.name}.snap`);
        let s;
        try {
          // A partial index (sync --want) describes the records of the shards held here.
          s = snap ? decodeSnapshot(snap) : cachedPartial(this.work, entry)?.snapshot;
        } catch {
          continue;
        }
        if (!s) continue;
        for (const c of s.chunks) {
          const name = s.packs[c.pack];
          const m = packs.get(name) ?? new Map<number, Placed>();
          packs.set(name, m);
          m.set(c.offset, { offset: c.offset, length: recordLength(c), chunk: c });
        }
      }
    }
    this.packs = new Map([...packs].map(([name, m]) => [name, [...m.values()].sort((a, b) => a.offset - b.offset)]));
  }

  has(name: string): boolean {
    return this.packs.has(name);
  }

  /** The pack's size as far as the snapshots know it: the end of its last record. */
  size(name: string): number {
    const list = this.packs.get(name);
    if (!list?.length) return PACK_HEADER_SIZE;
    const last = list[list.length - 1];
    return last.offset + last.length;
  }

  async serve(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const list = this.packs.get(name);
    if (!list) return sendText(res, 404, `no pack ${name} in this mirror's snapshots`);
    const size = this.size(name);
    const etag = `"${name}"`;
    const ask = ifRangeHolds(req, etag) ? parseRange(req.headers.range, size) : 'none';
    if (ask === 'unsatisfiable') {
      res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': 0, ETag: etag }).end();
      return;
    }
    const { start, end } = ask === 'none' ? { start: 0, end: size } : ask;
    // Everything is checked before the head goes out: a 206 must deliver every byte it promises.
    const parts: Part[] = [];
    let pos = Math.max(start, PACK_HEADER_SIZE);
    let i = firstAtOrBefore(list, pos);
    while (pos < end) {
      const p = list[i];
      if (!p || p.offset > pos || p.offset + p.length <= pos) {
        return sendText(res, 404, `bytes ${pos}… of pack ${name.slice(0, 12)} are not described by this mirror's snapshots`);
      }
      const part = await this.recordAsPublished(p);
      if (!part) return sendText(res, 404, `this mirror does not hold the chunk at ${p.offset} of pack ${name.slice(0, 12)} as published`);
      parts.push(part);
      pos = p.offset + p.length;
      i++;
    }
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'Content-Length': end - start,
      'Cache-Control': 'public, max-age=31536000, immutable',
    };
    if (ask !== 'none') headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
    res.writeHead(ask === 'none' ? 200 : 206, headers);
    if (req.method === 'HEAD') return void res.end();
    if (start < PACK_HEADER_SIZE && !(await write(res, packHeader().subarray(start, Math.min(end, PACK_HEADER_SIZE))))) return;
    for (const part of parts) {
      const { placed } = part;
      const from = Math.max(start, placed.offset) - placed.offset;
      const to = Math.min(end, placed.offset + placed.length) - placed.offset;
      const bytes = 'record' in part ? part.record.subarray(from, to) : this.read(part.pack, part.at + from, to - from);
      if (!(await write(res, bytes))) return;
    }
    res.end();
  }

  /**
   * Where the published record of a chunk comes from: the store's own record when it is the
   * published one, else the chunk encoded again as the publisher did (chunks that came through
   * an update's frames are stored raw). Undefined when neither gives the published bytes.
   */
  private async recordAsPublished(p: Placed): Promise<Part | undefined> {
    const loc = await this.store.locate(p.chunk.id);
    if (!loc) return undefined;
    if (loc.length === p.length && this.sameHeader(loc.pack, loc.offset, p.chunk)) return { placed: p, pack: loc.pack, at: loc.offset };
    try {
      const record = encodeRecord(p.chunk.id, await this.store.get(p.chunk.id));
      const h = decodeRecordHeader(record);
      if (record.length === p.length && h.repr === p.chunk.repr && h.storedLength === p.chunk.storedLength) return { placed: p, record };
    } catch {
      // a damaged chunk is not served
    }
    return undefined;
  }

  private sameHeader(pack: number, offset: number, c: ChunkEntry): boolean {
    try {
      const h = decodeRecordHeader(this.read(pack, offset, RECORD_HEADER_SIZE));
      return h.id === c.id && h.repr === c.repr && h.rawLength === c.rawLength && h.storedLength === c.storedLength;
    } catch {
      return false;
    }
  }

  private read(pack: number, position: number, length: number): Buffer {
    let fd = this.fds.get(pack);
    if (fd === undefined) {
      fd = openSync(join(this.store.dir, 'packs', packFileName(pack)), 'r');
      this.fds.set(pack, fd);
    }
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, position + done);
      if (n === 0) throw new Error(`local pack ${packFileName(pack)} ends early`);
      done += n;
    }
    return buf;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** Index of the last record starting at or before `pos` (0 when none does). */
function firstAtOrBefore(list: Placed[], pos: number): number {
  let lo = 0;
  let hi = list.length - 1;
  let ans = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].offset <= pos) {
      ans = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return ans;
}
