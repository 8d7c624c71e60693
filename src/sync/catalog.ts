import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { LinkFacts, Remote } from '../remote/remote.js';
import { checkSnapshotBytes, decodeManifest, expiryOf, latestSnapshot, Manifest, ManifestBody, MANIFEST_MAX_BYTES, MANIFEST_PATH, ManifestSnapshot, sameManifest, sha256Hex } from '../snapshot/manifest.js';
import { fingerprint, PublicKey, publicKeyFromRaw } from '../snapshot/keys.js';
import { rotationPath } from '../snapshot/rotation.js';
import { decodeSnapshot, Snapshot } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { LoadedUpdate } from './frames.js';
import { LandedFile } from './landing.js';
import { deltaChoices, hasCachedHead, headPath, indexThroughDelta } from './updates.js';
import { BudgetLeft, cachedPartial, fetchPartial, indexThroughShards, loadRoot, PartialIndex, shardsForWants } from './shard-cache.js';
import { cachedDerived, Derived, derivedApplies, dropDerivations, hasDerivation, loadDerived } from './derived.js';

export interface Latest {
  manifest: Manifest;
  entry: ManifestSnapshot;
  snapshot: Snapshot;
  /** The delta update whose head brought the index, when one did. */
  update?: LoadedUpdate;
  /**
   * Set when the snapshot is a partial index: the shards of the root that `--want` needed (and
   * any others held here), merged. Files of other shards are not in it: they are neither placed
   * nor removed, and update frames (which name chunks by their place in the whole index) are not
   * used with it.
   */
  partial?: PartialIndex;
  /**
   * Set while the snapshot is a skeleton from the index's layers (src/sync/derived.ts): chunk ids
   * and file hashes not yet derived from the stream from nothing are zero; only that stream's
   * frames (checked piece by piece) bring its chunks until the whole index is fetched or derived.
   */
  derived?: Derived;
}

const TRUSTED_MANIFEST = 'manifest.json';
const snapshotCache = (name: string) => `snapshots/${name}.snap`;

/** A remote's manifest, checked against what this directory trusts, not yet accepted. */
export interface CheckedManifest {
  manifest: Manifest;
  entry: ManifestSnapshot;
  /** The remote's ETag for it (a 304 next time). */
  etag?: string;
}

/**
 * Fetches the remote's manifest and checks it before anything else is read: signed by the
 * pinned publisher, and not older than the one already trusted (a replayed manifest would roll
 * the user back to old files). Nothing is written: `acceptLatest` does that for the one chosen.
 */
export async function fetchManifest(work: WorkDir, remote: Remote, opts: { signal?: AbortSignal } & FreshnessOptions = {}): Promise<CheckedManifest> {
  let etag: string | undefined;
  // Asked up to its cap (and no more than the budget has left); a longer answer is hung up on.
  const bytes = await remote.get(MANIFEST_PATH, { signal: opts.signal, limit: MANIFEST_MAX_BYTES, ifNoneMatch: unchangedManifest(work, remote.location), onEtag: (e) => (etag = e) });
  const manifest = decodeManifest(bytes, remote.location);
  checkManifestTrust(work, manifest, `the remote ${remote.location}`);
  checkFreshness(manifest, `the remote ${remote.location}`, opts);
  const entry = latestSnapshot(manifest.body);
  if (!entry) throw new PaqueteError('NOT_A_REMOTE', `the remote ${remote.location} has no snapshot yet`, 'publish one first');
  return { manifest, entry, etag };
}

/**
 * Makes a checked manifest the trusted one (and its key the trusted key after a rotation, said
 * through `note`), and remembers its ETag. Writes only what changed: a sync with nothing new
 * writes nothing.
 */
export function acceptLatest(work: WorkDir, remote: Remote, checked: CheckedManifest, opts: { note?: (message: string) => void } = {}): void {
  const from = fingerprint(publicKeyFromRaw(Buffer.from(work.config.publisher, 'base64')));
  if (acceptManifest(work, checked.manifest)) {
    opts.note?.(`the publisher moved from key ${from} to ${fingerprint(checked.manifest.publisher)} (a rotation signed by the old key): this directory now trusts only the new one`);
  }
  rememberManifestEtag(work, remote.location, checked.etag, checked.manifest.bytes);
}

/**
 * The latest snapshot index of a checked manifest, from the local cache when we have it (it is
 * immutable, named by its hash), else through an index delta or from the remote, checked
 * against the manifest; then the manifest is accepted.
 */
export async function fetchSnapshot(
  work: WorkDir,
  remote: Remote,
  checked: CheckedManifest,
  opts: {
    signal?: AbortSignal;
    note?: (message: string) => void;
    wants?: string[];
    indexFrom?: Remote;
    /** Derive the index from the stream when it applies (derived.ts). */
    derive?: boolean;
    /** The session's budget: what a derivation and the shard route must fit (none: unlimited). */
    budget?: BudgetLeft;
  } = {},
): Promise<Latest> {
  const { manifest, entry } = checked;
  const budget = opts.budget ?? UNLIMITED;
  // The manifest's remote is the one accepted; the index may come from another with the same
  // signed files (a LAN peer on a partial index has no whole index to give: the paid remote has).
  const from = opts.indexFrom ?? remote;
  const partial = await partialLatest(work, from, checked, { ...opts, accept: remote });
  if (partial) return partial;
  // A derivation a release cut short: its snapshot's index after all (what a card on it paid
  // before the layers), so the rest of its stream and the delta from it stay routes.
  const trusted = opts.derive ? trustedManifest(work) : undefined;
  const before = trusted && latestSnapshot(trusted.body);
  if (before && before.name !== entry.name && hasDerivation(work, before.name) && !cachedIndex(work, before)) {
    try {
      await loadSnapshot(work, from, before, opts);
    } catch (e) {
      if (opts.signal?.aborted || (e as PaqueteError).code === 'BUDGET') throw e;
    }
  }
  // The cached index, read and checked once: at 1M files each read and SHA-256 of its 220 MB
  // was ~0.4 s of a dry run, and two reads held two copies at once.
  let cached = cachedIndex(work, entry);
  if (opts.derive && !cached && (await derivedApplies(work, manifest.body, entry, opts.wants))) {
    try {
      const d = await loadDerived(work, from, entry, { signal: opts.signal, budget });
      if (d) {
        acceptLatest(work, remote, checked, opts);
        return { manifest, entry, ...d };
      }
    } catch (e) {
      const code = (e as PaqueteError).code;
      if (opts.signal?.aborted || code === 'BUDGET') throw e;
      // The whole index is always right; only a forgery is worth a line (a missing head is said
      // by the route that tries it next).
      if (code === 'BAD_SIGNATURE') opts.note?.(`the index layers could not be used (${(e as Error).message}): reading the whole index`);
    }
  }
  if (opts.derive) dropDerivations(work);
  let update: LoadedUpdate | undefined;
  if (!cached) {
    // Without --want: the root and the changed shards when they cost less than the index delta
    // or the .snap (an index delta grows with the tree; they grow with the change).
    try {
      const viaShards = await indexThroughShards(work, from, manifest.body, entry, { signal: opts.signal, budget, alternative: wholeIndexCost(work, from, manifest.body, entry) });
      if (viaShards) {
        work.writeMeta(snapshotCache(entry.name), viaShards);
        cached = viaShards;
      }
    } catch (e) {
      if (opts.signal?.aborted || (e as PaqueteError).code === 'BUDGET') throw e;
      opts.note?.(`the index shards could not be read (${(e as Error).message}): reading the index as a delta or whole`);
    }
  }
  if (!cached) {
    const viaDelta = await indexThroughDelta(work, from, manifest.body, entry, opts);
    if (viaDelta) {
      work.writeMeta(snapshotCache(entry.name), viaDelta.bytes);
      update = viaDelta.update;
      cached = viaDelta.bytes;
    }
  }
  const snapshot = await loadSnapshot(work, from, entry, { ...opts, cached });
  // The latest index is in the cache now: a prefix of any other (an older latest a kill cut) is of no use.
  for (const name of readdirSync(work.tmpDir)) if (name.endsWith('.snap.part')) rmSync(join(work.tmpDir, name), { force: true });
  acceptLatest(work, remote, checked, opts);
  return { manifest, entry, snapshot, update };
}

const UNLIMITED: BudgetLeft = { left: Infinity };

/**
 * Wire bytes of the index of `entry` as fetchSnapshot reads it without shards: the head of the
 * delta from the newest index held (nothing when that head is kept), else the `.snap`.
 */
function wholeIndexCost(work: WorkDir, remote: Remote, manifest: ManifestBody, entry: ManifestSnapshot): number {
  const choice = deltaChoices(work, manifest, entry)[0];
  if (choice) return hasCachedHead(work, choice.ref) ? 0 : remote.requestCost(headPath(choice.ref), choice.ref.size);
  return remote.requestCost(snapshotCache(entry.name), entry.size);
}

/**
 * The partial index `opts.wants` need, when the entry has a root and those shards cost less than
 * the whole index; undefined when the whole index is the way (it is cached, an index delta from
 * one held here applies, or the wants need most of it).
 */
async function partialLatest(
  work: WorkDir,
  remote: Remote,
  checked: CheckedManifest,
  opts: { signal?: AbortSignal; note?: (message: string) => void; wants?: string[]; accept: Remote },
): Promise<Latest | undefined> {
  const { manifest, entry } = checked;
  if (!opts.wants?.length || !entry.root || cachedIndex(work, entry) || deltaChoices(work, manifest.body, entry).length) return undefined;
  try {
    const root = await loadRoot(work, remote, manifest.body, entry.root, opts);
    const selected = shardsForWants(root, opts.wants);
    if (!selected || [...selected].reduce((n, i) => n + root.shards[i].size, 0) >= entry.size) return undefined;
    const { snapshot, partial } = await fetchPartial(work, remote, manifest.body, root, selected, opts);
    acceptLatest(work, opts.accept, checked, opts);
    return { manifest, entry, snapshot, partial };
  } catch (e) {
    // A mirror that copied only the whole index (roots/ and shards/ absent), a damaged shard:
    // the whole index is the way, as for a remote without roots. The budget's end is the session's.
    if (opts.signal?.aborted || (e as PaqueteError).code === 'BUDGET') throw e;
    opts.note?.(`the index shards could not be read (${(e as Error).message}): reading the whole index`);
    return undefined;
  }
}

/** fetchManifest then fetchSnapshot: the remote's latest snapshot, checked and accepted. */
export async function fetchLatest(work: WorkDir, remote: Remote, opts: { signal?: AbortSignal } & FreshnessOptions = {}): Promise<Latest> {
  return fetchSnapshot(work, remote, await fetchManifest(work, remote, opts), opts);
}

/**
 * Checks a manifest, wherever it came from (a remote, a friend's bundle), against what this
 * directory trusts: signed by the pinned publisher, and not older than the manifest already
 * accepted (a replayed manifest would roll the user back to old files). `where` names the source
 * in messages ("the remote https://…", "bundle 3f2a…").
 */
export function checkManifestTrust(work: WorkDir, manifest: Manifest, where: string): PublicKey[] {
  // Signed by the trusted key, or by one that rotation statements from it lead to.
  const rotations = rotationPath(manifest.body, publicKeyFromRaw(Buffer.from(work.config.publisher, 'base64')), where);
  const trustedBytes = work.readOptional(TRUSTED_MANIFEST);
  if (trustedBytes) {
    const trusted = decodeManifest(trustedBytes, 'the trusted manifest');
    if (manifest.body.serial < trusted.body.serial) {
      throw new PaqueteError(
        'ROLLBACK',
        `${where} offers manifest ${manifest.body.serial}, older than ${trusted.body.serial} already seen: refusing to go back (a stale mirror or a replay)`,
      );
    }
    // Identity is the signed body: padding, whitespace or field order around it change nothing.
    if (manifest.body.serial === trusted.body.serial && !sameManifest(manifest, trusted)) {
      throw new PaqueteError('ROLLBACK', `${where} offers a different manifest with the same serial ${manifest.body.serial}: refusing it`);
    }
  }
  return rotations;
}

export interface FreshnessOptions {
  /** Sync to a manifest past its expiry all the same (`sync --allow-expired`), with a warning. */
  allowExpired?: boolean;
  /** Told what the user should know: an expired manifest used anyway, a manifest with no expiry. */
  note?: (message: string) => void;
  now?: Date;
}

/**
 * Refuses to sync to a manifest past its expiry unless told: a mirror that keeps serving the last
 * manifest it saw (TUF's indefinite freeze) is then noticed within the publisher's expiry period
 * instead of never. A manifest without `expires` (from a publisher before expiry existed) never
 * expires, and the user is told that a freeze cannot be noticed there.
 */
export function checkFreshness(manifest: Manifest, where: string, opts: FreshnessOptions = {}): void {
  const expires = expiryOf(manifest.body);
  if (!expires) {
    opts.note?.(`${where} signs no expiry (published by an older paquete): a mirror serving a frozen copy would not be noticed`);
    return;
  }
  if (expires.getTime() > (opts.now ?? new Date()).getTime()) return;
  const what = `the newest manifest at ${where} (serial ${manifest.body.serial}) expired on ${manifest.body.expires}`;
  if (opts.allowExpired) {
    opts.note?.(`${what}; using it as told (--allow-expired)`);
    return;
  }
  throw new PaqueteError(
    'EXPIRED',
    `${what}: the publisher has signed nothing newer since, or a mirror is serving a frozen copy`,
    'sync from another remote, ask the publisher to publish again, or run paquete sync --allow-expired to use it anyway',
  );
}

const ETAGS = 'manifest-etags.json';
type EtagRecords = Record<string, { etag: string; sha256: string }>;

/**
 * What a conditional GET of the manifest needs: the ETag `location` gave for the manifest this
 * directory now trusts, with those bytes. Every sync reads the manifest, and it grows with every
 * snapshot (its update references): unchanged, it costs a 304 instead. Only for the exact
 * trusted bytes, so an answer of 304 can never stand for a manifest not checked here before.
 */
function unchangedManifest(work: WorkDir, location: string): { etag: string; cached: Uint8Array } | undefined {
  const trusted = work.readOptional(TRUSTED_MANIFEST);
  const record = readEtags(work)[location];
  if (!trusted || !record || record.sha256 !== sha256Hex(trusted)) return undefined;
  return { etag: record.etag, cached: trusted };
}

export function rememberManifestEtag(work: WorkDir, location: string, etag: string | undefined, bytes: Uint8Array): void {
  const records = readEtags(work);
  const before = records[location];
  if (etag === undefined || etag.startsWith('W/')) delete records[location];
  else records[location] = { etag, sha256: sha256Hex(bytes) };
  if (JSON.stringify(before) !== JSON.stringify(records[location])) work.writeMeta(ETAGS, JSON.stringify(records) + '\n');
}

/**
 * What the next sync pays before it plans: its manifest check. A 304 where this remote's ETag for
 * the trusted manifest is kept (a request and a head), else the trusted manifest again. The index
 * and update heads are not counted: they are cached here and used without a request.
 */
export function manifestCheckCost(work: WorkDir, remote: Remote): number {
  if (remote.free) return 0;
  const unchanged = unchangedManifest(work, remote.location);
  return remote.requestCost(MANIFEST_PATH, unchanged ? 0 : (work.readOptional(TRUSTED_MANIFEST)?.length ?? 0));
}

const LINKS = 'link.json';

/** What an earlier session learned of `location`'s server that prices requests (.paquete/link.json). */
export function linkFactsOf(work: WorkDir, location: string): LinkFacts | undefined {
  try {
    const all = JSON.parse(work.readOptional(LINKS)?.toString() ?? '{}') as Record<string, LinkFacts>;
    return all && typeof all[location] === 'object' ? all[location] : undefined;
  } catch {
    return undefined; // a damaged file only costs a plan priced with the defaults once
  }
}

/** Keeps what `remote` learned of its server, for the next plan made before any exchange. */
export function rememberLinkFacts(work: WorkDir, remote: Remote): void {
  const facts = remote.linkFacts?.();
  if (!facts || work.readOnly) return;
  let all: Record<string, LinkFacts> = {};
  try {
    all = JSON.parse(work.readOptional(LINKS)?.toString() ?? '{}') as Record<string, LinkFacts>;
  } catch {
    // rewritten whole below
  }
  if (JSON.stringify(all[remote.location]) === JSON.stringify(facts)) return;
  all[remote.location] = facts;
  work.writeMeta(LINKS, JSON.stringify(all) + '\n');
}

function readEtags(work: WorkDir): EtagRecords {
  try {
    const parsed: unknown = JSON.parse(work.readOptional(ETAGS)?.toString() ?? '{}');
    return parsed && typeof parsed === 'object' ? (parsed as EtagRecords) : {};
  } catch {
    return {}; // a damaged cache only costs one full manifest
  }
}

/** The manifest this directory trusts (the last accepted), if any. */
export function trustedManifest(work: WorkDir): Manifest | undefined {
  const bytes = work.readOptional(TRUSTED_MANIFEST);
  return bytes ? decodeManifest(bytes, 'the trusted manifest') : undefined;
}

/**
 * Makes a manifest that passed checkManifestTrust the trusted one, and its key the trusted key
 * (after a rotation: from then on only the new key). Says whether the key changed.
 */
export function acceptManifest(work: WorkDir, manifest: Manifest): boolean {
  // The same bytes are not written again (a sync with nothing new writes nothing).
  const trusted = work.readOptional(TRUSTED_MANIFEST);
  if (!trusted || !trusted.equals(manifest.bytes)) work.writeMeta(TRUSTED_MANIFEST, manifest.bytes);
  const key = Buffer.from(manifest.publisher.raw).toString('base64');
  if (work.config.publisher === key) return false;
  work.config.publisher = key;
  work.saveConfig();
  return true;
}

/** Whether the index of snapshot `name` is cached (unchecked: nothing is read). */
export const hasCachedIndex = (work: WorkDir, name: string): boolean => existsSync(join(work.meta, snapshotCache(name)));

/** A cached snapshot index's bytes (unchecked: check them against the manifest entry). */
export function cachedSnapshotBytes(work: WorkDir, name: string): Buffer | undefined {
  return work.readOptional(snapshotCache(name));
}

/** Caches a snapshot index whose bytes were checked against a trusted manifest entry. */
export function cacheSnapshot(work: WorkDir, entry: ManifestSnapshot, bytes: Uint8Array): void {
  checkSnapshotBytes(entry, bytes);
  work.writeMeta(snapshotCache(entry.name), bytes);
}

/** The cached index of `entry` if it is there and intact (a damaged one is simply fetched again). */
export function cachedIndex(work: WorkDir, entry: ManifestSnapshot): Uint8Array | undefined {
  const bytes = work.readOptional(snapshotCache(entry.name));
  if (!bytes) return undefined;
  try {
    checkSnapshotBytes(entry, bytes);
    return bytes;
  } catch {
    return undefined;
  }
}

/** `cached`: the index's bytes as the caller already read and checked them (cachedIndex). */
export async function loadSnapshot(work: WorkDir, remote: Remote, entry: ManifestSnapshot, opts: { signal?: AbortSignal; cached?: Uint8Array } = {}): Promise<Snapshot> {
  let bytes = opts.cached ?? cachedIndex(work, entry);
  if (!bytes) {
    // Its signed size: nothing is asked unless the budget covers all of it. Landed as it comes,
    // so a session killed half way through a big index leaves the next one only the rest to pay.
    const landed = new LandedFile(join(work.tmpDir, `${entry.name}.snap.part`), entry.size);
    try {
      const fetched = await remote.get(snapshotCache(entry.name), { ...opts, size: entry.size, resume: landed });
      try {
        checkSnapshotBytes(entry, fetched);
      } catch (e) {
        landed.remove(); // not the signed index (damaged on the way): none of it is kept
        throw e;
      }
      bytes = Buffer.from(fetched);
      work.writeMeta(snapshotCache(entry.name), bytes);
      landed.remove();
    } finally {
      landed.close();
    }
  }
  return decodeSnapshot(bytes);
}

/**
 * The trusted manifest and latest snapshot as last synced, with no network; or as a generation
 * holds them (`bytes`: its manifest).
 */
export function cachedLatest(work: WorkDir, bytes = work.readOptional(TRUSTED_MANIFEST)): Latest | undefined {
  if (!bytes) return undefined;
  const manifest = decodeManifest(bytes, 'the trusted manifest');
  const entry = latestSnapshot(manifest.body);
  if (!entry) return undefined;
  const snap = work.readOptional(snapshotCache(entry.name));
  if (!snap) {
    // A first download deriving its index from the stream (src/sync/derived.ts).
    const derived = cachedDerived(work, entry);
    if (derived) return { manifest, entry, ...derived };
    // A partial index: the shards a --want needed (src/sync/shard-cache.ts).
    const partial = cachedPartial(work, entry);
    return partial && { manifest, entry, ...partial };
  }
  checkSnapshotBytes(entry, snap);
  return { manifest, entry, snapshot: decodeSnapshot(snap) };
}
