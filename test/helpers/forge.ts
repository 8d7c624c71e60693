import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSecretKey } from '../../src/snapshot/keys.js';
import { decodeManifest, encodeManifest, sha256Hex } from '../../src/snapshot/manifest.js';
import { decodeSnapshot, encodeSnapshot, Snapshot } from '../../src/snapshot/snapshot.js';

/**
 * A hostile publisher (or a stolen key): the latest snapshot of a local remote, changed by
 * `mutate`, re-encoded with no checks and signed with the publisher's own key as the next
 * serial. What a client then refuses, it refuses on content alone: the signature is good.
 */
export function forgeSnapshot(remoteDir: string, keyFile: string, mutate: (s: Snapshot) => void): void {
  const m = decodeManifest(readFileSync(join(remoteDir, 'manifest.json')), 'm').body;
  const last = m.snapshots[m.snapshots.length - 1];
  const snap = decodeSnapshot(readFileSync(join(remoteDir, 'snapshots', `${last.name}.snap`)));
  mutate(snap);
  const bytes = encodeSnapshot(snap);
  const name = sha256Hex(bytes);
  writeFileSync(join(remoteDir, 'snapshots', `${name}.snap`), bytes);
  const { key } = parseSecretKey(readFileSync(keyFile, 'utf8'), 'k');
  const { updates: _, body: __, ...rest } = last;
  const entry = { ...rest, name, size: bytes.length, files: snap.files.length, sources: snap.sources };
  writeFileSync(join(remoteDir, 'manifest.json'), encodeManifest({ ...m, serial: m.serial + 1, snapshots: [...m.snapshots, entry] }, key));
}
