import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { PaqueteError } from '../errors.js';

/**
 * Publisher keys: Ed25519. The secret key file is PKCS#8 PEM (readable by openssl); the public
 * key file is one line, `paquete-ed25519 <base64 of the 32-byte key>`, short enough to read out
 * over the phone or print on the stick's label.
 */
export interface PublicKey {
  raw: Uint8Array;
  key: KeyObject;
}

const PUBLIC_PREFIX = 'paquete-ed25519';
// The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow it.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function generateKeys(): { secretPem: string; publicLine: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const secretPem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  return { secretPem, publicLine: `${PUBLIC_PREFIX} ${rawPublic(publicKey).toString('base64')}\n` };
}

function rawPublic(k: KeyObject): Buffer {
  return k.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
}

export function publicKeyFromRaw(raw: Uint8Array): PublicKey {
  if (raw.length !== 32) throw new PaqueteError('BAD_FORMAT', 'an Ed25519 public key has 32 bytes');
  const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  return { raw: Buffer.from(raw), key };
}

export function parsePublicKey(text: string, where: string): PublicKey {
  const m = new RegExp(`^${PUBLIC_PREFIX} ([A-Za-z0-9+/]{43}=)\\s*$`).exec(text.trim());
  if (!m) throw new PaqueteError('BAD_FORMAT', `${where} is not a paquete public key (expected "${PUBLIC_PREFIX} <base64>")`);
  return publicKeyFromRaw(Buffer.from(m[1], 'base64'));
}

export function parseSecretKey(pem: string, where: string): { key: KeyObject; publicKey: PublicKey } {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new PaqueteError('BAD_FORMAT', `${where} is not a PEM private key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new PaqueteError('BAD_FORMAT', `${where} is not an Ed25519 key`);
  return { key, publicKey: publicKeyFromRaw(rawPublic(createPublicKey(key))) };
}

/** ssh-style fingerprint: "SHA256:" + unpadded base64 of the key's SHA-256. */
export function fingerprint(k: PublicKey): string {
  return 'SHA256:' + createHash('sha256').update(k.raw).digest('base64').replace(/=+$/, '');
}

export const signBytes = (key: KeyObject, data: Uint8Array): Uint8Array => sign(null, data, key);
export const verifyBytes = (k: PublicKey, data: Uint8Array, sig: Uint8Array): boolean => {
  try {
    return verify(null, data, k.key, sig);
  } catch {
    return false;
  }
};
