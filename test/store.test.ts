/**
 * ChunkStore on its own, and the store mended from anything that can happen to its files: a
 * missing pack, a pack cut or with bytes flipped, a damaged header, a lost or unreadable index,
 * a torn tail after a power cut. Then the same end to end: random damage to random packs and to
 * the index of a store synced from a real nginx, `verify --repair` (or a sync first, doing what
 * it says), and a sync that completes with a byte-identical tree, fetching only what was lost
 * (nginx's own count). And the read-only commands on a read-only directory.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ChunkStore } from '../src/store/store.js';
import { packFileName } from '../src/store/pack-reader.js';
import { encodeRecord } from '../src/store/pack.js';
import { chunkId, initHash } from '../src/chunk/index.js';
import { cleanupAll, exec, repoRoot, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, textFile, treeDigest, writeTree } from './helpers/trees.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';

after(cleanupAll);

/** Chunks of both kinds a store keeps: text (stored deflated) and noise (stored raw). */
function sampleChunks(n: number, seed = 1): Buffer[] {
  return Array.from({ length: n }, (_, i) =>
    i % 3 === 0 ? Buffer.from(textFile(seed * 1000 + i, 40 + (i % 5) * 10)) : pseudoRandom(3000 + ((i * 577) % 4000), seed * 1000 + i),
  );
}

const packPath = (dir: string, n: number) => join(dir, 'packs', packFileName(n));
const packsIn = (dir: string) => readdirSync(join(dir, 'packs')).filter((n) => /^\d{8}\.pack$/.test(n)).map((n) => Number(n.slice(0, 8)));

interface Filled {
  dir: string;
  chunks: Map<bigint, Buffer>;
  /** Where each chunk's record lay once written. */
  where: Map<bigint, { pack: number; offset: number; length: number }>;
}

/** A store of `n` chunks over several small packs, closed. */
async function filledStore(n = 60, packLimit = 48 << 10, seed = 1): Promise<Filled> {
  await initHash();
  const dir = join(await tmpDir('paquete-store-'), 'store');
  const store = await ChunkStore.open(dir);
  store.packLimit = packLimit;
  const chunks = new Map<bigint, Buffer>();
  for (const raw of sampleChunks(n, seed)) {
    const id = chunkId(raw);
    chunks.set(id, raw);
    await store.add(id, raw);
  }
  await store.flush();
  const where = new Map<bigint, { pack: number; offset: number; length: number }>();
  for (const id of chunks.keys()) where.set(id, (await store.locate(id))!);
  await store.close();
  return { dir, chunks, where };
}

/** count() (kept beside the entries: m:count, docs/FORMATS.md) says what a walk of the index finds. */
async function checkCount(store: ChunkStore, why = ''): Promise<void> {
  const ids: bigint[] = [];
  for await (const id of store.ids()) ids.push(id);
  const bytes = (await store.locateMany(ids)).reduce((n, l) => n + l.length, 0);
  assert.deepEqual(await store.count(), { chunks: ids.length, bytes }, `the kept count is the index's ${why}`);
}

/** Every chunk the store names reads back exactly; verify finds nothing; the count is right; returns the ids present. */
async function checkSound(store: ChunkStore, chunks: Map<bigint, Buffer>): Promise<Set<bigint>> {
  const v = await store.verify();
  assert.deepEqual(v.problems, [], 'verify after mending finds nothing');
  await checkCount(store, 'after mending');
  const present = await store.hasMany([...chunks.keys()]);
  for (const id of present) assert.ok(Buffer.from(await store.get(id)).equals(chunks.get(id)!), `chunk ${id.toString(16)} reads back its bytes`);
  return present;
}

const idsIn = (f: Filled, pred: (w: { pack: number; offset: number; length: number }) => boolean) => new Set([...f.where].filter(([, w]) => pred(w)).map(([id]) => id));
const missingOf = (f: Filled, present: Set<bigint>) => new Set([...f.chunks.keys()].filter((id) => !present.has(id)));

/** One thing that can happen to a store's files. */
const damageOf = (packs: number[]) =>
  fc.oneof(
    fc.record({ kind: fc.constant('delete' as const), pack: fc.constantFrom(...packs) }),
    fc.record({ kind: fc.constant('truncate' as const), pack: fc.constantFrom(...packs), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
    fc.record({ kind: fc.constant('flip' as const), pack: fc.constantFrom(...packs), at: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 6 }) }),
    fc.record({ kind: fc.constant('append' as const), pack: fc.constantFrom(...packs), bytes: fc.integer({ min: 1, max: 5000 }) }),
    fc.record({ kind: fc.constant('lose-index' as const) }),
    fc.record({ kind: fc.constant('corrupt-index' as const) }),
  );
type Damage = ReturnType<typeof damageOf> extends fc.Arbitrary<infer D> ? D : never;

/** Does `op` to the store at `dir`; returns the pack byte range no longer as written, if any (end Infinity: to the end). */
function applyDamage(dir: string, op: Damage): { pack: number; ranges: [number, number][] } | undefined {
  if (op.kind === 'lose-index') rmSync(join(dir, 'index'), { recursive: true, force: true });
  else if (op.kind === 'corrupt-index') {
    if (existsSync(join(dir, 'index'))) writeFileSync(join(dir, 'index', 'CURRENT'), 'garbage');
  } else {
    const p = packPath(dir, op.pack);
    if (!existsSync(p)) return undefined;
    if (op.kind === 'delete') {
      rmSync(p);
      return { pack: op.pack, ranges: [[0, Infinity]] };
    }
    if (op.kind === 'truncate') {
      const at = Math.floor(op.at * statSync(p).size);
      truncateSync(p, at);
      return { pack: op.pack, ranges: [[at, Infinity]] };
    }
    if (op.kind === 'flip') {
      const bytes = readFileSync(p);
      const ranges: [number, number][] = op.at.map((x) => Math.min(bytes.length - 1, Math.floor(x * bytes.length))).map((at) => [at, at + 1]);
      for (const [at] of ranges) bytes[at] ^= 0xa5;
      writeFileSync(p, bytes);
      return { pack: op.pack, ranges };
    }
    appendFileSync(p, pseudoRandom(op.bytes, op.bytes));
  }
  return undefined;
}

describe('ChunkStore mends its files', () => {
  test('chunks spread over several packs read back; a store reopened appends after the last', async () => {
    const f = await filledStore();
    const packs = packsIn(f.dir);
    assert.ok(packs.length >= 4, `${packs.length} packs`);
    const store = await ChunkStore.open(f.dir);
    assert.deepEqual(store.mended, []);
    assert.equal((await checkSound(store, f.chunks)).size, f.chunks.size);
    const extra = pseudoRandom(5000, 999);
    await store.add(chunkId(extra), extra);
    await store.close();
    assert.equal(Math.max(...packsIn(f.dir)), Math.max(...packs), 'appended to the last pack');
  });

  test('the count status shows is kept with the entries: a chunk stored twice, forgotten, absent, gc, an index without it', async () => {
    const f = await filledStore(40, 32 << 10, 5);
    const store = await ChunkStore.open(f.dir);
    await checkCount(store, 'as filled');
    const ids = [...f.chunks.keys()];
    // Stored again (a record as it came from a pack): a new location over the old entry, not a second chunk.
    for (const id of ids.slice(0, 5)) await store.addRecord(id, Uint8Array.from(await store.getRecord(id)));
    await store.flush();
    await checkCount(store, 'after storing 5 chunks again');
    assert.equal((await store.count()).chunks, 40);
    await store.forget([...ids.slice(5, 10), ids[5], 0x1234n]);
    await checkCount(store, 'after forgetting 5 (one twice, one never there)');
    assert.equal((await store.count()).chunks, 35);
    await store.gc(new Set(ids.slice(10, 30)));
    await checkCount(store, 'after gc');
    assert.equal((await store.count()).chunks, 20);
    await store.close();
    // An index an older paquete made has no count: counted once when asked, then kept.
    const { Level } = await import('level');
    const db = new Level<Uint8Array, Uint8Array>(join(f.dir, 'index'), { keyEncoding: 'view', valueEncoding: 'view' });
    await db.del(Buffer.from('m:count'));
    await db.close();
    const older = await ChunkStore.open(f.dir);
    await checkCount(older, 'of an index without m:count');
    for (const id of ids.slice(0, 10)) await older.add(id, f.chunks.get(id)!);
    await older.close();
    const reopened = await ChunkStore.open(f.dir);
    await checkCount(reopened, 'once counted and added to');
    assert.equal((await reopened.count()).chunks, 30);
    await reopened.close();
  });

  test('a missing pack (not the one appended to): open drops exactly its chunks, the rest read back', async () => {
    const f = await filledStore();
    rmSync(packPath(f.dir, 2));
    const store = await ChunkStore.open(f.dir);
    assert.match(store.mended.join('\n'), /pack 00000002\.pack is missing: \d+ chunks dropped/);
    const present = await checkSound(store, f.chunks);
    assert.deepEqual(missingOf(f, present), idsIn(f, (w) => w.pack === 2));
    // Fetched again, they are stored again and the store is whole.
    for (const id of missingOf(f, present)) await store.add(id, f.chunks.get(id)!);
    assert.equal((await checkSound(store, f.chunks)).size, f.chunks.size);
    await store.close();
    assert.deepEqual((await (await ChunkStore.open(f.dir)).verify()).problems, []);
  });

  test('the pack appended to, missing: its chunks are dropped and writing goes on in a new pack', async () => {
    const f = await filledStore();
    const last = Math.max(...packsIn(f.dir));
    rmSync(packPath(f.dir, last));
    const store = await ChunkStore.open(f.dir);
    assert.match(store.mended.join('\n'), new RegExp(`pack ${packFileName(last)} is missing`));
    const present = await checkSound(store, f.chunks);
    assert.deepEqual(missingOf(f, present), idsIn(f, (w) => w.pack === last));
    for (const id of missingOf(f, present)) await store.add(id, f.chunks.get(id)!);
    await store.close();
    const again = await ChunkStore.open(f.dir);
    assert.equal((await checkSound(again, f.chunks)).size, f.chunks.size);
    await again.close();
  });

  test('a pack cut mid-record: the chunks past the cut are dropped, the pack appended to is cut back to its last whole record', async () => {
    for (const which of ['middle', 'last'] as const) {
      const f = await filledStore();
      const packs = packsIn(f.dir);
      const pack = which === 'last' ? Math.max(...packs) : packs[1];
      const inPack = [...f.where.values()].filter((w) => w.pack === pack).sort((a, b) => a.offset - b.offset);
      const cutRecord = inPack[Math.floor(inPack.length / 2)];
      const cutAt = cutRecord.offset + 5;
      truncateSync(packPath(f.dir, pack), cutAt);
      const store = await ChunkStore.open(f.dir);
      assert.match(store.mended.join('\n'), new RegExp(`pack ${packFileName(pack)} is cut short at ${cutAt} bytes`), which);
      const present = await checkSound(store, f.chunks);
      assert.deepEqual(missingOf(f, present), idsIn(f, (w) => w.pack === pack && w.offset + w.length > cutAt), which);
      if (which === 'last') assert.equal(statSync(packPath(f.dir, pack)).size, cutRecord.offset, 'cut back to the last whole record');
      for (const id of missingOf(f, present)) await store.add(id, f.chunks.get(id)!);
      await store.close();
      const again = await ChunkStore.open(f.dir);
      assert.equal((await checkSound(again, f.chunks)).size, f.chunks.size, which);
      await again.close();
    }
  });

  test('flipped bytes: a read of the chunk fails, verify names it, mend drops exactly the chunks hit', async () => {
    const f = await filledStore();
    const pack = packsIn(f.dir)[1];
    const victims = [...f.where].filter(([, w]) => w.pack === pack).slice(0, 3);
    const bytes = readFileSync(packPath(f.dir, pack));
    // One in a payload, one in a record's stored length (the scan must find the next record), one in an id.
    bytes[victims[0][1].offset + 40] ^= 0x20;
    bytes[victims[1][1].offset + 14] ^= 0x7f;
    bytes[victims[2][1].offset + 3] ^= 0x01;
    writeFileSync(packPath(f.dir, pack), bytes);
    const store = await ChunkStore.open(f.dir);
    assert.deepEqual(store.mended, [], 'nothing cheap to see at open');
    await assert.rejects(store.get(victims[0][0]), (e: Error & { code?: string }) => e.code === 'DAMAGED_PACK');
    const v = await store.verify();
    assert.deepEqual(new Set(v.damaged), new Set(victims.map(([id]) => id)));
    const m = await store.mend();
    assert.deepEqual(new Set(m.dropped), new Set(victims.map(([id]) => id)));
    assert.equal(m.recovered, 0);
    const present = await checkSound(store, f.chunks);
    assert.equal(present.size, f.chunks.size - 3);
    await store.close();
  });

  test('a damaged pack header: the store rewrites it when it opens (it is a constant) and keeps every record', async () => {
    const f = await filledStore();
    const bytes = readFileSync(packPath(f.dir, 1));
    bytes[1] ^= 0xff;
    writeFileSync(packPath(f.dir, 1), bytes);
    const store = await ChunkStore.open(f.dir);
    assert.match(store.mended.join('\n'), /pack 00000001\.pack had a damaged header: rewritten/);
    assert.deepEqual((await store.verify()).problems, []);
    assert.equal((await checkSound(store, f.chunks)).size, f.chunks.size);
    await store.close();
  });

  test('the index lost: open rebuilds it from the packs, and appending never goes over a pack', async () => {
    const f = await filledStore();
    const sizes = packsIn(f.dir).map((n) => statSync(packPath(f.dir, n)).size);
    rmSync(join(f.dir, 'index'), { recursive: true });
    const store = await ChunkStore.open(f.dir);
    assert.match(store.mended.join('\n'), new RegExp(`indexed ${f.chunks.size} chunks found intact in the packs`));
    assert.equal((await checkSound(store, f.chunks)).size, f.chunks.size);
    const extra = pseudoRandom(7000, 4242);
    await store.add(chunkId(extra), extra);
    await store.close();
    packsIn(f.dir).slice(0, -1).forEach((n, i) => assert.equal(statSync(packPath(f.dir, n)).size, sizes[i], `pack ${n} untouched`));
    const again = await ChunkStore.open(f.dir);
    assert.ok(Buffer.from(await again.get(chunkId(extra))).equals(extra));
    await again.close();
  });

  test('an index LevelDB cannot open: refused with the command that mends it, which rebuilds it', async () => {
    const f = await filledStore();
    writeFileSync(join(f.dir, 'index', 'CURRENT'), 'MANIFEST-999999\n');
    await assert.rejects(ChunkStore.open(f.dir), (e: Error & { code?: string; hint?: string }) => e.code === 'DAMAGED_STORE' && /verify --repair/.test(e.hint ?? ''));
    const store = await ChunkStore.open(f.dir, { rebuildUnreadableIndex: true });
    assert.match(store.mended.join('\n'), /could not be read.*rebuilding it from the packs/);
    assert.equal((await checkSound(store, f.chunks)).size, f.chunks.size);
    await store.close();
  });

  test('garbage past the committed end (a crash mid-write) is cut when the store opens; intact records there are kept', async () => {
    const f = await filledStore();
    const last = Math.max(...packsIn(f.dir));
    const size = statSync(packPath(f.dir, last)).size;
    appendFileSync(packPath(f.dir, last), pseudoRandom(777, 5));
    const store = await ChunkStore.open(f.dir);
    assert.equal(statSync(packPath(f.dir, last)).size, size, 'cut at open, before any write or plan');
    const m = await store.mend();
    assert.doesNotMatch(m.packs.join('\n'), /torn tail/, 'nothing left for mend');
    assert.equal((await checkSound(store, f.chunks)).size, f.chunks.size);
    await store.close();
  });

  test('a kill between writing records and committing their index: the intact records past the committed end are kept, not fetched again', async () => {
    const f = await filledStore();
    const last = Math.max(...packsIn(f.dir));
    const extra = [pseudoRandom(5000, 901), pseudoRandom(7000, 902)];
    const records = extra.map((raw) => encodeRecord(chunkId(raw), raw));
    // Two whole records, then half of a third (the socket read the kill interrupted).
    const third = encodeRecord(chunkId(pseudoRandom(3000, 903)), pseudoRandom(3000, 903));
    appendFileSync(packPath(f.dir, last), Buffer.concat([...records, third.subarray(0, 1000)]));
    const store = await ChunkStore.open(f.dir);
    for (const raw of extra) assert.deepEqual(Buffer.from(await store.get(chunkId(raw))), raw);
    assert.equal(await store.has(chunkId(pseudoRandom(3000, 903))), false);
    assert.equal((await checkSound(store, f.chunks)).size, f.chunks.size);
    await store.close();
  });

  test('a power cut after soft commits (kill -9, then the unsynced tail lost): open keeps the intact records and cuts the rest', async () => {
    await initHash();
    const dir = join(await tmpDir('paquete-torn-'), 'store');
    const chunks = sampleChunks(40, 7);
    // A real process, killed with SIGKILL right after a soft commit: the index then points past
    // the pack's durable end, which is what recoverTail is for.
    const storeModule = join(repoRoot, 'dist', 'src', 'store', 'store.js');
    const idModule = join(repoRoot, 'dist', 'src', 'chunk', 'index.js');
    const script = `
      import { ChunkStore } from ${JSON.stringify(storeModule)};
      import { chunkId, initHash } from ${JSON.stringify(idModule)};
      import { textFile, pseudoRandom } from ${JSON.stringify(join(repoRoot, 'dist', 'test', 'helpers', 'trees.js'))};
      await initHash();
      const chunks = Array.from({ length: 40 }, (_, i) => i % 3 === 0 ? Buffer.from(textFile(7000 + i, 40 + (i % 5) * 10)) : pseudoRandom(3000 + ((i * 577) % 4000), 7000 + i));
      const store = await ChunkStore.open(${JSON.stringify(dir)});
      store.flushEvery = { bytes: 1 << 30, ms: 1e9 };
      for (const c of chunks.slice(0, 20)) await store.add(chunkId(c), c);
      await store.flush();
      for (const c of chunks.slice(20)) await store.add(chunkId(c), c);
      await store.flush(false);
      const where = [];
      for (const c of chunks) where.push((await store.locate(chunkId(c))).offset);
      process.stdout.write(JSON.stringify(where));
      process.kill(process.pid, 'SIGKILL');
    `;
    const r = await exec(process.execPath, ['--input-type=module', '-e', script]);
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const offsets = JSON.parse(r.stdout) as number[];
    // The power cut: the page cache held the soft tail; the disk keeps it only up to record 25's middle.
    const cutAt = offsets[25] + 9;
    truncateSync(packPath(dir, 1), cutAt);
    const store = await ChunkStore.open(dir);
    const byId = new Map(chunks.map((c) => [chunkId(c), c]));
    const present = await checkSound(store, byId);
    assert.deepEqual([...present].sort(), chunks.slice(0, 25).map(chunkId).sort(), 'the durable records and the intact soft ones are kept');
    assert.equal(statSync(packPath(dir, 1)).size, offsets[25], 'cut before the first torn record');
    for (const c of chunks.slice(25)) await store.add(chunkId(c), c);
    await store.close();
    const again = await ChunkStore.open(dir);
    assert.equal((await checkSound(again, byId)).size, 40);
    await again.close();
  });

  test('fast-check: random damage to random packs and the index; mend keeps every intact record and nothing else', async () => {
    const base = await filledStore(50, 40 << 10, 3);
    await fc.assert(
      fc.asyncProperty(fc.array(damageOf(packsIn(base.dir)), { minLength: 1, maxLength: 4 }), async (ops) => {
        const dir = join(await tmpDir('paquete-store-fc-'), 'store');
        cpSync(base.dir, dir, { recursive: true });
        /** Byte ranges no longer as written, per pack. */
        const hurt = new Map<number, [number, number][]>();
        for (const op of ops) {
          const h = applyDamage(dir, op);
          if (h) hurt.set(h.pack, [...(hurt.get(h.pack) ?? []), ...h.ranges]);
        }
        const store = await ChunkStore.open(dir, { rebuildUnreadableIndex: true });
        await store.mend();
        const present = await checkSound(store, base.chunks);
        for (const [id, w] of base.where) {
          const intact = !(hurt.get(w.pack) ?? []).some(([a, b]) => a < w.offset + w.length && b > w.offset);
          if (intact) assert.ok(present.has(id), `intact chunk ${id.toString(16)} (pack ${w.pack} at ${w.offset}) kept after ${JSON.stringify(ops)}`);
        }
        // The store takes new chunks and stays sound.
        for (const id of missingOf(base, present)) await store.add(id, base.chunks.get(id)!);
        await store.close();
        const again = await ChunkStore.open(dir);
        assert.deepEqual(again.mended, []);
        assert.equal((await checkSound(again, base.chunks)).size, base.chunks.size);
        await again.close();
        rmSync(join(dir, '..'), { recursive: true, force: true });
      }),
      { numRuns: 40, includeErrorInReport: true },
    );
  });
});

const paquete = paqueteExpecting();

/** Rewrites a working directory's store into packs of about `limit` bytes, so damage can hit one of many. */
async function repack(storeDir: string, limit: number): Promise<void> {
  await initHash();
  const old = `${storeDir}.old`;
  renameSync(storeDir, old);
  const from = await ChunkStore.open(old);
  const to = await ChunkStore.open(storeDir);
  to.packLimit = limit;
  for await (const id of from.ids()) await to.addRecord(id, Uint8Array.from(await from.getRecord(id)));
  await from.close();
  await to.close();
  rmSync(old, { recursive: true });
}

describe('a damaged store, then verify --repair or sync, then a sync from nginx completes', () => {
  let dir: string;
  let nginx: NginxServer;
  let pristine: string;
  before(async () => {
    dir = await tmpDir('paquete-mend-');
    const files: Record<string, string | Uint8Array> = {};
    for (let i = 0; i < 12; i++) files[`f${i}.bin`] = pseudoRandom(60_000 + i * 9_000, 100 + i);
    for (let i = 0; i < 8; i++) files[`text/t${i}.txt`] = textFile(200 + i, 400);
    files['big.bin'] = pseudoRandom(900_000, 77);
    writeTree(join(dir, 'site'), files);
    await paquete(['keygen', '--out', 'k'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'k'], dir);
    nginx = await startNginx(join(dir, 'remote'));
    await paquete(['init', `${nginx.url}`, 'w', '--trust', 'k.pub'], dir);
    await paquete(['sync', '-C', 'w'], dir);
    await repack(join(dir, 'w/.paquete/store'), 200 << 10);
    pristine = join(dir, 'pristine');
    cpSync(join(dir, 'w'), pristine, { recursive: true });
  });
  after(async () => nginx?.stop());

  test('fast-check: random damage to packs, index and tree; the repair (or what sync says to run) and one sync make it whole, fetching only what was lost', async () => {
    const want = treeDigest(join(dir, 'site'));
    const packs = packsIn(join(pristine, '.paquete/store'));
    assert.ok(packs.length >= 5, `${packs.length} packs`);
    const treeFiles = Object.keys(want);
    const scenario = fc.record({
      ops: fc.array(damageOf(packs), { minLength: 1, maxLength: 3 }),
      // Files gone from the tree too, so their lost chunks must come over the wire.
      gone: fc.subarray(treeFiles, { minLength: 1 }),
      syncFirst: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ ops, gone, syncFirst }) => {
        const w = join(dir, 'w');
        rmSync(w, { recursive: true, force: true });
        cpSync(pristine, w, { recursive: true });
        for (const op of ops) applyDamage(join(w, '.paquete/store'), op);
        for (const g of gone) rmSync(join(w, 'site', g));
        const what = JSON.stringify({ ops, gone, syncFirst });
        if (syncFirst) {
          // A sync on the damaged store mends what is safe, or says exactly what to run.
          const r = await paquete(['sync', '-C', 'w'], dir, null);
          if (r.code !== 0) {
            const said = r.stdout + r.stderr;
            assert.match(said, /verify --repair|fetched again/, `${what}: sync exited ${r.code} without saying what to do\n${said}`);
            if (/verify --repair/.test(said)) await paquete(['verify', '--repair', '-C', 'w'], dir);
          }
        } else {
          await paquete(['verify', '--repair', '-C', 'w'], dir);
        }
        const status = JSON.parse((await paquete(['status', '--json', '-C', 'w'], dir)).stdout);
        await nginx.clearLog();
        const s = JSON.parse((await paquete(['sync', '--json', '-C', 'w'], dir)).stdout);
        assert.equal(s.completeFiles, s.wantedFiles, what);
        assert.deepEqual(treeDigest(join(w, 'site')), want, what);
        assert.match((await paquete(['verify', '-C', 'w'], dir)).stdout, /store ok/, what);
        // Exactly what was lost crossed the wire: the pack bytes nginx sent cover what status said
        // was missing, plus at most the small gaps the planner fetches through to save a request.
        const log = (await nginx.accessLog()).filter((e) => e.uri.startsWith('/packs/'));
        const body = log.reduce((n, e) => n + e.bodyBytesSent, 0);
        assert.ok(body >= status.total.missingBytes, `${what}: nginx sent ${body} pack bytes, ${status.total.missingBytes} were missing`);
        assert.ok(body <= status.total.missingBytes + log.length * 1024, `${what}: nginx sent ${body} pack bytes for ${status.total.missingBytes} missing, in ${log.length} requests`);
      }),
      { numRuns: 6, includeErrorInReport: true },
    );
  });

  test('one pack file deleted: sync mends the store on its own and completes; verify --repair after it finds nothing to do', async () => {
    const w = join(dir, 'w');
    rmSync(w, { recursive: true, force: true });
    cpSync(pristine, w, { recursive: true });
    rmSync(packPath(join(w, '.paquete/store'), 2));
    rmSync(join(w, 'site'), { recursive: true });
    const r = await paquete(['sync', '-C', 'w'], dir);
    assert.match(r.stderr, /store mended: pack 00000002\.pack is missing: \d+ chunks dropped from the index, to be fetched again/);
    assert.deepEqual(treeDigest(join(w, 'site')), treeDigest(join(dir, 'site')));
    const v = await paquete(['verify', '--repair', '-C', 'w'], dir);
    assert.match(v.stdout, /0 damaged chunks removed from the index/);
    assert.match(v.stdout, /nothing needs fetching/);
  });
});

/**
 * Makes `path` read-only for the commands run on it: a read-only bind mount when root (chmod does
 * not stop root), chmod -R a-w otherwise. Returns how to undo it, or why it cannot be done here.
 */
async function makeReadOnly(path: string): Promise<{ undo: () => Promise<void>; path: string } | string> {
  if (process.getuid?.() !== 0) {
    await exec('chmod', ['-R', 'a-w', path]);
    return { path, undo: async () => void (await exec('chmod', ['-R', 'u+w', path])) };
  }
  const ro = `${path}-ro`;
  await exec('mkdir', ['-p', ro]);
  const bind = await exec('mount', ['--bind', path, ro]);
  if (bind.code !== 0) return `root without mount (${bind.stderr.trim()}): chmod cannot make a directory read-only for root`;
  const remount = await exec('mount', ['-o', 'remount,ro,bind', ro]);
  if (remount.code !== 0) {
    await exec('umount', [ro]);
    return `cannot remount read-only (${remount.stderr.trim()})`;
  }
  return { path: ro, undo: async () => void (await exec('umount', [ro])) };
}

describe('read-only commands on a read-only directory', () => {
  test('status, verify and serve work (a friend syncs from that serve); sync says it needs to write', async (t) => {
    const dir = await tmpDir('paquete-ro-');
    writeTree(join(dir, 'site'), { 'a.bin': pseudoRandom(300_000, 1), 'b.txt': textFile(3, 300), 'c/d.txt': 'd\n' });
    await paquete(['keygen', '--out', 'k'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'k'], dir);
    await paquete(['init', 'remote', 'w', '--trust', 'k.pub'], dir);
    await paquete(['sync', '-C', 'w'], dir);
    const ro = await makeReadOnly(join(dir, 'w'));
    if (typeof ro === 'string') return t.skip(ro);
    try {
      assert.equal((await exec('touch', [join(ro.path, 'probe')])).code === 0, false, 'the directory is read-only');
      const status = await paquete(['status', '-C', ro.path], dir);
      assert.match(status.stdout, /1\/1 files|3\/3 files complete/);
      assert.match((await paquete(['verify', '-C', ro.path], dir)).stdout, /store ok: \d+ chunks checked \(read-only directory\)/);
      const sync = await paquete(['sync', '-C', ro.path], dir, 1);
      assert.match(sync.stderr, /cannot be written \((EROFS|EACCES)\); sync needs to write there/);
      assert.doesNotMatch(sync.stderr, /unexpected error/);
      const serve = runPaquete(['serve', '--port', '0', '-C', ro.path]);
      try {
        await serve.waitForOutput(/serving .* at (http:\/\/\S+)\//);
        const url = /at (http:\/\/\S+?)\/\n/.exec(serve.stdout())![1];
        assert.equal((await fetch(`${url}/`)).status, 200);
        // A friend on the LAN syncs everything from this serve: store reads, no writes.
        await paquete(['init', `${url}/remote/`, 'friend', '--trust', 'k.pub'], dir);
        await paquete(['sync', '-C', 'friend'], dir);
        assert.deepEqual(treeDigest(join(dir, 'friend/site')), treeDigest(join(dir, 'site')));
      } finally {
        serve.kill('SIGTERM');
        const r = await serve.done;
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stderr, /unexpected error/);
      }
    } finally {
      await ro.undo();
    }
    assert.equal(existsSync(join(dir, 'w/.paquete/lock')), false, 'no lock file left');
  });
});
