import type { ManifestBody } from '../../src/snapshot/manifest.js';
import type { PublicKey } from '../../src/snapshot/keys.js';

/** A small valid manifest body signed-for by `publicKey`: one snapshot of one tree source. */
export function sampleManifestBody(publicKey: PublicKey, serial = 3): ManifestBody {
  return {
    format: 'paquete-manifest',
    version: 1,
    publisher: Buffer.from(publicKey.raw).toString('base64'),
    serial,
    snapshots: [{ name: 'a'.repeat(64), size: 10, created: '2026-11-21T00:00:00.000Z', files: 1, bytes: 5, sources: [{ kind: 'tree', name: 'x' }] }],
  };
}
