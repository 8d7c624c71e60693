import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, sampleTree, treeDigest, writeTree } from './helpers/trees.js';
import { parseSecretKey } from '../src/snapshot/keys.js';
import { encodeManifest, decodeManifest, sha256Hex } from '../src/snapshot/manifest.js';
import { decodeSnapshot, encodeSnapshot } from '../src/snapshot/snapshot.js';

after(cleanupAll);

const paquete = paqueteExpecting();

describe('publish → init → sync on a local remote', () => {
  let dir: string;
  before(async () => {
    dir = await tmpDir('paquete-cli-');
    sampleTree(join(dir, 'site'));
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  });

  test('the synced tree is byte-identical, empty files, large files and odd names included', async () => {
    await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
    const r = await paquete(['sync', '-C', 'work', '--json'], dir);
    const report = JSON.parse(r.stdout);
    assert.equal(report.completeFiles, report.wantedFiles);
    const want = treeDigest(join(dir, 'site'));
    const got = treeDigest(join(dir, 'work', 'site'));
    assert.deepEqual(got, want);
    assert.equal(readFileSync(join(dir, 'work/site/empty.txt')).length, 0);
    assert.equal(readdirSync(join(dir, 'work/.paquete/tmp')).length, 0, 'no temp files left behind');
    const v = await paquete(['verify', '-C', 'work'], dir);
    assert.match(v.stdout, /store ok/);
  });

  test('a second sync with nothing new reads nothing but the manifest', async () => {
    const r = await paquete(['sync', '--json'], join(dir, 'work'));
    const report = JSON.parse(r.stdout);
    assert.equal(report.read, statSync(join(dir, 'remote/manifest.json')).size);
    assert.equal(report.spent, 0, 'a local directory costs nothing');
    assert.equal(report.placed.length, 0);
  });

  test('publishing a changed tree writes only new chunks, and the update syncs while old snapshots stay readable', async () => {
    const before = decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
    const big = readFileSync(join(dir, 'site/big/large.bin'));
    big.set(pseudoRandom(100, 99), 3_000_000); // a small edit in the middle of a 6 MB file
    writeFileSync(join(dir, 'site/big/large.bin'), big);
    writeFileSync(join(dir, 'site/new.txt'), 'new file\n');
    rmSync(join(dir, 'site/deep'), { recursive: true });
    const r = await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key', '--json'], dir);
    const pub = JSON.parse(r.stdout);
    assert.ok(pub.newStoredBytes < 200_000, `wrote ${pub.newStoredBytes} bytes for a 100-byte edit`);
    const after = decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
    assert.equal(after.serial, before.serial + 1);
    assert.equal(after.snapshots.length, 2);
    for (const s of after.snapshots) decodeSnapshot(readFileSync(join(dir, 'remote/snapshots', `${s.name}.snap`)));

    const s = JSON.parse((await paquete(['sync', '--json'], join(dir, 'work'))).stdout);
    assert.deepEqual(treeDigest(join(dir, 'work', 'site')), treeDigest(join(dir, 'site')));
    assert.deepEqual(s.removed, ['site/deep/a/b/c/d.txt']);
    assert.ok(s.read < 250_000, `update read ${s.read} bytes`);
  });

  test('status reports complete files and missing bytes without the network', async () => {
    const r = await paquete(['status', '--json'], join(dir, 'work'));
    const st = JSON.parse(r.stdout);
    assert.equal(st.total.complete, st.total.files);
    assert.equal(st.total.missingBytes, 0);
  });

  test('without --trust, init pins the key it sees and says so', async () => {
    const r = await paquete(['init', join(dir, 'remote'), join(dir, 'pinned')], dir);
    assert.match(r.stdout, /pinned the publisher key SHA256:/);
  });
});

describe('bad input gets one clear line and a distinct exit code', () => {
  let dir: string;
  before(async () => {
    dir = await tmpDir('paquete-bad-');
    writeTree(join(dir, 'site'), { 'a.txt': 'a\n', 'b.bin': pseudoRandom(200_000, 3) });
    writeFileSync(join(dir, 'plainfile'), 'x');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['keygen', '--out', 'other.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  });

  const oneLine = (stderr: string) => {
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    assert.match(stderr, /^paquete: /);
  };

  test('a missing or non-directory source', async () => {
    oneLine((await paquete(['publish', 'nope', '--to', 'r2', '--key', 'pub.key'], dir, 2)).stderr);
    const r = await paquete(['publish', 'plainfile', '--to', 'r2', '--key', 'pub.key'], dir, 2);
    assert.match(r.stderr, /not a directory/);
  });

  test('a remote that is not a paquete remote', async () => {
    const r = await paquete(['init', 'site', 'w1'], dir, 2);
    oneLine(r.stderr);
    assert.match(r.stderr, /no paquete remote/);
    assert.equal(existsSync(join(dir, 'w1')), false, 'nothing created');
  });

  test('a manifest signed by a key the user does not trust', async () => {
    const r = await paquete(['init', 'remote', 'w2', '--trust', 'other.key.pub'], dir, 1);
    assert.match(r.stderr, /not by the key you trust/);
  });

  test('a manifest altered after signing, and a remote re-signed with another key', async () => {
    await paquete(['init', 'remote', 'w3', '--trust', 'pub.key.pub'], dir);
    const path = join(dir, 'remote/manifest.json');
    const good = readFileSync(path);
    try {
      writeFileSync(path, good.toString().replace(/"files":\d+/, '"files":999'));
      const r = await paquete(['sync', '-C', 'w3'], dir, 1);
      oneLine(r.stderr);
      assert.match(r.stderr, /not signed by the key it names/);
      const other = parseSecretKey(readFileSync(join(dir, 'other.key'), 'utf8'), 'o');
      const body = decodeManifest(good, 'm').body;
      writeFileSync(path, encodeManifest({ ...body, publisher: Buffer.from(other.publicKey.raw).toString('base64') }, other.key));
      const r2 = await paquete(['sync', '-C', 'w3'], dir, 1);
      assert.match(r2.stderr, /signed by SHA256:.* but this directory trusts/);
      assert.equal(existsSync(join(dir, 'w3/site/a.txt')), false, 'nothing placed');
    } finally {
      writeFileSync(path, good);
    }
  });

  test('a snapshot with a file name escaping the directory is refused before anything is written', async () => {
    const evil = join(dir, 'evil-remote');
    rmSync(evil, { recursive: true, force: true });
    await paquete(['publish', 'site', '--to', 'evil-remote', '--key', 'pub.key'], dir);
    const m = decodeManifest(readFileSync(join(evil, 'manifest.json')), 'm').body;
    const snap = decodeSnapshot(readFileSync(join(evil, 'snapshots', `${m.snapshots[0].name}.snap`)));
    snap.files[0].path = 'site/../../escaped.txt';
    const bytes = encodeSnapshot(snap);
    const name = sha256Hex(bytes);
    writeFileSync(join(evil, 'snapshots', `${name}.snap`), bytes);
    const { key } = parseSecretKey(readFileSync(join(dir, 'pub.key'), 'utf8'), 'k');
    m.snapshots[0] = { ...m.snapshots[0], name, size: bytes.length };
    writeFileSync(join(evil, 'manifest.json'), encodeManifest({ ...m, serial: m.serial + 1 }, key));
    await paquete(['init', 'evil-remote', 'w4', '--trust', 'pub.key.pub'], dir);
    const r = await paquete(['sync', '-C', 'w4'], dir, 2);
    oneLine(r.stderr);
    assert.match(r.stderr, /refusing file name .*escapes/);
    assert.equal(existsSync(join(dir, 'escaped.txt')), false);
    assert.equal(existsSync(join(dir, 'w4/site')), false);
  });

  test('a damaged pack in the store is found by verify; --repair rebuilds from intact files and lists what to fetch', async () => {
    await paquete(['init', 'remote', 'w5', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w5'], dir);
    const packs = join(dir, 'w5/.paquete/store/packs');
    const pack = join(packs, readdirSync(packs)[0]);
    const damage = () => {
      const bytes = readFileSync(pack);
      bytes[bytes.length - 10] ^= 0x55;
      writeFileSync(pack, bytes);
    };
    damage();
    const r = await paquete(['verify', '-C', 'w5'], dir, 1);
    assert.match(r.stdout, /damaged: chunk [0-9a-f]{16} \(pack 1 at \d+\)/);
    // The file using that chunk is intact in the tree: the chunk is rebuilt from it, nothing to fetch.
    const fixed = await paquete(['verify', '--repair', '-C', 'w5'], dir);
    assert.match(fixed.stdout, /1 damaged chunks removed from the index; 1 rebuilt from intact files in the tree/);
    assert.match(fixed.stdout, /nothing needs fetching/);
    assert.match((await paquete(['verify', '-C', 'w5'], dir)).stdout, /store ok/);

    // Damaged again, and this time the files are gone too: what used the chunk must be fetched again, and is.
    damage();
    rmSync(join(dir, 'w5/site'), { recursive: true });
    const listed = await paquete(['verify', '--repair', '-C', 'w5'], dir);
    assert.match(listed.stdout, /to fetch again: site\//);
    await paquete(['sync', '-C', 'w5'], dir);
    assert.deepEqual(treeDigest(join(dir, 'w5/site')), treeDigest(join(dir, 'site')));
  });

  test('a damaged pack on the remote is caught, and nothing wrong is placed', async () => {
    await paquete(['init', 'remote', 'w6', '--trust', 'pub.key.pub'], dir);
    // The pack, and the update frames that would otherwise bring the same chunks.
    const damaged = ['packs', 'frames'].flatMap((d) => readdirSync(join(dir, 'remote', d)).map((n) => join(dir, 'remote', d, n)));
    const good = damaged.map((f) => readFileSync(f));
    try {
      damaged.forEach((f, i) => {
        const bad = Buffer.from(good[i]);
        bad[bad.length - 100] ^= 0xff;
        writeFileSync(f, bad);
      });
      const r = await paquete(['sync', '-C', 'w6'], dir, 1);
      assert.match(r.stderr, /corrupt|does not decompress|does not hold/);
      assert.equal(existsSync(join(dir, 'w6/site/b.bin')), false);
    } finally {
      damaged.forEach((f, i) => writeFileSync(f, good[i]));
    }
    await paquete(['sync', '-C', 'w6'], dir);
    assert.deepEqual(treeDigest(join(dir, 'w6/site')), treeDigest(join(dir, 'site')));
  });

  test('usage errors exit 2; commands outside a working directory say so', async () => {
    assert.match((await paquete(['sync', '--budget', 'lots'], dir, 2)).stderr, /not a paquete directory|not a size/);
    assert.match((await paquete(['frobnicate'], dir, 2)).stderr, /Unknown/i);
    assert.match((await paquete(['status'], dir, 2)).stderr, /not a paquete directory/);
  });
});
