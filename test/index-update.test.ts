/**
 * A client without --want (wanting everything) pays index bytes in proportion to the change on an
 * update (docs/FORMATS.md §Root and shards, "Without --want"): the root's delta and the changed
 * shard's delta, merged here with the shards sliced out of the index it holds, instead of the
 * index delta, which grows with the tree (with the part of it after the change in path order).
 * Shown through a real nginx on two mirrors of 300 and 600 wheels (and 100 pages of docs) where
 * one project changes: the same index bytes by nginx's count at both sizes, and the
 * same tree as a client that read the whole index.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, onCleanup, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { writeWheel } from './helpers/wheels.js';
import { LogEntry, startNginx } from './helpers/nginx.js';
import { checkSnapshotBytes, decodeManifest, ManifestSnapshot } from '../src/snapshot/manifest.js';
import { decodeRoot } from '../src/snapshot/shards.js';

after(cleanupAll);

const paquete = paqueteExpecting();
const project = (i: number, version = '1.0') => ({
  name: `p${i}`,
  version,
  requires: i ? [`p${i - 1}`] : [],
  // Members of a wheel are chunks of their own (cut at zip member boundaries): 9 chunks a wheel.
  modules: Object.fromEntries([[`p${i}/__init__.py`, `V = "${version}"\n`], ...Array.from({ length: 8 }, (_, k) => [`p${i}/m${k}.py`, pseudoRandom(400, 97 * i + k + version.length).toString('base64')])]),
});
const indexRequests = (log: LogEntry[]) => log.filter((e) => /^\/(roots|shards|snapshots|updates)\//.test(e.uri));
const wire = (log: LogEntry[]) => log.reduce((n, e) => n + e.bytesSent + e.requestLength, 0);

interface Update {
  /** Index bytes on the wire (nginx) of the update. */
  paid: number;
  /** The body of the head of the delta update (the index delta a client read before). */
  head: number;
  /** The root's delta and the changed shard's delta, bodies (what the shard route costs before heads). */
  shards: number;
  uris: string[];
  viaShards: boolean;
}

/** A mirror of `wheels` wheels and 100 pages of docs, a client that read it whole, then updates of one project each. */
async function mirror(wheels: number, changes: number[]): Promise<Update[]> {
  const dir = await tmpDir(`paquete-index-update-${wheels}-`);
  for (let i = 0; i < wheels; i++) writeWheel(join(dir, 'wheels'), project(i));
  const html: Record<string, string> = {};
  for (let i = 0; i < 100; i++) html[`p${i % 10}/page${i}.html`] = `<html><body>page ${i} ${pseudoRandom(200, i).toString('hex')}</body></html>`;
  writeTree(join(dir, 'html'), html);
  await paquete(['keygen', '--out', 'pub.key'], dir);
  // The delta from the newest snapshot alone (its head is the index delta a client read before).
  const publish = () => paquete(['publish', 'pypi:wheels', 'docs:manual=html', '--to', 'remote', '--key', 'pub.key', '--level', '3', '--updates-from', '1', '--no-solid', '--offer-share', '0'], dir);
  const latest = (): ManifestSnapshot => {
    const m = decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'remote').body;
    return m.snapshots[m.snapshots.length - 1];
  };
  await publish();
  const ng = await startNginx(join(dir, 'remote'));
  onCleanup(() => ng.stop());
  await paquete(['init', ng.url, 'work', '--trust', 'pub.key.pub'], dir);
  await paquete(['sync', '-C', 'work'], dir);
  const out: Update[] = [];
  for (const [k, i] of changes.entries()) {
    writeWheel(join(dir, 'wheels'), project(i, `1.${k + 1}`));
    await publish();
    const entry = latest();
    const root = decodeRoot(readFileSync(join(dir, `remote/roots/${entry.root!.name}.root`)));
    const changed = root.shards.find((s) => s.key === `p${i}`)!;
    await ng.clearLog();
    await paquete(['sync', '-C', 'work'], dir);
    const log = indexRequests(await ng.accessLog());
    const uris = log.map((e) => e.uri);
    const head = entry.updates!.find((u) => u.from !== '')!;
    const route = [`/roots/${entry.root!.delta!.name}.rd`, `/shards/${changed.deltas[0].name}.sd`];
    const viaShards = uris.join() === route.join();
    if (viaShards) {
      assert.equal(log.reduce((n, e) => n + e.bodyBytesSent, 0), entry.root!.delta!.size + changed.deltas[0].size, 'exactly the signed sizes');
      // The index merged here is the signed one.
      checkSnapshotBytes(entry, readFileSync(join(dir, `work/.paquete/snapshots/${entry.name}.snap`)));
    } else {
      // The index delta, and the root once (fetched for the updates after it) when the client holds none.
      assert.deepEqual(uris.filter((u) => !u.startsWith('/roots/')), [`/updates/${head.name}.upd`], uris.join(' '));
    }
    out.push({ paid: wire(log), head: head.size, shards: entry.root!.delta!.size + changed.deltas[0].size, uris, viaShards });
  }
  // The tree is what a client reading the whole index gets.
  await paquete(['init', ng.url, 'whole', '--trust', 'pub.key.pub'], dir);
  await paquete(['sync', '-C', 'whole'], dir);
  for (const source of ['wheels', 'manual']) assert.deepEqual(treeDigest(join(dir, 'work', source)), treeDigest(join(dir, 'whole', source)), source);
  assert.deepEqual(treeDigest(join(dir, 'work/manual')), treeDigest(join(dir, 'html')));
  const placed = Object.fromEntries(Object.entries(treeDigest(join(dir, 'work/wheels'))).filter(([p]) => p.endsWith('.whl')));
  assert.deepEqual(placed, treeDigest(join(dir, 'wheels')));
  await paquete(['verify', '-C', 'work'], dir);
  await ng.stop();
  return out;
}

describe('an update without --want pays index bytes with the change, not the tree', () => {
  test('300 and 600 wheels: the same index bytes by nginx; the index delta grows', async (t) => {
    const [small, big] = await Promise.all([mirror(300, [1, 10]), mirror(600, [1, 10])]);
    for (const [name, u] of [['300 wheels', small], ['600 wheels', big]] as const) t.diagnostic(`${name}: ${u.map((x) => `${x.paid} B by nginx (${x.viaShards ? 'shards' : 'head'}; head body ${x.head}, shard route bodies ${x.shards})`).join(', ')}`);
    for (const u of [small, big]) {
      // A client that read whole indexes fetches the root once, with the index delta...
      assert.ok(!u[0].viaShards && u[0].uris.some((x) => x.startsWith('/roots/') && x.endsWith('.root')), u[0].uris.join(' '));
      // ... and takes the root's delta and the changed shard's delta from then on.
      assert.ok(u[1].viaShards, u[1].uris.join(' '));
    }
    // Those do not grow with the tree (a few bytes of varints may); the index delta does.
    assert.ok(Math.abs(big[1].paid - small[1].paid) <= 32, `${small[1].paid} -> ${big[1].paid}`);
    assert.ok(big[1].head - small[1].head >= 300, `head ${small[1].head} -> ${big[1].head}`);
    // Cheaper than the head it replaces with its request's heads (half the two requests' heads measured).
    for (const u of [small, big]) assert.ok(u[1].paid < u[1].head + (u[1].paid - u[1].shards) / 2, `${u[1].paid} against a head of ${u[1].head}`);
  });
});
