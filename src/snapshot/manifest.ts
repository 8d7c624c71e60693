import stringify from 'fast-json-stable-stringify';
import { createHash, KeyObject } from 'node:crypto';
import { PaqueteError } from '../errors.js';
import { fingerprint, PublicKey, publicKeyFromRaw, signBytes, verifyBytes } from './keys.js';
import { SourceEntry, isUncompressedSnapshot } from './snapshot.js';

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
  snapshots: ManifestSnapshot[];
}

export interface Manifest {
  body: ManifestBody;
  publisher: PublicKey;
  /** The exact bytes as fetched, to keep as the trusted copy. */
  bytes: Uint8Array;
}

export function encodeManifest(body: ManifestBody, secret: KeyObject): Uint8Array {
  const signature = Buffer.from(signBytes(secret, Buffer.from(stringify(body)))).toString('base64');
  // Compact: every sync fetches the manifest again, and it grows with every snapshot.
  return Buffer.from(JSON.stringify({ signed: body, signature }) + '\n');
}

/**
 * Parses a manifest and checks its signature against the key it names. Whether that key is one
 * the user trusts is the caller's decision (trust pinning lives with the working directory).
 */
export function decodeManifest(bytes: Uint8Array, where: string): Manifest {
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
  if (body.version !== MANIFEST_VERSION) {
    throw new PaqueteError('BAD_FORMAT', `${where} uses manifest version ${JSON.stringify(body.version)}; this paquete reads ${MANIFEST_VERSION}`, 'upgrade paquete');
  }
  checkBody(body, where);
  const publisher = publicKeyFromRaw(Buffer.from(body.publisher, 'base64'));
  const sig = typeof d.signature === 'string' ? Buffer.from(d.signature, 'base64') : Buffer.alloc(0);
  if (!verifyBytes(publisher, Buffer.from(stringify(body)), sig)) {
    throw new PaqueteError('BAD_SIGNATURE', `the manifest at ${where} is not signed by the key it names (${fingerprint(publisher)}): it was altered`);
  }
  return { body, publisher, bytes };
}

const HEX64 = /^[0-9a-f]{64}$/;

function checkBody(b: ManifestBody, where: string): void {
  const bad = (why: string): never => {
    throw new PaqueteError('BAD_FORMAT', `the manifest at ${where} is malformed: ${why}`);
  };
  if (typeof b.publisher !== 'string') bad('no publisher key');
  if (!Number.isSafeInteger(b.serial) || b.serial < 0) bad('bad serial');
  if (!Array.isArray(b.snapshots)) bad('no snapshot list');
  for (const s of b.snapshots) {
    if (typeof s?.name !== 'string' || !HEX64.test(s.name)) bad('bad snapshot name');
    if (!Number.isSafeInteger(s.size) || s.size < 0) bad('bad snapshot size');
    if (s.body !== undefined && (typeof s.body !== 'string' || !HEX64.test(s.body))) bad('bad snapshot body hash');
    if (s.updates !== undefined) {
      if (!Array.isArray(s.updates)) bad('bad update list');
      for (const u of s.updates) {
        if (typeof u?.from !== 'string' || (u.from !== '' && !HEX64.test(u.from))) bad('bad update base');
        if (typeof u.name !== 'string' || !HEX64.test(u.name)) bad('bad update name');
        if (!Number.isSafeInteger(u.size) || u.size < 0) bad('bad update size');
      }
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
