import { closeSync, fstatSync, openSync, readdirSync, readSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chunkId, idToHex } from '../chunk/index.js';
import { isPaqueteError, PaqueteError } from '../errors.js';
import { fingerprint, publicKeyFromRaw } from '../snapshot/keys.js';
import { rotatedTo } from '../snapshot/rotation.js';
import { checkSnapshotBytes, decodeManifest, latestSnapshot, Manifest, sameManifest } from '../snapshot/manifest.js';
import { decodeSnapshot } from '../snapshot/snapshot.js';
import { decodePayload, decodeRecordHeader, RECORD_HEADER_SIZE } from '../store/pack.js';
import { acceptManifest, cacheSnapshot, cachedSnapshotBytes, checkManifestTrust, trustedManifest } from '../sync/catalog.js';
import { formatSize } from '../util/size.js';
import { WorkDir } from '../workdir/workdir.js';
import { BUNDLE_EXT, decodePrelude, decodeVolumeHead, itemOffsets, ItemKind, PRELUDE_SIZE, sameBundle, VolumeHead } from './bundle.js';
import { latestChunkIds, placeFromStore, PlaceResult } from './local.js';

export interface ImportOptions {
  /** Place the files that became complete (default true). */
  place?: boolean;
  /** Bytes of volumes gone through so far, of the total listed; and volumes finished. */
  onProgress?: (done: number, total: number, volumesDone: number) => void;
}

/** One thing that went wrong, with where: a file as given, or a bundle and volume. */
export interface ImportProblem {
  where: string;
  message: string;
}

export interface BundleReport {
  id: string;
  serial: number;
  volumes: number;
  found: number[];
  /** Volumes imported intact by an earlier `paquete import`, not given now. */
  earlier: number[];
  missing: { volume: number; chunks: number; bytes: number }[];
  /** What became of the bundle's signed manifest. */
  manifest: 'accepted' | 'already trusted' | 'refused' | 'unreadable';
}

export interface ImportResult {
  bundles: BundleReport[];
  /** Chunks stored now, and their record bytes. */
  imported: { chunks: number; bytes: number };
  /** Chunks the store already had. */
  alreadyHad: number;
  /** Intact chunks no snapshot this directory trusts needs: not stored. */
  notNeeded: number;
  /** Chunks that failed their checks: not stored. */
  rejected: number;
  /** Chunks listed in a volume's table but cut off its end. */
  lost: number;
  problems: ImportProblem[];
  /** Harmless observations: duplicate volumes, volumes given out of order. */
  notes: string[];
  placement?: PlaceResult;
}

interface Volume {
  path: string;
  fd: number;
  size: number;
  head: VolumeHead;
  headBytes: Buffer;
  offsets: number[];
  /** Where the last item ends: the size the volume should have. */
  end: number;
}

interface Bundle {
  id: string;
  first: VolumeHead;
  volumes: Map<number, Volume>;
  given: number[];
  report: BundleReport;
}

/** How many damaged chunks of one volume are named one by one before summing up. */
const NAMED_PER_VOLUME = 10;

/**
 * Imports bundle volumes, trusting nothing in them. The manifest must verify with the key this
 * directory trusts and must not roll it back (the same check as a sync); each snapshot index
 * must match its manifest entry's SHA-256 and decode with safe paths; each chunk record must
 * decode and hash to its id and be needed by a snapshot this directory trusts. Whatever fails is
 * reported and skipped; everything that passes is kept, so a damaged or partial bundle still
 * gives all it can. Files that became complete are placed, as a sync would place them.
 */
export async function importBundles(work: WorkDir, paths: string[], opts: ImportOptions = {}): Promise<ImportResult> {
  const result: ImportResult = {
    bundles: [],
    imported: { chunks: 0, bytes: 0 },
    alreadyHad: 0,
    notNeeded: 0,
    rejected: 0,
    lost: 0,
    problems: [],
    notes: [],
  };
  const problem = (where: string, message: string) => result.problems.push({ where, message });
  const opened: Volume[] = [];
  try {
    const seen = readImportedLog(work);
    const bundles = openVolumes(expandInputs(paths, problem), problem, result.notes, opened, seen);
    const trustedKey = Buffer.from(work.config.publisher, 'base64');
    const usable: Bundle[] = [];
    for (const b of bundles) {
      result.bundles.push(b.report);
      const name = `bundle ${b.id.slice(0, 8)}`;
      for (const m of b.report.missing) {
        problem(name, `volume ${m.volume} of ${b.report.volumes} is missing (${m.chunks} chunks, ${formatSize(m.bytes)}); import it when you have it`);
      }
      // Another key: only one the trusted key rotated to, as the bundle's signed manifest shows.
      if (Buffer.compare(b.first.publisher, trustedKey) !== 0 && !rotatedTo(bundleManifest(b), trustedKey)) {
        problem(name, `made for the publisher ${fingerprint(publicKeyFromRaw(b.first.publisher))}, but this directory trusts ${fingerprint(publicKeyFromRaw(trustedKey))}: ignored`);
        b.report.manifest = 'refused';
        continue;
      }
      usable.push(b);
    }
    // Oldest manifest first, so importing an old and a new bundle together ends on the new one.
    usable.sort((a, b) => a.first.serial - b.first.serial);
    for (const b of usable) adoptManifest(work, b, problem);

    const needed = latestChunkIds(work);
    const total = usable.reduce((n, b) => n + [...b.volumes.values()].reduce((m, v) => m + v.head.summary[v.head.volume - 1].bytes, 0), 0);
    let done = 0;
    let volumesDone = 0;
    for (const b of usable) {
      for (const v of [...b.volumes.values()].sort((x, y) => x.head.volume - y.head.volume)) {
        const base = done;
        const problemsBefore = result.problems.length;
        done += await importChunks(work, v, `bundle ${b.id.slice(0, 8)} volume ${v.head.volume}`, needed, result, problem, (n) => opts.onProgress?.(base + n, total, volumesDone));
        opts.onProgress?.(done, total, ++volumesDone);
        if (result.problems.length === problemsBefore && (b.report.manifest === 'accepted' || b.report.manifest === 'already trusted')) {
          seen.set(b.id, [...new Set([...(seen.get(b.id) ?? []), v.head.volume])].sort((x, y) => x - y));
        }
      }
    }
    await work.store.flush();
    writeImportedLog(work, seen);
    if (opts.place !== false) result.placement = await placeFromStore(work);
    return result;
  } finally {
    for (const v of opened) closeSync(v.fd);
  }
}

/** Files as given, and the volumes (*.pqb) inside directories given. */
function expandInputs(paths: string[], problem: (where: string, message: string) => void): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    let real: string;
    try {
      real = realpathSync(p);
    } catch {
      problem(p, 'no such file');
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    out.push(p);
  };
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      problem(p, 'no such file or directory');
      continue;
    }
    if (st.isDirectory()) {
      const names = readdirSync(p).filter((n) => n.toLowerCase().endsWith(BUNDLE_EXT) && !n.startsWith('.')).sort();
      if (names.length === 0) problem(p, `no bundle volumes (*${BUNDLE_EXT}) in this directory`);
      for (const n of names) add(join(p, n));
    } else add(p);
  }
  return out;
}

/** Reads every volume's head and groups volumes by bundle, noting duplicates, strays and gaps. */
function openVolumes(
  files: string[],
  problem: (where: string, message: string) => void,
  notes: string[],
  opened: Volume[],
  earlier: Map<string, number[]>,
): Bundle[] {
  const bundles = new Map<string, Bundle>();
  for (const path of files) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      problem(path, `cannot read: ${(e as Error).message}`);
      continue;
    }
    let vol: Volume;
    try {
      const size = fstatSync(fd).size;
      const prelude = readAt(fd, 0, Math.min(PRELUDE_SIZE, size));
      const headLength = decodePrelude(prelude);
      const headBytes = readAt(fd, 0, Math.min(PRELUDE_SIZE + headLength, size));
      const { head, dataStart } = decodeVolumeHead(headBytes);
      const end = dataStart + head.items.reduce((n, it) => n + it.length, 0);
      vol = { path, fd, size, head, headBytes, offsets: itemOffsets(head, dataStart), end };
    } catch (e) {
      closeSync(fd);
      if (!isPaqueteError(e)) throw e;
      problem(path, e.message);
      continue;
    }
    opened.push(vol);
    const { head } = vol;
    let b = bundles.get(head.bundleId);
    if (!b) {
      b = {
        id: head.bundleId,
        first: head,
        volumes: new Map(),
        given: [],
        report: { id: head.bundleId, serial: head.serial, volumes: head.volumes, found: [], earlier: [], missing: [], manifest: 'unreadable' },
      };
      bundles.set(head.bundleId, b);
    }
    const name = `bundle ${head.bundleId.slice(0, 8)}`;
    if (!sameBundle(b.first, head)) {
      problem(path, `says it is volume ${head.volume} of ${name} but does not agree with that bundle's other volumes: skipped`);
      continue;
    }
    const twin = b.volumes.get(head.volume);
    if (twin) {
      if (twin.headBytes.equals(vol.headBytes)) notes.push(`${path} is volume ${head.volume} of ${name} again (also ${twin.path}): read once`);
      else problem(path, `a second, different volume ${head.volume} of ${name} (the first was ${twin.path}): skipped`);
      continue;
    }
    b.volumes.set(head.volume, vol);
    b.given.push(head.volume);
  }
  for (const b of bundles.values()) {
    b.report.found = [...b.volumes.keys()].sort((x, y) => x - y);
    for (let v = 1; v <= b.first.volumes; v++) {
      if (b.volumes.has(v)) continue;
      if (earlier.get(b.id)?.includes(v)) b.report.earlier.push(v);
      else b.report.missing.push({ volume: v, chunks: b.first.summary[v - 1].chunks, bytes: b.first.summary[v - 1].bytes });
    }
    if (b.given.some((v, i) => i > 0 && v < b.given[i - 1])) {
      notes.push(`the volumes of bundle ${b.id.slice(0, 8)} were given out of order (${b.given.join(', ')}); read as ${b.report.found.join(', ')}`);
    }
  }
  return [...bundles.values()];
}

/**
 * Accepts the bundle's manifest if it verifies with the trusted key, does not roll back, and its
 * latest snapshot index is at hand (in the bundle or cached) and sound; then caches the bundle's
 * snapshot indexes that the trusted manifest names.
 */
/** The first intact manifest among a bundle's volumes (each damaged one reported, if asked). */
function bundleManifest(b: Bundle, problem?: (where: string, message: string) => void): Manifest | undefined {
  const name = `bundle ${b.id.slice(0, 8)}`;
  for (const v of [...b.volumes.values()].sort((x, y) => x.head.volume - y.head.volume)) {
    const i = v.head.items.findIndex((it) => it.kind === ItemKind.Manifest);
    if (i < 0) continue;
    const bytes = readItem(v, i);
    if (!bytes) continue;
    try {
      return decodeManifest(bytes, `${name} volume ${v.head.volume}`);
    } catch (e) {
      if (!isPaqueteError(e)) throw e;
      problem?.(`${name} volume ${v.head.volume}`, e.message);
    }
  }
  return undefined;
}

function adoptManifest(work: WorkDir, b: Bundle, problem: (where: string, message: string) => void): void {
  const name = `bundle ${b.id.slice(0, 8)}`;
  const vols = [...b.volumes.values()].sort((x, y) => x.head.volume - y.head.volume);
  const manifest = bundleManifest(b, problem);
  // Every snapshot index the bundle carries, first intact copy of each (checked against a
  // manifest entry below: until then these are just bytes).
  const carried = new Map<string, Uint8Array[]>();
  for (const v of vols) {
    v.head.items.forEach((it, i) => {
      if (it.kind !== ItemKind.Snapshot) return;
      const bytes = readItem(v, i);
      if (bytes) carried.set(it.name, [...(carried.get(it.name) ?? []), bytes]);
    });
  }
  if (!manifest) {
    problem(name, 'no intact manifest in any of its volumes: its snapshot could not be checked');
  } else {
    try {
      checkManifestTrust(work, manifest, name);
      const trusted = trustedManifest(work);
      if (trusted && sameManifest(trusted, manifest)) {
        b.report.manifest = 'already trusted';
      } else {
        const latest = latestSnapshot(manifest.body);
        if (!latest) throw new PaqueteError('BAD_FORMAT', `${name} carries a manifest with no snapshot`);
        const copies = [cachedSnapshotBytes(work, latest.name), ...(carried.get(latest.name) ?? [])].filter((x): x is NonNullable<typeof x> => !!x);
        let why = 'it does not carry its latest snapshot index, and this directory does not have it';
        let good: Uint8Array | undefined;
        for (const bytes of copies) {
          try {
            checkSnapshotBytes(latest, bytes);
            decodeSnapshot(bytes);
            good = bytes;
            break;
          } catch (e) {
            if (!isPaqueteError(e)) throw e;
            why = e.message;
          }
        }
        if (!good) throw new PaqueteError('BAD_FORMAT', `${name} offers manifest ${manifest.body.serial}, refused: ${why}`);
        cacheSnapshot(work, latest, good);
        acceptManifest(work, manifest);
        b.report.manifest = 'accepted';
      }
    } catch (e) {
      if (!isPaqueteError(e)) throw e;
      problem(name, e.message);
      b.report.manifest = 'refused';
    }
  }
  // The trusted latest snapshot's index, if this directory lacks it (the bundle's manifest was
  // already trusted, or refused as older while naming it); other snapshots are not needed.
  const trusted = trustedManifest(work);
  const latest = trusted && latestSnapshot(trusted.body);
  for (const [snap, copies] of carried) {
    if (!trusted?.body.snapshots.some((e) => e.name === snap)) {
      if (b.report.manifest !== 'refused') problem(name, `snapshot ${snap.slice(0, 12)} is not in the manifest this directory trusts: ignored`);
      continue;
    }
    if (!latest || snap !== latest.name) continue;
    const cached = cachedSnapshotBytes(work, snap);
    if (cached && isSound(latest, cached)) continue;
    const good = copies.find((bytes) => isSound(latest, bytes));
    if (good) cacheSnapshot(work, latest, good);
    else problem(name, `snapshot ${snap.slice(0, 12)} does not match the signed manifest or cannot be read: ignored`);
  }
}

function isSound(entry: Parameters<typeof checkSnapshotBytes>[0], bytes: Uint8Array): boolean {
  try {
    checkSnapshotBytes(entry, bytes);
    decodeSnapshot(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Checks and stores the chunk records of one volume; returns the item bytes it went through. */
async function importChunks(
  work: WorkDir,
  v: Volume,
  where: string,
  needed: Set<bigint>,
  result: ImportResult,
  problem: (where: string, message: string) => void,
  onProgress: (bytes: number) => void,
): Promise<number> {
  const items = v.head.items;
  const chunkIds = items.flatMap((it) => (it.kind === ItemKind.Chunk ? [it.id] : []));
  const present = await work.store.hasMany(chunkIds.filter((id) => needed.has(id)));
  let damaged = 0;
  let lost = 0;
  let lostBytes = 0;
  let read = 0;
  let lastReport = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    read += it.length;
    if (it.kind !== ItemKind.Chunk) continue;
    const at = v.offsets[i];
    if (at + it.length > v.size) {
      lost++;
      lostBytes += it.length;
      continue;
    }
    if (!needed.has(it.id)) {
      result.notNeeded++;
      continue;
    }
    if (present.has(it.id)) {
      result.alreadyHad++;
      continue;
    }
    const record = readAt(v.fd, at, it.length);
    try {
      const h = decodeRecordHeader(record);
      if (h.id !== it.id) throw new PaqueteError('DAMAGED_PACK', `the record holds ${idToHex(h.id)} where the table says ${idToHex(it.id)}`);
      if (RECORD_HEADER_SIZE + h.storedLength !== it.length) {
        throw new PaqueteError('DAMAGED_PACK', `its record claims ${h.storedLength} stored bytes where the table says ${it.length - RECORD_HEADER_SIZE}`);
      }
      const raw = decodePayload(h, record.subarray(RECORD_HEADER_SIZE));
      if (chunkId(raw) !== it.id) throw new PaqueteError('DAMAGED_PACK', 'its bytes do not match its id (damaged or forged)');
    } catch (e) {
      if (!isPaqueteError(e)) throw e;
      result.rejected++;
      if (++damaged <= NAMED_PER_VOLUME) problem(where, `chunk ${idToHex(it.id)} rejected: ${e.message}`);
      continue;
    }
    await work.store.addRecord(it.id, record);
    present.add(it.id);
    result.imported.chunks++;
    result.imported.bytes += record.length;
    if (read - lastReport >= 1 << 20) {
      lastReport = read;
      await work.store.flush(false);
      onProgress(read);
    }
  }
  if (damaged > NAMED_PER_VOLUME) problem(where, `${damaged - NAMED_PER_VOLUME} more chunks rejected`);
  if (lost) {
    result.lost += lost;
    problem(where, `cut short: ${lost} chunk${lost === 1 ? '' : 's'} (${formatSize(lostBytes)}) are missing from its end (${v.size} of ${v.end} bytes)`);
  }
  if (!lost && v.end > v.size) problem(where, 'cut short inside its manifest or snapshot index');
  if (v.end < v.size) result.notes.push(`${v.path} has ${v.size - v.end} bytes after its last item (two files joined?): ignored`);
  onProgress(read);
  return read;
}

/**
 * Which volumes of which bundles were imported intact before, so importing the rest of a bundle
 * later does not report the volumes already taken in as missing. Only a convenience: losing it
 * costs a misleading "missing" line, never data. The last 200 bundles are remembered.
 */
const IMPORTED_LOG = 'imported.json';

function readImportedLog(work: WorkDir): Map<string, number[]> {
  try {
    const doc = JSON.parse(work.readOptional(IMPORTED_LOG)?.toString('utf8') ?? '{}') as Record<string, unknown>;
    const out = new Map<string, number[]>();
    for (const [id, v] of Object.entries(doc)) {
      if (/^[0-9a-f]{32}$/.test(id) && Array.isArray(v) && v.every((n) => Number.isSafeInteger(n))) out.set(id, v as number[]);
    }
    return out;
  } catch {
    return new Map();
  }
}

function writeImportedLog(work: WorkDir, seen: Map<string, number[]>): void {
  work.writeMeta(IMPORTED_LOG, JSON.stringify(Object.fromEntries([...seen].slice(-200))));
}

function readItem(v: Volume, i: number): Uint8Array | undefined {
  const at = v.offsets[i];
  const length = v.head.items[i].length;
  if (at + length > v.size) return undefined;
  return readAt(v.fd, at, length);
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}
