import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { cleanupAll, runPaquete, tmpDir } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { publish } from '../src/publish/publisher.js';
import { decodeManifest, encodeManifest, sha256Hex } from '../src/snapshot/manifest.js';
import { decodeSnapshot, encodeSnapshot } from '../src/snapshot/snapshot.js';
import { WorkDir } from '../src/workdir/workdir.js';
import { runSync } from '../src/sync/session.js';
import { exportBundle } from '../src/peer/export.js';
import { importBundles, ImportResult } from '../src/peer/import.js';
import { decodeVolumeHead, encodeVolumeHead, ItemKind, PRELUDE_SIZE } from '../src/peer/bundle.js';
import { idToHex } from '../src/chunk/index.js';
import { summarizeStore } from '../src/peer/local.js';

after(cleanupAll);

/**
 * The corruption matrix: bundles flipped, cut, spliced, reordered, duplicated, replayed, forged.
 * In every case nothing bad lands (the store verifies, holds only chunks a trusted snapshot
 * needs, every placed file is the publisher's) and every good chunk still does. In-process, so
 * the many fresh working directories stay cheap; test/peer-exchange.test.ts is the CLI's view.
 */
type Key = ReturnType<typeof parseSecretKey>;
let root: string;
let key: Key;
let v1: Record<string, string>;
let v2: Record<string, string>;
/** Volumes (3) of a bundle for serial 1, and (1) for serial 2, each with everything. */
let bundle1: string[];
let bundle2: string[];
let ids1: Set<bigint>;
let ids2: Set<bigint>;
let publisherB64: string;

const newKey = (): Key => parseSecretKey(generateKeys().secretPem, 'k');
const snapshotIds = (remote: string): Set<bigint> => {
  const m = decodeManifest(readFileSync(join(remote, 'manifest.json')), 'm').body;
  const name = m.snapshots[m.snapshots.length - 1].name;
  return new Set(decodeSnapshot(readFileSync(join(remote, 'snapshots', `${name}.snap`))).chunks.ids());
};

async function withWork<T>(dir: string, fn: (w: WorkDir) => Promise<T>): Promise<T> {
  const w = await WorkDir.open(dir, 'test');
  try {
    return await fn(w);
  } finally {
    await w.close();
  }
}

let fresh = 0;
/** A working directory that trusts the publisher and has never seen a manifest. */
function freshWorkDir(publisher = publisherB64): string {
  const dir = join(root, `w${++fresh}`);
  WorkDir.create(dir, { version: 1, remotes: [{ location: 'http://127.0.0.1:9/' }], publisher });
  return dir;
}

/** A copy of the bundle volumes in a new directory, to damage. */
function copyVolumes(vols: string[]): string[] {
  const d = join(root, `case${++fresh}`);
  mkdirSync(d);
  return vols.map((v, i) => {
    const to = join(d, `v${i + 1}.pqb`);
    copyFileSync(v, to);
    return to;
  });
}

/** Byte offset of the payload of the n-th chunk record of a volume. */
function chunkAt(path: string, n: number): { id: bigint; offset: number; length: number } {
  const bytes = readFileSync(path);
  const { head, dataStart } = decodeVolumeHead(bytes);
  let pos = dataStart;
  let seen = 0;
  for (const it of head.items) {
    if (it.kind === ItemKind.Chunk && seen++ === n) return { id: it.id, offset: pos, length: it.length };
    pos += it.length;
  }
  throw new Error('no such chunk');
}

async function importInto(dir: string, paths: string[]): Promise<ImportResult> {
  return withWork(dir, (w) => importBundles(w, paths));
}

/** Nothing bad landed: the store verifies, holds only needed chunks, every file is the publisher's. */
async function assertNothingBad(dir: string, allowed: Set<bigint>, digest: Record<string, string>): Promise<void> {
  await withWork(dir, async (w) => {
    const v = await w.store.verify();
    assert.deepEqual(v.problems, []);
    for await (const id of w.store.ids()) assert.ok(allowed.has(id), `chunk ${idToHex(id)} is in no trusted snapshot`);
  });
  for (const [path, sha] of Object.entries(treeDigest(dir))) assert.equal(sha, digest[path], `${path} is not the publisher's`);
}

const storedCount = (dir: string) =>
  withWork(dir, async (w) => {
    let n = 0;
    for await (const _ of w.store.ids()) n++;
    return n;
  });

before(async () => {
  root = await tmpDir('paquete-corrupt-');
  key = newKey();
  publisherB64 = Buffer.from(key.publicKey.raw).toString('base64');
  const files: Record<string, string | Uint8Array> = {
    'a.txt': 'small file\n',
    'b.bin': pseudoRandom(400_000, 1),
    'c.bin': pseudoRandom(300_000, 2),
    'd/e.txt': 'text\n'.repeat(20_000),
  };
  writeTree(join(root, 'site'), files);
  const pub = () => publish({ sources: [{ kind: 'tree', name: 'site', path: join(root, 'site') }], remoteDir: join(root, 'remote'), secret: key.key, publicKey: key.publicKey });
  await pub();
  ids1 = snapshotIds(join(root, 'remote'));
  v1 = Object.fromEntries(Object.entries(treeDigest(join(root, 'site'))).map(([p, h]) => [`site/${p}`, h]));
  WorkDir.create(join(root, 'A'), { version: 1, remotes: [{ location: join(root, 'remote') }], publisher: publisherB64 });
  await withWork(join(root, 'A'), (w) => runSync(w));
  const e1 = await withWork(join(root, 'A'), (w) => exportBundle(w, { to: join(root, 'b1'), maxSize: 330_000 }));
  bundle1 = e1.volumes.map((v) => v.path);
  assert.equal(bundle1.length, 3, 'the matrix wants a bundle of three volumes');

  writeTree(join(root, 'site'), { 'a.txt': 'changed in serial 2\n', 'f.bin': pseudoRandom(50_000, 3) });
  await pub();
  ids2 = snapshotIds(join(root, 'remote'));
  v2 = Object.fromEntries(Object.entries(treeDigest(join(root, 'site'))).map(([p, h]) => [`site/${p}`, h]));
  await withWork(join(root, 'A'), (w) => runSync(w));
  const e2 = await withWork(join(root, 'A'), (w) => exportBundle(w, { to: join(root, 'b2', 'all.pqb') }));
  bundle2 = e2.volumes.map((v) => v.path);
});

describe('corruption matrix over bundles', () => {
  test('intact: all three volumes import, every file lands', async () => {
    const dir = freshWorkDir();
    const r = await importInto(dir, bundle1);
    assert.deepEqual(r.problems, []);
    assert.equal(r.imported.chunks, ids1.size);
    assert.deepEqual(treeDigest(dir), v1);
    await assertNothingBad(dir, ids1, v1);
  });

  test('a flipped bit in one chunk: that chunk is named and refused, every other one imported; the intact copy completes it', async () => {
    const vols = copyVolumes(bundle1);
    const c = chunkAt(vols[1], 3);
    const bytes = readFileSync(vols[1]);
    bytes[c.offset + 17 + Math.floor((c.length - 17) / 2)] ^= 0x10;
    writeFileSync(vols[1], bytes);
    const dir = freshWorkDir();
    const r = await importInto(dir, vols);
    assert.equal(r.rejected, 1);
    assert.equal(r.imported.chunks, ids1.size - 1);
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0].message, new RegExp(`chunk ${idToHex(c.id)} rejected: .*(do not match|does not decompress)`));
    assert.ok(r.placement!.incomplete.length >= 1);
    await assertNothingBad(dir, ids1, v1);
    const again = await importInto(dir, [bundle1[1]]);
    assert.deepEqual(again.problems, []);
    assert.equal(again.imported.chunks, 1);
    assert.deepEqual(treeDigest(dir), v1);
  });

  test('a damaged table of contents: that volume is refused and named missing; the others import', async () => {
    const vols = copyVolumes(bundle1);
    const bytes = readFileSync(vols[0]);
    bytes[PRELUDE_SIZE + 20] ^= 0x01;
    writeFileSync(vols[0], bytes);
    const dir = freshWorkDir();
    const r = await importInto(dir, vols);
    assert.ok(r.problems.some((p) => p.where === vols[0] && /fails its checksum/.test(p.message)));
    assert.ok(r.problems.some((p) => /volume 1 of 3 is missing/.test(p.message)));
    const sizes = decodeVolumeHead(readFileSync(bundle1[1])).head.summary;
    assert.equal(r.imported.chunks, sizes[1].chunks + sizes[2].chunks);
    assert.equal(r.bundles[0].manifest, 'accepted');
    await assertNothingBad(dir, ids1, v1);
  });

  test('a truncated volume: the chunks before the cut import, the rest is counted as cut off', async () => {
    const vols = copyVolumes(bundle1);
    const c = chunkAt(vols[2], 10);
    writeFileSync(vols[2], readFileSync(vols[2]).subarray(0, c.offset + 5));
    writeFileSync(vols[1], readFileSync(vols[1]).subarray(0, 30));
    const dir = freshWorkDir();
    const r = await importInto(dir, vols);
    const sizes = decodeVolumeHead(readFileSync(bundle1[0])).head.summary;
    assert.equal(r.imported.chunks, sizes[0].chunks + 10);
    assert.equal(r.lost, sizes[2].chunks - 10);
    assert.ok(r.problems.some((p) => /cut short: \d+ chunks?/.test(p.message)));
    assert.ok(r.problems.some((p) => p.where === vols[1] && /cut short/.test(p.message)));
    assert.ok(r.problems.some((p) => /volume 2 of 3 is missing/.test(p.message)));
    await assertNothingBad(dir, ids1, v1);
  });

  test('spliced volumes: one table over another volume\'s records, and two volumes joined in one file', async () => {
    const vols = copyVolumes(bundle1);
    const two = readFileSync(bundle1[1]);
    const three = readFileSync(bundle1[2]);
    const h2 = decodeVolumeHead(two);
    const h3 = decodeVolumeHead(three);
    writeFileSync(vols[1], Buffer.concat([two.subarray(0, h2.dataStart), three.subarray(h3.dataStart)]));
    writeFileSync(vols[0], Buffer.concat([readFileSync(bundle1[0]), two]));
    const dir = freshWorkDir();
    const r = await importInto(dir, [vols[0], vols[1]]);
    assert.ok(r.rejected > 0);
    assert.ok(r.notes.some((n) => /bytes after its last item/.test(n)), JSON.stringify(r.notes));
    assert.ok(r.problems.some((p) => /the record holds [0-9a-f]{16} where the table says/.test(p.message)));
    await assertNothingBad(dir, ids1, v1);
  });

  test('volumes reordered and duplicated: noted, read once each, everything lands', async () => {
    const copy = copyVolumes([bundle1[0]])[0];
    const dir = freshWorkDir();
    const r = await importInto(dir, [bundle1[2], bundle1[0], bundle1[1], copy]);
    assert.deepEqual(r.problems, []);
    assert.ok(r.notes.some((n) => /again/.test(n)));
    assert.ok(r.notes.some((n) => /out of order/.test(n)));
    assert.deepEqual(treeDigest(dir), v1);
  });

  test('a replayed older bundle: its manifest is refused as a rollback, the newer files stay, nothing it has lands unless still needed', async () => {
    const dir = freshWorkDir();
    const r2 = await importInto(dir, bundle2);
    assert.deepEqual(r2.problems, []);
    const before = await storedCount(dir);
    const r1 = await importInto(dir, bundle1);
    assert.ok(r1.problems.some((p) => /offers manifest 1, older than 2 already seen/.test(p.message)));
    assert.equal(r1.bundles[0].manifest, 'refused');
    assert.equal(r1.imported.chunks, 0);
    assert.ok(r1.notNeeded > 0);
    assert.equal(await storedCount(dir), before);
    const trusted = decodeManifest(readFileSync(join(dir, '.paquete/manifest.json')), 'm');
    assert.equal(trusted.body.serial, 2);
    assert.deepEqual(treeDigest(dir), v2);
    await assertNothingBad(dir, ids2, v2);

    // Both at once, old given last or first: the newer one wins.
    const both = freshWorkDir();
    const r = await importInto(both, [...bundle2, ...bundle1]);
    assert.equal(r.bundles.find((b) => b.serial === 2)!.manifest, 'accepted');
    assert.deepEqual(treeDigest(both), v2);
    await assertNothingBad(both, new Set([...ids1, ...ids2]), v2);
  });

  test('an older bundle still gives the chunks the newer snapshot needs', async () => {
    const dir = freshWorkDir();
    // Only the manifest and index of serial 2: an update bundle for a friend who "has everything".
    const meta = await withWork(join(root, 'A'), async (w) =>
      exportBundle(w, { to: join(root, 'meta.pqb'), have: { ...(await summarizeStore(w)), snapshots: [] } }),
    );
    assert.equal(meta.chunks, 0);
    await importInto(dir, [meta.volumes[0].path]);
    const r = await importInto(dir, bundle1);
    assert.equal(r.bundles[0].manifest, 'refused');
    const shared = [...ids1].filter((id) => ids2.has(id)).length;
    assert.equal(r.imported.chunks, shared);
    await assertNothingBad(dir, ids2, v2);
    assert.ok(existsSync(join(dir, 'site/b.bin')), 'unchanged files of serial 2 placed from the old bundle');
  });

  test('a bundle for another publisher, and a directory trusting another key: refused, nothing stored', async () => {
    const other = newKey();
    const dir = freshWorkDir(Buffer.from(other.publicKey.raw).toString('base64'));
    const r = await importInto(dir, bundle1);
    assert.ok(r.problems.some((p) => /made for the publisher SHA256:.* but this directory trusts/.test(p.message)));
    assert.equal(await storedCount(dir), 0);
    assert.deepEqual(treeDigest(dir), {});
  });

  test('a tampered manifest in every volume: refused by its signature, nothing stored or placed', async () => {
    const vols = copyVolumes(bundle1);
    for (const v of vols) {
      const bytes = readFileSync(v);
      const { dataStart } = decodeVolumeHead(bytes);
      const text = bytes.subarray(dataStart, dataStart + 400).toString('latin1');
      const at = dataStart + text.indexOf('"serial":') + '"serial":'.length;
      bytes[at] = bytes[at] === 0x31 ? 0x39 : 0x31;
      writeFileSync(v, bytes);
    }
    const dir = freshWorkDir();
    const r = await importInto(dir, vols);
    assert.ok(r.problems.some((p) => /not signed by the key it names/.test(p.message)), JSON.stringify(r.problems));
    assert.equal(r.bundles[0].manifest, 'unreadable');
    assert.equal(r.imported.chunks, 0);
    assert.equal(await storedCount(dir), 0);
    assert.deepEqual(treeDigest(dir), {});
  });

  test('a file name escaping the directory, even signed by the real key: refused before anything is written', async () => {
    const m = decodeManifest(readFileSync(join(root, 'remote/manifest.json')), 'm').body;
    const entry = m.snapshots[m.snapshots.length - 1];
    const snap = decodeSnapshot(readFileSync(join(root, 'remote/snapshots', `${entry.name}.snap`)));
    snap.files[0].path = 'site/../../escaped.txt';
    const snapBytes = encodeSnapshot(snap);
    const name = sha256Hex(snapBytes);
    const manifest = encodeManifest({ ...m, serial: m.serial + 5, snapshots: [{ ...entry, name, size: snapBytes.length }] }, key.key);
    // A hand-made bundle: the forged manifest and snapshot, and the chunk records of bundle 2.
    const src = readFileSync(bundle2[0]);
    const { head, dataStart } = decodeVolumeHead(src);
    let pos = dataStart;
    const records: Buffer[] = [];
    const items = [{ kind: ItemKind.Manifest as const, length: manifest.length }, { kind: ItemKind.Snapshot as const, name, length: snapBytes.length }];
    const chunkItems = [];
    for (const it of head.items) {
      if (it.kind === ItemKind.Chunk) {
        records.push(src.subarray(pos, pos + it.length));
        chunkItems.push(it);
      }
      pos += it.length;
    }
    const all = [...items, ...chunkItems];
    const bytes = all.reduce((a, it) => a + it.length, 0);
    const forged = Buffer.concat([
      encodeVolumeHead({ ...head, target: name, serial: m.serial + 5, summary: [{ chunks: chunkItems.length, bytes }], items: all }),
      manifest,
      snapBytes,
      ...records,
    ]);
    const path = join(root, 'forged.pqb');
    writeFileSync(path, forged);
    const dir = freshWorkDir();
    const r = await importInto(dir, [path]);
    assert.ok(r.problems.some((p) => /refusing file name .*escapes/.test(p.message)), JSON.stringify(r.problems));
    assert.equal(r.bundles[0].manifest, 'refused');
    assert.equal(existsSync(join(root, 'escaped.txt')), false);
    assert.equal(existsSync(join(dir, '..', 'escaped.txt')), false);
    assert.deepEqual(treeDigest(dir), {});
    assert.equal(await storedCount(dir), 0);
  });

  test('absurd length fields: a record claiming 2 GB inside a sane table, a table claiming 2^40-byte records', async () => {
    const vols = copyVolumes(bundle1);
    const c = chunkAt(vols[0], 0);
    const bytes = readFileSync(vols[0]);
    bytes.writeUInt32LE(2_000_000_000, c.offset + 13);
    writeFileSync(vols[0], bytes);
    const h = decodeVolumeHead(readFileSync(bundle1[1])).head;
    const absurd = { ...h, summary: h.summary.map((s, i) => (i === 1 ? { chunks: 1, bytes: 2 ** 40 } : s)), items: [{ kind: ItemKind.Chunk as const, id: 1n, length: 2 ** 40 }] };
    writeFileSync(vols[1], encodeVolumeHead(absurd));
    const dir = freshWorkDir();
    const r = await importInto(dir, vols);
    assert.ok(r.problems.some((p) => /claims 2000000000 stored bytes/.test(p.message)), JSON.stringify(r.problems));
    assert.ok(r.problems.some((p) => p.where === vols[1] && /a chunk record of 1099511627776 bytes/.test(p.message)));
    assert.equal(r.rejected, 1);
    await assertNothingBad(dir, ids1, v1);
  });

  test('random damage of every kind (fast-check): import never throws, nothing bad lands', async () => {
    const originals = bundle1.map((p) => readFileSync(p));
    const damage = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), vol: fc.nat(2), at: fc.nat(), bit: fc.nat(7) }),
      fc.record({ kind: fc.constant('cut' as const), vol: fc.nat(2), at: fc.nat() }),
      fc.record({ kind: fc.constant('splice' as const), vol: fc.nat(2), from: fc.nat(2), at: fc.nat() }),
      fc.record({ kind: fc.constant('drop' as const), vol: fc.nat(2) }),
      fc.record({ kind: fc.constant('dup' as const), vol: fc.nat(2) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(damage, { minLength: 1, maxLength: 4 }), fc.boolean(), async (damages, reverse) => {
        const vols: (Buffer | undefined)[] = originals.map((b) => Buffer.from(b));
        const extra: Buffer[] = [];
        for (const d of damages) {
          const b = vols[d.vol];
          if (!b) continue;
          if (d.kind === 'flip') b[d.at % b.length] ^= 1 << d.bit;
          else if (d.kind === 'cut') vols[d.vol] = b.subarray(0, d.at % b.length);
          else if (d.kind === 'splice') {
            const other = originals[d.from];
            const at = d.at % Math.min(b.length, other.length);
            vols[d.vol] = Buffer.concat([b.subarray(0, at), other.subarray(at)]);
          } else if (d.kind === 'drop') vols[d.vol] = undefined;
          else extra.push(Buffer.from(b));
        }
        const d = join(root, `fuzz${++fresh}`);
        mkdirSync(d);
        const paths = [...vols, ...extra].flatMap((b, i) => {
          if (!b) return [];
          writeFileSync(join(d, `v${i}.pqb`), b);
          return [join(d, `v${i}.pqb`)];
        });
        if (reverse) paths.reverse();
        const dir = freshWorkDir();
        await importInto(dir, paths);
        await assertNothingBad(dir, ids1, v1);
      }),
      { numRuns: 12 },
    );
  });

  test('the CLI reports problems one per line, exits 1, and no stack trace', async () => {
    const vols = copyVolumes(bundle1);
    writeFileSync(vols[2], readFileSync(vols[2]).subarray(0, 1000));
    const dir = freshWorkDir();
    const r = await runPaquete(['import', '-C', dir, ...vols.slice(1)]).done;
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /);
    assert.match(r.stdout, /^problem: bundle [0-9a-f]{8}: volume 1 of 3 is missing \(\d+ chunks, [\d.]+ kB\); import it when you have it$/m);
    assert.match(r.stdout, /^problem: bundle [0-9a-f]{8} volume 3: cut short: \d+ chunks?/m);
    assert.match(r.stdout, /^imported \d+ chunks/m);
    // No temp file left (the directory itself exists only once something was placed).
    const tmp = join(dir, '.paquete/tmp');
    assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], []);
  });
});
