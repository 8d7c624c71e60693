/**
 * The offer (issue 14): deltas keyed by old file contents, so a client several snapshots behind
 * pays near the floor `zstd -19 --patch-from` from its version to the newest, counted by nginx.
 * A series of releases is published once; clients that synced at each release are kept, and each
 * test copies one and syncs it to the newest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { cleanupAll, onCleanup, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { editText, pseudoRandom, textFile, treeDigest, writeTree } from './helpers/trees.js';
import { NginxServer, requireNginx, startNginx } from './helpers/nginx.js';
import { decodeManifest, ManifestBody } from '../src/snapshot/manifest.js';
import { decodeOfferHead, encodeOfferHead } from '../src/delta/offer.js';
import { decodeUpdateHead } from '../src/delta/update.js';
import { compressFrame } from '../src/delta/zstd.js';
import { chooseRungs } from '../src/delta/offer-plan.js';

after(cleanupAll);

/** Releases published one after another. */
const RELEASES = 8;

/**
 * Release v: one large file edited a little in every release, small modules each changing in
 * some releases only (so their old versions span different runs of snapshots), a binary that
 * never changes, a file added at release 3 and one dropped at release 4.
 */
function release(v: number): Record<string, string | Uint8Array> {
  const files: Record<string, string | Uint8Array> = {};
  let big = textFile(1, 9000);
  for (let k = 1; k <= v; k++) big = editText(big, 1000 + k, 25);
  files['pkg/dist/main.js'] = big;
  for (let i = 0; i < 10; i++) {
    let text = textFile(10 + i, 120 + i * 40);
    for (let k = 1; k <= v; k++) if ((i + k) % 3 === 0) text = editText(text, 100 * k + i, 3);
    files[`pkg/lib/m${i}.js`] = text;
  }
  files['pkg/logo.bin'] = pseudoRandom(40_000, 5);
  if (v >= 3) files['pkg/lib/added.js'] = editText(textFile(90, 400), v, v);
  if (v < 4) files['pkg/lib/dropped.js'] = textFile(91, 300);
  return files;
}

/** The files of a release as one byte string, in path order (a tar without its headers). */
function laidEnd(files: Record<string, string | Uint8Array>): Buffer {
  return Buffer.concat(
    Object.keys(files)
      .sort()
      .map((p) => Buffer.from(files[p])),
  );
}

/** The floor: release `to` (the newest by default) compressed against the client's (zstd -19, a raw-content dictionary: --patch-from). */
const floorFrom = (v: number, to = RELEASES - 1) => compressFrame(laidEnd(release(to)), { level: 19, dictionary: laidEnd(release(v)) }).length;

/**
 * Clients of the property: each synced at release `from` (a random one), then syncs once after
 * `publishes` more releases (a random number), counted by nginx on the remote as it is then.
 * Drawn once from a fixed seed; the client furthest behind (the first release to the last) always.
 */
const ONCE = [
  { from: 0, publishes: RELEASES - 1 },
  ...fc.sample(
    fc.integer({ min: 0, max: RELEASES - 2 }).chain((from) => fc.record({ from: fc.constant(from), publishes: fc.integer({ min: 1, max: RELEASES - 1 - from }) })),
    { numRuns: 7, seed: 20261202 },
  ),
];

const paquete = paqueteExpecting();

describe('offers keyed by content, over nginx', () => {
  let dir: string;
  let ng: NginxServer;
  const manifest = (): ManifestBody => decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
  let run = 0;
  /** nginx's count of the sync after release v of the client that syncs after every release. */
  const every: number[] = [];
  const once: { from: number; to: number; wire: number; spent: number; same: boolean }[] = [];

  /** A copy of the client that synced at release v, synced now; nginx's count of it. */
  async function syncFrom(v: number) {
    const work = join(dir, `run${run++}`);
    cpSync(join(dir, `at${v}`), work, { recursive: true });
    await ng.clearLog();
    const r = await paquete(['sync', '-C', work, '--json'], dir);
    return { work, report: JSON.parse(r.stdout) as { spent: number }, log: await ng.accessLog(), wire: await ng.wireBytes() };
  }

  before(async () => {
    requireNginx();
    dir = await tmpDir('paquete-offers-');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    for (let v = 0; v < RELEASES; v++) {
      writeTree(join(dir, `r${v}`), release(v));
      await paquete(['publish', `pkg=${join(dir, `r${v}`, 'pkg')}`, '--to', 'remote', '--key', 'pub.key', '--prune-after', '0'], dir);
      if (v === 0) {
        ng = await startNginx(join(dir, 'remote'));
        onCleanup(() => ng.stop());
        await paquete(['init', ng.url, 'every', '--trust', 'pub.key.pub'], dir);
        await paquete(['sync', '-C', 'every'], dir);
      } else {
        for (const c of ONCE.filter((c) => c.from + c.publishes === v)) {
          const r = await syncFrom(c.from);
          once.push({ from: c.from, to: v, wire: r.wire, spent: r.report.spent, same: isDeepStrictEqual(treeDigest(join(r.work, 'pkg')), treeDigest(join(dir, `r${v}`, 'pkg'))) });
        }
        await ng.clearLog();
        await paquete(['sync', '-C', 'every'], dir);
        every[v] = await ng.wireBytes();
        assert.deepEqual(treeDigest(join(dir, 'every', 'pkg')), treeDigest(join(dir, `r${v}`, 'pkg')), `the client syncing every release has release ${v}`);
      }
      // A client that synced at release v.
      if (v < RELEASES - 1) cpSync(join(dir, 'every'), join(dir, `at${v}`), { recursive: true });
    }
  });

  test('a client five releases behind takes the offer: frames against the old contents it holds, a byte-identical tree', async () => {
    const entry = manifest().snapshots.at(-1)!;
    assert.ok(entry.offer, 'the newest entry names an offer');
    const head = decodeOfferHead(readFileSync(join(dir, 'remote/updates', `${entry.offer.name}.upd`)));
    const r = await syncFrom(RELEASES - 6);
    assert.deepEqual(treeDigest(join(r.work, 'pkg')), treeDigest(join(dir, `r${RELEASES - 1}`, 'pkg')));
    assert.equal(r.report.spent, r.wire, "paquete's meter equals nginx's count");
    const uris = r.log.map((e) => e.uri);
    assert.ok(uris.includes(`/updates/${entry.offer.name}.upd`), `the offer head is fetched: ${uris}`);
    const offerFrames = r.log.filter((e) => e.uri === `/frames/${head.framesFile}.frames`);
    assert.ok(offerFrames.length > 0, `frames of the offer are fetched: ${uris}`);
    // Only the delta from the newest release has frames of its own: this client is not at it.
    const solid = entry.updates!.find((u) => u.from === '')!;
    const solidFrames = decodeUpdateHead(readFileSync(join(dir, 'remote/updates', `${solid.name}.upd`))).framesFile;
    assert.ok(!uris.includes(`/frames/${solidFrames}.frames`), 'the stream from nothing is not taken');
    const floor = floorFrom(RELEASES - 6);
    assert.ok(r.wire <= 1.5 * floor + 16 * 1024, `five behind: ${r.wire} B by nginx's count, floor ${floor} B`);
  });

  test('an old client meets the offer head as a version it refuses with "upgrade paquete", not as a delta it misreads', () => {
    const entry = manifest().snapshots.at(-1)!;
    const bytes = readFileSync(join(dir, 'remote/updates', `${entry.offer!.name}.upd`));
    assert.equal(bytes[4], 3);
    assert.throws(
      () => decodeUpdateHead(bytes),
      (e: Error & { code?: string; hint?: string }) => e.code === 'BAD_FORMAT' && /version 3, which this paquete .* does not read/.test(e.message) && /upgrade paquete/.test(String(e.hint)),
    );
  });

  test('old updates are pruned: only the newest entry names deltas and an offer, the one before it at most its stream; updates on disk within twice the newest stream', () => {
    const m = manifest();
    const older = m.snapshots.slice(0, -2);
    assert.ok(older.every((s) => s.updates === undefined && s.offer === undefined), 'entries before the last two name no updates');
    const prev = m.snapshots.at(-2)!;
    assert.ok(prev.updates === undefined || isDeepStrictEqual(prev.updates.map((u) => u.from), ['']));
    assert.equal(prev.offer, undefined);
    const names = new Set(readFileSync(join(dir, 'remote/manifest.json'), 'utf8').match(/[0-9a-f]{64}/g));
    for (const f of readdirSync(join(dir, 'remote/updates')).filter((n) => !n.startsWith('.'))) {
      assert.ok(names.has(f.slice(0, 64)), `updates/${f} is named by the manifest`);
    }
    // Every head and frames file on the remote (pruned at once here), against the newest stream's frames.
    const bytesIn = (sub: string) => readdirSync(join(dir, 'remote', sub)).filter((n) => !n.startsWith('.')).reduce((n, f) => n + statSync(join(dir, 'remote', sub, f)).size, 0);
    const newest = m.snapshots.at(-1)!;
    const stream = newest.updates!.find((u) => u.from === '')!;
    const segments = decodeUpdateHead(readFileSync(join(dir, 'remote/updates', `${stream.name}.upd`))).segments!;
    const streamBytes = segments.reduce((n, s) => n + s.size, 0);
    const disk = bytesIn('updates') + bytesIn('frames') - stream.size;
    assert.ok(disk <= 2 * streamBytes, `updates and frames ${disk} B, twice the newest stream ${2 * streamBytes} B`);
  });

  test('from a random release after a random number of publishes, nginx counts at most 1.5x the patch-from floor + 16 KiB; syncing once never costs more than after every release (property)', (t) => {
    assert.equal(once.length, ONCE.length);
    for (const c of once) {
      const floor = floorFrom(c.from, c.to);
      const stepwise = every.slice(c.from + 1, c.to + 1).reduce((n, b) => n + b, 0);
      t.diagnostic(`release ${c.from} → ${c.to} (${c.to - c.from} behind): ${c.wire} B, floor ${floor} B, ${(c.wire / floor).toFixed(2)}x; after every release ${stepwise} B`);
      assert.ok(c.same, `from release ${c.from}: the tree is release ${c.to}`);
      assert.equal(c.spent, c.wire, "paquete's meter equals nginx's count");
      assert.ok(c.wire <= 1.5 * floor + 16 * 1024, `release ${c.from} → ${c.to}: ${c.wire} B by nginx's count, floor ${floor} B`);
      assert.ok(c.wire <= stepwise, `release ${c.from} → ${c.to}: once ${c.wire} B, after every release ${stepwise} B`);
    }
  });
});

describe('offer head format', () => {
  const sha = (c: string) => c.repeat(64);
  const head = {
    target: sha('a'),
    framesFile: sha('b'),
    framesSize: 8 + 30 + 12,
    contents: [
      { sha256: sha('c'), size: 5000 },
      { sha256: sha('d'), size: 70 },
    ],
    waypoints: [sha('e')],
    frames: [
      { target: 0, offset: 8, length: 30, yields: [3, 4, 9], bases: [{ content: 0, start: 0, length: 5000 }, { content: 1, start: 10, length: 20 }] },
      { target: 1, offset: 38, length: 12, yields: [1], bases: [] },
    ],
  };

  test('round trip, byte for byte: a whole content is written as start 0, length 0', async () => {
    const bytes = encodeOfferHead(head);
    assert.deepEqual([...bytes.subarray(0, 8)], [0x50, 0x51, 0x55, 0x50, 3, 2, 0, 0]);
    assert.deepEqual(decodeOfferHead(bytes), head);
  });

  test('a base past its content, or a head cut short, is a malformed head', async () => {
    const past = encodeOfferHead({ ...head, frames: [{ ...head.frames[0], bases: [{ content: 1, start: 60, length: 20 }] }, head.frames[1]] });
    assert.throws(() => decodeOfferHead(past), (e: Error & { code?: string }) => e.code === 'BAD_FORMAT' && /bytes 60\+20 of a 70-byte content/.test(e.message));
    const whole = encodeOfferHead(head);
    assert.throws(() => decodeOfferHead(whole.subarray(0, whole.length - 3)), (e: Error & { code?: string }) => e.code === 'BAD_FORMAT');
    const noWaypoint = encodeOfferHead({ ...head, waypoints: [] });
    assert.throws(() => decodeOfferHead(noWaypoint), (e: Error & { code?: string }) => e.code === 'BAD_FORMAT' && /waypoint 0 of 0/.test(e.message));
  });
});

describe('waypoints: an offer too small for every old content, over nginx', () => {
  let dir: string;
  let ng: NginxServer;

  before(async () => {
    requireNginx();
    dir = await tmpDir('paquete-waypoints-');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    for (let v = 0; v < RELEASES; v++) {
      writeTree(join(dir, `r${v}`), release(v));
      // A small share of the disk: direct deltas from the oldest contents do not fit.
      await paquete(['publish', `pkg=${join(dir, `r${v}`, 'pkg')}`, '--to', 'remote', '--key', 'pub.key', '--prune-after', '0', '--offer-share', '0.25'], dir);
      if (v === 0) {
        ng = await startNginx(join(dir, 'remote'));
        onCleanup(() => ng.stop());
        await paquete(['init', ng.url, 'at0', '--trust', 'pub.key.pub'], dir);
        await paquete(['sync', '-C', 'at0'], dir);
      }
    }
  });

  test('a client behind every direct delta takes two hops, waypoint then direct, for less than the stream; a byte-identical tree', async () => {
    const m = decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
    const entry = m.snapshots.at(-1)!;
    const head = decodeOfferHead(readFileSync(join(dir, 'remote/updates', `${entry.offer!.name}.upd`)));
    assert.ok(head.waypoints.length > 0 && head.frames.some((f) => f.target > 0), `the offer has waypoint frames (${head.frames.length} frames)`);
    const solid = entry.updates!.find((u) => u.from === '')!;
    const solidHead = decodeUpdateHead(readFileSync(join(dir, 'remote/updates', `${solid.name}.upd`)));
    await ng.clearLog();
    const r = await paquete(['sync', '-C', 'at0', '--json'], dir);
    const log = await ng.accessLog();
    const uris = log.map((e) => e.uri);
    assert.deepEqual(treeDigest(join(dir, 'at0', 'pkg')), treeDigest(join(dir, `r${RELEASES - 1}`, 'pkg')));
    assert.ok(uris.includes(`/snapshots/${head.waypoints[0]}.snap`) || head.waypoints.some((w) => uris.includes(`/snapshots/${w}.snap`)), `a waypoint's index is fetched: ${uris}`);
    assert.ok(uris.includes(`/frames/${head.framesFile}.frames`), `the offer's frames are fetched: ${uris}`);
    assert.ok(!uris.includes(`/frames/${solidHead.framesFile}.frames`), 'not the stream from nothing');
    const wire = await ng.wireBytes();
    assert.equal((JSON.parse(r.stdout) as { spent: number }).spent, wire, "paquete's meter equals nginx's count");
    const streamBytes = solidHead.frames.reduce((n, f) => n + f.length, 0);
    assert.ok(wire < streamBytes, `two hops cost ${wire} B by nginx's count; the stream alone is ${streamBytes} B`);
  });
});

describe('the offer ladder', () => {
  // What moving between vite 8.2.4 … 8.4.0 costs, release to release and into the newest (row k:
  // from k releases back to 0 … k-1 back), each changed file at zstd level 6: src/publish/updates.ts.
  const vite = [
    [52804],
    [82230, 29929],
    [82314, 30013, 316],
    [93844, 42918, 13419, 13335],
    [115798, 66659, 55333, 55241, 43873],
    [117784, 68663, 57388, 57300, 46445, 3326],
    [120450, 70986, 59734, 59644, 48914, 6359, 3254],
    [127760, 79216, 67923, 67820, 57467, 15520, 12956, 10100],
    [133100, 84535, 73240, 73134, 63765, 21461, 19124, 16292, 7396],
    [134114, 91009, 79763, 79660, 80310, 46756, 44747, 45707, 38982, 32967],
    [140822, 97841, 86679, 86581, 79149, 37940, 35924, 37082, 29859, 23365, 12043],
  ];
  const matrix = (rows: number[][]) => {
    const n = rows.length + 1;
    const m = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    rows.forEach((row, i) => row.forEach((c, j) => (m[i + 1][j] = c)));
    return m;
  };

  test('vite: rungs 1, 2, 5, 10 keep less than half the bytes of direct deltas from all, every client within 1.2x over two hops', () => {
    const m = matrix(vite);
    const rungs = chooseRungs(m);
    assert.deepEqual(rungs, [1, 2, 5, 10]);
    const kept = (r: number[]) => vite.reduce((n, _, i) => {
      const k = i + 1;
      const w = [...r].reverse().find((x) => x < k);
      return n + (r.includes(k) || w === undefined ? m[k][0] : m[k][w]);
    }, 0);
    const all = kept(vite.map((_, i) => i + 1));
    assert.ok(kept(rungs) * 2 < all, `ladder ${kept(rungs)} B, direct from all ${all} B`);
    for (let k = 1; k <= vite.length; k++) {
      if (rungs.includes(k)) continue;
      const w = [...rungs].reverse().find((x) => x < k)!;
      assert.ok(m[k][w] + m[w][0] <= 1.2 * m[k][0], `${k} behind via ${w}`);
    }
  });

  test('when two hops cost more than the bound, every snapshot is a rung', () => {
    // Each release rewrites everything: hops add up to twice the direct change.
    const rows = Array.from({ length: 6 }, (_, i) => Array.from({ length: i + 1 }, () => 1000));
    assert.deepEqual(chooseRungs(matrix(rows)), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(chooseRungs([[0]]), []);
  });
});
