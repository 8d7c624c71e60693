/**
 * IdSet (the typed-array set of held chunk ids) against a Set<bigint>, and ChunkStore.heldIn
 * against hasMany through what changes a store's index: adds committed and pending, forget, a
 * store opened again.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { IdSet } from '../src/store/id-set.js';
import { ChunkStore } from '../src/store/store.js';
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
