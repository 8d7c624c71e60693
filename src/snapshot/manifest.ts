import stringify from 'fast-json-stable-stringify';
import { createHash, KeyObject } from 'node:crypto';
import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { fingerprint, PublicKey, publicKeyFromRaw, signBytes, verifyBytes } from './keys.js';
import { SourceEntry, isUncompressedSnapshot } from './snapshot.js';
import { checkSources } from './paths.js';

/**
 * The manifest: the one mutable file of a remote. It names every snapshot by the SHA-256 of its
 * index file and is signed with the publisher's Ed25519 key over canonical JSON, so everything a
 * client reads is bound to the signature through hashes. `serial` only grows, so a client can
 * refuse a replayed older manifest (rollback).
 */
export const MANIFEST_PATH = 'manifest.json';
export const MANIFEST_FORMAT = 'paquete-manifest';
export const MANIFEST_VERSION = 1;

export interface ManifestSnapshot {
  /** Hex SHA-256 of the snapshot index file, found at snapshots/<name>.snap. */
  name: string;
  /** Size in bytes of the snapshot index file. */
  size: number;
  /** ISO 8601. */
  created: string;
  files: number;
  /** Total bytes of all files in the snapshot. */
  bytes: number;
  sources: SourceEntry[];
  /** Hex SHA-256 of the index's uncompressed body: checks an index rebuilt from an index delta. */
  body?: string;
  /** Updates that build this snapshot from an older one (or from nothing); see src/delta/update.ts. */
  updates?: UpdateRef[];
  /**
   * The offer: deltas to this snapshot keyed by old file contents (src/delta/offer.ts), a head of
   * version 3 at updates/<name>.upd. Clients before it ignore the field (unknown fields are).
   */
  offer?: OfferRef;
  /**
   * The same index as a root naming shards (src/snapshot/shards.ts), at roots/<name>.root: what a
   * client with --want reads instead of the whole index. Clients before it ignore the field.
   */
  root?: IndexRootRef;
  /**
   * The index in two layers (src/snapshot/layers.ts): what a newcomer taking the stream from
   * nothing reads instead of the `.snap`, deriving ids and hashes from the stream. Clients before
   * it ignore the field.
   */
  layers?: LayersRef;
}

export interface LayersRef {
  /** layers/<name>.files: paths, sizes, chunk lengths, the stream's piece hashes. */
  files: RootRef;
  /** layers/<name>.where: packs and record places. */
  where: RootRef;
}

export interface RootRef {
  /** Hex SHA-256 of the root file, found at roots/<name>.root. */
  name: string;
  size: number;
}

/**
 * A snapshot's index root: the file, and (publishers since root deltas) its uncompressed body's
 * hash and length and a delta from the previous snapshot's root, so a --want client holding that
 * root pays for what changed in it, not for a root that grows with the mirror.
 */
export interface IndexRootRef extends RootRef {
  /** Hex SHA-256 of the root's uncompressed body (how a body rebuilt from a delta is checked). */
  body?: string;
  bodyLength?: number;
  delta?: RootDeltaRef;
}

export interface RootDeltaRef {
  /** Name of the earlier root file (an older entry's `root.name`) the delta starts from. */
  from: string;
  /** Hex SHA-256 of the delta file, found at roots/<name>.rd. */
  name: string;
  size: number;
}

export interface OfferRef {
  /** Hex SHA-256 of the offer head, found at updates/<name>.upd. */
  name: string;
  size: number;
}

export interface UpdateRef {
  /** Name of the snapshot the update starts from; "" for an update from nothing. */
  from: string;
  /** Hex SHA-256 of the update head, found at updates/<name>.upd. */
  name: string;
  size: number;
}

export interface ManifestBody {
  format: typeof MANIFEST_FORMAT;
  version: number;
  /** Base64 of the publisher's 32-byte Ed25519 public key. */
  publisher: string;
  serial: number;
  /**
   * ISO 8601 (UTC) instant after which a client no longer syncs to this manifest unless told
   * (`--allow-expired`): a mirror that keeps serving it is then noticed (TUF's indefinite freeze).
   * Absent in manifests from publishers before expiry existed: those never expire.
   */
  expires?: string;
  /** Key changes, oldest first, each signed by the key it leaves; see src/snapshot/rotation.ts. */
  rotations?: RotationStatement[];
  snapshots: ManifestSnapshot[];
}

/** "The publisher's key `from` hands over to `to`", signed by `from`. */
export interface RotationStatement {
  /** Base64 of the 32-byte Ed25519 key left. */
  from: string;
  /** Base64 of the 32-byte Ed25519 key taken up. */
  to: string;
  /** ISO 8601 instant of the rotation. */
  created: string;
  /** Base64 of the 64-byte Ed25519 signature by `from` over rotationSignedBytes(). */
  signature: string;
}

export interface Manifest {
  body: ManifestBody;
  publisher: PublicKey;
  /**
   * The canonical bytes: `{"signed":` + the body in canonical JSON + `,"signature":"` + the
   * signature in standard base64 + `"}\n`. What is kept as the trusted copy and put in bundles,
   * whatever padding, whitespace or field order the bytes fetched had: a hotspot appending
   * whitespace to the genuine manifest changes nothing (it was once stored as fetched, and the
   * honest remote was then refused as "a different manifest with the same serial").
   */
  bytes: Uint8Array;
  /** The body in canonical JSON: what is signed, and the manifest's identity. */
  identity: string;
}

/**
 * The largest manifest a client reads, in bytes: a hotspot cannot make it parse (and pay for)
 * megabytes of padding or a manifest that never ends. A snapshot's entry is about 700 bytes with
 * its three update references, so this holds some 20,000 snapshots; `publish` refuses to write
 * a larger one. Remotes stop reading a manifest past this size (FetchOptions in src/remote).
 */
export const MANIFEST_MAX_BYTES = 16 << 20;

/** A signature is 64 bytes: 88 characters of standard base64. */
const SIGNATURE_B64 = /^[A-Za-z0-9+/]{86}==$/;
const KEY_B64 = /^[A-Za-z0-9+/]{43}=$/;

const canonicalBytes = (identity: string, signature: Uint8Array): Buffer =>
  Buffer.from(`{"signed":${identity},"signature":"${Buffer.from(signature).toString('base64')}"}\n`);

export function encodeManifest(body: ManifestBody, secret: KeyObject): Uint8Array {
  const identity = stringify(body);
  // Compact: every sync fetches the manifest again, and it grows with every snapshot.
  const bytes = canonicalBytes(identity, signBytes(secret, Buffer.from(identity)));
  if (bytes.length > MANIFEST_MAX_BYTES) {
    throw new PaqueteError('USAGE', `the manifest would be ${bytes.length} bytes, more than the ${MANIFEST_MAX_BYTES} a client reads (${body.snapshots.length} snapshots)`, 'publish to a new remote directory');
  }
  return bytes;
}

/**
 * Parses a manifest, checks the type of every field it has (one validator, checkBody, so no
 * code after it meets a number where a string was promised), and checks its signature against
 * the key it names. Whether that key is one the user trusts is the caller's decision (trust
 * pinning lives with the working directory).
 */
export function decodeManifest(bytes: Uint8Array, where: string): Manifest {
  if (bytes.length > MANIFEST_MAX_BYTES) {
    throw new PaqueteError('BAD_FORMAT', `${where} offers a manifest of ${bytes.length} bytes, more than the ${MANIFEST_MAX_BYTES} a manifest may have: refusing it`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new PaqueteError('NOT_A_REMOTE', `${where} has no valid paquete manifest (not JSON)`);
  }
  const d = doc as { signed?: ManifestBody; signature?: unknown };
  const body = d?.signed;
  if (!body || typeof body !== 'object' || body.format !== MANIFEST_FORMAT) {
    throw new PaqueteError('NOT_A_REMOTE', `${where} has no paquete manifest`);
  }
  requireFormat(`the manifest at ${where}`, 'manifest', body.version, [MANIFEST_VERSION]);
  checkBody(body, where);
  const publisher = publicKeyFromRaw(Buffer.from(body.publisher, 'base64'));
  const sig = typeof d.signature === 'string' && SIGNATURE_B64.test(d.signature) ? Buffer.from(d.signature, 'base64') : Buffer.alloc(0);
  const identity = stringify(body);
  if (!verifyBytes(publisher, Buffer.from(identity), sig)) {
    throw new PaqueteError('BAD_SIGNATURE', `the manifest at ${where} is not signed by the key it names (${fingerprint(publisher)}): it was altered`);
  }
  return { body, publisher, bytes: canonicalBytes(identity, sig), identity };
}

/** Whether two manifests are the same signed body (bytes around it do not count). */
export const sameManifest = (a: Manifest, b: Manifest): boolean => a.identity === b.identity;

/** When `m` expires, or undefined for a manifest that never does (made before expiry existed). */
export const expiryOf = (m: ManifestBody): Date | undefined => (m.expires === undefined ? undefined : new Date(m.expires));

const HEX64 = /^[0-9a-f]{64}$/;
// Date-time as toISOString writes it (and as JSON users write it): parsed, then range-checked.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const isInstant = (v: unknown): v is string => typeof v === 'string' && ISO_INSTANT.test(v) && Number.isFinite(Date.parse(v));
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Every field of a manifest body by type (and form), before any other code reads it: a signed
 * manifest whose `created` was a number once made serve's catalog answer 500. A publisher's bug
 * or a hostile key holder then costs a clear BAD_FORMAT, never a crash further on. Unknown fields
 * are allowed (covered by the signature, ignored), so a newer publisher's additions do not lock
 * old clients out.
 */
function checkBody(b: ManifestBody, where: string): void {
  const bad = (why: string): never => {
    throw new PaqueteError('BAD_FORMAT', `the manifest at ${where} is malformed: ${why}`);
  };
  if (typeof b.publisher !== 'string' || !KEY_B64.test(b.publisher)) bad('no publisher key');
  if (!isCount(b.serial)) bad('bad serial');
  if (b.expires !== undefined && !isInstant(b.expires)) bad('bad expiry date');
  if (b.rotations !== undefined) {
    if (!Array.isArray(b.rotations)) bad('bad rotation list');
    for (const r of b.rotations) {
      if (!isObject(r)) bad('bad rotation statement');
      if (typeof r.from !== 'string' || !KEY_B64.test(r.from) || typeof r.to !== 'string' || !KEY_B64.test(r.to)) bad('bad key in a rotation statement');
      if (!isInstant(r.created)) bad('bad date in a rotation statement');
      if (typeof r.signature !== 'string' || !SIGNATURE_B64.test(r.signature)) bad('bad signature in a rotation statement');
    }
  }
  if (!Array.isArray(b.snapshots)) bad('no snapshot list');
  for (const s of b.snapshots) {
    if (!isObject(s)) bad('bad snapshot entry');
    if (typeof s.name !== 'string' || !HEX64.test(s.name)) bad('bad snapshot name');
    if (!isCount(s.size)) bad('bad snapshot size');
    if (!isInstant(s.created)) bad('bad snapshot date');
    if (!isCount(s.files)) bad('bad snapshot file count');
    if (!isCount(s.bytes)) bad('bad snapshot byte count');
    if (!Array.isArray(s.sources)) bad('bad source list');
    for (const src of s.sources) {
      if (!isObject(src) || typeof src.kind !== 'string' || typeof src.name !== 'string') bad('bad source entry');
    }
    if (s.body !== undefined && (typeof s.body !== 'string' || !HEX64.test(s.body))) bad('bad snapshot body hash');
    checkSources(s.sources, `the manifest at ${where}`);
    if (s.updates !== undefined) {
      if (!Array.isArray(s.updates)) bad('bad update list');
      for (const u of s.updates) {
        if (!isObject(u)) bad('bad update entry');
        if (typeof u.from !== 'string' || (u.from !== '' && !HEX64.test(u.from))) bad('bad update base');
        if (typeof u.name !== 'string' || !HEX64.test(u.name)) bad('bad update name');
        if (!isCount(u.size)) bad('bad update size');
      }
    }
    if (s.offer !== undefined) {
      if (!isObject(s.offer) || typeof s.offer.name !== 'string' || !HEX64.test(s.offer.name) || !isCount(s.offer.size)) bad('bad offer');
    }
    if (s.root !== undefined) {
      if (!isObject(s.root) || typeof s.root.name !== 'string' || !HEX64.test(s.root.name) || !isCount(s.root.size)) bad('bad index root');
      const { body, bodyLength, delta } = s.root;
      if ((body !== undefined || bodyLength !== undefined) && (typeof body !== 'string' || !HEX64.test(body) || !isCount(bodyLength))) bad('bad index root body');
      if (delta !== undefined) {
        if (body === undefined || !isObject(delta) || typeof delta.from !== 'string' || !HEX64.test(delta.from) || typeof delta.name !== 'string' || !HEX64.test(delta.name) || !isCount(delta.size)) bad('bad index root delta');
      }
    }
    if (s.layers !== undefined) {
      const named = (r: unknown) => isObject(r) && typeof r.name === 'string' && HEX64.test(r.name) && isCount(r.size);
      if (!isObject(s.layers) || !named(s.layers.files) || !named(s.layers.where)) bad('bad index layers');
    }
  }
}

export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Checks that a snapshot index is the one the signed manifest names: the publisher's file (its
 * SHA-256 is the name), or an index a client rebuilt from an index delta and keeps uncompressed
 * (its body's SHA-256 is the manifest's `body`).
 */
export function checkSnapshotBytes(entry: ManifestSnapshot, bytes: Uint8Array): void {
  if (bytes.length === entry.size && sha256Hex(bytes) === entry.name) return;
  const rebuilt = entry.body !== undefined && isUncompressedSnapshot(bytes) && sha256Hex(bytes.subarray(8)) === entry.body;
  if (!rebuilt) {
    throw new PaqueteError('BAD_SIGNATURE', `snapshot ${entry.name.slice(0, 12)} does not match the signed manifest (tampered or damaged in transit)`);
  }
}

export const latestSnapshot = (m: ManifestBody): ManifestSnapshot | undefined => m.snapshots[m.snapshots.length - 1];
