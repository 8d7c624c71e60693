/**
 * The offer (issue 14): deltas keyed by old file contents, so a client several snapshots behind
 * pays near the floor `zstd -19 --patch-from` from its version to the newest, counted by nginx.
 * A series of releases is published once; clients that synced at each release are kept, and each
 * test copies one and syncs it to the newest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { cleanupAll, onCleanup, runPaquete, tmpDir } from './helpers/tmp.js';
import { editText, pseudoRandom, textFile, treeDigest, writeTree } from './helpers/trees.js';
import { NginxServer, requireNginx, startNginx } from './helpers/nginx.js';
import { decodeManifest, ManifestBody } from '../src/snapshot/manifest.js';
import { decodeOfferHead, encodeOfferHead } from '../src/delta/offer.js';
import { decodeUpdateHead } from '../src/delta/update.js';
import { compressFrame } from '../src/delta/zstd.js';

after(cleanupAll);

/** Releases published one after another. */
const RELEASES = 7;

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

/** The floor: the newest release compressed against the client's (zstd -19, a raw-content dictionary: --patch-from). */
const floorFrom = (v: number) => compressFrame(laidEnd(release(RELEASES - 1)), { level: 19, dictionary: laidEnd(release(v)) }).length;

async function paquete(args: string[], cwd: string) {
  const r = await runPaquete(args, { cwd, timeoutMs: 120_000 }).done;
  assert.equal(r.code, 0, `paquete ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

describe('offers keyed by content, over nginx', () => {
  let dir: string;
  let ng: NginxServer;
  const manifest = (): ManifestBody => decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
  let run = 0;

  /** A copy of the client that synced at release v, synced now to the newest; nginx's count of it. */
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
      }
      if (v === RELEASES - 1) break;
      await paquete(['init', ng.url, `at${v}`, '--trust', 'pub.key.pub'], dir);
      await paquete(['sync', '-C', `at${v}`], dir);
    }
  });

  test('a client five releases behind takes the offer: frames against the old contents it holds, a byte-identical tree', async () => {
    const entry = manifest().snapshots.at(-1)!;
    assert.ok(entry.offer, 'the newest entry names an offer');
    const head = decodeOfferHead(readFileSync(join(dir, 'remote/updates', `${entry.offer.name}.upd`)));
    const r = await syncFrom(1);
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
    const floor = floorFrom(1);
    assert.ok(r.wire <= 1.5 * floor + 16 * 1024, `five behind: ${r.wire} B by nginx's count, floor ${floor} B`);
  });

  test('an old client meets the offer head as a version it refuses with "upgrade paquete", not as a delta it misreads', () => {
    const entry = manifest().snapshots.at(-1)!;
    const bytes = readFileSync(join(dir, 'remote/updates', `${entry.offer!.name}.upd`));
    assert.equal(bytes[4], 3);
    assert.throws(
      () => decodeUpdateHead(bytes),
      (e: Error & { code?: string; hint?: string }) => e.code === 'BAD_FORMAT' && /version 3 is not supported/.test(e.message) && /upgrade paquete/.test(String(e.hint)),
    );
  });

  test('old updates are pruned: only the newest entry names deltas and an offer, the one before it its stream', () => {
    const m = manifest();
    const older = m.snapshots.slice(0, -2);
    assert.ok(older.every((s) => s.updates === undefined && s.offer === undefined), 'entries before the last two name no updates');
    const prev = m.snapshots.at(-2)!;
    assert.deepEqual(prev.updates?.map((u) => u.from), ['']);
    const names = new Set(readFileSync(join(dir, 'remote/manifest.json'), 'utf8').match(/[0-9a-f]{64}/g));
    for (const f of readdirSync(join(dir, 'remote/updates')).filter((n) => !n.startsWith('.'))) {
      assert.ok(names.has(f.slice(0, 64)), `updates/${f} is named by the manifest`);
    }
  });

  test('from any earlier release, nginx counts at most 1.5x the patch-from floor + 16 KiB, and the tree is the newest (property)', async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: RELEASES - 2 }), async (v) => {
        const r = await syncFrom(v);
        const floor = floorFrom(v);
        t.diagnostic(`from release ${v} (${RELEASES - 1 - v} behind): ${r.wire} B, floor ${floor} B, ${(r.wire / floor).toFixed(2)}x`);
        assert.deepEqual(treeDigest(join(r.work, 'pkg')), treeDigest(join(dir, `r${RELEASES - 1}`, 'pkg')));
        assert.ok(r.wire <= 1.5 * floor + 16 * 1024, `from release ${v}: ${r.wire} B by nginx's count, floor ${floor} B`);
      }),
      { numRuns: 5, seed: 20261202, endOnFailure: true },
    );
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
