/**
 * The publisher cache (src/publish/publisher-cache.ts): a publish takes a file whose stat is
 * unchanged from the previous snapshot as it was, and the index it writes is the one a publish
 * reading every file writes; a stale, damaged or torn cache is never trusted.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, runPaquete, tmpDir } from './helpers/tmp.js';
import { pseudoRandom, textFile, writeTree } from './helpers/trees.js';
import { writeWheel } from './helpers/wheels.js';
import { publish, PublishOptions } from '../src/publish/publisher.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { decodeManifest, latestSnapshot } from '../src/snapshot/manifest.js';
import { decodeSnapshot } from '../src/snapshot/snapshot.js';
import { decodePublisherCache, encodePublisherCache, OLD_PUBLISHER_CACHE_DIR, PublisherCache, publisherStateDir } from '../src/publish/publisher-cache.js';

after(cleanupAll);

const { key, publicKey } = parseSecretKey(generateKeys().secretPem, 'test key');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const cacheFile = (remote: string) => join(publisherStateDir(remote), 'files');

/**
 * Waits until every file under `root` was last changed more than the cache's racy window (2 s)
 * ago, so the next publish records entries it may trust: a fixed wait past a recorded instant,
 * the same on any machine, not a guess at how long work takes.
 */
async function settle(root: string): Promise<void> {
  let newest = 0;
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else newest = Math.max(newest, s.mtimeMs, s.ctimeMs);
    }
  };
  walk(root);
  const wait = newest + 2100 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

/** The latest snapshot's files as the remote's signed index lists them: path -> SHA-256. */
function published(remote: string): Record<string, string> {
  const m = decodeManifest(readFileSync(join(remote, 'manifest.json')), remote).body;
  const snap = decodeSnapshot(readFileSync(join(remote, 'snapshots', `${latestSnapshot(m)!.name}.snap`)));
  return Object.fromEntries(snap.files.map((f) => [f.path, Buffer.from(f.sha256).toString('hex')]));
}

/** What a reader of the source sees: path -> SHA-256 of its bytes. */
function actual(root: string, name: string, files: string[]): Record<string, string> {
  return Object.fromEntries(files.map((f) => [`${name}/${f}`, sha(readFileSync(join(root, f)))]));
}

const latestName = (remote: string) => latestSnapshot(decodeManifest(readFileSync(join(remote, 'manifest.json')), remote).body)!.name;

describe('publisher cache', () => {
  test('round trip; a flipped byte, another snapshot or a torn file is not used', () => {
    const body = {
      snapshot: 'ab'.repeat(32),
      walkedMs: 1_764_000_000_123.25,
      sources: new Map([
        ['tree:s', [
          { rel: 'a/b.txt', size: 5, mtimeMs: 1_700_000_000_000.5, ctimeMs: 1_700_000_000_001.75, ino: 12345, dev: 2049, form: undefined },
          { rel: 'a/bé.whl', size: 900, mtimeMs: 1, ctimeMs: 2, ino: 3, dev: 4, form: { deflated: 7, reproduced: 6, opaque: 1 } },
          { rel: 'z.zip', size: 0, mtimeMs: 1, ctimeMs: 2, ino: 2 ** 40, dev: 4, form: 'kept' as const },
        ]],
        ['pypi:p', []],
      ]),
    };
    const bytes = encodePublisherCache(body);
    assert.deepEqual(decodePublisherCache(bytes), body);
    for (const at of [0, 10, 50, bytes.length - 40, bytes.length - 1]) {
      const bad = Buffer.from(bytes);
      bad[at] ^= 1;
      assert.throws(() => decodePublisherCache(bad), { code: 'BAD_FORMAT' });
    }
    assert.throws(() => decodePublisherCache(bytes.subarray(0, bytes.length - 7)), { code: 'BAD_FORMAT' });
  });

  test('an unchanged file is not read again; the index is the one reading every file makes', async () => {
    const dir = await tmpDir('pubcache-');
    const src = join(dir, 'src');
    const tree: Record<string, string | Uint8Array> = {};
    for (let i = 0; i < 40; i++) tree[`d${i % 4}/f${i}.txt`] = textFile(i, 20 + i);
    tree['big.bin'] = pseudoRandom(300_000, 1);
    writeTree(src, tree);
    const wheel = writeWheel(src, { name: 'pkg', version: '1.0', modules: { 'pkg/__init__.py': 'x = 1\n'.repeat(400), 'pkg/b.py': textFile(9, 200) } });
    const names = [...Object.keys(tree), wheel.slice(src.length + 1)];
    const now = new Date('2026-12-01T00:00:00Z');
    const opts = (remoteDir: string): PublishOptions => ({ sources: [{ kind: 'tree', name: 's', path: src }], remoteDir, secret: key, publicKey, level: 3, now });
    await settle(src);
    const first = await publish(opts(join(dir, 'r')));
    assert.equal(first.unchanged, 0);
    assert.ok(existsSync(cacheFile(join(dir, 'r'))));

    // A change of the same size: its stat (mtime, ctime) moves, so it is read again.
    writeFileSync(join(src, 'd1/f1.txt'), Buffer.from(readFileSync(join(src, 'd1/f1.txt'), 'utf8').toUpperCase()));
    const second = await publish(opts(join(dir, 'r')));
    assert.equal(second.unchanged, names.length - 1, 'every file but the changed one taken from the cache');
    assert.equal(second.files, names.length);
    assert.deepEqual(second.rebuilt, first.rebuilt, 'a reused wheel counts as when it was cut');
    assert.deepEqual(published(join(dir, 'r')), actual(src, 's', names));

    // A copy of the remote (the cache is not in it: it is the publisher's, named by the remote's path): the
    // next publish there reads every file, and writes the same index byte for byte.
    const twin = join(dir, 'twin');
    cpSync(join(dir, 'r'), twin, { recursive: true });
    assert.ok(!existsSync(cacheFile(twin)));
    writeFileSync(join(src, 'd1/f1.txt'), Buffer.from(readFileSync(join(src, 'd1/f1.txt'), 'utf8').toLowerCase()));
    const uncached = await publish(opts(twin));
    const cached = await publish(opts(join(dir, 'r')));
    assert.equal(uncached.unchanged, 0);
    assert.equal(cached.unchanged, names.length - 1);
    const snapOf = (remote: string) => readFileSync(join(remote, 'snapshots', `${latestName(remote)}.snap`));
    assert.equal(latestName(join(dir, 'r')), latestName(twin), 'the same snapshot, named by its bytes');
    assert.deepEqual(snapOf(join(dir, 'r')), snapOf(twin));
  });

  test('the publisher state is in the state home, never in or beside what is served; a cache in the old place is used once and moved out', async () => {
    const dir = await tmpDir('pubcache-place-');
    const src = join(dir, 'src');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 20; i++) tree[`d${i % 3}/f${i}.txt`] = textFile(300 + i, 30);
    writeTree(src, tree);
    const remote = join(dir, 'www', 'r');
    const opts: PublishOptions = { sources: [{ kind: 'tree', name: 's', path: src }], remoteDir: remote, secret: key, publicKey, level: 3 };
    await settle(src);
    await publish(opts);
    assert.ok(publisherStateDir(remote).startsWith(join(process.env.XDG_STATE_HOME!, 'paquete', 'publisher') + '/'), publisherStateDir(remote));
    assert.ok(existsSync(cacheFile(remote)));
    assert.deepEqual(readdirSync(join(dir, 'www')), ['r'], 'nothing beside the remote either');
    // Nothing a static server of the remote hands out holds a source file's stat.
    const served = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? served(join(d, e.name)) : [join(d, e.name)]));
    const cacheBytes = readFileSync(cacheFile(remote));
    for (const f of served(remote)) {
      const b = readFileSync(f);
      assert.ok(!b.equals(cacheBytes) && !b.subarray(0, 4).equals(Buffer.from('PQPC')), `${f} is no publisher cache`);
    }
    assert.ok(!existsSync(join(remote, OLD_PUBLISHER_CACHE_DIR)));

    // A remote published before the move: its cache inside it, none beside it.
    const legacy = join(remote, OLD_PUBLISHER_CACHE_DIR);
    cpSync(publisherStateDir(remote), legacy, { recursive: true });
    rmSync(publisherStateDir(remote), { recursive: true });
    writeFileSync(join(src, 'd1/f1.txt'), 'changed\n');
    await settle(src);
    const migrated = await publish(opts);
    assert.equal(migrated.unchanged, 19, 'the old cache is used for the publish that moves it');
    assert.ok(!existsSync(legacy), 'and is gone from the remote');
    assert.ok(existsSync(cacheFile(remote)));
    assert.equal(PublisherCache.read(remote, latestName(remote))?.body.snapshot, latestName(remote));
    assert.equal((await publish(opts)).unchanged, 20);
    assert.deepEqual(published(remote), actual(src, 's', Object.keys(tree)));
  });

  test('a cache of another snapshot, or damaged, is not trusted: every file is read', async () => {
    const dir = await tmpDir('pubcache-stale-');
    const src = join(dir, 'src');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 20; i++) tree[`f${i}.txt`] = textFile(100 + i, 30);
    writeTree(src, tree);
    const remote = join(dir, 'r');
    const opts: PublishOptions = { sources: [{ kind: 'tree', name: 's', path: src }], remoteDir: remote, secret: key, publicKey, level: 3 };
    await settle(src);
    await publish(opts);
    const old = readFileSync(cacheFile(remote));
    writeFileSync(join(src, 'f3.txt'), 'changed\n');
    await settle(src);
    assert.equal((await publish(opts)).unchanged, 19);
    // As a publish killed after signing and before writing its cache leaves it: the cache of the snapshot before.
    writeFileSync(cacheFile(remote), old);
    assert.equal(PublisherCache.read(remote, latestName(remote)), undefined);
    assert.equal((await publish(opts)).unchanged, 0, 'the older cache is not used');
    assert.deepEqual(published(remote), actual(src, 's', Object.keys(tree)));
    // Damaged: ignored, and replaced by a good one.
    const good = readFileSync(cacheFile(remote));
    const bad = Buffer.from(good);
    bad[100] ^= 0x20;
    writeFileSync(cacheFile(remote), bad);
    assert.equal((await publish(opts)).unchanged, 0);
    assert.equal((await publish(opts)).unchanged, 20);
    // Another source under the same name (a new directory, other inodes): nothing matches.
    cpSync(src, join(dir, 'src2'), { recursive: true });
    writeFileSync(join(dir, 'src2', 'f5.txt'), 'other\n');
    await settle(join(dir, 'src2'));
    const other = await publish({ ...opts, sources: [{ kind: 'tree', name: 's', path: join(dir, 'src2') }] });
    assert.equal(other.unchanged, 0);
    assert.deepEqual(published(remote), actual(join(dir, 'src2'), 's', Object.keys(tree)));
  });

  test('kill -9 at any moment of a publish: the remote stays consistent and the next publish is right', async () => {
    const dir = await tmpDir('pubcache-kill-');
    const src = join(dir, 'src');
    const tree: Record<string, string | Uint8Array> = {};
    for (let i = 0; i < 300; i++) tree[`d${i % 10}/f${i}.txt`] = textFile(1000 + i, 40);
    tree['big.bin'] = pseudoRandom(2_000_000, 5);
    writeTree(src, tree);
    const cli = (args: string[]) => runPaquete(args, { cwd: dir });
    const ok = async (args: string[]) => {
      const r = await cli(args).done;
      assert.equal(r.code, 0, r.stderr);
      return r;
    };
    await ok(['keygen', '--out', 'k']);
    await settle(src);
    await ok(['publish', 's=src', '--to', 'r', '--key', 'k', '--level', '3']);
    for (let trial = 0; trial < 5; trial++) {
      for (let i = trial; i < 300; i += 37) writeFileSync(join(src, `d${i % 10}/f${i}.txt`), textFile(5000 + trial * 300 + i, 41));
      const running = cli(['publish', 's=src', '--to', 'r', '--key', 'k', '--level', '3']);
      // Killed at a different moment each time (starting, reading, packing, writing updates, after
      // signing): whatever it hit, the verdict below is the same.
      const killAt = setTimeout(() => running.kill('SIGKILL'), 300 + trial * 600);
      await running.done;
      clearTimeout(killAt);
      await settle(src);
      await ok(['publish', 's=src', '--to', 'r', '--key', 'k', '--level', '3']);
      assert.deepEqual(published(join(dir, 'r')), actual(src, 's', Object.keys(tree)), `after kill ${trial}`);
      const c = PublisherCache.read(join(dir, 'r'), latestName(join(dir, 'r')));
      assert.ok(c, 'the publish after a kill leaves a cache of its snapshot');
      assert.ok(readdirSync(publisherStateDir(join(dir, 'r'))).length <= 2, 'no pile of torn temporary caches');
    }
  });
});
