import stringify from 'fast-json-stable-stringify';
import { KeyObject } from 'node:crypto';
import { PaqueteError } from '../errors.js';
import { fingerprint, PublicKey, publicKeyFromRaw, signBytes, verifyBytes } from './keys.js';
import type { ManifestBody, RotationStatement } from './manifest.js';

/**
 * Key rotation: the publisher moves to a new key with a statement signed by the old one ("key
 * FROM hands over to key TO"), kept in every later manifest. A client that trusts FROM and meets
 * a manifest signed by TO follows the statements from its trusted key and, if they lead to TO,
 * trusts TO from then on, and only TO: a manifest signed by the old key is refused after that
 * (as TUF's root rotation, one signature rather than a threshold).
 */
export const ROTATION_FORMAT = 'paquete-rotation';

const b64 = (k: PublicKey) => Buffer.from(k.raw).toString('base64');

/** The bytes a rotation signature covers: canonical JSON of format, from, to and created. */
export const rotationSignedBytes = (r: Pick<RotationStatement, 'from' | 'to' | 'created'>): Buffer =>
  Buffer.from(stringify({ format: ROTATION_FORMAT, from: r.from, to: r.to, created: r.created }));

export function signRotation(oldSecret: KeyObject, from: PublicKey, to: PublicKey, now: Date): RotationStatement {
  const r = { from: b64(from), to: b64(to), created: now.toISOString() };
  return { ...r, signature: Buffer.from(signBytes(oldSecret, rotationSignedBytes(r))).toString('base64') };
}

const verifies = (r: RotationStatement): boolean =>
  verifyBytes(publicKeyFromRaw(Buffer.from(r.from, 'base64')), rotationSignedBytes(r), Buffer.from(r.signature, 'base64'));

/**
 * The keys a manifest's rotation statements lead through from `trusted` to the key that signed
 * the manifest (empty when it is the trusted key itself), or a typed refusal: statements are
 * followed oldest first, each only if it leaves the key reached so far and carries that key's
 * valid signature. A statement signed by anyone else (a forged rotation) leads nowhere.
 */
export function rotationPath(body: ManifestBody, trusted: PublicKey, where: string): PublicKey[] {
  // Compared as canonical base64 of the raw bytes: base64 has several spellings of one key.
  const canon = (k: string) => Buffer.from(k, 'base64').toString('base64');
  const target = canon(body.publisher);
  let current = b64(trusted);
  const path: PublicKey[] = [];
  for (const r of body.rotations ?? []) {
    if (current === target) break;
    if (canon(r.from) !== current || !verifies(r)) continue;
    current = canon(r.to);
    path.push(publicKeyFromRaw(Buffer.from(r.to, 'base64')));
  }
  if (current === target) return path;
  const signer = publicKeyFromRaw(Buffer.from(target, 'base64'));
  throw new PaqueteError(
    'UNTRUSTED_KEY',
    `${where} is signed by ${fingerprint(signer)}, but this directory trusts ${fingerprint(trusted)}` +
      ((body.rotations ?? []).length ? ', and no rotation statement signed by the trusted key leads to it' : ''),
    'if the publisher really changed keys without a rotation, run paquete init again with --trust NEWKEY.pub',
  );
}

/** Whether `manifest` is signed by a key that `trusted` rotated to (through its statements). */
export function rotatedTo(manifest: { body: ManifestBody } | undefined, trusted: Uint8Array): boolean {
  if (!manifest) return false;
  try {
    return rotationPath(manifest.body, publicKeyFromRaw(trusted), 'the manifest').length > 0;
  } catch (e) {
    if (e instanceof PaqueteError) return false;
    throw e;
  }
}
