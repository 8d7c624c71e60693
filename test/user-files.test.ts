/**
 * The user's files are theirs (issue 13, items 1, 6, 7): paquete never overwrites or removes a
 * file it did not place as it is; a directory folder with files is taken only when asked; a
 * removal never follows a symlinked parent; one file that cannot be placed never stops the
 * others, and status tells the truth; a publisher whose data never matches its signature is
 * blamed once, in plain words, and not downloaded again within that snapshot (nginx's count).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { requireNginx, startNginx } from './helpers/nginx.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { decodeManifest, encodeManifest, sha256Hex } from '../src/snapshot/manifest.js';
import { decodeSnapshot, encodeSnapshot } from '../src/snapshot/snapshot.js';
import { publish } from '../src/publish/publisher.js';
import { parseSourceSpec } from '../src/sources/spec.js';
import { WorkDir } from '../src/workdir/workdir.js';
import { runSync } from '../src/sync/session.js';

after(cleanupAll);

const paquete = paqueteExpecting();

const read = (p: string) => readFileSync(p, 'utf8');

/** A publisher with its own site and remote in `dir`. */
async function publisher(dir: string, files: Record<string, string | Uint8Array>) {
  writeTree(join(dir, 'site'), files);
  await paquete(['keygen', '--out', 'pub.key'], dir);
  const pub = () => paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  await pub();
  return pub;
}

describe("the user's files are theirs (local remote, real CLI)", () => {
  test('init into a folder with files is refused unless asked; then those files stay the user\'s, identical ones are adopted', async () => {
    const dir = await tmpDir('paquete-uf-init-');
    await publisher(dir, { 'a.txt': 'alpha\n', 'b.txt': 'bravo\n', 'c/d.txt': 'delta\n' });
    writeTree(join(dir, 'w/site'), { 'a.txt': 'alpha\n', 'b.txt': 'my own notes\n' });
    const refused = await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir, 2);
    assert.match(refused.stderr, /already has files .*site/);
    assert.match(refused.stderr, /--keep-existing/);
    assert.equal(existsSync(join(dir, 'w/.paquete')), false, 'nothing created');
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub', '--keep-existing'], dir);

    const s = await paquete(['sync', '-C', 'w', '--json'], dir, 1);
    const j = JSON.parse(s.stdout);
    assert.equal(read(join(dir, 'w/site/b.txt')), 'my own notes\n', 'the user\'s file is untouched');
    assert.equal(read(join(dir, 'w/site/c/d.txt')), 'delta\n', 'the rest is placed');
    assert.deepEqual(j.kept, [{ path: 'site/b.txt', why: 'not placed by paquete' }]);
    assert.deepEqual(j.placed, ['site/c/d.txt'], 'the identical a.txt is adopted, not rewritten');
    const text = await paquete(['sync', '-C', 'w'], dir, 1);
    assert.match(text.stderr, /site\/b\.txt: not placed by paquete/);
    assert.match(text.stderr, /--overwrite PATH/);

    const st = await paquete(['status', '-C', 'w'], dir);
    assert.doesNotMatch(st.stdout, /\bcomplete$/m, st.stdout);
    assert.match(st.stdout, /2\/3 files complete; to fetch: nothing; 1 not placed/);
    assert.match(st.stderr, /site\/b\.txt: not placed by paquete/);

    await paquete(['sync', '-C', 'w', '--overwrite', 'site/b.txt'], dir);
    assert.deepEqual(treeDigest(join(dir, 'w/site')), treeDigest(join(dir, 'site')));
  });

  test('edits, files made at new paths and edits of dropped files survive every sync; untouched dropped files go', async () => {
    const dir = await tmpDir('paquete-uf-edit-');
    const pub = await publisher(dir, { 'a.txt': 'alpha\n', 'b.txt': 'bravo\n', 'c/d.txt': 'delta\n', 'e.txt': 'echo\n' });
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w'], dir);
    const w = (p: string) => join(dir, 'w/site', p);

    // An edit of a file the snapshot did not change.
    writeFileSync(w('a.txt'), 'alpha, edited by me\n');
    const again = JSON.parse((await paquete(['sync', '-C', 'w', '--json'], dir, 1)).stdout);
    assert.deepEqual(again.kept, [{ path: 'site/a.txt', why: 'changed since paquete placed it' }]);
    assert.equal(read(w('a.txt')), 'alpha, edited by me\n');

    // The publisher changes b, adds new.txt, drops c/d.txt and e.txt; the user edits b and e and makes new.txt.
    writeFileSync(join(dir, 'site/b.txt'), 'bravo 2\n');
    writeFileSync(join(dir, 'site/new.txt'), 'the publisher\'s new file\n');
    rmSync(join(dir, 'site/c'), { recursive: true });
    unlinkSync(join(dir, 'site/e.txt'));
    await pub();
    writeFileSync(w('b.txt'), 'bravo, mine\n');
    writeFileSync(w('new.txt'), 'mine first\n');
    writeFileSync(w('e.txt'), 'echo, mine\n');
    const s = JSON.parse((await paquete(['sync', '-C', 'w', '--json'], dir, 1)).stdout);
    assert.equal(read(w('a.txt')), 'alpha, edited by me\n');
    assert.equal(read(w('b.txt')), 'bravo, mine\n');
    assert.equal(read(w('new.txt')), 'mine first\n');
    assert.equal(read(w('e.txt')), 'echo, mine\n');
    assert.equal(existsSync(w('c/d.txt')), false, 'an untouched dropped file is removed');
    assert.deepEqual(s.removed, ['site/c/d.txt']);
    assert.deepEqual(
      s.kept.map((k: { path: string }) => k.path).sort(),
      ['site/a.txt', 'site/b.txt', 'site/e.txt', 'site/new.txt'],
    );
    assert.match(JSON.stringify(s.kept), /dropped from the snapshot, but changed since paquete placed it/);

    // Consent by glob: the snapshot's versions of everything it has (e.txt is the user's now).
    await paquete(['sync', '-C', 'w', '--overwrite', 'site/**'], dir);
    assert.equal(read(w('b.txt')), 'bravo 2\n');
    assert.equal(read(w('new.txt')), 'the publisher\'s new file\n');
    assert.equal(read(w('e.txt')), 'echo, mine\n', 'no longer in the snapshot: never the sync\'s to take');
  });

  test('seed and import place through the same owner: a file of the user\'s at a snapshot path is kept', async () => {
    const dir = await tmpDir('paquete-uf-seed-');
    await publisher(dir, { 'a.txt': 'alpha\n', 'b.txt': 'bravo\n' });
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir);
    // The index only; then the user makes a.txt before any file is placed.
    const dry = await paquete(['sync', '-C', 'w', '--dry-run'], dir);
    assert.doesNotMatch(dry.stderr, /kept/);
    writeTree(join(dir, 'w/site'), { 'a.txt': 'my a\n' });
    assert.match((await paquete(['sync', '-C', 'w', '--dry-run'], dir)).stderr, /site\/a\.txt: not placed by paquete/);
    const r = await paquete(['seed', '-C', 'w', join(dir, 'site')], dir);
    assert.equal(read(join(dir, 'w/site/a.txt')), 'my a\n');
    assert.equal(read(join(dir, 'w/site/b.txt')), 'bravo\n');
    assert.match(r.stderr, /1 of your files kept/);
    assert.match(r.stderr, /site\/a\.txt: not placed by paquete/);
  });

  test('removing a dropped file never follows a parent directory the user turned into a symlink', async () => {
    const dir = await tmpDir('paquete-uf-symlink-');
    const pub = await publisher(dir, { 'a.txt': 'alpha\n', 'lib/x.txt': 'precious\n' });
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w'], dir);
    // The user moves lib elsewhere (same file, same mtime) and leaves a symlink to it.
    mkdirSync(join(dir, 'elsewhere'));
    renameSync(join(dir, 'w/site/lib'), join(dir, 'elsewhere/lib'));
    symlinkSync(join(dir, 'elsewhere/lib'), join(dir, 'w/site/lib'));
    rmSync(join(dir, 'site/lib'), { recursive: true });
    await pub();
    const s = JSON.parse((await paquete(['sync', '-C', 'w', '--json'], dir)).stdout);
    assert.equal(read(join(dir, 'elsewhere/lib/x.txt')), 'precious\n', 'nothing outside DIR is removed');
    assert.deepEqual(s.removed, []);
    assert.match(JSON.stringify(s.kept), /site\/lib\/x\.txt.*parent directory is now a symlink/);
  });

  test('one file never stops the others: a name too long for this disk and a directory of the user\'s are named, the rest placed, status tells', async () => {
    const dir = await tmpDir('paquete-uf-one-');
    // A path that fits the publisher's directory but not the client's, whose root is 300 bytes longer (PATH_MAX 4096).
    // Parts of 200 bytes up to ~4000 bytes of absolute path at the publisher; the client's is ~4250.
    const parts = Math.floor((4000 - join(dir, 'site').length) / 201);
    const long = [...Array.from({ length: parts }, (_, i) => `${i}`.padEnd(200, 'n')), 'leaf.txt'].join('/');
    const pub = await publisher(dir, { 'a.txt': 'alpha\n' });
    const deepRoot = join(dir, 'x'.repeat(250), 'w');
    mkdirSync(dirname(deepRoot));
    await paquete(['init', join(dir, 'remote'), deepRoot, '--trust', join(dir, 'pub.key.pub')], dir);
    await paquete(['sync', '-C', deepRoot], dir);
    writeTree(join(dir, 'site'), { [long]: 'far away\n', 'clash/file.txt': 'the publisher\'s\n', 'z/ok.txt': 'fine\n', 'ok2.txt': 'fine too\n' });
    await pub();
    // The user has a directory where the new snapshot has a file.
    writeTree(join(deepRoot, 'site/clash/file.txt'), { 'mine.txt': 'my file\n' });

    const r = await paquete(['sync', '-C', deepRoot, '--json'], dir, 1);
    const s = JSON.parse(r.stdout);
    assert.equal(read(join(deepRoot, 'site/z/ok.txt')), 'fine\n');
    assert.equal(read(join(deepRoot, 'site/ok2.txt')), 'fine too\n');
    assert.equal(read(join(deepRoot, 'site/clash/file.txt/mine.txt')), 'my file\n');
    assert.deepEqual(s.notPlaced.map((f: { path: string; code: string }) => [f.path, f.code]), [[`site/${long}`, 'ENAMETOOLONG']]);
    assert.deepEqual(s.kept, [{ path: 'site/clash/file.txt', why: 'a directory of yours is where the snapshot has a file' }]);
    const text = await paquete(['sync', '-C', deepRoot], dir, 1);
    assert.match(text.stderr, /could not be placed \(the others were\)/);
    assert.match(text.stderr, /leaf\.txt: its name is too long for this disk \(ENAMETOOLONG\)/);
    assert.match(text.stderr, /site\/clash\/file\.txt: a directory of yours/);

    const st = await paquete(['status', '-C', deepRoot], dir);
    assert.match(st.stdout, /3\/5 files complete; to fetch: nothing; 2 not placed/);
    assert.doesNotMatch(st.stdout, /\bcomplete$/m);
    assert.match(st.stderr, /leaf\.txt: its name is too long for this disk/);
    const sj = JSON.parse((await paquete(['status', '-C', deepRoot, '--json'], dir)).stdout);
    assert.equal(sj.total.notPlaced, 2);
    assert.equal(sj.notPlaced.failed[0].code, 'ENAMETOOLONG');
  });
});

describe('a publisher whose data never matches its signature (nginx remote)', () => {
  before(() => requireNginx());

  test('is blamed once, in plain words, and its file is not downloaded again within the snapshot (by nginx\'s count)', async () => {
    const dir = await tmpDir('paquete-uf-bad-');
    const bad = pseudoRandom(300_000, 7);
    const pub = await publisher(dir, { 'good.txt': 'fine\n', 'bad.bin': bad });
    // A buggy publisher: the snapshot signs a SHA-256 its chunks do not have.
    const remote = join(dir, 'remote');
    const m = decodeManifest(readFileSync(join(remote, 'manifest.json')), 'm').body;
    const entry = m.snapshots[m.snapshots.length - 1];
    const snap = decodeSnapshot(readFileSync(join(remote, 'snapshots', `${entry.name}.snap`)));
    const f = snap.files.find((x) => x.path === 'site/bad.bin')!;
    f.sha256 = new Uint8Array(32).fill(0xab);
    const bytes = encodeSnapshot(snap);
    const name = sha256Hex(bytes);
    writeFileSync(join(remote, 'snapshots', `${name}.snap`), bytes);
    const { key } = parseSecretKey(readFileSync(join(dir, 'pub.key'), 'utf8'), 'k');
    m.snapshots[m.snapshots.length - 1] = { ...entry, name, size: bytes.length, body: undefined, updates: undefined };
    writeFileSync(join(remote, 'manifest.json'), encodeManifest({ ...m, serial: m.serial + 1 }, key));

    const ng = await startNginx(remote);
    try {
      await paquete(['init', ng.url, 'w', '--trust', 'pub.key.pub'], dir);
      const first = await paquete(['sync', '-C', 'w'], dir, 1);
      assert.match(first.stderr, /the publisher's data is inconsistent/);
      assert.match(first.stderr, /remote's fault, not yours or your link's/);
      assert.match(first.stderr, /site\/bad\.bin/);
      assert.equal(existsSync(join(dir, 'w/site/bad.bin')), false);
      assert.equal(read(join(dir, 'w/site/good.txt')), 'fine\n');
      const firstPackBytes = (await ng.accessLog()).filter((e) => !e.uri.endsWith('manifest.json') && !e.uri.includes('/snapshots/')).reduce((n, e) => n + e.bodyBytesSent, 0);
      assert.ok(firstPackBytes >= bad.length / 2, `the file was fetched once (${firstPackBytes} bytes)`);

      await ng.clearLog();
      const second = await paquete(['sync', '-C', 'w'], dir, 1);
      assert.doesNotMatch(second.stderr, /remote's fault/, 'said once');
      assert.match(second.stderr, /1 files withheld: the publisher's data for them is inconsistent/);
      const log = await ng.accessLog();
      assert.deepEqual(log.map((e) => e.uri), ['/manifest.json'], `only the manifest is asked for: ${log.map((e) => `${e.uri} ${e.range}`).join(', ')}`);

      const st = await paquete(['status', '-C', 'w'], dir);
      assert.match(st.stdout, /1\/2 files complete; to fetch: nothing; 1 not placed/);
      assert.match(st.stderr, /site\/bad\.bin/);

      // A new snapshot is a new chance: the fixed publish is fetched and placed.
      await pub();
      await paquete(['sync', '-C', 'w'], dir);
      assert.deepEqual(readFileSync(join(dir, 'w/site/bad.bin')), bad);
    } finally {
      await ng.stop();
    }
  });
});

describe('property: random edits, creations and deletions between syncs never lose a user byte', () => {
  test('fast-check over user actions and publishes (in process, local remote)', async () => {
    const root = await tmpDir('paquete-uf-prop-');
    const { secretPem } = generateKeys();
    const { key, publicKey } = parseSecretKey(secretPem, 'k');
    const names = ['a.txt', 'b.txt', 'd/c.txt', 'd/e.txt', 'f.txt'];
    const action = fc.record({
      who: fc.constantFrom('user-edit', 'user-create', 'user-delete', 'pub-change', 'pub-add', 'pub-remove'),
      name: fc.constantFrom(...names),
      seed: fc.nat(1000),
    });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(action, { maxLength: 4 }), { minLength: 1, maxLength: 3 }), async (rounds) => {
        const dir = join(root, `r${run++}`);
        const site = join(dir, 'site');
        const remoteDir = join(dir, 'remote');
        const tree = join(dir, 'w');
        writeTree(site, { 'a.txt': 'a\n', 'b.txt': 'b\n', 'd/c.txt': 'c\n' });
        const doPublish = () => publish({ sources: [parseSourceSpec(site)], remoteDir, secret: key, publicKey, updatesFrom: 0, solid: false });
        await doPublish();
        WorkDir.create(tree, { version: 1, remotes: [{ location: remoteDir }], publisher: Buffer.from(publicKey.raw).toString('base64') });
        const sync = async () => {
          const work = await WorkDir.open(tree, 'sync');
          try {
            await runSync(work);
          } finally {
            await work.close();
          }
        };
        await sync();
        /** What the user wrote and has not deleted: every byte of it must survive. */
        const mine = new Map<string, string>();
        for (const round of rounds) {
          let published = false;
          for (const a of round) {
            const u = join(tree, 'site', a.name);
            const p = join(site, a.name);
            if (a.who === 'user-edit' && existsSync(u)) {
              writeFileSync(u, `${read(u)}user edit ${a.seed}\n`);
              mine.set(a.name, read(u));
            } else if (a.who === 'user-create' && !existsSync(u)) {
              mkdirSync(dirname(u), { recursive: true });
              writeFileSync(u, `user's own ${a.seed}\n`);
              mine.set(a.name, read(u));
            } else if (a.who === 'user-delete' && existsSync(u)) {
              unlinkSync(u);
              mine.delete(a.name);
            } else if (a.who === 'pub-change' || a.who === 'pub-add') {
              mkdirSync(dirname(p), { recursive: true });
              writeFileSync(p, `publisher ${a.seed}\n`);
              published = true;
            } else if (a.who === 'pub-remove' && existsSync(p) && names.filter((n) => existsSync(join(site, n))).length > 1) {
              unlinkSync(p);
              published = true;
            }
          }
          if (published) await doPublish();
          await sync();
          for (const [name, content] of mine) assert.equal(existsSync(join(tree, 'site', name)) ? read(join(tree, 'site', name)) : undefined, content, `${name} after ${JSON.stringify(rounds)}`);
          // And the rest of the tree is the snapshot's: what is not the user's is placed.
          for (const n of names) {
            if (mine.has(n) || !existsSync(join(site, n))) continue;
            assert.equal(read(join(tree, 'site', n)), read(join(site, n)), `${n} placed after ${JSON.stringify(rounds)}`);
          }
        }
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 25 },
    );
  });
});
