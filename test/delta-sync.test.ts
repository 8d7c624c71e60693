import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, onCleanup, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { editText, pseudoRandom, textFile, treeDigest, writeTree } from './helpers/trees.js';
import { LogEntry, NginxServer, requireNginx, startNginx } from './helpers/nginx.js';
import { decodeManifest, ManifestBody } from '../src/snapshot/manifest.js';
import { decodeSnapshot, recordLength, Snapshot } from '../src/snapshot/snapshot.js';

/**
 * Updates end to end through nginx: a newcomer's download as one compressed stream, an update
 * as deltas against the files the client holds, and the fallbacks a user never has to think
 * about: a client missing a delta's base, and a corrupt frame on the remote.
 */
after(cleanupAll);

const paquete = paqueteExpecting();

const kinds = (log: LogEntry[]) => log.map((e) => e.uri.split('/')[1]);

describe('updates over HTTP (nginx)', () => {
  let dir: string;
  let ng: NginxServer;
  let url: string;
  const manifest = (): ManifestBody => decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
  const snapshot = (name: string): Snapshot => decodeSnapshot(readFileSync(join(dir, 'remote/snapshots', `${name}.snap`)));
  /** What fetching these chunks as records would cost in bytes (headers of requests not counted). */
  const recordBytes = (s: Snapshot, except: Set<bigint>) => [...s.chunks].filter((c) => !except.has(c.id)).reduce((n, c) => n + recordLength(c), 0);
  const release = (v: number) => {
    const files: Record<string, string | Uint8Array> = {
      // The big file is most of the tree, so a client holding only it holds most of the snapshot;
      // and big enough (2.2 MB) that the newcomer's stream is decoded on the decode worker.
      'site/app.js': v === 1 ? textFile(1, 48_000) : editText(textFile(1, 48_000), v, 40 * v),
      'site/lib/util.js': v === 1 ? textFile(2, 3_000) : editText(textFile(2, 3_000), v + 10, 10 * v),
      'site/data.bin': pseudoRandom(50_000, 3),
      'site/README.md': `release ${v}\n`,
    };
    writeTree(dir, files);
  };
  const publish = () => paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key', '--json'], dir);
  const sync = async (work: string, extra: string[] = [], code = 0) => {
    await ng.clearLog();
    const r = await paquete(['sync', '-C', work, '--json', ...extra], dir, code);
    return { report: JSON.parse(r.stdout), stderr: r.stderr, log: await ng.accessLog(), wire: await ng.wireBytes() };
  };

  before(async () => {
    requireNginx();
    dir = await tmpDir('paquete-delta-');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    release(1);
    await publish();
    ng = await startNginx(join(dir, 'remote'));
    onCleanup(() => ng.stop());
    url = ng.url;
  });

  test("a newcomer's first download comes as one compressed stream, far below the records", async () => {
    await paquete(['init', url, 'fresh', '--trust', 'pub.key.pub'], dir);
    const r = await sync('fresh');
    assert.deepEqual(treeDigest(join(dir, 'fresh', 'site')), treeDigest(join(dir, 'site')));
    assert.equal(r.report.spent, r.wire, "paquete's meter equals nginx's log");
    assert.ok(kinds(r.log).includes('frames'), `frames fetched: ${kinds(r.log)}`);
    const s = snapshot(manifest().snapshots[0].name);
    const records = recordBytes(s, new Set());
    assert.ok(r.report.spent < 0.8 * records, `first download ${r.report.spent} B vs ${records} B of records`);
    const v = await paquete(['verify', '-C', 'fresh'], dir);
    assert.match(v.stdout, /store ok/);
  });

  test('an update comes as deltas against the files the client holds, index included', async () => {
    release(2);
    await publish();
    const r = await sync('fresh');
    assert.deepEqual(treeDigest(join(dir, 'fresh', 'site')), treeDigest(join(dir, 'site')));
    assert.equal(r.report.spent, r.wire);
    const k = kinds(r.log);
    assert.ok(k.includes('updates') && k.includes('frames'), `requests: ${k}`);
    assert.ok(!k.includes('snapshots'), 'the index came through the delta head, not whole');
    const list = manifest().snapshots;
    const [older, newer] = [snapshot(list[0].name), snapshot(list[1].name)];
    const fresh = recordBytes(newer, new Set(older.chunks.ids()));
    assert.ok(r.report.spent < 0.25 * fresh, `update ${r.report.spent} B vs ${fresh} B of new records`);
    const v = await paquete(['verify', '-C', 'fresh'], dir);
    assert.match(v.stdout, /store ok/);
  });

  test('a sync with nothing new costs one 304 for the manifest, not the manifest', async () => {
    const r = await sync('fresh');
    assert.deepEqual(r.log.map((e) => [e.uri, e.status]), [['/manifest.json', 304]]);
    assert.equal(r.report.spent, r.wire);
    assert.ok(r.wire < 700, `${r.wire} B for a sync with nothing new`);
    assert.equal(r.report.placed.length, 0);
  });

  test("a client missing a delta's base still gets the tree, without that delta's frame", async () => {
    // Release 3 without the update from nothing, so this client takes app.js alone, as records:
    // it then holds most of release 3 by bytes, but nothing of lib/util.js.
    release(3);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key', '--no-solid'], dir);
    await paquete(['init', url, 'partial', '--trust', 'pub.key.pub'], dir);
    const first = await sync('partial', ['--want', 'site/app.js']);
    assert.ok(!kinds(first.log).includes('frames'), `no frames for this one: ${kinds(first.log)}`);
    release(4);
    await publish();
    const r = await sync('partial');
    assert.deepEqual(treeDigest(join(dir, 'partial', 'site')), treeDigest(join(dir, 'site')));
    // app.js's and util.js's deltas lie in one pooled frame (src/delta/build.ts POOL_RAW), which
    // this client cannot decode: it takes the cheaper of the stream's frames and records instead.
    const k = kinds(r.log);
    assert.ok(k.includes('frames') || k.includes('packs'), `the changes come by another route: ${k}`);
    assert.equal(r.report.spent, r.wire);
  });

  test("a budget smaller than the newcomer's stream: a prefix now, the rest next time, no byte paid twice", async () => {
    await paquete(['init', url, 'card', '--trust', 'pub.key.pub'], dir);
    const whole = (await sync('card', ['--dry-run'])).report.plannedCost as number;
    const budget = Math.floor(whole / 2);
    const first = await sync('card', ['--budget', String(budget)], 3);
    assert.ok(first.wire <= budget, `first session ${first.wire} B on the wire, budget ${budget}`);
    assert.equal(first.report.spent, first.wire);
    assert.ok(kinds(first.log).includes('frames') && !kinds(first.log).includes('packs'), `a prefix of the stream, no records: ${kinds(first.log)}`);
    const second = await sync('card');
    assert.deepEqual(treeDigest(join(dir, 'card', 'site')), treeDigest(join(dir, 'site')));
    // The frames of both sessions together: the stream once (plus one more request's headers).
    const frames = (log: LogEntry[]) => log.filter((e) => e.uri.startsWith('/frames/')).reduce((n, e) => n + e.bytesSent + e.requestLength, 0);
    assert.ok(frames(first.log) + frames(second.log) <= whole + 600, `${frames(first.log)} + ${frames(second.log)} B of frames against ${whole} B at once`);
    const v = await paquete(['verify', '-C', 'card'], dir);
    assert.match(v.stdout, /store ok/);
  });

  test('a corrupt frame on the remote is caught, and its chunks come as records', async () => {
    const entry = manifest().snapshots.at(-1)!;
    const solid = entry.updates!.find((u) => u.from === '')!;
    const { decodeUpdateHead } = await import('../src/delta/update.js');
    const head = decodeUpdateHead(readFileSync(join(dir, 'remote/updates', `${solid.name}.upd`)));
    const path = join(dir, 'remote/frames', `${head.framesFile}.frames`);
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    const f = head.frames[0];
    for (let i = 0; i < 64; i++) bad[f.offset + Math.floor(f.length / 2) + i] ^= 0x5a;
    writeFileSync(path, bad);
    try {
      await paquete(['init', url, 'victim', '--trust', 'pub.key.pub'], dir);
      const r = await sync('victim');
      assert.match(r.stderr, /corrupt/);
      assert.ok(kinds(r.log).includes('packs'), 'fell back to records');
      assert.deepEqual(treeDigest(join(dir, 'victim', 'site')), treeDigest(join(dir, 'site')));
      const v = await paquete(['verify', '-C', 'victim'], dir);
      assert.match(v.stdout, /store ok/);
    } finally {
      writeFileSync(path, good);
    }
  });
});
