/**
 * The store never lies and never breaks: replayed manifests, two commands at once, a full disk,
 * a symlink planted in the tree.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';

after(cleanupAll);

const paquete = paqueteExpecting();

/** Every file present in `work` is exactly the source's. */
function checkNoWrongFiles(work: string, source: string): void {
  const want = treeDigest(source);
  for (const [path, digest] of Object.entries(existsSync(work) ? treeDigest(work) : {})) assert.equal(digest, want[path], path);
}

describe('reliability', () => {
  let dir: string;
  before(async () => {
    dir = await tmpDir('paquete-rel-');
    writeTree(join(dir, 'site'), { 'a.bin': pseudoRandom(3_000_000, 1), 'b.bin': pseudoRandom(3_000_000, 2), 'c.txt': 'small\n' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  });

  test('a replayed older manifest is refused (rollback), and the newer one still works', async () => {
    const old = readFileSync(join(dir, 'remote/manifest.json'));
    writeFileSync(join(dir, 'site/c.txt'), 'changed\n');
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    const current = readFileSync(join(dir, 'remote/manifest.json'));
    await paquete(['init', 'remote', 'w1', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w1'], dir);
    try {
      writeFileSync(join(dir, 'remote/manifest.json'), old);
      const r = await paquete(['sync', '-C', 'w1'], dir, 1);
      assert.match(r.stderr, /older than .* refusing to go back/);
      assert.equal(readFileSync(join(dir, 'w1/site/c.txt'), 'utf8'), 'changed\n');
    } finally {
      writeFileSync(join(dir, 'remote/manifest.json'), current);
    }
    await paquete(['sync', '-C', 'w1'], dir);
  });

  test('two commands at once: the second says so; a lock left by a dead process is taken over', async () => {
    await paquete(['init', 'remote', 'w2', '--trust', 'pub.key.pub'], dir);
    const sleeper = spawn('sleep', ['30']);
    onCleanup(() => void sleeper.kill());
    writeFileSync(join(dir, 'w2/.paquete/lock'), `${sleeper.pid} sync\n`);
    const r = await paquete(['sync', '-C', 'w2'], dir, 1);
    assert.match(r.stderr, new RegExp(`another paquete command is working here \\(pid ${sleeper.pid}: sync\\)`));
    sleeper.kill('SIGKILL');
    await new Promise((resolve) => sleeper.once('exit', resolve));
    await paquete(['sync', '-C', 'w2'], dir);
    assert.equal(existsSync(join(dir, 'w2/.paquete/lock')), false, 'the lock is released');
  });

  test('a symlink planted in the tree is never written through', async () => {
    await paquete(['init', 'remote', 'w3', '--trust', 'pub.key.pub'], dir);
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    symlinkSync(outside, join(dir, 'w3/site'));
    // The user's symlink is theirs: each file under it is named and kept out, none stops the session.
    const r = await paquete(['sync', '-C', 'w3'], dir, 1);
    assert.match(r.stderr, /site\/a\.bin: site is a symlink of yours; paquete never writes through one/);
    assert.deepEqual(readdirSync(outside), []);
  });

  test('a full disk during sync and import: a clear error, a consistent store, and the command completes once space is freed', async (t) => {
    const mnt = join(dir, 'small-disk');
    mkdirSync(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (e) {
      t.skip(`cannot mount a tmpfs here (needs root): ${(e as Error).message.split('\n')[0]}`);
      return;
    }
    onCleanup(() => {
      execFileSync('umount', ['-l', mnt]);
    });
    await paquete(['init', join(dir, 'remote'), join(mnt, 'w'), '--trust', join(dir, 'pub.key.pub')], dir);
    const r = await paquete(['sync', '-C', join(mnt, 'w')], dir, 1);
    assert.match(r.stderr, /disk is full/);
    assert.match(r.stderr, /free some space/);
    execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
    await paquete(['verify', '-C', join(mnt, 'w')], dir);
    checkNoWrongFiles(join(mnt, 'w/site'), join(dir, 'site'));
    await paquete(['sync', '-C', join(mnt, 'w')], dir);
    assert.deepEqual(treeDigest(join(mnt, 'w/site')), treeDigest(join(dir, 'site')));

    // The same during import of a friend's stick.
    await paquete(['init', 'remote', 'donor', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'donor'], dir);
    await paquete(['export', '-C', 'donor', '--to', join(dir, 'stick')], dir);
    const mnt2 = join(dir, 'small-disk-2');
    mkdirSync(mnt2);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt2]);
    onCleanup(() => {
      execFileSync('umount', ['-l', mnt2]);
    });
    await paquete(['init', join(dir, 'remote'), join(mnt2, 'w2'), '--trust', join(dir, 'pub.key.pub')], dir);
    const imp = await runPaquete(['import', '-C', join(mnt2, 'w2'), join(dir, 'stick')], { cwd: dir }).done;
    assert.notEqual(imp.code, 0);
    assert.match(imp.stderr + imp.stdout, /disk is full/);
    assert.doesNotMatch(imp.stderr, /\n\s+at /);
    execFileSync('mount', ['-o', 'remount,size=64m', mnt2]);
    await paquete(['verify', '-C', join(mnt2, 'w2')], dir);
    checkNoWrongFiles(join(mnt2, 'w2/site'), join(dir, 'site'));
    await paquete(['import', '-C', join(mnt2, 'w2'), join(dir, 'stick')], dir);
    assert.deepEqual(treeDigest(join(mnt2, 'w2/site')), treeDigest(join(dir, 'site')));
  });

  test('gc frees what only older snapshots used, keeps the store consistent when killed at any moment', async () => {
    const src = join(dir, 'gcsite');
    writeTree(src, { 'keep.bin': pseudoRandom(1_000_000, 7), 'old.bin': pseudoRandom(2_000_000, 8) });
    await paquete(['publish', 'gcsite', '--to', 'gcremote', '--key', 'pub.key'], dir);
    await paquete(['init', 'gcremote', 'w5', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w5'], dir);
    writeTree(src, { 'old.bin': pseudoRandom(2_000_000, 9) });
    await paquete(['publish', 'gcsite', '--to', 'gcremote', '--key', 'pub.key'], dir);
    await paquete(['sync', '-C', 'w5'], dir);
    const before = JSON.parse((await paquete(['status', '-C', 'w5', '--json'], dir)).stdout).store;
    for (let trial = 0; trial < 6; trial++) {
      const running = runPaquete(['gc', '-C', 'w5'], { cwd: dir });
      const killAt = setTimeout(() => running.kill('SIGKILL'), 150 + trial * 120);
      await running.done;
      clearTimeout(killAt);
      await paquete(['verify', '-C', 'w5'], dir);
      checkNoWrongFiles(join(dir, 'w5/gcsite'), src);
    }
    const r = JSON.parse((await paquete(['gc', '-C', 'w5', '--json'], dir)).stdout);
    const after = JSON.parse((await paquete(['status', '-C', 'w5', '--json'], dir)).stdout);
    assert.ok(before.bytes - after.store.bytes > 1_900_000, `freed ${before.bytes - after.store.bytes} of ~2 MB (last gc: ${JSON.stringify(r)})`);
    assert.equal(after.total.missingBytes, 0, 'nothing the snapshot needs was dropped');
    const packs = readdirSync(join(dir, 'w5/.paquete/store/packs'));
    const onDisk = packs.reduce((n, p) => n + readFileSync(join(dir, 'w5/.paquete/store/packs', p)).length, 0);
    assert.ok(onDisk < after.store.bytes + 64 * 1024, `packs hold ${onDisk} bytes for ${after.store.bytes} of live records`);
    rmSync(join(dir, 'w5/gcsite/old.bin'));
    await paquete(['sync', '-C', 'w5'], dir);
    assert.deepEqual(treeDigest(join(dir, 'w5/gcsite')), treeDigest(src));
  });
});
