/**
 * The sharded index (docs/FORMATS.md §Root and shards) end to end through a real nginx: a client
 * that wants one PyPI project pays, by nginx's own count, for the root and the shards of that
 * project and its dependencies, not for the whole index; an update pays for the shards it
 * touches; every shard merged is the whole index, byte for byte; a client wanting everything
 * gets the same tree as before.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { cleanupAll, onCleanup, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { wheelFileName, writeWheel } from './helpers/wheels.js';
import { LogEntry, startNginx, type NginxServer } from './helpers/nginx.js';
import { decodeRoot, mergeShards, Root, shardOfPath, splitSnapshot } from '../src/snapshot/shards.js';
import { decodeSnapshot, decodeSnapshotBody, encodeSnapshotBody, Snapshot, snapshotBody } from '../src/snapshot/snapshot.js';
import { decodeManifest, ManifestSnapshot } from '../src/snapshot/manifest.js';

after(cleanupAll);

const paquete = paqueteExpecting();

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const PROJECTS = 30;

/** proj0 needs proj1, which needs proj2 (only with an extra: the root lists it all the same). */
function project(i: number, version = '1.0') {
  const requires = i === 0 ? ['proj1>=1.0'] : i === 1 ? ['proj2', 'proj9; extra == "never"'] : [];
  return { name: `proj${i}`, version, requires, modules: { [`proj${i}/__init__.py`]: `V = "${version}"\n`, [`proj${i}/data.txt`]: pseudoRandom(90_000, 100 * i + version.length).toString('base64') } };
}

describe('sharded index: pay for the index of what you want', () => {
  let dir: string;
  let ng: NginxServer;

  const latestEntry = (): ManifestSnapshot => {
    const m = decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'remote');
    return m.body.snapshots[m.body.snapshots.length - 1];
  };
  const rootOf = (e: ManifestSnapshot): Root => decodeRoot(readFileSync(join(dir, `remote/roots/${e.root!.name}.root`)));
  const shardOf = (root: Root, i: number): Snapshot => decodeSnapshotBody(snapshotBody(readFileSync(join(dir, `remote/shards/${root.shards[i].name}.shard`))), root.shards[i].version);
  const projectShard = (root: Root, name: string) => root.shards.findIndex((s) => root.sources[s.source].kind === 'pypi' && s.key === name);
  const indexRequests = (log: LogEntry[]) => log.filter((e) => /^\/(roots|shards|snapshots|updates)\//.test(e.uri));
  const wire = (log: LogEntry[]) => log.reduce((n, e) => n + e.bytesSent + e.requestLength, 0);
  const publish = () => paquete(['publish', 'pypi:wheels', 'docs:manual=html', 'site', '--to', 'remote', '--key', 'pub.key', '--level', '3'], dir);

  before(async () => {
    dir = await tmpDir('paquete-shards-');
    for (let i = 0; i < PROJECTS; i++) writeWheel(join(dir, 'wheels'), project(i));
    const html: Record<string, string | Uint8Array> = {};
    for (let i = 0; i < 40; i++) html[`page${i}.html`] = `<html><body>page ${i} ${pseudoRandom(3000, i).toString('hex')}</body></html>`;
    writeTree(join(dir, 'html'), html);
    writeTree(join(dir, 'site'), { 'big.bin': pseudoRandom(400_000, 7), 'notes.txt': 'notes\n' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await publish();
    ng = await startNginx(join(dir, 'remote'));
    onCleanup(() => ng.stop());
    for (const w of ['work', 'full', 'docs']) await paquete(['init', ng.url, w, '--trust', 'pub.key.pub'], dir);
  });

  test('a shard per project and per source; every shard merged is the whole index, byte for byte', () => {
    const entry = latestEntry();
    const root = rootOf(entry);
    const keys = root.shards.filter((s) => root.sources[s.source].kind === 'pypi').map((s) => s.key);
    assert.deepEqual(keys.sort(), Array.from({ length: PROJECTS }, (_, i) => `proj${i}`).sort());
    const shards = root.shards.map((ref, i) => ({ ref, snapshot: shardOf(root, i) }));
    const merged = mergeShards(root, shards);
    assert.equal(sha(encodeSnapshotBody(merged)), entry.body, 'the merged shards are the signed index');
    shards.forEach(({ snapshot }, i) => {
      for (const f of snapshot.files) assert.equal(shardOfPath(root, f.path), i, f.path);
    });
    // proj1's metadata names proj2 and, under an extra, proj9: both are candidates.
    assert.deepEqual(root.shards[projectShard(root, 'proj1')].deps.sort(), [projectShard(root, 'proj2'), projectShard(root, 'proj9')].sort());
  });

  test('path ranges: cut at the chunk count, kept where the last snapshot cut, merged back whole', () => {
    const whole = decodeSnapshot(readFileSync(join(dir, `remote/snapshots/${latestEntry().name}.snap`)));
    const parts = splitSnapshot(whole, new Map(), 8);
    const manual = parts.filter((p) => whole.sources[p.source].name === 'manual');
    assert.ok(manual.length >= 3, `manual in ${manual.length} ranges`);
    assert.equal(manual[0].key, '');
    const refs = parts.map((p, i) => ({ ref: { source: p.source, key: p.key, name: String(i), size: 0, version: 2, bodyLength: 0, files: 0, bytes: 0, chunks: 0, deps: [], deltas: [] }, snapshot: p.snapshot }));
    const root: Root = { params: whole.params, created: whole.created, sources: whole.sources, shards: refs.map((r) => r.ref) };
    assert.deepEqual(encodeSnapshotBody(mergeShards(root, refs)), encodeSnapshotBody(whole));
    // One page fewer at the front: the later ranges keep their keys.
    const keys = new Map([['manual', new Set(manual.map((p) => p.key))]]);
    const fewer = { ...whole, files: whole.files.filter((f) => f.path !== 'manual/page0.html') };
    const again = splitSnapshot(fewer, keys, 8).filter((p) => whole.sources[p.source].name === 'manual').map((p) => p.key);
    assert.deepEqual(again.slice(1), manual.map((p) => p.key).slice(1));
  });

  test('--want pypi:proj0 pays for the root and the shards of proj0 and its dependencies, not the whole index', async (t) => {
    const entry = latestEntry();
    const root = rootOf(entry);
    await ng.clearLog();
    const r = await paquete(['sync', '-C', 'work', '--want', 'pypi:proj0', '--json'], dir);
    const placed = new Set<string>(JSON.parse(r.stdout).placed);
    for (const i of [0, 1, 2]) assert.ok(placed.has(`wheels/${wheelFileName(project(i))}`), `proj${i} placed`);
    assert.ok(![...placed].some((p) => /proj([3-9]|\d\d)/.test(p) || /^(manual|site)\//.test(p)), [...placed].join(', '));
    const log = indexRequests(await ng.accessLog());
    const closure = ['proj0', 'proj1', 'proj2', 'proj9'].map((n) => `/shards/${root.shards[projectShard(root, n)].name}.shard`);
    assert.deepEqual(log.map((e) => e.uri).sort(), [`/roots/${entry.root!.name}.root`, ...closure].sort());
    // Bodies: the root and those four shards, exactly; the shards in proportion to the want
    // (4 of 30 projects) and all of it well under the whole index a client paid before.
    const shardBytes = ['proj0', 'proj1', 'proj2', 'proj9'].reduce((n, p) => n + root.shards[projectShard(root, p)].size, 0);
    assert.equal(log.reduce((n, e) => n + e.bodyBytesSent, 0), entry.root!.size + shardBytes);
    const pypiBytes = root.shards.filter((s) => root.sources[s.source].kind === 'pypi').reduce((n, s) => n + s.size, 0);
    assert.ok(shardBytes <= 1.5 * (4 / PROJECTS) * pypiBytes, `closure shards ${shardBytes} of ${pypiBytes} for 4 of ${PROJECTS} projects`);
    const paid = wire(log);
    t.diagnostic(`index bytes on the wire for pypi:proj0 (nginx): ${paid} in ${log.length} requests (root ${entry.root!.size}, shards ${shardBytes}); the whole index: ${entry.size}`);
    assert.ok(paid * 2 < entry.size, `${paid} index bytes on the wire against a whole index of ${entry.size}`);
  });

  test('an update of a project in the closure fetches the root and that shard (or its delta) only', async (t) => {
    writeWheel(join(dir, 'wheels'), project(1, '1.1'));
    await publish();
    const entry = latestEntry();
    const root = rootOf(entry);
    const ref = root.shards[projectShard(root, 'proj1')];
    await ng.clearLog();
    const r = await paquete(['sync', '-C', 'work', '--want', 'pypi:proj0', '--json'], dir);
    assert.ok(JSON.parse(r.stdout).placed.includes(`wheels/${wheelFileName(project(1, '1.1'))}`), r.stdout);
    const log = indexRequests(await ng.accessLog());
    const shardUris = [`/shards/${ref.name}.shard`, ...ref.deltas.map((d) => `/shards/${d.name}.sd`)];
    assert.equal(log.length, 2, log.map((e) => e.uri).join(' '));
    assert.equal(log[0].uri, `/roots/${entry.root!.delta!.name}.rd`, 'the root comes as a delta from the one held');
    assert.ok(shardUris.includes(log[1].uri), log[1].uri);
    assert.ok(ref.deltas.length > 0 && log[1].uri.endsWith('.sd'), 'a changed shard comes as a delta from the one held');
    t.diagnostic(`update of proj1: index bytes ${wire(log)} (root delta ${entry.root!.delta!.size}, root ${entry.root!.size}, shard delta ${ref.deltas[0]?.size}, shard ${ref.size}; whole index ${entry.size})`);
  });

  test('an update elsewhere costs the want the delta of its root alone, bytes in proportion to the change', async (t) => {
    writeWheel(join(dir, 'wheels'), project(7, '2.0'));
    await publish();
    const entry = latestEntry();
    await ng.clearLog();
    await paquete(['sync', '-C', 'work', '--want', 'pypi:proj0'], dir);
    const log = indexRequests(await ng.accessLog());
    assert.deepEqual(log.map((e) => e.uri), [`/roots/${entry.root!.delta!.name}.rd`]);
    // The root lists all PROJECTS shards; the change is one project's entry (its name, sizes).
    const paid = log.reduce((n, e) => n + e.bodyBytesSent, 0);
    t.diagnostic(`update of proj7 for pypi:proj0: index bytes ${wire(log)} (root delta ${paid} of body); the whole root ${entry.root!.size}`);
    assert.equal(paid, entry.root!.delta!.size);
    assert.ok(entry.root!.delta!.size * 4 < entry.root!.size, `root delta ${entry.root!.delta!.size} against a root of ${entry.root!.size}`);
  });

  test('an update of one source fetches that source shard only', async () => {
    await paquete(['sync', '-C', 'docs', '--want', 'docs:manual'], dir);
    assert.deepEqual(treeDigest(join(dir, 'docs/manual')), treeDigest(join(dir, 'html')));
    writeTree(join(dir, 'html'), { 'page3.html': '<html>changed</html>' });
    await publish();
    const entry = latestEntry();
    const root = rootOf(entry);
    const manual = root.shards.find((s) => root.sources[s.source].name === 'manual')!;
    await ng.clearLog();
    await paquete(['sync', '-C', 'docs', '--want', 'docs:manual'], dir);
    const uris = indexRequests(await ng.accessLog()).map((e) => e.uri);
    assert.equal(uris[0], `/roots/${entry.root!.delta!.name}.rd`);
    assert.deepEqual(uris.slice(1), manual.deltas.length ? [`/shards/${manual.deltas[0].name}.sd`] : [`/shards/${manual.name}.shard`]);
    assert.deepEqual(treeDigest(join(dir, 'docs/manual')), treeDigest(join(dir, 'html')));
    assert.ok(!existsSync(join(dir, 'docs/wheels')) && !existsSync(join(dir, 'docs/site')));
  });

  test('a second want keeps what the first placed; status, verify and gc read the partial index', async () => {
    await paquete(['sync', '-C', 'work', '--want', 'docs:manual'], dir);
    assert.deepEqual(treeDigest(join(dir, 'work/manual')), treeDigest(join(dir, 'html')));
    for (const i of [0, 2]) assert.ok(existsSync(join(dir, 'work/wheels', wheelFileName(project(i)))), `proj${i} kept`);
    const status = JSON.parse((await paquete(['status', '-C', 'work', '--json'], dir)).stdout);
    // What the partial index leaves out is said, from the root's counts.
    const site = status.sources.find((x: { name: string }) => x.name === 'site');
    assert.deepEqual(site.notIndexed, { files: 2, bytes: 400_000 + 'notes\n'.length });
    assert.equal(status.sources.find((x: { name: string }) => x.name === 'manual').notIndexed, undefined);
    await paquete(['verify', '-C', 'work'], dir);
    await paquete(['gc', '-C', 'work'], dir);
    await paquete(['verify', '-C', 'work'], dir);
    // A bundle carries the whole index, which a partial one is not.
    await paquete(['init', ng.url, 'fresh', '--trust', 'pub.key.pub'], dir);
    await paquete(['have', '-C', 'fresh', '--out', join(dir, 'fresh.have')], dir);
    const r = await paquete(['export', '-C', 'work', '--for', join(dir, 'fresh.have'), '--to', join(dir, 'stick.pqb')], dir, 1);
    assert.match(r.stderr, /partial index[\s\S]*without --want/);
  });

  test('a mirror that copied only the whole index serves a --want all the same', async () => {
    cpSync(join(dir, 'remote'), join(dir, 'copy'), { recursive: true, filter: (p) => !/[\\/](roots|shards)$/.test(p) });
    await paquete(['init', join(dir, 'copy'), 'fromcopy', '--trust', 'pub.key.pub'], dir);
    const r = await paquete(['sync', '-C', 'fromcopy', '--want', 'pypi:proj0'], dir);
    assert.match(r.stderr + r.stdout, /index shards could not be read[\s\S]*reading the whole index/);
    assert.ok(existsSync(join(dir, 'fromcopy/wheels', wheelFileName(project(0)))));
  });

  test('a client wanting everything gets the whole tree, as before', async () => {
    await paquete(['sync', '-C', 'full'], dir);
    assert.deepEqual(treeDigest(join(dir, 'full/manual')), treeDigest(join(dir, 'html')));
    assert.deepEqual(treeDigest(join(dir, 'full/site')), treeDigest(join(dir, 'site')));
    const wheels = treeDigest(join(dir, 'wheels'));
    for (const [p, h] of Object.entries(wheels)) assert.equal(treeDigest(join(dir, 'full/wheels'))[p], h, p);
  });
});
