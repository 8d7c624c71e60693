import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, onCleanup, paqueteExpecting, tmpDir } from './helpers/tmp.js';
import { treeDigest } from './helpers/trees.js';
import { NginxServer, requireNginx, startNginx } from './helpers/nginx.js';

/**
 * Issue 14 item 1 on a run of real releases, by nginx's count: 20 consecutive npm releases of
 * electron-to-chromium (1.5.477 … 1.5.496, ~210 KB of JavaScript and JSON tables, each release
 * adding a few version rows: patch-from floors of 0.1-0.6 KB, so the 16 KiB of the bound is what
 * the manifest, the index and the requests may take) published one after another to one remote.
 * The client 1 release behind pays at most 1.5x `zstd -19 --long=27 --patch-from=THEIR.tar
 * NEWEST.tar` plus 16 KiB; the client 19 behind, syncing once, pays no more than its twin that
 * synced after every release; every tree byte-identical and paquete's meter equal to nginx's log.
 *
 * Not asserted, because it does not hold yet (docs/BENCHMARKS.md, bench/stale on 53 releases):
 * the bound for clients 2 or more behind on this package (2 behind: 17.5 KB against 16.6 KB).
 * The manifest lists every snapshot (~660 B each: 35.1 KB at 53 snapshots, 13.2 KB at 20), and a
 * client more than one release behind pays ~2-10 KB of index and records besides. At 20
 * snapshots the client 1 behind pays 15.6 KB against a bound of 16.6 KB: this test also fails
 * when the manifest grows further.
 *
 * The tarballs come from npm's cache when it holds them, else from the registry (`npm pack
 * --prefer-offline`, one process for all); a machine that reaches neither fails the test rather
 * than skipping it, since a skipped bound would read as a met one.
 */
after(cleanupAll);

const run = promisify(execFile);
const paquete = paqueteExpecting();
const PKG = 'electron-to-chromium';
const VERSIONS = Array.from({ length: 20 }, (_, i) => `1.5.${477 + i}`);
const LAST = VERSIONS.length - 1;
/** Clients this many releases behind sync once to the newest; those in BOUNDED are held to the bound. */
const BEHIND = [1, 19];
const BOUNDED = [1];
/** The twin that syncs after every release starts with the client this many behind. */
const TWIN = 19;

/** Every release unpacked into dir/VERSION/package, from npm's cache when it holds it, else the registry. */
async function unpackReleases(dir: string): Promise<string[]> {
  const packs = join(dir, 'packs');
  mkdirSync(packs, { recursive: true });
  await run('npm', ['pack', '--prefer-offline', '--silent', ...VERSIONS.map((v) => `${PKG}@${v}`), '--pack-destination', packs], { cwd: packs, maxBuffer: 16 << 20 });
  return Promise.all(
    VERSIONS.map(async (v) => {
      const tgz = join(packs, `${PKG}-${v}.tgz`);
      assert.ok(statSync(tgz, { throwIfNoEntry: false }), `npm pack ${PKG}@${v} wrote no tarball`);
      const into = join(dir, v);
      mkdirSync(into, { recursive: true });
      await run('tar', ['xzf', tgz, '-C', into]);
      return join(into, 'package');
    }),
  );
}

/** The tree as one tar, names sorted, owners and times fixed (as bench/corpus.ts's tarOf). */
async function tarOf(tree: string, out: string): Promise<string> {
  await run('tar', ['cf', out, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=1985-10-26 08:15Z', '-C', tree, '.']);
  return out;
}

async function patchFloor(oldTree: string, newTree: string, dir: string, name: string): Promise<number> {
  const [oldTar, newTar] = await Promise.all([tarOf(oldTree, join(dir, `${name}.old.tar`)), tarOf(newTree, join(dir, `${name}.new.tar`))]);
  const out = join(dir, `${name}.zst`);
  await run('zstd', ['-q', '-f', '-19', '--long=27', `--patch-from=${oldTar}`, newTar, '-o', out]);
  return statSync(out).size;
}

describe(`clients ${BEHIND.join(', ')} releases behind on ${VERSIONS.length} real releases (${PKG} ${VERSIONS[0]} … ${VERSIONS[LAST]}), by nginx's count`, () => {
  let dir: string;
  let ng: NginxServer;
  let trees: string[];
  const once = new Map<number, { wire: number; spent: number; same: boolean }>();
  let everyWire = 0;

  before(async () => {
    requireNginx();
    dir = await tmpDir('paquete-stale-');
    trees = await unpackReleases(dir);
    await paquete(['keygen', '--out', 'pub.key'], dir);
    const publish = (tree: string) => paquete(['publish', `${PKG}=${tree}`, '--to', 'remote', '--key', 'pub.key', '--prune-after', '0', '--json', '--quiet'], dir);
    const sync = (client: string) => paquete(['sync', '-C', client, '--json', '--quiet'], dir);
    for (let i = 0; i <= LAST; i++) {
      await publish(trees[i]);
      if (i === 0) {
        ng = await startNginx(join(dir, 'remote'));
        onCleanup(() => ng.stop());
      }
      for (const b of BEHIND.filter((b) => LAST - b === i)) {
        await paquete(['init', ng.url, `behind-${b}`, '--trust', 'pub.key.pub', '--json', '--quiet'], dir);
        await sync(`behind-${b}`);
        if (b === TWIN) cpSync(join(dir, `behind-${b}`), join(dir, 'every'), { recursive: true });
      }
      if (i > LAST - TWIN) {
        await ng.clearLog();
        await sync('every');
        everyWire += await ng.wireBytes();
      }
    }
    for (const b of BEHIND) {
      await ng.clearLog();
      const r = await sync(`behind-${b}`);
      once.set(b, { wire: await ng.wireBytes(), spent: JSON.parse(r.stdout).spent, same: JSON.stringify(treeDigest(join(dir, `behind-${b}`, PKG))) === JSON.stringify(treeDigest(trees[LAST])) });
    }
  });

  for (const b of BOUNDED) {
    test(`${b} behind: at most 1.5x zstd --patch-from + 16 KiB, a byte-identical tree`, async () => {
      const r = once.get(b)!;
      assert.ok(r.same, `the client ${b} behind holds exactly ${VERSIONS[LAST]}`);
      assert.equal(r.spent, r.wire, "paquete's meter equals nginx's log");
      const floor = await patchFloor(trees[LAST - b], trees[LAST], dir, `floor-${b}`);
      const bound = 1.5 * floor + 16 * 1024;
      console.log(`${b} behind (${VERSIONS[LAST - b]} → ${VERSIONS[LAST]}): ${r.wire} B by nginx, floor ${floor} B, ${(r.wire / floor).toFixed(2)}x, bound ${Math.floor(bound)} B`);
      assert.ok(r.wire <= bound, `${b} behind: ${r.wire} B > 1.5 x ${floor} B + 16 KiB = ${Math.floor(bound)} B`);
    });
  }

  test(`syncing once after ${TWIN} releases costs no more than syncing after each of them, a byte-identical tree`, () => {
    const r = once.get(TWIN)!;
    assert.ok(r.same, `the client ${TWIN} behind holds exactly ${VERSIONS[LAST]}`);
    assert.equal(r.spent, r.wire, "paquete's meter equals nginx's log");
    assert.deepEqual(treeDigest(join(dir, 'every', PKG)), treeDigest(trees[LAST]), 'the twin holds the newest release');
    console.log(`${TWIN} behind: once ${r.wire} B, after every release ${everyWire} B`);
    assert.ok(r.wire <= everyWire, `once ${r.wire} B > after every release ${everyWire} B`);
  });
});
