import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, tmpDir } from './helpers/tmp.js';
import { seededRandom, writeTree } from './helpers/trees.js';
import { publish, PublishResult } from '../src/publish/publisher.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { decodeManifest, ManifestBody, ManifestSnapshot, sha256Hex } from '../src/snapshot/manifest.js';
import { ChunkTable, decodeSnapshot, encodeSnapshotBody, Snapshot, snapshotBody } from '../src/snapshot/snapshot.js';
import { decodeUpdateHead, encodeUpdateHead, frameSource, FRAMES_HEADER_SIZE, resolveBaseRanges, unpackHead, UpdateHead, UPDATE_VERSION_SEGMENTS } from '../src/delta/update.js';
import { compressFrame, decompressExact, LONG_MATCH_MIN, MAX_WINDOW_LOG } from '../src/delta/zstd.js';
import { decodeFrame } from '../src/delta/decode-thread.js';
import { baseBytes, planDeltaFrames, planFileFrames, planSegments, planSolidFrames, ReadFileRange, SEGMENT_MAX, SEGMENT_MIN, SOLID_FRAME_RAW } from '../src/delta/build.js';
import { PaqueteError } from '../src/errors.js';
import type { ChunkEntry } from '../src/snapshot/chunk-table.js';

after(cleanupAll);

/** Text that compresses like source code: lines of words from a small vocabulary. */
function textish(size: number, seed: number): string {
  const rnd = seededRandom(seed);
  const words = Array.from({ length: 400 }, (_, i) => `w${(i * 2654435761) % 100000}`);
  let s = '';
  while (s.length < size) {
    const n = 3 + Math.floor(rnd() * 8);
    const line: string[] = [];
    for (let i = 0; i < n; i++) line.push(words[Math.floor(rnd() ** 2 * words.length)]);
    s += `${'  '.repeat(Math.floor(rnd() * 4))}${line.join(' ')};\n`;
  }
  return s.slice(0, size);
}

const big = textish(3_200_000, 1);
const V1: Record<string, string> = {
  'big.js': big,
  'empty.txt': '',
  'same.txt': textish(20_000, 2),
  'lib/old-name.js': textish(300_000, 3),
  'pkg-1.0/setup.py': textish(900, 4),
};
/** A small edit of v1: changes in a large file, a rename, a versioned directory, a new file. */
const V2: Record<string, string> = {
  'big.js': big.slice(0, 1_000_000) + 'an insertion\n'.repeat(20) + big.slice(1_000_000, 2_500_000) + textish(3000, 5) + big.slice(2_503_000) + textish(50_000, 6),
  'empty.txt': '',
  'same.txt': V1['same.txt'],
  'lib/new-name.js': V1['lib/old-name.js'].replace('w0', 'renamed'),
  'pkg-1.1/setup.py': V1['pkg-1.0/setup.py'].replace('w', 'version = "1.1"\n'),
  'fresh/new.txt': textish(40_000, 7),
};

interface Published {
  entry: ManifestSnapshot;
  snapshot: Snapshot;
  dir: string;
  result: PublishResult;
}

/** The raw bytes of every chunk of a snapshot, cut from the source tree on disk (not from the remote). */
function chunkBytesFromTree(p: Published): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const f of p.snapshot.files) {
    const bytes = readFileSync(join(p.dir, f.path.slice('site/'.length)));
    let offset = 0;
    for (const i of f.chunks) {
      const n = p.snapshot.chunks.rawLength[i];
      out.set(i, bytes.subarray(offset, offset + n));
      offset += n;
    }
  }
  return out;
}

const readFromTree =
  (p: Published): ReadFileRange =>
  (file, start, length) =>
    readFileSync(join(p.dir, file.path.slice('site/'.length))).subarray(start, start + length);

describe('updates written by publish', () => {
  let remote: string;
  let v1: Published;
  let v2: Published;
  let manifest: ManifestBody;
  const heads = new Map<string, UpdateHead>();

  before(async () => {
    const root = await tmpDir('paquete-delta-');
    remote = join(root, 'remote');
    const { key, publicKey } = parseSecretKey(generateKeys().secretPem, 'test key');
    const pub = async (version: Record<string, string>, name: string): Promise<[PublishResult, string]> => {
      const dir = join(root, name);
      writeTree(dir, version);
      // Level 12, not the default 19: the plan is the same, and 19 takes ~9 s on these 4 MB.
      return [await publish({ sources: [{ kind: 'tree', name: 'site', path: dir }], remoteDir: remote, secret: key, publicKey, level: 12 }), dir];
    };
    const [r1, d1] = await pub(V1, 'v1');
    const [r2, d2] = await pub(V2, 'v2');
    manifest = decodeManifest(readFileSync(join(remote, 'manifest.json')), 'remote').body;
    const load = (i: number, dir: string, result: PublishResult): Published => {
      const entry = manifest.snapshots[i];
      return { entry, dir, result, snapshot: decodeSnapshot(readFileSync(join(remote, 'snapshots', `${entry.name}.snap`))) };
    };
    v1 = load(0, d1, r1);
    v2 = load(1, d2, r2);
    for (const s of manifest.snapshots) {
      for (const u of s.updates ?? []) {
        const bytes = readFileSync(join(remote, 'updates', `${u.name}.upd`));
        assert.equal(sha256Hex(bytes), u.name, 'a head is named by its SHA-256');
        assert.equal(bytes.length, u.size);
        const base = u.from ? decodeSnapshot(readFileSync(join(remote, 'snapshots', `${u.from}.snap`))) : null;
        heads.set(u.name, resolveBaseRanges(decodeUpdateHead(bytes), base));
      }
    }
  });

  const updateOf = (p: Published, from: string) => {
    const ref = p.entry.updates?.find((u) => u.from === from);
    assert.ok(ref, `snapshot ${p.entry.name.slice(0, 8)} has an update from ${from || 'nothing'}`);
    const head = heads.get(ref.name)!;
    const frames = readFileSync(join(remote, 'frames', `${head.framesFile}.frames`));
    assert.equal(sha256Hex(frames), head.framesFile, 'a frames file is named by its SHA-256');
    assert.equal(frames.length, head.framesSize);
    return { ref, head, frames };
  };

  /** Decodes every frame and checks its content is exactly its chunks; returns how often each chunk was yielded. */
  function checkFrames(target: Published, base: Published | undefined, head: UpdateHead, frames: Buffer): Map<number, number> {
    const want = chunkBytesFromTree(target);
    const yielded = new Map<number, number>();
    for (const f of head.frames) {
      const expected = Buffer.concat(f.yields.map((i) => want.get(i)!));
      const dictionary = f.bases.length ? baseBytes(base!.snapshot, f.bases, readFromTree(base!)) : undefined;
      assert.ok(!f.bases.length || base, 'only a delta has base ranges');
      const got = decompressExact(frames.subarray(f.offset, f.offset + f.length), expected.length, dictionary);
      assert.ok(Buffer.from(got).equals(expected), 'a frame decodes to exactly the chunks it yields');
      for (const i of f.yields) yielded.set(i, (yielded.get(i) ?? 0) + 1);
    }
    return yielded;
  }

  test('the manifest names each new snapshot body and its updates; old entries stay as they were', () => {
    assert.equal(manifest.snapshots.length, 2);
    for (const p of [v1, v2]) {
      assert.equal(p.entry.body, sha256Hex(snapshotBody(readFileSync(join(remote, 'snapshots', `${p.entry.name}.snap`)))));
    }
    // v1's stream is one segment, all of it changed: kept beside v2's, updates would pass 2x v2's stream.
    assert.equal(v1.entry.updates, undefined);
    assert.deepEqual(v2.entry.updates?.map((u) => u.from), ['', v1.entry.name]);
    assert.deepEqual(v2.result.updates.map((u) => u.from), ['', v1.entry.name]);
    assert.ok(v2.result.updatesMs > 0);
  });

  test('the update from nothing yields every chunk of the snapshot exactly once', () => {
    const { head, frames } = updateOf(v2, '');
    assert.equal(head.target, v2.entry.name);
    assert.equal(head.base, null);
    assert.equal(head.indexBodySize, 0);
    assert.equal(head.frames[0].offset, FRAMES_HEADER_SIZE);
    const yielded = checkFrames(v2, undefined, head, frames);
    assert.equal(yielded.size, v2.snapshot.chunks.length);
    assert.ok([...yielded.values()].every((n) => n === 1));
  });

  test('the delta update yields exactly the chunks the base lacks, once each, and its index delta rebuilds the index', () => {
    const { head, frames } = updateOf(v2, v1.entry.name);
    assert.equal(head.target, v2.entry.name);
    assert.equal(head.base, v1.entry.name);
    const yielded = checkFrames(v2, v1, head, frames);
    const inBase = new Set(v1.snapshot.chunks.ids());
    const missing = v2.snapshot.chunks.ids().flatMap((id, i) => (inBase.has(id) ? [] : [i]));
    assert.ok(missing.length > 0);
    assert.deepEqual([...yielded.keys()].sort((a, b) => a - b), missing);
    assert.ok([...yielded.values()].every((n) => n === 1));
    const body = decompressExact(head.indexDelta, head.indexBodySize, encodeSnapshotBody(v1.snapshot));
    assert.ok(Buffer.from(body).equals(Buffer.from(encodeSnapshotBody(v2.snapshot))));
    assert.equal(sha256Hex(body), v2.entry.body);
  });

  test('each changed file is compressed against its likeliest old file: same path, most shared chunks, same name', () => {
    // File by file, before small frames are pooled (pooling only lays their dictionaries end to end).
    const head = { frames: planFileFrames(v2.snapshot, v1.snapshot) };
    const fileOf = new Map<number, string>();
    for (const f of [...v2.snapshot.files].reverse()) for (const i of f.chunks) fileOf.set(i, f.path);
    const basesOf = (path: string) => head.frames.filter((f) => fileOf.get(f.yields[0]) === path).flatMap((f) => f.bases.map((b) => v1.snapshot.files[b.file].path));
    assert.ok(basesOf('site/big.js').every((p) => p === 'site/big.js') && basesOf('site/big.js').length > 0);
    assert.deepEqual([...new Set(basesOf('site/lib/new-name.js'))], ['site/lib/old-name.js']);
    assert.deepEqual(basesOf('site/pkg-1.1/setup.py'), ['site/pkg-1.0/setup.py']);
    assert.deepEqual(basesOf('site/fresh/new.txt'), [], 'a file like no old file has no base of its own (it takes its pool\'s dictionary)');
    // big.js is larger than a whole-file dictionary: its frames get windows, not the whole file.
    const windows = head.frames.flatMap((f) => f.bases).filter((b) => v1.snapshot.files[b.file].path === 'site/big.js');
    assert.ok(windows.every((b) => b.length < v1.snapshot.files[b.file].size));
  });

  test('for a small edit the delta update is a small fraction of the update from nothing', () => {
    const solid = v2.result.updates.find((u) => u.from === '')!;
    const delta = v2.result.updates.find((u) => u.from === v1.entry.name)!;
    const total = (u: typeof solid) => u.size + u.framesBytes;
    assert.ok(total(delta) * 8 < total(solid), `delta ${total(delta)} B vs solid ${total(solid)} B`);
  });

  test('a delta frame read without its dictionary fails or gives other bytes', () => {
    const { head, frames } = updateOf(v2, v1.entry.name);
    const f = head.frames.find((x) => x.bases.length && x.yields.length > 4)!;
    const want = chunkBytesFromTree(v2);
    const expected = Buffer.concat(f.yields.map((i) => want.get(i)!));
    const frame = frames.subarray(f.offset, f.offset + f.length);
    try {
      const got = decompressExact(frame, expected.length);
      assert.ok(!Buffer.from(got).equals(expected), 'decoded to the right bytes without its dictionary');
    } catch (e) {
      assert.ok(e instanceof PaqueteError && e.code === 'DAMAGED_PACK', `expected DAMAGED_PACK, got ${e}`);
    }
  });

  test('base ranges outside the base snapshot are refused before anything is read', () => {
    const read: ReadFileRange = () => assert.fail('nothing may be read');
    const size = v1.snapshot.files[0].size;
    assert.throws(() => baseBytes(v1.snapshot, [{ file: v1.snapshot.files.length, start: 0, length: 1 }], read), /BAD_FORMAT|does not have/);
    assert.throws(() => baseBytes(v1.snapshot, [{ file: 0, start: size, length: 1 }], read), /does not have/);
  });

  test('an unchanged snapshot plans no delta frames', () => {
    assert.deepEqual(planDeltaFrames(v2.snapshot, v2.snapshot), []);
  });
});

test('publish options: no solid update, no deltas; a first publish killed after writing updates leaves a directory publish accepts', async () => {
  const root = await tmpDir('paquete-delta-opts-');
  const { key, publicKey } = parseSecretKey(generateKeys().secretPem, 'test key');
  const remote = join(root, 'remote');
  mkdirSync(join(remote, 'updates'), { recursive: true });
  mkdirSync(join(remote, 'frames'), { recursive: true });
  writeTree(join(root, 'src'), { 'a.txt': textish(5000, 9) });
  const r = await publish({ sources: [{ kind: 'tree', name: 'src', path: join(root, 'src') }], remoteDir: remote, secret: key, publicKey, solid: false, updatesFrom: 0 });
  assert.deepEqual(r.updates, []);
  const m = decodeManifest(readFileSync(join(remote, 'manifest.json')), 'remote').body;
  assert.equal(m.snapshots[0].updates, undefined);
  assert.match(m.snapshots[0].body ?? '', /^[0-9a-f]{64}$/);
  await assert.rejects(
    publish({ sources: [{ kind: 'tree', name: 'src', path: join(root, 'src') }], remoteDir: remote, secret: key, publicKey, level: 23 }),
    (e: unknown) => e instanceof PaqueteError && e.code === 'USAGE',
  );
});

test('small changed files are pooled into one frame, their base files laid end to end in file order', () => {
  // 100 files of one 2 kB chunk each, every one changed: one frame, not 100.
  const snap = (v: number): Snapshot => ({
    params: { minSize: 1024, avgSize: 4096, maxSize: 32768 },
    created: 0,
    sources: [{ kind: 'tree', name: 's' }],
    packs: ['00'.repeat(32)],
    chunks: ChunkTable.of(Array.from({ length: 100 }, (_, i) => ({ id: BigInt(v * 1000 + i), pack: 0, offset: 8 + i * 2017, repr: 0, rawLength: 2000, storedLength: 2000 }))),
    files: Array.from({ length: 100 }, (_, i) => ({ path: `s/f${String(i).padStart(3, '0')}`, mode: 0o644, size: 2000, sha256: new Uint8Array(32), chunks: [i] })),
  });
  const [oldS, newS] = [snap(1), snap(2)];
  const frames = planDeltaFrames(newS, oldS);
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0].yields, newS.files.map((f) => f.chunks[0]));
  assert.deepEqual(frames[0].bases.map((b) => b.file), oldS.files.map((_, i) => i));
  assert.ok(frames[0].bases.every((b) => b.start === 0 && b.length === 2000));
});

/** An index only (planning reads no bytes): files of `sizes` in 64 KiB chunks, chunk ids from `idOf(path, k)`. */
function indexOnly(sizes: [string, number][], idOf: (path: string, k: number) => bigint = (p, k) => BigInt(`0x${sha256Hex(Buffer.from(`${p}:${k}`)).slice(0, 15)}`)): Snapshot {
  const chunk = 64 << 10;
  const entries: ChunkEntry[] = [];
  const files = sizes.map(([path, size]) => {
    const own: number[] = [];
    for (let left = size, k = 0; left > 0; left -= chunk, k++) {
      own.push(entries.length);
      entries.push({ id: idOf(path, k), pack: 0, offset: 0, repr: 0, rawLength: Math.min(chunk, left), storedLength: 1 });
    }
    return { path, mode: 0o644, size, sha256: new Uint8Array(32), chunks: own };
  });
  return { params: { minSize: 1024, avgSize: 4096, maxSize: 32768 }, created: 0, sources: [], packs: ['0'.repeat(64)], chunks: ChunkTable.of(entries), files } as unknown as Snapshot;
}

test('the update from nothing: a file past a segment lies alone in one, in frames of up to the window every reader accepts (a 60 MB file in one)', () => {
  const s = indexOnly([['p/a.whl', 60e6], ['p/b.whl', 100e6], ['p/c.whl', 150e6]]);
  const plan = planSolidFrames(s);
  const contentOf = (f: { yields: number[] }) => f.yields.reduce((n, i) => n + s.chunks.rawLength[i], 0);
  assert.equal(SOLID_FRAME_RAW, 2 ** MAX_WINDOW_LOG);
  assert.deepEqual(plan.map(contentOf), [60e6, 100e6, SOLID_FRAME_RAW, 150e6 - SOLID_FRAME_RAW]);
  assert.deepEqual(planSegments(s).map((g) => g.files), [[0], [1], [2]]);
  assert.ok(plan.every((f) => f.bases.length === 0));
});

test('segments of the update from nothing: path-hashed bounds, so one changed file changes its own segment only; smallest files first', () => {
  // 3 sources of 80 files of 10 kB to 6 MB (~240 MB each): several segments each.
  const sizes: [string, number][] = [];
  for (const src of ['a', 'b', 'c']) for (let k = 0; k < 80; k++) sizes.push([`${src}/d${k % 7}/f${String(k).padStart(3, '0')}`, 10_000 + ((k * 7_919_000) % 6_000_000)]);
  sizes.sort((x, y) => (x[0] < y[0] ? -1 : 1));
  const before = indexOnly(sizes);
  const segs = planSegments(before);
  assert.ok(segs.length >= 6, `${segs.length} segments`);
  const paths = (g: { files: number[] }) => g.files.map((k) => before.files[k].path);
  for (const g of segs) {
    const raw = g.files.reduce((n, k) => n + before.files[k].size, 0);
    assert.ok(raw <= SEGMENT_MAX, `a segment of ${raw} bytes`);
    assert.equal(new Set(paths(g).map((p) => p[0])).size, 1, 'a segment never spans two sources');
    assert.deepEqual(g.files.map((k) => before.files[k].size), g.files.map((k) => before.files[k].size).sort((x, y) => x - y), 'smallest files first inside a segment');
  }
  // Every segment but the last of its source reached the minimum before it ended.
  const lastOf = new Map<string, number>();
  for (const g of segs) lastOf.set(paths(g)[0][0], Math.max(lastOf.get(paths(g)[0][0]) ?? 0, Math.min(...g.files)));
  for (const g of segs) if (lastOf.get(paths(g)[0][0]) !== Math.min(...g.files)) assert.ok(g.files.reduce((n, k) => n + before.files[k].size, 0) >= SEGMENT_MIN);
  const mean = (g: { files: number[] }) => g.files.reduce((n, k) => n + before.files[k].size, 0) / g.files.length;
  assert.deepEqual(segs.map(mean), segs.map(mean).sort((x, y) => x - y), 'segments by mean file size, smallest first');
  // One file's content changes: only the segment holding it has other chunks.
  const changed = sizes[100][0];
  const after = indexOnly(sizes, (p, k) => BigInt(`0x${sha256Hex(Buffer.from(`${p}:${k}${p === changed ? ':v2' : ''}`)).slice(0, 15)}`));
  const key = (s: Snapshot, g: { frames: { yields: number[] }[] }) => g.frames.map((f) => f.yields.map((i) => s.chunks.id(i)).join(',')).join('|');
  const old = new Set(segs.map((g) => key(before, g)));
  const differ = planSegments(after).filter((g) => !old.has(key(after, g)));
  assert.equal(differ.length, 1);
  assert.ok(differ[0].files.some((k) => after.files[k].path === changed));
});

test('a long frame from nothing finds content repeated from beyond the match finder’s own reach (long-distance matching), and the decode worker gives it back', async () => {
  // 6 MiB of noise, 6 MiB of other noise, then the first 6 MiB again in shuffled 4 KiB blocks:
  // each block is a match 6-18 MiB back to be found afresh. Level 3 alone found few (0.92 of
  // the content), with long-distance matching nearly all (0.67).
  const rnd = seededRandom(11);
  const noise = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  const a = noise(6 << 20);
  const blocks: Buffer[] = [];
  for (let i = 0; i < a.length; i += 4096) blocks.push(a.subarray(i, i + 4096));
  for (let i = blocks.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [blocks[i], blocks[j]] = [blocks[j], blocks[i]];
  }
  const content = Buffer.concat([a, noise(6 << 20), ...blocks]);
  assert.ok(content.length >= LONG_MATCH_MIN);
  const frame = compressFrame(content, { level: 3 });
  assert.ok(frame.length < 0.75 * content.length, `${frame.length} bytes for ${content.length}: the repeated blocks were found`);
  // In one push: many of the worker's output pieces for one message.
  const decoding = decodeFrame(content.length);
  decoding.push(frame);
  const taken: Uint8Array[] = [];
  let left = content.length;
  const takeAll = async () => {
    for (let piece; left > 0 && (piece = decoding.take(Math.min(1 << 20, left))); left -= piece.length) taken.push(Uint8Array.from(piece));
  };
  await decoding.end(takeAll);
  await takeAll();
  assert.equal(left, 0);
  assert.ok(Buffer.concat(taken).equals(content));
});

test('a publish keeps the stream segments whose files did not change, by name; a reader of versions 1-3 refuses a segmented head with "upgrade paquete" and its release', async () => {
  const root = await tmpDir('paquete-segments-');
  const { key, publicKey } = parseSecretKey(generateKeys().secretPem, 'test key');
  const remote = join(root, 'remote');
  // Two sources: segments never span two, so each is a segment of its own here.
  const tree = (v: number) => {
    writeTree(join(root, 'a'), { 'one.js': textish(120_000, 11), 'two.js': textish(80_000, 12) });
    writeTree(join(root, 'b'), { 'three.js': textish(150_000, 13 + v) });
  };
  const pub = () =>
    publish({
      sources: [
        { kind: 'tree', name: 'a', path: join(root, 'a') },
        { kind: 'tree', name: 'b', path: join(root, 'b') },
      ],
      remoteDir: remote,
      secret: key,
      publicKey,
      level: 3,
      pruneAfterMs: 0,
    });
  const streamOf = (r: PublishResult) => {
    const u = r.updates.find((x) => x.from === '')!;
    const bytes = readFileSync(join(remote, 'updates', `${u.name}.upd`));
    return { u, bytes, head: decodeUpdateHead(bytes) };
  };
  tree(1);
  const first = streamOf(await pub());
  tree(2);
  const r2 = await pub();
  const second = streamOf(r2);
  assert.equal(second.bytes[4], UPDATE_VERSION_SEGMENTS);
  assert.equal(first.head.segments!.length, 2);
  assert.equal(second.head.segments!.length, 2);
  assert.equal(second.u.reusedSegments, 1, 'the segment of source a is kept');
  const names = (h: UpdateHead) => new Set(h.segments!.map((s) => s.name));
  const kept = [...names(second.head)].filter((n) => names(first.head).has(n));
  assert.equal(kept.length, 1);
  // Each frame of the new stream decodes, from its segment's file, to the chunks it yields.
  const s2 = decodeSnapshot(readFileSync(join(remote, 'snapshots', `${r2.snapshot}.snap`)));
  const content = new Map<string, Buffer>();
  for (const f of s2.files) content.set(f.path, readFileSync(join(root, f.path)));
  const chunkBytes = new Map<number, Buffer>();
  for (const f of s2.files) {
    let at = 0;
    for (const i of f.chunks) chunkBytes.set(i, content.get(f.path)!.subarray(at, (at += s2.chunks.rawLength[i])));
  }
  const yielded = new Set<number>();
  for (const f of second.head.frames) {
    const where = frameSource(second.head, f.offset, f.offset + f.length);
    const file = readFileSync(join(remote, 'frames', `${where.file}.frames`));
    assert.equal(sha256Hex(file), where.file);
    const expected = Buffer.concat(f.yields.map((i) => chunkBytes.get(i)!));
    assert.ok(Buffer.from(decompressExact(file.subarray(where.offset, where.offset + f.length), expected.length)).equals(expected));
    for (const i of f.yields) yielded.add(i);
  }
  assert.equal(yielded.size, s2.chunks.length, 'the segments yield every chunk of the snapshot');
  // The old b segment: named by nothing, pruned at once (--prune-after 0); the kept one is still there.
  const gone = [...names(first.head)].find((n) => !names(second.head).has(n))!;
  assert.throws(() => readFileSync(join(remote, 'frames', `${gone}.frames`)), /ENOENT/);
  assert.throws(
    () => unpackHead(second.bytes, 'update head', [1, 2, 3]), // what a paquete before head version 4 read
    (e: Error & { code?: string; hint?: string }) => e.code === 'BAD_FORMAT' && /version 4, which this paquete .* does not read \(it reads .* 1-3\)/.test(e.message) && /^upgrade paquete: .* version 4 needs a newer release/.test(String(e.hint)),
  );
  // The head round-trips byte for byte.
  assert.ok(Buffer.from(encodeUpdateHead(second.head)).equals(second.bytes));
});
