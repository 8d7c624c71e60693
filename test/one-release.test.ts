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
 * Issue 14 item 2 on a real many-file release, by nginx's count: date-fns 4.3.0 → 4.4.0 (5,136
 * files; the release puts one polyfill into the CDN bundle of each of 96 locales, a change that
 * repeats across files) costs a client one release behind at most 1.3x `zstd -19 --long=27
 * --patch-from=OLD.tar NEW.tar` plus 8 KiB, every request of the sync counted.
 *
 * The tarballs come from npm's own cache (`npm pack --offline`): no network. On a machine whose
 * cache lacks them (`npm pack date-fns@4.3.0 date-fns@4.4.0` once fills it) the test says so and
 * skips.
 */
after(cleanupAll);

const run = promisify(execFile);
const paquete = paqueteExpecting();
const PKG = 'date-fns';
const OLD = '4.3.0';
const NEW = '4.4.0';
const NO_TARBALLS = `!!! SKIPPED: npm's cache lacks ${PKG}@${OLD} / ${PKG}@${NEW} (run \`npm pack ${PKG}@${OLD} ${PKG}@${NEW}\` once) !!!`;

/** Unpacks NAME@VERSION from npm's cache into dir/VERSION; undefined when the cache lacks it. */
async function unpackOffline(dir: string, version: string): Promise<string | undefined> {
  const into = join(dir, version);
  mkdirSync(into, { recursive: true });
  try {
    await run('npm', ['pack', '--offline', '--silent', `${PKG}@${version}`, '--pack-destination', into], { cwd: into });
  } catch {
    return undefined;
  }
  const tgz = readdirSync(into).find((f) => f.endsWith('.tgz'));
  if (!tgz) return undefined;
  await run('tar', ['xzf', tgz], { cwd: into });
  return join(into, 'package');
}

/** The tree as one tar, names sorted, owners and times fixed (as bench/corpus.ts's tarOf). */
async function tarOf(tree: string, out: string): Promise<string> {
  await run('tar', ['cf', out, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=1985-10-26 08:15Z', '-C', tree, '.']);
  return out;
}

test(`one release apart (${PKG} ${OLD} → ${NEW}, 5,136 files): at most 1.3x zstd --patch-from + 8 KiB by nginx's count`, async (t) => {
  requireNginx();
  const dir = await tmpDir('paquete-onerel-');
  const oldTree = await unpackOffline(dir, OLD);
  const newTree = oldTree && (await unpackOffline(dir, NEW));
  if (!oldTree || !newTree) {
    console.log(NO_TARBALLS);
    t.skip(NO_TARBALLS);
    return;
  }
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
