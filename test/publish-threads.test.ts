/**
 * Publishing on worker threads (src/delta/compress-pool.ts: zstd frames and brotli index files):
 * the remote is the same bytes whatever the number of threads, first publish and update alike, and
 * an update of 1% of the files keeps what did not change (the other source's stream segment and
 * shard, by name, not compressed again) and syncs through nginx to the publisher's tree.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cleanupAll, onCleanup, paqueteExpecting, tmpDir } from './helpers/tmp.js';
import { editText, textFile, treeDigest, writeTree } from './helpers/trees.js';
import { requireNginx, startNginx } from './helpers/nginx.js';
import { publish, PublishOptions, PUBLISH_LOCK } from '../src/publish/publisher.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { decodeManifest, latestSnapshot } from '../src/snapshot/manifest.js';
import { decodeSnapshot } from '../src/snapshot/snapshot.js';
import { writeLayers } from '../src/publish/layers.js';

after(cleanupAll);

const paquete = paqueteExpecting();
const { secretPem, publicLine } = generateKeys();
const { key, publicKey } = parseSecretKey(secretPem, 'test key');

/** Every file of a remote by path, as SHA-256 of its bytes (the publish lock aside). */
function remoteFiles(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (!n.startsWith(PUBLISH_LOCK)) out[relative(root, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(root);
  return out;
}

describe('publish on worker threads', () => {
  test('one thread or three write the same remote; a 1% update keeps the unchanged source and syncs through nginx', async () => {
    requireNginx();
    const dir = await tmpDir('pubthreads-');
    // Two sources of 100 files: a stream segment and a shard each (segments and shards never span sources).
    const tree: Record<string, string> = {};
    for (let i = 0; i < 200; i++) tree[`${i < 100 ? 'a' : 'b'}/d${i % 7}/f${i}.js`] = textFile(i, 10 + (i % 40));
    writeTree(dir, tree);
    writeFileSync(join(dir, 'pub.key.pub'), publicLine + '\n');
    const sources: PublishOptions['sources'] = [
      { kind: 'tree', name: 'a', path: join(dir, 'a') },
      { kind: 'tree', name: 'b', path: join(dir, 'b') },
    ];
    const opts = (remote: string, threads: number, now: Date): PublishOptions => ({ sources, remoteDir: join(dir, remote), secret: key, publicKey, level: 6, threads, now });
    const t1 = new Date('2026-12-01T00:00:00Z');
    await publish(opts('one', 1, t1));
    const firstMany = await publish(opts('many', 3, t1));
    assert.deepEqual(remoteFiles(join(dir, 'many')), remoteFiles(join(dir, 'one')), 'first publish: the same files, byte for byte');
    assert.equal(firstMany.updates.find((u) => u.from === '')?.segments, 2);

    const ng = await startNginx(join(dir, 'many'));
    onCleanup(() => ng.stop());
    await paquete(['init', ng.url, 'client', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'client', '-q'], dir);

    // 1% of the files changed (2 of 200), both in source a.
    for (const f of ['a/d3/f3.js', 'a/d5/f40.js']) writeFileSync(join(dir, f), editText(tree[f], 7, 3));
    const t2 = new Date('2026-12-02T00:00:00Z');
    await publish(opts('one', 1, t2));
    const before = remoteFiles(join(dir, 'many'));
    const update = await publish(opts('many', 3, t2));
    assert.deepEqual(remoteFiles(join(dir, 'many')), remoteFiles(join(dir, 'one')), 'update: the same files, byte for byte');

    // What did not change is kept: b's segment of the stream and b's shard, by name (the same bytes, not written again).
    const stream = update.updates.find((u) => u.from === '')!;
    assert.equal(stream.segments, 2);
    assert.equal(stream.reusedSegments, 1, "source b's segment kept");
    const after = remoteFiles(join(dir, 'many'));
    const added = (sub: string) => Object.keys(after).filter((p) => p.startsWith(sub) && !(p in before));
    // a's new segment and the delta's frames (an offer with the same bytes is the same file, by name).
    const frames = added('frames/');
    assert.ok(frames.length >= 2 && frames.length <= 3, `frames files written: ${frames}`);
    assert.equal(added('shards/').filter((p) => p.endsWith('.shard')).length, 1, "a's shard only");
    assert.equal(update.newChunks > 0 && update.newChunks <= 4, true, `new chunks: ${update.newChunks}`);

    // The layers' piece hashes were taken while the stream was compressed (b's kept segment read
    // from the packs): the same layers as reading every chunk of the stream back.
    const entry = latestSnapshot(decodeManifest(readFileSync(join(dir, 'many', 'manifest.json')), 'many').body)!;
    const snap = decodeSnapshot(readFileSync(join(dir, 'many', 'snapshots', `${entry.name}.snap`)));
    assert.deepEqual(await writeLayers(join(dir, 'many'), snap, entry.name, stream.name), entry.layers);

    await ng.clearLog();
    const r = await paquete(['sync', '-C', 'client', '--json'], dir);
    assert.deepEqual(treeDigest(join(dir, 'client', 'a')), treeDigest(join(dir, 'a')));
    assert.deepEqual(treeDigest(join(dir, 'client', 'b')), treeDigest(join(dir, 'b')));
    const log = await ng.accessLog();
    assert.equal(JSON.parse(r.stdout).spent, await ng.wireBytes(), "paquete's meter equals nginx's log");
    assert.ok(!log.some((e) => e.uri.startsWith('/snapshots/')), 'the index came as a delta, not whole');
  });
});
