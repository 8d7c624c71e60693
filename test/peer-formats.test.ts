import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { PaqueteError } from '../src/errors.js';
import { decodeHave, encodeHave, HaveSummary, haveHas, MAX_HAVE_IDS } from '../src/peer/have.js';
import {
  BundleItem, decodePrelude, decodeVolumeHead, encodeVolumeHead, itemOffsets, ItemKind, MAX_RECORD, PRELUDE_SIZE, VolumeHead,
} from '../src/peer/bundle.js';

/** Runs fn; it may succeed or throw a PaqueteError, and nothing else. */
const onlyPaqueteErrors = (fn: () => unknown): void => {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof PaqueteError)) assert.fail(`expected a PaqueteError, got ${(e as Error)?.stack ?? e}`);
  }
};

const U64 = 2n ** 64n - 1n;
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const anyId = fc.bigInt({ min: 0n, max: U64 });
/** Ids bunched in a small range: gaps of 0 and 1, the Rice coder's k = 0 corner. */
const bunchedIds = fc.tuple(anyId, fc.array(fc.bigInt({ min: 0n, max: 300n }), { maxLength: 200 })).map(([base, offs]) => offs.map((o) => (base + o > U64 ? U64 - o : base + o)));

const haveArb: fc.Arbitrary<HaveSummary> = fc.record({
  publisher: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  serial: fc.option(fc.nat({ max: 2 ** 40 }), { nil: undefined }),
  snapshots: fc.array(hex64, { maxLength: 3 }),
  created: fc.nat({ max: 2 ** 33 }),
  ids: fc.oneof(fc.array(anyId, { maxLength: 300 }), bunchedIds, fc.constant([0n, U64]), fc.constant([U64])).map((a) => BigUint64Array.from(a)),
});

/** Rewrites the trailing checksum so a mutation reaches the parser proper instead of the checksum. */
function reseal(bytes: Uint8Array): Uint8Array {
  const out = Buffer.from(bytes);
  if (out.length < 8) return out;
  createHash('sha256').update(out.subarray(0, out.length - 8)).digest().copy(out, out.length - 8, 0, 8);
  return out;
}

describe('have-summary', () => {
  test('round-trips: same ids (sorted, distinct), serial, snapshots, key', () => {
    fc.assert(
      fc.property(haveArb, (h) => {
        const back = decodeHave(encodeHave(h));
        const want = [...new Set(h.ids)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        assert.deepEqual([...back.ids], want);
        assert.equal(back.serial, h.serial);
        assert.deepEqual(back.snapshots, h.snapshots);
        assert.deepEqual(Buffer.from(back.publisher), Buffer.from(h.publisher));
        for (const id of want) assert.ok(haveHas(back, id));
        for (const id of h.ids.length ? [h.ids[0] ^ 1n] : [5n]) assert.equal(haveHas(back, id), want.includes(id));
      }),
      { numRuns: 300 },
    );
  });

  test('costs about 64 − log2(n) + 1.5 bits a chunk: under 6.5 bytes at 20 000 random ids', () => {
    const ids = new BigUint64Array(20_000);
    const raw = randomBytes(8 * ids.length);
    for (let i = 0; i < ids.length; i++) ids[i] = raw.readBigUInt64BE(8 * i);
    const bytes = encodeHave({ publisher: new Uint8Array(32), snapshots: [], created: 0, ids });
    const perChunk = (bytes.length - 60) / ids.length;
    assert.ok(perChunk < 6.5, `${perChunk} bytes a chunk`);
    assert.ok(perChunk > 6.0, `${perChunk} bytes a chunk is below the entropy: ids lost?`);
  });

  test('the decoder survives any bytes: only PaqueteError, never a crash or a hang', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => onlyPaqueteErrors(() => decodeHave(b))), { numRuns: 500 });
    // With the magic and a valid checksum, so the fields and the bit stream get parsed.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 3 }), (b, coding) => {
        const body = Buffer.concat([Buffer.from('PQHV'), Buffer.from([1, coding % 2 === 0 ? 1 : coding, 0, 0]), Buffer.alloc(32), b, Buffer.alloc(8)]);
        onlyPaqueteErrors(() => decodeHave(reseal(body)));
      }),
      { numRuns: 500 },
    );
  });

  test('mutations of real summaries (flips, cuts, splices) are refused cleanly or decode to sorted ids', () => {
    fc.assert(
      fc.property(haveArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), fc.boolean(), (h, flips, cut, resealed) => {
        const good = Buffer.from(encodeHave(h));
        const bad = Buffer.from(good);
        for (const [at, x] of flips) bad[at % bad.length] ^= x;
        const cutAt = cut % (bad.length + 1);
        for (const variant of [bad, bad.subarray(0, cutAt), Buffer.concat([good.subarray(0, cutAt), bad.subarray(cutAt)])]) {
          const input = resealed ? reseal(variant) : variant;
          let decoded: HaveSummary | undefined;
          onlyPaqueteErrors(() => (decoded = decodeHave(input)));
          if (!resealed && decoded) assert.ok(Buffer.compare(variant, good) === 0, 'the checksum let a change through');
          if (decoded) for (let i = 1; i < decoded.ids.length; i++) assert.ok(decoded.ids[i] > decoded.ids[i - 1]);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a count the data cannot hold is refused before any allocation', () => {
    const h = Buffer.from(encodeHave({ publisher: new Uint8Array(32), snapshots: [], created: 0, ids: BigUint64Array.of(1n, 2n) }));
    // Fields after the 40 fixed bytes: serial, created, nSnapshots, nIds, k, length, stream.
    const body = Buffer.concat([h.subarray(0, 43), Buffer.from([0xff, 0xff, 0xff, 0x7f]), h.subarray(44, h.length - 8), Buffer.alloc(8)]);
    assert.throws(() => decodeHave(reseal(body)), (e: unknown) => e instanceof PaqueteError && /larger than the data|more than any store/.test(e.message));
    assert.ok(MAX_HAVE_IDS >= 2 ** 24);
  });
});

const itemArb: fc.Arbitrary<BundleItem> = fc.oneof(
  fc.record({ kind: fc.constant(ItemKind.Snapshot as const), name: hex64, length: fc.nat({ max: 1 << 20 }) }),
  fc.record({ kind: fc.constant(ItemKind.Chunk as const), id: anyId, length: fc.integer({ min: 17, max: MAX_RECORD }) }),
);

const headArb: fc.Arbitrary<VolumeHead> = fc
  .record({
    bundleId: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
    volumes: fc.integer({ min: 1, max: 5 }),
    volumeSeed: fc.nat(),
    publisher: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    serial: fc.nat({ max: 2 ** 40 }),
    created: fc.nat({ max: 2 ** 33 }),
    target: hex64,
    manifest: fc.nat({ max: 1 << 16 }),
    items: fc.uniqueArray(itemArb, { maxLength: 30, selector: (it) => (it.kind === ItemKind.Chunk ? `c${it.id}` : it.kind === ItemKind.Snapshot ? it.name : "m") }),
    others: fc.array(fc.record({ chunks: fc.nat({ max: 1 << 20 }), bytes: fc.nat({ max: 2 ** 40 }) }), { minLength: 5, maxLength: 5 }),
  })
  .map((r) => {
    const volume = (r.volumeSeed % r.volumes) + 1;
    const items: BundleItem[] = [{ kind: ItemKind.Manifest, length: r.manifest }, ...r.items.map((it) => ({ ...it }))];
    const summary = r.others.slice(0, r.volumes).map((s) => ({ ...s }));
    summary[volume - 1] = { chunks: items.filter((i) => i.kind === ItemKind.Chunk).length, bytes: items.reduce((a, i) => a + i.length, 0) };
    return { bundleId: r.bundleId, volume, volumes: r.volumes, publisher: r.publisher, serial: r.serial, created: r.created, target: r.target, summary, items };
  });

/** Recomputes a volume's head checksum after a mutation, as a forger would. */
function resealHead(bytes: Uint8Array): Uint8Array {
  const out = Buffer.from(bytes);
  if (out.length < PRELUDE_SIZE) return out;
  const len = Math.min(out.readUInt32LE(8), out.length - PRELUDE_SIZE);
  createHash('sha256').update(out.subarray(PRELUDE_SIZE, PRELUDE_SIZE + len)).digest().copy(out, 12);
  return out;
}

describe('bundle volume head', () => {
  test('round-trips, and item offsets follow the table', () => {
    fc.assert(
      fc.property(headArb, (h) => {
        const bytes = encodeVolumeHead(h);
        const { head, dataStart } = decodeVolumeHead(bytes);
        assert.equal(dataStart, bytes.length);
        assert.deepEqual({ ...head, publisher: Buffer.from(head.publisher) }, { ...h, publisher: Buffer.from(h.publisher) });
        const offsets = itemOffsets(head, dataStart);
        let pos = dataStart;
        head.items.forEach((it, i) => {
          assert.equal(offsets[i], pos);
          pos += it.length;
        });
      }),
      { numRuns: 200 },
    );
  });

  test('the decoder survives any bytes: only PaqueteError, never a crash or a hang', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => onlyPaqueteErrors(() => decodeVolumeHead(b))), { numRuns: 500 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const prelude = Buffer.alloc(PRELUDE_SIZE);
        prelude.write('PQBN');
        prelude[4] = 1;
        prelude.writeUInt32LE(b.length, 8);
        onlyPaqueteErrors(() => decodeVolumeHead(resealHead(Buffer.concat([prelude, b]))));
      }),
      { numRuns: 500 },
    );
  });

  test('mutated heads, even with a recomputed checksum, are refused cleanly; unsealed ones always are', () => {
    fc.assert(
      fc.property(headArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (h, flips, cut) => {
        const good = Buffer.from(encodeVolumeHead(h));
        const bad = Buffer.from(good);
        for (const [at, x] of flips) bad[PRELUDE_SIZE + (at % (bad.length - PRELUDE_SIZE))] ^= x;
        if (!bad.equals(good)) assert.throws(() => decodeVolumeHead(bad), PaqueteError);
        onlyPaqueteErrors(() => decodeVolumeHead(resealHead(bad)));
        onlyPaqueteErrors(() => decodeVolumeHead(good.subarray(0, cut % good.length)));
        if (cut % good.length < good.length) assert.throws(() => decodeVolumeHead(good.subarray(0, cut % good.length)), PaqueteError);
      }),
      { numRuns: 300 },
    );
  });

  test('absurd lengths are refused by name: a head past the limit, a chunk record of 2^40 bytes, volume 3 of 2', () => {
    const prelude = Buffer.alloc(PRELUDE_SIZE);
    prelude.write('PQBN');
    prelude[4] = 1;
    prelude.writeUInt32LE(0xffffffff, 8);
    assert.throws(() => decodePrelude(prelude), /head length 4294967295 is absurd/);
    const base: VolumeHead = {
      bundleId: '00'.repeat(16), volume: 1, volumes: 1, publisher: new Uint8Array(32), serial: 1, created: 0, target: '00'.repeat(32),
      summary: [{ chunks: 1, bytes: 2 ** 40 }], items: [{ kind: ItemKind.Chunk, id: 1n, length: 2 ** 40 }],
    };
    assert.throws(() => decodeVolumeHead(encodeVolumeHead(base)), /a chunk record of 1099511627776 bytes/);
    assert.throws(
      () => decodeVolumeHead(encodeVolumeHead({ ...base, volume: 3, volumes: 2, summary: [{ chunks: 0, bytes: 0 }, { chunks: 0, bytes: 0 }], items: [] })),
      /volume 3 of 2/,
    );
    assert.throws(() => decodeVolumeHead(encodeVolumeHead({ ...base, summary: [{ chunks: 5, bytes: 17 }], items: [{ kind: ItemKind.Chunk, id: 1n, length: 17 }] })), /volume list says/);
  });
});
