import { describeToFetch } from '../src/sync/forecast.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, sampleTree, treeDigest, writeTree } from './helpers/trees.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { publish } from '../src/publish/publisher.js';
import { encodeHave } from '../src/peer/have.js';
import { WorkDir } from '../src/workdir/workdir.js';

after(cleanupAll);

/**
 * Friends exchanging through bundles, as users do it: the real CLI, stores that never see a
 * network. "Offline" directories are made with `init URL --trust KEY.pub` against a closed port.
 */
const OFFLINE_URL = 'http://127.0.0.1:9/';
const offlineEnv = { PAQUETE_RETRIES: '0', PAQUETE_CONNECT_TIMEOUT: '2', PAQUETE_BACKOFF: '0' };

const paquete = paqueteExpecting(offlineEnv);
const json = async (args: string[], cwd: string, expectCode = 0) => JSON.parse((await paquete([...args, '--json'], cwd, expectCode)).stdout);

/** Setup a user does not watch (the publisher's side) runs in-process: each CLI start costs ~0.8 s of CPU. */
function makeKey(dir: string, name: string) {
  const { secretPem, publicLine } = generateKeys();
  writeFileSync(join(dir, name), secretPem, { mode: 0o600 });
  writeFileSync(join(dir, `${name}.pub`), publicLine);
  return parseSecretKey(secretPem, name);
}
async function publishTree(dir: string, source: string, remote: string, key: ReturnType<typeof makeKey>) {
  await publish({ sources: [{ kind: 'tree', name: source, path: join(dir, source) }], remoteDir: join(dir, remote), secret: key.key, publicKey: key.publicKey });
}

/** A directory that trusts the key and never went online, made the way init does it offline (tested above). */
const offlineDir = (root: string, name: string, publisher: Uint8Array) =>
  WorkDir.create(join(root, name), { version: 1, remotes: [{ location: OFFLINE_URL }], publisher: Buffer.from(publisher).toString('base64') });

const volumesIn = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.pqb')).sort().map((n) => join(dir, n));

describe('two and three stores exchange through bundles with no network', () => {
  let dir: string;
  let key: ReturnType<typeof makeKey>;
  before(async () => {
    dir = await tmpDir('paquete-peer-');
    sampleTree(join(dir, 'site'));
    key = makeKey(dir, 'pub.key');
    await publishTree(dir, 'site', 'remote', key);
    await paquete(['init', 'remote', 'A', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'A'], dir);
  });

  test('B, never online, gets the snapshot and the files from A: sync fails, import places them', async () => {
    const init = await paquete(['init', OFFLINE_URL, 'B', '--trust', 'pub.key.pub'], dir);
    assert.match(init.stdout, /cannot be reached now/);
    await paquete(['sync', '-C', 'B'], dir, 4);

    const have = await json(['have', '-C', 'B', '--out', join(dir, 'b1.have')], dir);
    assert.equal(have.chunks, 0);
    assert.equal(have.serial, null);
    const exp = await json(['export', '-C', 'A', '--for', join(dir, 'b1.have'), '--to', join(dir, 'stick1')], dir);
    assert.equal(exp.volumes.length, 1);
    assert.equal(exp.completeFiles, exp.wantedFiles);

    const imp = await json(['import', '-C', 'B', join(dir, 'stick1')], dir);
    assert.deepEqual(imp.problems, []);
    assert.equal(imp.bundles[0].manifest, 'accepted');
    assert.equal(imp.placement.completeFiles, imp.placement.totalFiles);
    assert.deepEqual(treeDigest(join(dir, 'B/site')), treeDigest(join(dir, 'site')));

    // Still no network: sync fails as before, and the files stay.
    await paquete(['sync', '-C', 'B'], dir, 4);
    assert.deepEqual(treeDigest(join(dir, 'B/site')), treeDigest(join(dir, 'site')));

    // Importing twice is harmless.
    const again = await json(['import', '-C', 'B', join(dir, 'stick1')], dir);
    assert.deepEqual(again.problems, []);
    assert.equal(again.imported.chunks, 0);
    assert.equal(again.bundles[0].manifest, 'already trusted');
  });

  test('an update travels as only its new chunks, the have-summary costs under 8 bytes a chunk, and the old file goes', async () => {
    const big = readFileSync(join(dir, 'site/big/large.bin'));
    big.set(pseudoRandom(200, 42), 2_000_000);
    writeFileSync(join(dir, 'site/big/large.bin'), big);
    writeFileSync(join(dir, 'site/new.txt'), 'new in serial 2\n');
    rmSync(join(dir, 'site/deep'), { recursive: true });
    await publishTree(dir, 'site', 'remote', key);
    await paquete(['sync', '-C', 'A'], dir);

    const have = await json(['have', '-C', 'B', '--out', join(dir, 'b2.have')], dir);
    assert.equal(have.serial, 1);
    const perChunk = statSync(join(dir, 'b2.have')).size / have.chunks;
    assert.ok(perChunk < 8, `${perChunk} bytes a chunk`);
    const exp = await json(['export', '-C', 'A', '--for', join(dir, 'b2.have'), '--to', join(dir, 'update.pqb')], dir);
    assert.equal(exp.serial, 2);
    assert.ok(exp.friendHas > 100);
    assert.ok(exp.recordBytes < 200_000, `the update bundle carries ${exp.recordBytes} record bytes`);
    assert.ok(existsSync(join(dir, 'update.pqb')));

    const imp = await json(['import', '-C', 'B', join(dir, 'update.pqb')], dir);
    assert.deepEqual(imp.problems, []);
    assert.equal(imp.placement.serial, 2);
    assert.deepEqual(imp.placement.removed, ['site/deep/a/b/c/d.txt']);
    assert.deepEqual(treeDigest(join(dir, 'B/site')), treeDigest(join(dir, 'site')));
  });

  test('C, never online, gets everything from B in small volumes, given in any order', async () => {
    offlineDir(dir, 'C', key.publicKey.raw);
    const exp = await json(['export', '-C', 'B', '--to', join(dir, 'stickC'), '--max-size', '2MB'], dir);
    assert.ok(exp.volumes.length >= 3, `${exp.volumes.length} volumes`);
    for (const v of exp.volumes) assert.ok(v.bytes <= 2_000_000, `${v.path} is ${v.bytes} bytes`);
    const vols = volumesIn(join(dir, 'stickC'));
    assert.equal(vols.length, exp.volumes.length);

    const imp = await json(['import', '-C', 'C', ...vols.reverse()], dir);
    assert.deepEqual(imp.problems, []);
    assert.ok(imp.notes.some((n: string) => /out of order/.test(n)), JSON.stringify(imp.notes));
    assert.deepEqual(treeDigest(join(dir, 'C/site')), treeDigest(join(dir, 'site')));
    assert.equal(imp.placement.serial, 2);
  });

  test('a partial bundle (one volume of three) imports what it can and says what is missing', async () => {
    offlineDir(dir, 'D', key.publicKey.raw);
    const exp = await json(['export', '-C', 'A', '--to', join(dir, 'stickD'), '--max-size', '3MB'], dir);
    assert.equal(exp.volumes.length, 3);
    const [first, ...rest] = volumesIn(join(dir, 'stickD'));

    const r = await paquete(['import', '-C', 'D', first], dir, 1);
    assert.match(r.stdout, /volume 2 of 3 is missing \(\d+ chunks, [\d.]+ [kM]B\)/);
    assert.match(r.stdout, /volume 3 of 3 is missing/);
    assert.match(r.stdout, /still to fetch/);
    // The figure is status's: what a sync would spend on the wire, not the records' bytes.
    const st = await json(['status', '-C', 'D'], dir);
    assert.ok(st.toFetch.wire > 0);
    assert.ok(r.stdout.includes(`still to fetch: ${describeToFetch(st.toFetch)}`), r.stdout);
    const placed = readdirSync(join(dir, 'D/site'), { recursive: true });
    assert.ok(placed.length > 0, 'the files whole in volume 1 are placed');
    const want = treeDigest(join(dir, 'site'));
    for (const [path, sha] of Object.entries(treeDigest(join(dir, 'D/site')))) assert.equal(sha, want[path], path);
    assert.equal(existsSync(join(dir, 'D/site/big/large.bin')), false, 'the big file is not whole yet');

    const imp = await json(['import', '-C', 'D', ...rest], dir);
    assert.deepEqual(imp.problems, []);
    assert.deepEqual(imp.bundles[0].earlier, [1], 'volume 1, imported before, is not reported missing');
    assert.deepEqual(treeDigest(join(dir, 'D/site')), want);
  });

  test('--want exports only what matches; a have-summary of another publisher is refused', async () => {
    offlineDir(dir, 'E', key.publicKey.raw);
    const exp = await json(['export', '-C', 'A', '--want', 'site/src/**', '--to', join(dir, 'src.pqb')], dir);
    assert.equal(exp.wantedFiles, 1);
    const imp = await json(['import', '-C', 'E', join(dir, 'src.pqb')], dir);
    // The empty file needs no chunk: it is complete with any bundle.
    assert.deepEqual(Object.keys(treeDigest(join(dir, 'E'))).sort(), ['site/empty.txt', 'site/src/code.js']);
    assert.ok(imp.placement.missingBytes > 1_000_000);

    // A friend who follows another publisher.
    const other = makeKey(dir, 'other.key');
    writeFileSync(join(dir, 'f.have'), encodeHave({ publisher: other.publicKey.raw, snapshots: [], created: 0, ids: new BigUint64Array(0) }));
    offlineDir(dir, 'F', other.publicKey.raw);
    const r = await paquete(['export', '-C', 'A', '--for', join(dir, 'f.have'), '--to', join(dir, 'nope')], dir, 1);
    assert.match(r.stderr, /^paquete: the have-summary comes from a directory that trusts SHA256:/);
    assert.equal(existsSync(join(dir, 'nope')), false);
    const bad = await paquete(['import', '-C', 'F', join(dir, 'src.pqb')], dir, 1);
    assert.match(bad.stdout, /made for the publisher SHA256:.*but this directory trusts/);
    assert.match(bad.stdout, /imported 0 chunks/);
  });
});

describe('seed', () => {
  test('seeding an old checkout makes the next sync much cheaper; seeding before any snapshot says what to do', async () => {
    const dir = await tmpDir('paquete-seed-');
    writeTree(join(dir, 'site'), {
      'lib/big.bin': pseudoRandom(2_000_000, 5),
      'lib/other.bin': pseudoRandom(500_000, 6),
      'README': 'hello\n'.repeat(1000),
    });
    // An "old checkout": the same project, a little different.
    cpSync(join(dir, 'site'), join(dir, 'old'), { recursive: true });
    const old = readFileSync(join(dir, 'old/lib/big.bin'));
    old.set(pseudoRandom(5000, 9), 1_000_000);
    writeFileSync(join(dir, 'old/lib/big.bin'), old);
    rmSync(join(dir, 'old/lib/other.bin'));
    writeFileSync(join(dir, 'old/unrelated.bin'), pseudoRandom(300_000, 11));

    await publishTree(dir, 'site', 'remote', makeKey(dir, 'pub.key'));
    await paquete(['init', 'remote', 'seeded', '--trust', 'pub.key.pub'], dir);

    const early = await paquete(['seed', '-C', 'seeded', join(dir, 'old')], dir, 1);
    assert.match(early.stderr, /has no snapshot yet/);
    assert.match(early.stderr, /paquete sync/);

    // The dry run fetches the index (seed needs its chunking parameters) and says what a sync would cost.
    const plan = await json(['sync', '-C', 'seeded', '--dry-run'], dir);
    const seed = await json(['seed', '-C', 'seeded', join(dir, 'old')], dir);
    assert.ok(seed.savedBytes > 1_500_000, `seed saved ${seed.savedBytes} bytes`);
    assert.equal(seed.missingAfter, seed.missingBefore - seed.savedBytes);
    assert.equal(seed.placement.placed.includes('site/README'), true, 'a file whole in the old checkout is placed at once');
    const after = await json(['sync', '-C', 'seeded'], dir);
    assert.ok(plan.plannedCost > 2_400_000, `unseeded, a sync would cost ${plan.plannedCost}`);
    assert.ok(after.read < plan.plannedCost * 0.35, `seeded sync read ${after.read}; unseeded it would have cost ${plan.plannedCost}`);
    assert.deepEqual(treeDigest(join(dir, 'seeded/site')), treeDigest(join(dir, 'site')));
  });
});
