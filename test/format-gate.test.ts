import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { PAQUETE_RELEASE, requireFormat } from '../src/util/format-gate.js';
import { packHead, unpackHead } from '../src/delta/update.js';

test('the release the gate names is the package.json version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(PAQUETE_RELEASE, pkg.version);
});

test('a known version passes; a newer one says "upgrade paquete" with this release and the versions read', () => {
  requireFormat('f', 'update head', 4, [1, 2, 3, 4]);
  assert.throws(
    () => requireFormat('the update head of x', 'update head', 5, [1, 2, 3, 4]),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'BAD_FORMAT' &&
      e.message === `the update head of x is update head version 5, which this paquete ${PAQUETE_RELEASE} does not read (it reads update head 1-4)` &&
      e.hint === `upgrade paquete: this is paquete ${PAQUETE_RELEASE}; update head version 5 needs a newer release (one that reads it)`,
  );
});

test('an older version than any read asks for a new publish, not an upgrade; a non-number is "newer"', () => {
  assert.throws(() => requireFormat('x', 'index layer', 1, [2, 3]), (e: Error & { hint?: string }) => e.hint === `publish the remote again with paquete ${PAQUETE_RELEASE}`);
  assert.throws(() => requireFormat('x', 'manifest', '2', [1]), (e: Error & { hint?: string }) => /^upgrade paquete/.test(String(e.hint)));
});

test('a head packed at version 4 meets a reader of 1-3 (a paquete before segments) at the gate', () => {
  const bytes = packHead(4, Buffer.from('{}'));
  assert.deepEqual(Buffer.from(unpackHead(bytes, 'update head', [4])), Buffer.from('{}'));
  assert.throws(() => unpackHead(bytes, 'update head', [1, 2, 3]), /update head version 4, which this paquete .* does not read \(it reads update head 1-3\)/);
});

test('a pack, a root\'s shard and a file layer of a newer version meet the gate, not a bare "malformed"', async () => {
  const { checkPackHeader, packHeader } = await import('../src/store/pack.js');
  const { encodeRootBody, decodeRootBody } = await import('../src/snapshot/shards.js');
  const { INDEX_VERSIONS } = await import('../src/snapshot/snapshot.js');
  const refused = (format: string, v: number) => (e: Error & { code?: string; hint?: string }) =>
    e.code === 'BAD_FORMAT' && e.message.includes(`${format} version ${v}, which this paquete`) && /^upgrade paquete/.test(String(e.hint));
  const h = Buffer.from(packHeader());
  checkPackHeader(h, 'pack x');
  h[4] = 2;
  assert.throws(() => checkPackHeader(h, 'pack x'), refused('pack', 2));
  const shard = { source: 0, key: 'a-range-key', name: '00'.repeat(32), size: 1e6, version: 2, bodyLength: 1e6, files: 1e6, bytes: 1e6, chunks: 1e6, deps: [], deltas: [] };
  const root = { params: { minSize: 1024, avgSize: 4096, maxSize: 16384 }, created: 1, sources: [{ kind: 'dir', name: 'docs' }], shards: [shard] };
  assert.equal(decodeRootBody(encodeRootBody(root)).shards[0].version, 2);
  assert.deepEqual([...INDEX_VERSIONS], [2, 3]);
  assert.throws(() => decodeRootBody(encodeRootBody({ ...root, shards: [{ ...shard, version: 4 }] })), refused('snapshot index', 4));
  const { decodeFileLayer, FILES_MAGIC, LAYER_VERSION } = await import('../src/snapshot/layers.js');
  // A file layer's body: the snapshot's name, then the index version it describes.
  const layer = packHead(LAYER_VERSION, Buffer.concat([Buffer.alloc(32), Buffer.from([4])]), FILES_MAGIC);
  assert.throws(() => decodeFileLayer(layer), refused('snapshot index', 4));
});
