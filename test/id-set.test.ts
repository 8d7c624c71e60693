/**
 * IdSet (the typed-array set of held chunk ids) against a Set<bigint>, and ChunkStore.heldIn
 * against hasMany through what changes a store's index: adds committed and pending, forget, a
 * store opened again.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { IdSet } from '../src/store/id-set.js';
import { ChunkStore } from '../src/store/store.js';
import { HELD_FILE, writeHeldFile } from '../src/store/held-file.js';
import { ChunkTable } from '../src/snapshot/chunk-table.js';
import { chunkId, initHash } from '../src/chunk/index.js';
import { cleanupAll, tmpDir } from './helpers/tmp.js';

after(cleanupAll);

const tableOf = (ids: bigint[]) => ChunkTable.of(ids.map((id) => ({ id, pack: 0, offset: 8, repr: 0, rawLength: 1, storedLength: 1 })));
const bitmapOf = (ids: bigint[], has: (id: bigint) => boolean) => Uint8Array.from(ids, (id) => (has(id) ? 1 : 0));

test('an IdSet holds what a Set<bigint> holds, through growth, repeats, the all-zero id and ids alike in their low bits', () => {
  const id = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constant(0n), fc.bigInt({ min: 0n, max: 255n }).map((n) => n << 32n), fc.bigInt({ min: 0n, max: 15n }).map((n) => (n << 40n) | 7n));
  fc.assert(
    fc.property(fc.array(id, { maxLength: 3000 }), fc.array(id, { maxLength: 300 }), (added, asked) => {
      const set = new IdSet(1);
      const ref = new Set<bigint>();
      for (const x of added) {
        set.addId(x);
        ref.add(x);
      }
      assert.equal(set.size, ref.size);
      for (const x of [...added, ...asked]) assert.equal(set.hasId(x), ref.has(x));
      const all = [...added, ...asked];
      assert.deepEqual(set.heldIn(tableOf(all).idWords), bitmapOf(all, (x) => ref.has(x)));
    }),
    { numRuns: 60 },
  );
});

test("a store's heldIn answers as hasMany: committed, pending, forgotten, and after reopening", async () => {
  await initHash();
  const dir = join(await tmpDir('paquete-idset-'), 'store');
  const chunks = Array.from({ length: 300 }, (_, i) => Buffer.from(`chunk ${i} `.repeat(1 + (i % 7))));
  const ids = chunks.map((c) => chunkId(c));
  const table = tableOf([...ids, 12345n]);
  const agree = async (store: ChunkStore, what: string) => {
    const held = await store.hasMany(table.ids());
    assert.deepEqual(await store.heldIn(table.idWords), bitmapOf(table.ids(), (x) => held.has(x)), what);
  };
  let store = await ChunkStore.open(dir);
  await agree(store, 'empty');
  for (let i = 0; i < 100; i++) await store.add(ids[i], chunks[i]);
  await agree(store, 'pending');
  await store.flush();
  await agree(store, 'committed');
  // Built once, then kept in step with what is added after.
  for (let i = 100; i < 200; i++) await store.add(ids[i], chunks[i]);
  await store.flush();
  await agree(store, 'added after the set was built');
  await store.forget(ids.slice(50, 150));
  await agree(store, 'forgotten');
  for (let i = 200; i < 300; i++) await store.add(ids[i], chunks[i]);
  await agree(store, 'pending after a forget');
  await store.close();
  store = await ChunkStore.open(dir);
  await agree(store, 'reopened');
  assert.equal((await store.heldIn(table.idWords)).reduce((n, b) => n + b, 0), 200);
  await store.close();
});

test('the held-id file beside the index is read when it is the index’s, and never when it is stale, torn or damaged', async () => {
  await initHash();
  const dir = join(await tmpDir('paquete-heldfile-'), 'store');
  const chunks = Array.from({ length: 200 }, (_, i) => Buffer.from(`held ${i} `.repeat(1 + (i % 5))));
  const ids = chunks.map((c) => chunkId(c));
  const table = tableOf([...ids, 999n]);
  const expect = (n: number) => Uint8Array.from([...ids, 999n], (_, i) => (i < n ? 1 : 0));
  const heldAfterOpen = async () => {
    const store = await ChunkStore.open(dir);
    try {
      return await store.heldIn(table.idWords);
    } finally {
      await store.close();
    }
  };
  let store = await ChunkStore.open(dir);
  for (let i = 0; i < 100; i++) await store.add(ids[i], chunks[i]);
  assert.deepEqual(await store.heldIn(table.idWords), expect(100));
  await store.close();
  const file = join(dir, HELD_FILE);
  const atHundred = readFileSync(file);
  assert.deepEqual(await heldAfterOpen(), expect(100), 'read back');

  // Trusted when its stamp is the index's: a file with that stamp but another set is believed.
  const stamp = { token: atHundred.subarray(8, 16), count: atHundred.subarray(16, 32) };
  const other = new IdSet();
  other.addId(ids[0]);
  writeHeldFile(dir, other, stamp);
  assert.deepEqual(await heldAfterOpen(), expect(1), 'a file written for this index is what heldIn answers from');
  writeFileSync(file, atHundred);

  // A batch after the file was written (what a kill -9 before close leaves): stale, so rebuilt.
  store = await ChunkStore.open(dir);
  for (let i = 100; i < 200; i++) await store.add(ids[i], chunks[i]);
  await store.close();
  writeFileSync(file, atHundred);
  assert.deepEqual(await heldAfterOpen(), expect(200), 'stale file ignored');
  // Torn (cut short) and damaged (a slot byte flipped, its hash no longer matching): ignored.
  const now = readFileSync(file);
  for (const bad of [now.subarray(0, now.length - 1000), Buffer.concat([now.subarray(0, 60), Buffer.from([now[60] ^ 1]), now.subarray(61)])]) {
    writeFileSync(file, bad);
    assert.deepEqual(await heldAfterOpen(), expect(200));
  }
  // A forget drops ids: the file from before it is not believed either.
  const beforeForget = readFileSync(file);
  store = await ChunkStore.open(dir);
  await store.forget(ids.slice(150));
  await store.close();
  writeFileSync(file, beforeForget);
  assert.deepEqual(await heldAfterOpen(), expect(150));
});
