import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { idToHex } from '../chunk/index.js';
import { PaqueteError } from '../errors.js';
import { fingerprint, publicKeyFromRaw } from '../snapshot/keys.js';
import { recordLength } from '../snapshot/snapshot.js';
import { cachedSnapshotBytes } from '../sync/catalog.js';
import { fsyncPath } from '../util/fsx.js';
import { matcher } from '../util/glob.js';
import { WorkDir } from '../workdir/workdir.js';
import {
  BUNDLE_EXT, BundleItem, chunkItemHeadSize, encodeVolumeHead, FAT32_MAX_FILE, ItemKind, VolumeHead, volumeFileName,
} from './bundle.js';
import { HaveSummary, haveHas } from './have.js';
import { requireLatest } from './local.js';
import { rotatedTo } from '../snapshot/rotation.js';

export interface ExportOptions {
  /** The friend's have-summary; without it, everything the wanted files need. */
  have?: HaveSummary;
  /** A directory (volumes get generated names) or a FILE.pqb path. Absolute. */
  to: string;
  /** `--want` globs; empty means the whole snapshot. */
  wants?: string[];
  /** Largest volume file, in bytes. Default: the FAT32 limit, 4 GiB − 1. */
  maxSize?: number;
  /** Bytes written so far, of the total; and volumes finished. */
  onProgress?: (written: number, total: number, volumesDone: number) => void;
  now?: Date;
}

export interface ExportResult {
  bundleId: string;
  snapshot: string;
  serial: number;
  volumes: { path: string; bytes: number; chunks: number }[];
  /** Chunk records in the bundle, and their bytes. */
  chunks: number;
  recordBytes: number;
  /** Files matching --want, and how many of them the friend can place after importing. */
  wantedFiles: number;
  completeFiles: number;
  /** Chunks the friend lacks that this store lacks too: not in the bundle. */
  unavailable: { chunks: number; bytes: number };
  /** Chunks the friend already has (from the have-summary). */
  friendHas: number;
  /** Chunks found damaged in this store while writing: written as zeros, refused by the importer. */
  damaged: string[];
  /** The friend trusts a newer manifest than this store: the bundle's manifest will be refused. */
  friendNewer: boolean;
}

/**
 * Writes a bundle for a friend: the chunk records the friend lacks for the wanted files of the
 * latest snapshot this store trusts, copied verbatim from the store, plus the signed manifest
 * and the snapshot index (unless the friend has it), split into volumes below the size limit.
 *
 * Files are taken in --want order and, within that, cheapest first, with each file's chunks
 * together: a friend who gets only the first volumes can still place whole files.
 */
export async function exportBundle(work: WorkDir, opts: ExportOptions): Promise<ExportResult> {
  const latest = requireLatest(work, 'there is nothing to export');
  const { snapshot, entry, manifest } = latest;
  if (latest.partial && !opts.have?.snapshots.includes(entry.name)) {
    // A bundle carries the whole signed index: the friend checks every record against it.
    throw new PaqueteError(
      'NO_SNAPSHOT',
      `${work.root} holds only the index of what it wanted (a partial index: sync --want): a bundle carries the whole index of the snapshot`,
      'run paquete sync --dry-run without --want once (it fetches the whole index), then export again',
    );
  }
  const have = opts.have;
  // The friend's key, or one that rotated to ours (their import follows the statement).
  if (have && Buffer.compare(have.publisher, manifest.publisher.raw) !== 0 && !rotatedTo(manifest, have.publisher)) {
    throw new PaqueteError(
      'UNTRUSTED_KEY',
      `the have-summary comes from a directory that trusts ${fingerprint(publicKeyFromRaw(have.publisher))}; this one trusts ${fingerprint(manifest.publisher)}`,
      'your friend follows another publisher: nothing here would be accepted by their paquete',
    );
  }
  const maxSize = opts.maxSize ?? FAT32_MAX_FILE;

  // The wanted files, in the order their chunks go into the bundle.
  const which = opts.wants?.length ? matcher(opts.wants) : () => 0;
  const friendHas = (id: bigint) => (have ? haveHas(have, id) : false);
  const wanted = snapshot.files
    .map((file) => {
      let lacking = 0;
      for (const i of file.chunks) if (!friendHas(snapshot.chunks.id(i))) lacking += snapshot.chunks.rawLength[i];
      return { file, rank: which(file.path), lacking };
    })
    .filter((f) => f.rank >= 0)
    .sort((a, b) => a.rank - b.rank || a.lacking - b.lacking || (a.file.path < b.file.path ? -1 : 1));

  const order: bigint[] = [];
  const queued = new Set<bigint>();
  let friendHasCount = 0;
  const unavailable = { chunks: 0, bytes: 0 };
  const lengths = new Map<bigint, number>();
  const missingHere = new Set<bigint>();
  for (const { file } of wanted) {
    for (const i of file.chunks) {
      const c = snapshot.chunks.entry(i);
      if (queued.has(c.id) || missingHere.has(c.id)) continue;
      if (friendHas(c.id)) {
        queued.add(c.id);
        friendHasCount++;
        continue;
      }
      const loc = await work.store.locate(c.id);
      if (!loc) {
        missingHere.add(c.id);
        unavailable.chunks++;
        unavailable.bytes += recordLength(c);
        continue;
      }
      queued.add(c.id);
      order.push(c.id);
      lengths.set(c.id, loc.length);
    }
  }
  const completeFiles = wanted.filter(({ file }) => file.chunks.every((i) => !missingHere.has(snapshot.chunks.id(i)))).length;

  // The signed manifest and the snapshot index travel in every volume (the index only if the
  // friend lacks it), so each volume can be checked and used alone.
  const fixedItems: BundleItem[] = [{ kind: ItemKind.Manifest, length: manifest.bytes.length }];
  const fixedData: Uint8Array[] = [manifest.bytes];
  if (!have?.snapshots.includes(entry.name)) {
    const snapBytes = cachedSnapshotBytes(work, entry.name)!;
    fixedItems.push({ kind: ItemKind.Snapshot, name: entry.name, length: snapBytes.length });
    fixedData.push(snapBytes);
  }
  const bundleId = randomBytes(16).toString('hex');
  const created = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const baseHead = (volume: number, volumes: number, summary: VolumeHead['summary'], items: BundleItem[]): VolumeHead => ({
    bundleId,
    volume,
    volumes,
    publisher: manifest.publisher.raw,
    serial: manifest.body.serial,
    created,
    target: entry.name,
    summary,
    items,
  });

  const volumesOf = plan(order, lengths, maxSize, (guess) => {
    // An upper bound of a head without chunk items, whatever the counts turn out to be.
    const summary = Array.from({ length: guess }, () => ({ chunks: 2 ** 32, bytes: 2 ** 48 }));
    const fixed = encodeVolumeHead(baseHead(guess, guess, summary, fixedItems)).length;
    return fixed + fixedItems.reduce((n, it) => n + it.length, 0);
  });
  const n = volumesOf.length;
  const fixedBytes = fixedItems.reduce((a, it) => a + it.length, 0);
  const summary = volumesOf.map((ids) => ({ chunks: ids.length, bytes: fixedBytes + ids.reduce((a, id) => a + lengths.get(id)!, 0) }));
  const heads = volumesOf.map((ids, v) =>
    encodeVolumeHead(baseHead(v + 1, n, summary, [...fixedItems, ...ids.map((id): BundleItem => ({ kind: ItemKind.Chunk, id, length: lengths.get(id)! }))])),
  );

  const { dir, base } = destination(opts.to, bundleId, created);
  mkdirSync(dir, { recursive: true });
  const total = heads.reduce((a, h, v) => a + h.length + summary[v].bytes, 0);
  let written = 0;
  const damaged: string[] = [];
  const volumes: ExportResult['volumes'] = [];
  for (let v = 0; v < n; v++) {
    const path = join(dir, volumeFileName(base, v + 1, n));
    const tmp = join(dir, `.${basename(path)}.tmp-${randomBytes(4).toString('hex')}`);
    const out = new VolumeWriter(tmp);
    try {
      out.write(heads[v]);
      for (const d of fixedData) out.write(d);
      written += heads[v].length + fixedBytes;
      for (const id of volumesOf[v]) {
        let record: Uint8Array;
        try {
          record = await work.store.getRecord(id);
          if (record.length !== lengths.get(id)) throw new PaqueteError('DAMAGED_PACK', 'length changed');
        } catch (e) {
          if (!(e instanceof PaqueteError)) throw e;
          // The head already promised this many bytes; zeros are refused by the importer.
          damaged.push(idToHex(id));
          record = new Uint8Array(lengths.get(id)!);
        }
        out.write(record);
        written += record.length;
        opts.onProgress?.(written, total, v);
      }
      out.finish();
      renameSync(tmp, path);
    } catch (e) {
      out.abort();
      throw e;
    }
    opts.onProgress?.(written, total, v + 1);
    volumes.push({ path, bytes: statSync(path).size, chunks: volumesOf[v].length });
  }
  fsyncPath(dir);
  return {
    bundleId,
    snapshot: entry.name,
    serial: manifest.body.serial,
    volumes,
    chunks: order.length,
    recordBytes: order.reduce((a, id) => a + lengths.get(id)!, 0),
    wantedFiles: wanted.length,
    completeFiles,
    unavailable,
    friendHas: friendHasCount,
    damaged,
    friendNewer: have?.serial !== undefined && have.serial > manifest.body.serial,
  };
}

/**
 * Splits records into volumes of at most maxSize bytes, in order. `fixedFor(n)` is an upper
 * bound of a volume's size before its chunks when the bundle has n volumes (the volume list in
 * every head grows with n), so the split is redone until the count it assumed holds.
 */
function plan(order: bigint[], lengths: Map<bigint, number>, maxSize: number, fixedFor: (volumes: number) => number): bigint[][] {
  for (let guess = 1; ; ) {
    const fixed = fixedFor(guess);
    if (fixed > maxSize) {
      throw new PaqueteError('USAGE', `--max-size ${maxSize} is too small: every volume carries the signed manifest and snapshot index (${fixed} bytes)`, `give at least --max-size ${fixed + 100_000}`);
    }
    const volumes: bigint[][] = [[]];
    let size = fixed;
    for (const id of order) {
      const cost = lengths.get(id)! + chunkItemHeadSize(lengths.get(id)!);
      if (fixed + cost > maxSize) {
        throw new PaqueteError(
          'USAGE',
          `--max-size ${maxSize} is too small: every volume carries the signed manifest and snapshot index (${fixed} bytes) and at least one chunk (up to ${cost})`,
          `give at least --max-size ${fixed + cost}`,
        );
      }
      if (size + cost > maxSize) {
        volumes.push([]);
        size = fixed;
      }
      volumes[volumes.length - 1].push(id);
      size += cost;
    }
    if (volumes.length <= guess) return volumes;
    guess = volumes.length;
  }
}

/** Where volumes go: `--to DIR` (generated names) or `--to FILE.pqb`. */
function destination(to: string, bundleId: string, created: number): { dir: string; base: string } {
  if (to.toLowerCase().endsWith(BUNDLE_EXT) && !(existsSync(to) && statSync(to).isDirectory())) {
    return { dir: dirname(to), base: basename(to).slice(0, -BUNDLE_EXT.length) };
  }
  if (existsSync(to) && !statSync(to).isDirectory()) {
    throw new PaqueteError('USAGE', `${to} is a file`, `give a directory for the volumes, or a file name ending in ${BUNDLE_EXT}`);
  }
  const day = new Date(created * 1000).toISOString().slice(0, 10);
  return { dir: to, base: `paquete-${day}-${bundleId.slice(0, 8)}` };
}

/** Buffered writes to a temp file that becomes a volume only once complete and synced. */
class VolumeWriter {
  private fd: number;
  private buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  constructor(private readonly path: string) {
    this.fd = openSync(path, 'w');
  }
  write(b: Uint8Array): void {
    if (this.used + b.length > this.buf.length) this.drain();
    if (b.length >= this.buf.length) this.writeAll(b);
    else {
      this.buf.set(b, this.used);
      this.used += b.length;
    }
  }
  private drain(): void {
    this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }
  private writeAll(b: Uint8Array): void {
    let done = 0;
    try {
      while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new PaqueteError('DISK_FULL', `no space left for ${this.path.replace(/\/\.([^/]*)\.tmp-[0-9a-f]+$/, '/$1')}`, 'use a smaller --max-size, a --want, or a bigger stick');
      }
      throw e;
    }
  }
  finish(): void {
    this.drain();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }
  abort(): void {
    try {
      if (this.fd >= 0) closeSync(this.fd);
    } catch {
      /* already closed */
    }
    try {
      unlinkSync(this.path);
    } catch {
      /* never created */
    }
  }
}
