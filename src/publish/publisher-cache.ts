import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { writeFileAtomic } from '../util/fsx.js';

/**
 * The publisher cache (`$XDG_STATE_HOME/paquete/publisher/<remote key>/files`, docs/FORMATS.md
 * §Publisher cache): what each
 * source file looked like (size, mtime, ctime, inode, device) when the remote's latest snapshot
 * was published. A publish stats every file, as `rsync -a` does, and takes a file whose stat is
 * unchanged from the previous snapshot as it is (its SHA-256 and chunks) instead of reading and
 * chunking it again: at 10k files chunking was ~1 of a 1% publish's ~6 s of CPU, the work a
 * publish of a small change should not pay.
 *
 * The cache is a hint, never a source of truth: it names the snapshot it describes and is used
 * only when that snapshot is the remote's latest (checked against the signed manifest), so a
 * publish killed before or after signing leaves a cache that is simply not used; the file is
 * written whole (atomic rename) and carries its own SHA-256, so a torn or damaged one is ignored.
 */
/**
 * Where the cache lived until it moved beside the remote: inside it, so any static server of the
 * remote handed out every source file's size, times and inode. Read once if the new place has no
 * cache, and removed by the next write.
 */
export const OLD_PUBLISHER_CACHE_DIR = '.publisher';
/**
 * The publisher's state directory of a remote, in the publishing user's state home, never in or
 * beside what is served (a remote is usually one directory of a served tree: /srv/www/mirror):
 * named by the remote's real path, so a copy or a move of the remote starts with no cache.
 */
export function publisherStateDir(remoteDir: string): string {
  let real = resolve(remoteDir);
  try {
    real = realpathSync(real);
  } catch {
    // not there yet: its cache is not either
  }
  const home = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  const name = `${basename(real).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40) || 'root'}-${createHash('sha256').update(real).digest('hex').slice(0, 16)}`;
  return join(home, 'paquete', 'publisher', name);
}
const CACHE_FILE = 'files';
const MAGIC = Buffer.from('PQPC', 'ascii');
const VERSION = 1;
/**
 * The cutting rule (src/sources/cutting.ts) the cached chunks were made by: bumped when it
 * changes, so chunks cut by an older rule are not carried into a snapshot cut by the new one.
 */
export const CUTTING_RULE = 1;
/**
 * A file changed within this long before the walk that recorded it may change again within the
 * same mtime tick (FAT's 2 s; ext4's coarse clock ticks in milliseconds) without its stat
 * changing: such entries are chunked again (git's "racy" index entries).
 */
const RACY_MS = 2000;

/** What a file's stat says about its content, as a publish walks the source. */
export interface FileStat {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

/** A rebuild container's report (src/publish/publisher.ts RebuiltReport), kept so a reused file counts as when it was cut. */
export type CachedForm = { deflated: number; reproduced: number; opaque: number } | 'kept' | undefined;

export interface CacheEntry extends FileStat {
  rel: string;
  form: CachedForm;
}

export interface PublisherCacheBody {
  /** Hex SHA-256 name of the snapshot whose files these are. */
  snapshot: string;
  /** When the publish that wrote it began walking (ms since the epoch). */
  walkedMs: number;
  /** Per source name, its files in walk order. */
  sources: Map<string, CacheEntry[]>;
}

export function encodePublisherCache(c: PublisherCacheBody): Uint8Array {
  const w = new ByteWriter(1 << 16);
  w.bytes(MAGIC).u8(VERSION).u8(CUTTING_RULE).u8(0).u8(0);
  w.bytes(Buffer.from(c.snapshot, 'hex'));
  w.f64(c.walkedMs);
  w.varint(c.sources.size);
  for (const [name, entries] of c.sources) {
    w.string(name).varint(entries.length);
    let last: Buffer = Buffer.alloc(0);
    for (const e of entries) {
      // Paths share long prefixes (d0/e12/f1234.js): each is the bytes it shares with the one before plus the rest.
      const rel = Buffer.from(e.rel, 'utf8');
      let shared = 0;
      const most = Math.min(rel.length, last.length);
      while (shared < most && rel[shared] === last[shared]) shared++;
      w.varint(shared).varint(rel.length - shared).bytes(rel.subarray(shared));
      last = rel;
      w.varint(e.size);
      w.f64(e.mtimeMs).f64(e.ctimeMs).f64(e.ino).f64(e.dev);
      if (e.form === undefined) w.u8(0);
      else if (e.form === 'kept') w.u8(2);
      else w.u8(1).varint(e.form.deflated).varint(e.form.reproduced).varint(e.form.opaque);
    }
  }
  const body = w.finish();
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** Throws BAD_FORMAT on anything but an intact cache of this version and cutting rule. */
export function decodePublisherCache(data: Uint8Array): PublisherCacheBody {
  const r = new ByteReader(data, 'publisher cache');
  if (data.length < 48 + 32) r.fail('too short');
  const body = data.subarray(0, data.length - 32);
  if (Buffer.compare(createHash('sha256').update(body).digest(), data.subarray(data.length - 32)) !== 0) r.fail('its SHA-256 does not match');
  if (!MAGIC.equals(r.bytes(4))) r.fail('bad magic');
  if (r.u8() !== VERSION) r.fail('another version');
  if (r.u8() !== CUTTING_RULE) r.fail('cut by another rule');
  r.u8();
  r.u8();
  const snapshot = Buffer.from(r.bytes(32)).toString('hex');
  const walkedMs = r.f64();
  // The path being rebuilt from its shared prefix and rest, grown as needed.
  let path = Buffer.alloc(256);
  const sources = new Map<string, CacheEntry[]>();
  const nSources = r.count(1, 'sources');
  for (let s = 0; s < nSources; s++) {
    const name = r.string();
    const n = r.count(36, 'files');
    const entries: CacheEntry[] = [];
    let last = 0;
    for (let i = 0; i < n; i++) {
      const shared = r.varint();
      if (shared > last) r.fail('a path shares more than the one before it');
      const rest = r.bytes(r.varint());
      if (shared + rest.length > path.length) path = Buffer.concat([path, Buffer.alloc(shared + rest.length)]);
      path.set(rest, shared);
      last = shared + rest.length;
      const rel = path.toString('utf8', 0, last);
      const size = r.varint();
      const mtimeMs = r.f64();
      const ctimeMs = r.f64();
      const ino = r.f64();
      const dev = r.f64();
      const kind = r.u8();
      let form: CachedForm;
      if (kind === 1) form = { deflated: r.varint(), reproduced: r.varint(), opaque: r.varint() };
      else if (kind === 2) form = 'kept';
      else if (kind !== 0) r.fail(`unknown form ${kind}`);
      entries.push({ rel, size, mtimeMs, ctimeMs, ino, dev, form });
    }
    sources.set(name, entries);
  }
  if (r.remaining !== 32) r.fail('bytes after the last source');
  return { snapshot, walkedMs, sources };
}

const cachePath = (remoteDir: string) => join(publisherStateDir(remoteDir), CACHE_FILE);
const oldCachePath = (remoteDir: string) => join(remoteDir, OLD_PUBLISHER_CACHE_DIR, CACHE_FILE);

/** The cache as a lookup: an entry is given back only while the file's stat is what it recorded. */
export class PublisherCache {
  private readonly bySource = new Map<string, Map<string, CacheEntry>>();

  private constructor(readonly body: PublisherCacheBody) {
    for (const [name, entries] of body.sources) this.bySource.set(name, new Map(entries.map((e) => [e.rel, e])));
  }

  /** The cache of `remoteDir` if it describes `snapshot` (the remote's latest, as its signed manifest names it), else undefined. */
  static read(remoteDir: string, snapshot: string | undefined): PublisherCache | undefined {
    if (!snapshot) return undefined;
    const path = existsSync(cachePath(remoteDir)) ? cachePath(remoteDir) : oldCachePath(remoteDir);
    if (!existsSync(path)) return undefined;
    try {
      const body = decodePublisherCache(readFileSync(path));
      return body.snapshot === snapshot ? new PublisherCache(body) : undefined;
    } catch {
      return undefined; // damaged, torn or of another version: every file is chunked again
    }
  }

  /** The entry of `rel` in `source` if `st` is the stat it recorded and it was not racy then. */
  unchanged(source: string, rel: string, st: FileStat): CacheEntry | undefined {
    const e = this.bySource.get(source)?.get(rel);
    if (!e || e.size !== st.size || e.mtimeMs !== st.mtimeMs || e.ctimeMs !== st.ctimeMs || e.ino !== st.ino || e.dev !== st.dev) return undefined;
    if (Math.max(e.mtimeMs, e.ctimeMs) >= this.body.walkedMs - RACY_MS) return undefined;
    return e;
  }

  /** Every entry of a source, to carry into the next cache when this publish does not walk it. */
  entries(source: string): CacheEntry[] | undefined {
    return this.body.sources.get(source);
  }
}

/** Replaces the cache whole (atomic rename): a publish killed while writing it leaves the old one, or none. */
export function writePublisherCache(remoteDir: string, body: PublisherCacheBody): void {
  // A publish killed while writing left its temporary file: one at most stays beside the cache.
  const dir = publisherStateDir(remoteDir);
  if (existsSync(dir)) for (const n of readdirSync(dir)) if (n.startsWith(`${CACHE_FILE}.tmp-`)) rmSync(join(dir, n), { force: true });
  writeFileAtomic(cachePath(remoteDir), encodePublisherCache(body));
  // The cache of a remote published before it moved out: gone from what is served once the new one is durable.
  rmSync(join(remoteDir, OLD_PUBLISHER_CACHE_DIR), { recursive: true, force: true });
}
