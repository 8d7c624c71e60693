import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, onCleanup, paqueteExpecting, tmpDir } from './helpers/tmp.js';
import { treeDigest } from './helpers/trees.js';
import { requireNginx, startNginx } from './helpers/nginx.js';

/**
 * Issue 14 item 2 on real many-file releases, by nginx's count: date-fns 4.3.0 → 4.4.0 (5,136
 * files; the release puts one polyfill into the CDN bundle of each of 96 locales, a change that
 * repeats across files) and npm 10.9.2 → 10.9.3 (2,274 files; 454 of them changed or new, so its
 * index delta is a third of the update) cost a client one release behind at most 1.3x `zstd -19
 * --long=27 --patch-from=OLD.tar NEW.tar` plus 8 KiB, every request of the sync counted.
 *
 * The tarballs come from npm's cache when it holds them, else from the npm registry (`npm pack
 * --prefer-offline`); a machine that reaches neither fails the test rather than skipping it, since a
 * skipped bound would read as a met one.
 */
after(cleanupAll);

const run = promisify(execFile);
const paquete = paqueteExpecting();
/** Unpacks NAME@VERSION into dir/VERSION, from npm's cache when it holds it, else the registry. */
async function unpackRelease(dir: string, PKG: string, version: string): Promise<string> {
  const into = join(dir, version);
  mkdirSync(into, { recursive: true });
  await run('npm', ['pack', '--prefer-offline', '--silent', `${PKG}@${version}`, '--pack-destination', into], { cwd: into });
  const tgz = readdirSync(into).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz, `npm pack ${PKG}@${version} wrote no tarball`);
  await run('tar', ['xzf', tgz], { cwd: into });
  return join(into, 'package');
}

/** The tree as one tar, names sorted, owners and times fixed (as bench/corpus.ts's tarOf). */
async function tarOf(tree: string, out: string): Promise<string> {
  await run('tar', ['cf', out, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=1985-10-26 08:15Z', '-C', tree, '.']);
  return out;
}

const PAIRS = [
  { PKG: 'date-fns', OLD: '4.3.0', NEW: '4.4.0', files: '5,136' },
  { PKG: 'npm', OLD: '10.9.2', NEW: '10.9.3', files: '2,274' },
];

for (const { PKG, OLD, NEW, files } of PAIRS) test(`one release apart (${PKG} ${OLD} → ${NEW}, ${files} files): at most 1.3x zstd --patch-from + 8 KiB by nginx's count`, async () => {
  requireNginx();
  const dir = await tmpDir('paquete-onerel-');
  const [oldTree, newTree] = await Promise.all([unpackRelease(dir, PKG, OLD), unpackRelease(dir, PKG, NEW)]);
  const floorRun = (async () => {
    const [oldTar, newTar] = await Promise.all([tarOf(oldTree, join(dir, 'old.tar')), tarOf(newTree, join(dir, 'new.tar'))]);
    const out = join(dir, 'patch.zst');
    await run('zstd', ['-q', '-f', '-19', '--long=27', `--patch-from=${oldTar}`, newTar, '-o', out]);
    const { stdout } = await run('stat', ['-c', '%s', out]);
    return Number(stdout.trim());
  })();

  await paquete(['keygen', '--out', 'pub.key'], dir);
  const publish = (tree: string) => paquete(['publish', `${PKG}=${tree}`, '--to', 'remote', '--key', 'pub.key', '--json', '--quiet'], dir);
  await publish(oldTree);
  const ng = await startNginx(join(dir, 'remote'));
  onCleanup(() => ng.stop());
  await paquete(['init', ng.url, 'client', '--trust', 'pub.key.pub', '--json', '--quiet'], dir);
  await paquete(['sync', '-C', 'client', '--json', '--quiet'], dir);

  await publish(newTree);
  await ng.clearLog();
  const r = await paquete(['sync', '-C', 'client', '--json', '--quiet'], dir);
  const wire = await ng.wireBytes();
  const kinds = [...new Set((await ng.accessLog()).map((e) => e.uri.split('/')[1]))];
  assert.deepEqual(treeDigest(join(dir, 'client', PKG)), treeDigest(newTree), 'the client holds exactly the new release');
  assert.equal(JSON.parse(r.stdout).spent, wire, "paquete's meter equals nginx's log");

  const floor = await floorRun;
  const bound = 1.3 * floor + 8 * 1024;
  console.log(`${PKG} ${OLD} → ${NEW}: ${wire} B by nginx (${kinds.join(', ')}), floor ${floor} B, ${(wire / floor).toFixed(2)}x, bound ${Math.floor(bound)} B`);
  assert.ok(wire <= bound, `update ${wire} B > 1.3 x ${floor} B + 8 KiB = ${Math.floor(bound)} B (${(wire / floor).toFixed(2)}x the floor)`);
});
