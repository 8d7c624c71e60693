import { createHash, KeyObject, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { acquireLock, Release, waitForLock } from '../workdir/lock.js';
import { PaqueteError } from '../errors.js';
import { ChunkParams, DEFAULT_PARAMS } from '../chunk/params.js';
import { chunkBytesWithIds, createChunker, initHash, OnChunkWithId, withIds } from '../chunk/index.js';
import { encodeRecord, packHeader, RECORD_HEADER_SIZE, Repr } from '../store/pack.js';
import { ChunkEntry, ChunkTable, encodeSnapshotBody, FileEntry, placedSize, Snapshot, snapshotFileOfBodyVia, snapshotVersion, SourceEntry } from '../snapshot/snapshot.js';
import { rebuildContainer, StoredForm } from '../rebuild/form.js';
import { decodeManifest, encodeManifest, latestSnapshot, ManifestBody, ManifestSnapshot, MANIFEST_FORMAT, MANIFEST_PATH, MANIFEST_VERSION, sha256Hex } from '../snapshot/manifest.js';
import { fingerprint, PublicKey } from '../snapshot/keys.js';
import { signRotation } from '../snapshot/rotation.js';
import { SourceSpec } from '../sources/spec.js';
import { checkSnapshotPath, NameProblem, nameProblems, PORTABLE_RULES } from '../snapshot/paths.js';
import { listTree, TreeFile } from '../sources/tree.js';
import { chunkByRuleWithIds } from '../sources/cutting.js';
import { metadataSidecars } from '../sources/pypi.js';
import { ContentNamedFile, fsyncPath, writeFileAtomic } from '../util/fsx.js';
import { stageSources, StagedSources } from '../sources/stage.js';
import { chunkFileFixed } from '../chunk/fixed.js';
import { readPublishedFile, readRemoteSnapshot } from './published-file.js';
import { Named, OfferWritten, UpdateProgress, UpdatesOptions, UpdateWritten, writeOffer, writeUpdates } from './updates.js';
import { CompressPool } from '../delta/compress-pool.js';
import { CompressOptions } from '../delta/zstd.js';
import { BrotliParams } from '../util/brotli.js';
import { LayersRef } from '../snapshot/manifest.js';
import { pruneUpdates, retainedEntries, streamKept } from './prune.js';
import { readPreviousRoot, ShardsWritten, writeShards } from './shards.js';
import { CacheEntry, CachedForm, FileStat, OLD_PUBLISHER_CACHE_DIR, PublisherCache, writePublisherCache } from './publisher-cache.js';
import { StreamPieceHashes, writeLayers } from './layers.js';

/** Remote packs are split here: small enough to cache and copy, far below FAT32's 4 GiB. */
const REMOTE_PACK_LIMIT = 512 << 20;

export interface PublishOptions {
  sources: SourceSpec[];
  remoteDir: string;
  secret: KeyObject;
  publicKey: PublicKey;
  /** Chunking parameters for a new remote; an existing remote keeps its own so chunks dedupe. */
  params?: ChunkParams;
  onFile?: (path: string, bytes: number) => void;
  /** Progress of the long parts: chunking the sources, then compressing each update. */
  onProgress?: (p: PublishProgress) => void;
  now?: Date;
  /**
   * Worker threads compressing (zstd frames, brotli index files); default one per core
   * (os.availableParallelism()). The remote's bytes are the same whatever the number.
   */
  threads?: number;
  /** zstd level (1–22) of the update frames; default 19, the level the measurements were taken at. */
  level?: number;
  /**
   * Write delta updates from this many of the newest earlier snapshots (default 3): frames from the
   * newest, the index delta alone from the others; the offer reaches over OFFER_REACH (0: no
   * delta, no offer).
   */
  updatesFrom?: number;
  /** Update files no manifest entry names any more are deleted this long after (ms; default 7 days). */
  pruneAfterMs?: number;
  /** Disk the offer may take beside the updates, as a share of one compressed copy of the snapshot (default 1). */
  offerShare?: number;
  /** Write the update from nothing (a first download as a few large zstd frames); default true. */
  solid?: boolean;
  /** How long clients may sync to the manifest written, in ms from now; default DEFAULT_EXPIRY_MS. */
  expiresInMs?: number;
  /** Wait for another publish to the same remote to finish instead of failing at once. */
  waitForLock?: boolean;
  /**
   * The key the remote is published with now, to rotate from: the manifest written is signed by
   * `secret` and carries a statement, signed by this key, handing over to `publicKey`.
   */
  rotateFrom?: { secret: KeyObject; publicKey: PublicKey };
  /** Told once, when this publish waits for another (who holds the lock). */
  onLockWait?: (holder: string) => void;
}

/**
 * Held in the remote directory while a publish runs: `<pid> <host> publish since <ISO instant>`.
 * Two publishes at once both read serial N and both signed N+1, and one snapshot was lost.
 */
export const PUBLISH_LOCK = '.paquete-publish.lock';

/**
 * 30 days: a mirror can keep a client on an old snapshot for at most this long without notice
 * (TUF's indefinite freeze), and a publisher who publishes less often than that re-signs with
 * `paquete publish --to DIR` (no sources) from a cron job.
 */
export const DEFAULT_EXPIRY_MS = 30 * 86_400_000;

export type PublishProgress =
  | { phase: 'chunking'; bytesDone: number; bytesTotal: number; files: number; filesTotal: number }
  | UpdateProgress;

/** Content bytes of a source file read between two progress reports: a 1 GB file shows motion. */
const PROGRESS_STEP = 8 << 20;

export interface PublishResult {
  snapshot: string;
  serial: number;
  /** ISO 8601: when clients stop syncing to this manifest unless told. */
  expires: string;
  files: number;
  bytes: number;
  chunks: number;
  newChunks: number;
  newStoredBytes: number;
  /** Source files taken from the previous snapshot unread, their stat unchanged (src/publish/publisher-cache.ts). */
  unchanged: number;
  /** Entries left out of the sources, with the reason. */
  skipped: string[];
  /**
   * Files whose names a FAT/exFAT stick, macOS or Windows cannot hold as they are (a pair that
   * differs only in case or Unicode normalization, CON, a:b, a trailing dot, too long): published,
   * but clients on such disks will refuse them.
   */
  nameWarnings: NameProblem[];
  /** Symbolic links published as the files they name ("path -> target"). */
  followed: string[];
  /** The updates written for this snapshot: from nothing (`from` ""), then from earlier snapshots, newest first. */
  updates: UpdateWritten[];
  /** The offer written for this snapshot (deltas keyed by content), if anything changed. */
  offer?: OfferWritten;
  /** Update and frames files deleted, no manifest entry having named them for the grace period. */
  pruned: number;
  /** Wall time spent building them. */
  updatesMs: number;
  /** Zip and gzip files published as rebuild streams (contents + recipe), and their deflated members. */
  rebuilt: RebuiltReport;
}

export interface RebuiltReport {
  files: number;
  /** Deflated members (a gzip stream counts as one), how many zlib reproduced, how many are kept compressed. */
  deflated: number;
  reproduced: number;
  opaque: number;
  /** Zip or gzip files left as they are (unreadable, or under half of their bytes reproduced). */
  kept: number;
}

/** The update options with their defaults, checked before any work is done. */
function updatesOptions(opts: PublishOptions): UpdatesOptions {
  const level = opts.level ?? 19;
  if (!Number.isInteger(level) || level < 1 || level > 22) throw new PaqueteError('USAGE', `the zstd level must be 1 to 22, got ${level}`);
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) throw new PaqueteError('USAGE', `the number of compression threads must be 1 or more, got ${opts.threads}`);
  const updatesFrom = opts.updatesFrom ?? 3;
  if (!Number.isInteger(updatesFrom) || updatesFrom < 0) {
    throw new PaqueteError('USAGE', `the number of earlier snapshots to write updates from must be 0 or more, got ${updatesFrom}`);
  }
  if (opts.offerShare !== undefined && !(Number.isFinite(opts.offerShare) && opts.offerShare >= 0)) {
    throw new PaqueteError('USAGE', `the offer's share of a compressed copy must be 0 or more, got ${opts.offerShare}`);
  }
  return { level, updatesFrom, solid: opts.solid ?? true };
}

interface KnownChunk {
  pack: string;
  offset: number;
  repr: Repr;
  rawLength: number;
  storedLength: number;
}

/** A new remote pack, named by the SHA-256 of its bytes when finished. */
function newPack(dir: string): ContentNamedFile {
  const f = new ContentNamedFile(dir, 'pack');
  f.write(packHeader());
  return f;
}

/**
 * Publishes a snapshot of `sources` to a remote directory. Order of writes, each durable before
 * the next: packs, then the snapshot index, then its updates (frames, heads), then the manifest
 * (atomic replace). A crash at any point leaves the previous manifest, which names only complete
 * files; leftovers are unnamed.
 */
export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const updateOpts = updatesOptions(opts);
  const lock = await lockRemote(opts);
  try {
    const previous = { ...readRemoteState(opts.remoteDir, opts.publicKey, opts.rotateFrom?.publicKey), lock };
    if (opts.rotateFrom && !previous.manifest) throw new PaqueteError('USAGE', `${opts.remoteDir} has no manifest yet: there is no key to rotate from`, 'publish with --key alone');
    if (opts.sources.length === 0) return resign(opts, previous);
    // Sources published as generated files (git: bundles) are staged first; see sources/stage.ts.
    const staged = await stageSources(opts.sources, {
      remoteDir: opts.remoteDir,
      previous: previous.snapshot,
      readPrevious: (path) => (previous.snapshot ? readPublishedFile(opts.remoteDir, previous.snapshot, path) : undefined),
    });
    try {
      return await publishStaged(opts, previous, staged, updateOpts);
    } finally {
      staged.cleanup();
    }
  } finally {
    lock();
  }
}

/** Takes the remote's publish lock (creating the directory for a first publish). */
async function lockRemote(opts: PublishOptions): Promise<Release> {
  const dir = opts.remoteDir;
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new PaqueteError('USAGE', `${dir} is not a directory`);
  mkdirSync(dir, { recursive: true });
  const lockOpts = {
    host: hostname().replace(/\s/g, '_') || 'unknown',
    busy: `another publish is writing to ${dir}`,
    hint: 'wait for it to finish, or publish with --wait',
  };
  const what = `publish since ${new Date().toISOString()}`;
  const path = join(dir, PUBLISH_LOCK);
  return opts.waitForLock ? waitForLock(path, what, { ...lockOpts, onWait: opts.onLockWait }) : acquireLock(path, what, lockOpts);
}

/**
 * Replaces the manifest, the one step that makes a publish visible, only if nothing else
 * published since this one read the remote: the lock still ours (not taken over by mistake,
 * see workdir/lock.ts) and manifest.json still at the serial read. So two publishes never both
 * sign serial N+1, even if one ignored the lock (an older paquete, a lock deleted by hand).
 */
function commitManifest(remoteDir: string, previous: RemoteState, bytes: Uint8Array): void {
  if (!previous.lock.held()) {
    throw new PaqueteError('LOCKED', `the publish lock on ${remoteDir} was taken by another process during this publish: nothing was signed`, 'publish again');
  }
  const path = join(remoteDir, MANIFEST_PATH);
  const now = existsSync(path) ? decodeManifest(readFileSync(path), remoteDir).body.serial : undefined;
  if (now !== previous.manifest?.serial) {
    throw new PaqueteError(
      'LOCKED',
      `${path} changed during this publish (serial ${previous.manifest?.serial ?? 'none'} → ${now ?? 'none'}: a publish that did not take the lock?); nothing was signed over it`,
      'publish again',
    );
  }
  writeFileAtomic(path, bytes);
}

type RemoteState = ReturnType<typeof readRemoteState> & { lock: Release };

async function publishStaged(opts: PublishOptions, previous: RemoteState, staged: StagedSources, updateOpts: UpdatesOptions): Promise<PublishResult> {
  const { remoteDir } = opts;
  // Before the walk: a file changed after this may keep its stat and must not be trusted next time.
  const walkedMs = Date.now();
  const names = new Set<string>();
  for (const s of opts.sources) {
    if (names.has(s.name)) throw new PaqueteError('USAGE', `two sources are named "${s.name}"`, 'give one a name with NAME=PATH');
    names.add(s.name);
  }
  const listings = opts.sources.map((s) => {
    const { files, skipped, followed }: { files: (TreeFile & { data?: Uint8Array })[]; skipped: string[]; followed: string[] } = listTree(staged.rootOf(s));
    // pypi: each distribution's core metadata beside it (FILE.metadata), for PEP 658 and for
    // `--want pypi:NAME`, which reads dependencies before fetching any wheel.
    return { spec: s, skipped, followed, files: s.kind === 'pypi' ? [...files, ...metadataSidecars(files)] : files };
  });

  refuseUnsafeNames(listings.flatMap((l) => l.files.map((f) => `${l.spec.name}/${f.rel}`)));

  const params = previous.snapshot?.params ?? opts.params ?? DEFAULT_PARAMS;
  const known = previous.known;

  mkdirSync(join(remoteDir, 'packs'), { recursive: true });
  mkdirSync(join(remoteDir, 'snapshots'), { recursive: true });
  const chunker = await createChunker(params);
  await initHash();
  const fresh = new Map<bigint, KnownChunk>();
  let writer: ContentNamedFile | undefined;
  // Chunks written to the pack under way, fixed up with the pack's name when it is finished.
  let open: KnownChunk[] = [];
  const finishPack = () => {
    if (!writer) return;
    const name = writer.finish();
    for (const c of open) c.pack = name;
    open = [];
    writer = undefined;
  };

  const fileChunks = new Map<string, PublishedFile>();
  // Files unchanged since the previous snapshot are taken from it, not read (src/publish/publisher-cache.ts).
  const cache = PublisherCache.read(remoteDir, previous.snapshot && latestSnapshot(previous.manifest!)?.name);
  const prevFiles = cache && new Map(previous.snapshot!.files.map((f) => [f.path, f]));
  const nextCache = new Map<string, CacheEntry[]>();
  let unchanged = 0;
  const rebuilt: RebuiltReport = { files: 0, deflated: 0, reproduced: 0, opaque: 0, kept: 0 };
  // Rebuild streams' contents are written here while they are chunked (src/sources/cutting.ts).
  const formsDir = join(remoteDir, `.tmp-forms-${randomBytes(6).toString('hex')}`);
  let newStoredBytes = 0;
  const bytesTotal = listings.reduce((n, l) => n + l.files.reduce((m, f) => m + (f.data?.length ?? f.size), 0), 0);
  const filesTotal = listings.reduce((n, l) => n + l.files.length, 0);
  let bytesDone = 0;
  let filesDone = 0;
  let reported = 0;
  const report = () => {
    reported = bytesDone;
    opts.onProgress?.({ phase: 'chunking', bytesDone, bytesTotal: Math.max(bytesTotal, bytesDone), files: filesDone, filesTotal });
  };
  report();
  try {
    for (const { spec, files } of listings) {
      const walked: CacheEntry[] = [];
      nextCache.set(cacheKey(spec), walked);
      for (const f of files) {
        const path = `${spec.name}/${f.rel}`;
        const fixed = staged.fixedChunkSize(path);
        // Generated files (metadata sidecars, git bundles staged afresh) have no stat worth keeping.
        const stat = f.data || fixed ? undefined : f;
        const same = stat && cache?.unchanged(cacheKey(spec), f.rel, stat);
        const before = same && prevFiles?.get(path);
        if (same && before && placedSize(before) === f.size) {
          // Unchanged since the previous snapshot (stat as rsync compares it): its hash and chunks as they were.
          fileChunks.set(path, { ...carried(previous.snapshot!, before), mode: f.mode });
          if (same.form === 'kept') countForm(rebuilt, undefined);
          else if (same.form) countForm(rebuilt, same.form);
          walked.push({ ...statOf(stat), rel: f.rel, form: same.form });
          unchanged++;
          bytesDone += f.size;
          opts.onFile?.(path, f.size);
          filesDone++;
          if (bytesDone - reported >= PROGRESS_STEP) report();
          continue;
        }
        const sha = createHash('sha256');
        const ids: bigint[] = [];
        let size = 0;
        // Wheels and sdists go as their contents plus a recipe, other wheels are cut at zip member
        // boundaries (src/sources/cutting.ts): deltas and streams then see unchanged members.
        let form: StoredForm | undefined;
        // Ids come with the cuts (the chunker hashes a whole buffer's chunks in one call).
        const chunkIt = async (cb: OnChunkWithId) => {
          if (fixed) await chunkFileFixed(f.abs, fixed, withIds(cb));
          else if (f.data) await chunkBytesWithIds(f.data, chunker, cb);
          else {
            mkdirSync(formsDir, { recursive: true });
            form = await chunkByRuleWithIds(f.abs, chunker, cb, formsDir);
            if (rebuildContainer(f.rel) !== undefined) countForm(rebuilt, form);
          }
        };
        await chunkIt((chunk, id) => {
          sha.update(chunk);
          size += chunk.length;
          bytesDone += chunk.length;
          if (bytesDone - reported >= PROGRESS_STEP) report();
          ids.push(id);
          if (known.has(id) || fresh.has(id)) return;
          const record = encodeRecord(id, chunk);
          if (writer && writer.size + record.length > REMOTE_PACK_LIMIT) finishPack();
          writer ??= newPack(join(remoteDir, 'packs'));
          const entry: KnownChunk = { pack: '', offset: writer.write(record), repr: record[8] as Repr, rawLength: chunk.length, storedLength: record.length - RECORD_HEADER_SIZE };
          open.push(entry);
          fresh.set(id, entry);
          newStoredBytes += record.length;
        });
        const stream = form as StoredForm | undefined;
        if (stat) walked.push({ ...statOf(stat), rel: f.rel, form: rebuildContainer(f.rel) === undefined ? undefined : stream ? formCounts(stream) : 'kept' });
        if (stream) fileChunks.set(path, { mode: f.mode, size, sha256: stream.sha256, ids, rebuiltSize: stream.placedSize });
        else fileChunks.set(path, { mode: f.mode, size, sha256: sha.digest(), ids });
        opts.onFile?.(path, stream ? stream.placedSize : size);
        filesDone++;
        report();
      }
    }
  } finally {
    rmSync(formsDir, { recursive: true, force: true });
  }
  finishPack();
  fsyncPath(join(remoteDir, 'packs'));

  // Sources not named in this call carry over from the previous snapshot unchanged.
  const sources: SourceEntry[] = opts.sources.map((s) => ({ kind: s.kind, name: s.name }));
  if (previous.snapshot) {
    const prev = previous.snapshot;
    for (const src of prev.sources) {
      if (names.has(src.name)) continue;
      sources.push(src);
      const kept = cache?.entries(cacheKey(src));
      if (kept) nextCache.set(cacheKey(src), kept);
      for (const f of prev.files) {
        if (f.path.startsWith(src.name + '/')) {
          fileChunks.set(f.path, carried(prev, f));
        }
      }
    }
  }
  // Files a staged source keeps from the previous snapshot as they are (a git source's earlier bundles).
  for (const path of staged.keep) {
    const prev = previous.snapshot!;
    const f = prev.files.find((x) => x.path === path)!;
    fileChunks.set(f.path, carried(prev, f));
  }
  sources.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const lookup = (id: bigint) => fresh.get(id) ?? known.get(id)!;
  const snapshot = buildSnapshot(params, sources, fileChunks, lookup, opts.now ?? new Date());
  // One worker per core for every frame and index file of this publish.
  const pool = new CompressPool(opts.threads);
  const compress = { brotli: (b: Uint8Array, p: BrotliParams) => pool.brotli(b, p), zstd: (b: Uint8Array, o: CompressOptions) => pool.compress(b, o) };
  let snapBytes: Uint8Array;
  let snapBody: Uint8Array;
  let snapName: string;
  let shards: ShardsWritten;
  let updates: UpdateWritten[];
  let offer: OfferWritten | undefined;
  let layers: LayersRef | undefined;
  let updatesMs: number;
  const earlier = previous.manifest?.snapshots ?? [];
  try {
    snapBody = encodeSnapshotBody(snapshot);
    snapBytes = await snapshotFileOfBodyVia(snapBody, snapshotVersion(snapshot), compress.brotli);
    snapName = sha256Hex(snapBytes);
    writeFileAtomic(join(remoteDir, 'snapshots', `${snapName}.snap`), snapBytes);
    // The same index as a root naming shards (per PyPI project, per path range): a client with
    // --want pays for the shards of what it wants; unchanged shards keep their names. Compressed
    // on the workers while this thread reads the chunks of the updates' frames.
    const sharding = writeShards(remoteDir, snapshot, readPreviousRoot(remoteDir, earlier[earlier.length - 1]?.root), { level: opts.level, compress });
    sharding.catch(() => undefined); // taken below, after the updates
    const updatesStarted = performance.now();
    // The offer comes after the updates (a progress bar per phase, and its budget is their size).
    const bases = new Map<string, Named>();
    const pieces = new StreamPieceHashes();
    updates = await writeUpdates(remoteDir, { name: snapName, snapshot, body: snapBody }, earlier, { ...updateOpts, onProgress: opts.onProgress, pool, bases, pieces });
    // The offer and the updates together stay within one compressed copy of N (the stream from
    // nothing, or N's records without it): the remote holds at most twice that for updates.
    const solidBytes = updates.find((u) => u.from === '')?.framesBytes ?? snapshot.chunks.storedLength.reduce((n, l) => n + l, 0);
    const deltaBytes = updates.reduce((n, u) => n + (u.from === '' ? 0 : u.framesBytes), 0);
    const budget = Math.max(0, (opts.offerShare ?? 1) * solidBytes - deltaBytes);
    offer = await writeOffer(remoteDir, { name: snapName, snapshot }, earlier, { ...updateOpts, onProgress: opts.onProgress, pool, bases, budget });
    updatesMs = performance.now() - updatesStarted;
    const streamRef = updates.find((u) => u.from === '');
    // The index in two layers for a newcomer taking the stream: ids and hashes derived from it.
    layers = streamRef ? await writeLayers(remoteDir, snapshot, snapName, streamRef.name, compress.brotli, pieces, earlier[earlier.length - 1]?.layers) : undefined;
    shards = await sharding;
  } finally {
    await pool.close();
  }
  // Names some client disks cannot hold: published (ext4 holds them), and said.
  const nameWarnings = nameProblems(snapshot.files.map((f) => f.path), PORTABLE_RULES);
  const stream = updates.find((u) => u.from === '');
  const room = (stream?.framesBytes ?? 0) - updates.reduce((n, u) => n + (u.from === '' ? 0 : u.framesBytes + u.size), 0) - (offer ? offer.framesBytes + offer.size : 0);

  const body = nextManifest(opts, previous, [
    ...retainedEntries(earlier, streamKept(remoteDir, earlier[earlier.length - 1], stream?.name, room)),
    {
      name: snapName,
      size: snapBytes.length,
      created: (opts.now ?? new Date()).toISOString(),
      files: snapshot.files.length,
      bytes: snapshot.files.reduce((n, f) => n + placedSize(f), 0),
      sources,
      body: sha256Hex(snapBody),
      root: { name: shards.name, size: shards.size, body: shards.body, bodyLength: shards.bodyLength, ...(shards.delta ? { delta: shards.delta } : {}) },
      ...(updates.length ? { updates: updates.map(({ from, name, size }) => ({ from, name, size })) } : {}),
      ...(offer ? { offer: { name: offer.name, size: offer.size } } : {}),
      ...(layers ? { layers } : {}),
    },
  ]);
  commitManifest(remoteDir, previous, encodeManifest(body, opts.secret));
  try {
    writePublisherCache(remoteDir, { snapshot: snapName, walkedMs, sources: nextCache });
  } catch {
    // The snapshot is published; without a cache the next publish reads every file again.
  }
  const pruned = pruneUpdates(remoteDir, body, { afterMs: opts.pruneAfterMs, now: opts.now });
  return {
    snapshot: snapName,
    serial: body.serial,
    expires: body.expires!,
    files: snapshot.files.length,
    bytes: body.snapshots[body.snapshots.length - 1].bytes,
    chunks: snapshot.chunks.length,
    newChunks: fresh.size,
    newStoredBytes,
    unchanged,
    skipped: listings.flatMap((l) => l.skipped.map((s) => `${l.spec.name}/${s}`)),
    nameWarnings,
    followed: listings.flatMap((l) => l.followed.map((s) => `${l.spec.name}/${s}`)),
    updates,
    offer,
    pruned,
    updatesMs,
    rebuilt,
  };
}

/** A file of the snapshot being built: its chunks by id. */
interface PublishedFile {
  mode: number;
  size: number;
  sha256: Uint8Array;
  ids: bigint[];
  rebuiltSize?: number;
}

/** A file of the previous snapshot published again as it was. */
function carried(prev: Snapshot, f: FileEntry): PublishedFile {
  const ids = f.chunks.map((i) => prev.chunks.id(i));
  return { mode: f.mode, size: f.size, sha256: f.sha256, ids, ...(f.rebuiltSize !== undefined ? { rebuiltSize: f.rebuiltSize } : {}) };
}

/** The publisher cache's section of a source (a source renamed or of another kind starts afresh). */
const cacheKey = (s: { kind: string; name: string }): string => `${s.kind}:${s.name}`;

const statOf = (f: FileStat): FileStat => ({ size: f.size, mtimeMs: f.mtimeMs, ctimeMs: f.ctimeMs, ino: f.ino, dev: f.dev });

const formCounts = (form: StoredForm): CachedForm => ({ deflated: form.deflated, reproduced: form.reproduced, opaque: form.opaque });

/** Adds a zip or gzip file to the report: cut as a rebuild stream, or left as it is. */
function countForm(report: RebuiltReport, form: Exclude<CachedForm, 'kept'>): void {
  if (!form) {
    report.kept++;
    return;
  }
  report.files++;
  report.deflated += form.deflated;
  report.reproduced += form.reproduced;
  report.opaque += form.opaque;
}

/** The manifest that follows the remote's current one: the next serial, a fresh expiry, `snapshots`. */
function nextManifest(opts: PublishOptions, previous: RemoteState, snapshots: ManifestSnapshot[]): ManifestBody {
  const now = opts.now ?? new Date();
  const expiresInMs = opts.expiresInMs ?? DEFAULT_EXPIRY_MS;
  if (!Number.isSafeInteger(expiresInMs) || expiresInMs <= 0) throw new PaqueteError('USAGE', `the expiry must be a positive duration, got ${expiresInMs} ms`);
  // Every statement stays in every later manifest: a client any number of rotations behind
  // follows them all from the key it trusts.
  const rotations = [...(previous.manifest?.rotations ?? [])];
  if (opts.rotateFrom) rotations.push(signRotation(opts.rotateFrom.secret, opts.rotateFrom.publicKey, opts.publicKey, now));
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    publisher: Buffer.from(opts.publicKey.raw).toString('base64'),
    serial: (previous.manifest?.serial ?? 0) + 1,
    expires: new Date(now.getTime() + expiresInMs).toISOString(),
    ...(rotations.length ? { rotations } : {}),
    snapshots,
  };
}

/**
 * Publishing with no sources: the same snapshots under the next serial and a fresh expiry, so
 * clients keep syncing from a publisher who has nothing new (and a frozen mirror shows).
 */
function resign(opts: PublishOptions, previous: RemoteState): PublishResult {
  if (!previous.manifest) throw new PaqueteError('USAGE', `${opts.remoteDir} has no manifest to sign again`, 'name the sources to publish');
  const body = nextManifest(opts, previous, previous.manifest.snapshots);
  commitManifest(opts.remoteDir, previous, encodeManifest(body, opts.secret));
  const latest = latestSnapshot(body);
  return {
    snapshot: latest?.name ?? '', serial: body.serial, expires: body.expires!, files: latest?.files ?? 0, bytes: latest?.bytes ?? 0,
    chunks: 0, newChunks: 0, newStoredBytes: 0, unchanged: 0, skipped: [], followed: [], nameWarnings: [], updates: [], pruned: 0, updatesMs: 0,
    rebuilt: { files: 0, deflated: 0, reproduced: 0, opaque: 0, kept: 0 },
  };
}

/**
 * Names that are never safe on any client (src/snapshot/paths.ts) stop the publish before
 * anything is written, all of them named: a client would refuse the whole snapshot.
 */
function refuseUnsafeNames(paths: string[]): void {
  const bad: string[] = [];
  for (const p of paths) {
    try {
      checkSnapshotPath(p);
    } catch (e) {
      bad.push((e as Error).message.replace(/^refusing file name /, ''));
    }
  }
  if (bad.length) {
    throw new PaqueteError('UNSAFE_PATH', `refusing to publish ${bad.length} names no client may accept: ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? '; …' : ''}`, 'rename or remove them in the source, then publish again');
  }
}

/** Lays out the snapshot: unique chunks sorted by where they lie, so offsets encode as gaps. */
function buildSnapshot(
  params: ChunkParams,
  sources: SourceEntry[],
  fileChunks: Map<string, PublishedFile>,
  lookup: (id: bigint) => KnownChunk,
  now: Date,
): Snapshot {
  const unique = new Map<bigint, KnownChunk>();
  for (const f of fileChunks.values()) for (const id of f.ids) unique.set(id, lookup(id));
  const packs = [...new Set([...unique.values()].map((c) => c.pack))].sort();
  const packIndex = new Map(packs.map((p, i) => [p, i]));
  const chunks: ChunkEntry[] = [...unique].map(([id, c]) => ({
    id, pack: packIndex.get(c.pack)!, offset: c.offset, repr: c.repr, rawLength: c.rawLength, storedLength: c.storedLength,
  }));
  chunks.sort((a, b) => a.pack - b.pack || a.offset - b.offset);
  const chunkIndex = new Map(chunks.map((c, i) => [c.id, i]));
  const paths = [...fileChunks.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const files: FileEntry[] = paths.map((path) => {
    const f = fileChunks.get(path)!;
    const chunks = f.ids.map((id) => chunkIndex.get(id)!);
    return { path, mode: f.mode, size: f.size, sha256: f.sha256, chunks, ...(f.rebuiltSize !== undefined ? { rebuiltSize: f.rebuiltSize } : {}) };
  });
  return { params, created: Math.floor(now.getTime() / 1000), sources, packs, chunks: ChunkTable.of(chunks), files };
}

/** The directories of a remote (a first publish killed midway leaves some of them and nothing else). */
const REMOTE_DIRS = ['packs', 'snapshots', 'updates', 'frames', 'shards', 'roots'];

/** What a remote directory already holds: its manifest, latest snapshot, and every chunk's place. */
function readRemoteState(remoteDir: string, key: PublicKey, rotateFrom?: PublicKey) {
  const known = new Map<bigint, KnownChunk>();
  const manifestPath = join(remoteDir, MANIFEST_PATH);
  if (!existsSync(manifestPath)) {
    if (existsSync(remoteDir)) {
      if (!statSync(remoteDir).isDirectory()) throw new PaqueteError('USAGE', `${remoteDir} is not a directory`);
      // A first publish killed while writing the manifest leaves writeFileAtomic's `manifest.json.tmp-…`.
      const stray = readdirSync(remoteDir).filter((n) => !REMOTE_DIRS.includes(n) && !n.startsWith('.tmp-') && !n.startsWith(`${MANIFEST_PATH}.tmp-`) && !n.startsWith(PUBLISH_LOCK) && n !== OLD_PUBLISHER_CACHE_DIR);
      if (stray.length) {
        throw new PaqueteError('NOT_A_REMOTE', `${remoteDir} is not empty and is not a paquete remote (it holds ${stray[0]}…)`, 'publish to a new or empty directory');
      }
    }
    return { known, manifest: undefined, snapshot: undefined as Snapshot | undefined };
  }
  const manifest = decodeManifest(readFileSync(manifestPath), remoteDir);
  if (rotateFrom) {
    if (Buffer.compare(rotateFrom.raw, key.raw) === 0) throw new PaqueteError('USAGE', 'the key to rotate from is the key to rotate to');
    if (Buffer.compare(manifest.publisher.raw, rotateFrom.raw) !== 0) {
      throw new PaqueteError('UNTRUSTED_KEY', `${remoteDir} is published with key ${fingerprint(manifest.publisher)}, not with the key to rotate from (${fingerprint(rotateFrom)})`, 'name the key the remote is published with now in --rotate-from');
    }
  } else if (Buffer.compare(manifest.publisher.raw, key.raw) !== 0) {
    throw new PaqueteError('UNTRUSTED_KEY', `${remoteDir} is published with key ${fingerprint(manifest.publisher)}, not with yours (${fingerprint(key)})`, 'publish with the key that made this remote, or to a new directory');
  }
  let snapshot: Snapshot | undefined;
  for (const entry of manifest.body.snapshots) {
    snapshot = readRemoteSnapshot(remoteDir, entry);
    for (const c of snapshot.chunks) {
      known.set(c.id, { pack: snapshot.packs[c.pack], offset: c.offset, repr: c.repr, rawLength: c.rawLength, storedLength: c.storedLength });
    }
  }
  if (latestSnapshot(manifest.body) === undefined) snapshot = undefined;
  return { known, manifest: manifest.body, snapshot };
}

