import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  ChunkParams,
  Chunker,
  DEFAULT_PARAMS,
  chunkBytes,
  chunkBytesWithIds,
  chunkFile,
  chunkFileWithIds,
  chunkId,
  createChunker,
  createJsChunker,
  createWasmChunker,
  cutAll,
  idFromBytes,
  idFromHex,
  idToBytes,
  idToHex,
  initHash,
} from '../src/chunk/index.js';
import { FASTCDC_WAT_SHA256 } from '../src/chunk/wasm-bytes.js';

/** xorshift32 (13, 17, 5) from `seed`, each state written as 4 little-endian bytes. */
/** Parameters whose cut points are pinned below (the defaults before 4 KiB became the default). */
const PINNED = { minSize: 2048, avgSize: 8192, maxSize: 65536 };

function xorshift(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x;
    if (i + 1 < length) out[i + 1] = x >>> 8;
    if (i + 2 < length) out[i + 2] = x >>> 16;
    if (i + 3 < length) out[i + 3] = x >>> 24;
  }
  return out;
}

/** Text-like input: random words from a small vocabulary, which is what source trees look like. */
function textLike(length: number, seed: number): Uint8Array {
  const words = ['const ', 'function ', 'return ', '{\n', '}\n', 'x', 'y', ' = ', '(', ')', ';\n', 'import ', 'type ', '  ', 'a.b', '0', '1', '"s"'];
  const r = xorshift(length, seed);
  const out = new Uint8Array(length);
  let o = 0;
  for (let i = 0; o < length; i++) {
    const w = words[r[i % length] % words.length];
    for (let k = 0; k < w.length && o < length; k++) out[o++] = w.charCodeAt(k);
  }
  return out;
}

function lengths(ends: number[]): number[] {
  return ends.map((e, i) => e - (i ? ends[i - 1] : 0));
}

async function collectEnds(run: (onChunk: (c: Uint8Array) => void) => Promise<void>): Promise<number[]> {
  const ends: number[] = [];
  let pos = 0;
  await run((c) => {
    pos += c.length;
    ends.push(pos);
  });
  return ends;
}

const PARAM_SETS: ChunkParams[] = [
  DEFAULT_PARAMS,
  { minSize: 64, avgSize: 256, maxSize: 1024 },
  { minSize: 64, avgSize: 256, maxSize: 256 }, // max == avg
  { minSize: 256, avgSize: 256, maxSize: 4096 }, // min == avg: no phase 1
  { minSize: 256, avgSize: 256, maxSize: 256 }, // fixed-size chunks
  { minSize: 100, avgSize: 1024, maxSize: 3000 }, // sizes that are no multiple of anything
  { minSize: 512, avgSize: 2048, maxSize: 16384 },
  { minSize: 1024, avgSize: 4096, maxSize: 32768 },
  { minSize: 4096, avgSize: 16384, maxSize: 131072 },
  { minSize: 16384, avgSize: 65536, maxSize: 524288 },
];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paquete-chunker-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('chunk boundaries', () => {
  test('are content-defined: an insertion early on changes only the chunks around it', async () => {
    await initHash();
    const base = xorshift(4 << 20, 12345);
    const inserted = new Uint8Array(base.length + 37);
    inserted.set(base.subarray(0, 10_000));
    inserted.set(xorshift(37, 99), 10_000);
    inserted.set(base.subarray(10_000), 10_037);
    const chunker = await createChunker();
    const ids = async (data: Uint8Array) => {
      const out: bigint[] = [];
      await chunkBytes(data, chunker, (c) => void out.push(chunkId(c)));
      return out;
    };
    const a = await ids(base);
    const b = await ids(inserted);
    const known = new Set(a);
    const changed = b.filter((id) => !known.has(id)).length;
    assert.ok(a.length > 300, `expected hundreds of chunks, got ${a.length}`);
    assert.ok(changed >= 1 && changed <= 3, `${changed} of ${b.length} chunks changed`);
    // After the first few chunks, the two sequences are the same.
    let common = 0;
    while (common < b.length && b[b.length - 1 - common] === a[a.length - 1 - common]) common++;
    assert.ok(b.length - common <= 4, `only the last ${common} of ${b.length} chunks are shared`);
    assert.ok(Math.abs(a.length - b.length) <= 2);
  });

  test('are deterministic across chunkers and runs', async () => {
    const data = xorshift(1 << 20, 777);
    const one = await collectEnds(async (f) => chunkBytes(data, await createChunker(), f));
    const two = await collectEnds(async (f) => chunkBytes(data, await createChunker(), f));
    assert.deepEqual(one, two);
    assert.deepEqual(one, cutAll(data, DEFAULT_PARAMS));
  });

  test('every chunk but the last is within [min, max]', async () => {
    for (const params of PARAM_SETS) {
      for (const data of [xorshift(300_000, 5), textLike(300_000, 6), new Uint8Array(300_000)]) {
        const ends = await collectEnds(async (f) => chunkBytes(data, await createChunker(params), f));
        const sizes = lengths(ends);
        assert.equal(ends.at(-1), data.length);
        sizes.slice(0, -1).forEach((n, i) => {
          assert.ok(n >= params.minSize && n <= params.maxSize, `chunk ${i} is ${n} bytes with ${JSON.stringify(params)}`);
        });
        assert.ok(sizes.at(-1)! >= 1 && sizes.at(-1)! <= params.maxSize);
      }
    }
  });

  test('runs of one byte value: cut at max, except zeros (also part of the format)', async () => {
    const chunker = await createChunker(PINNED);
    const n = PINNED.maxSize * 5 + 123;
    // After 32 bytes of a run of c the hash is constant (-GEAR[c] mod 2^32): it passes the
    // threshold after the average for c = 0 only, so zeros are cut every avg + 1 bytes and every
    // other run at max.
    chunker.buffer.fill(0xff, 0, n);
    assert.deepEqual(lengths(chunker.cut(n, true)), [65536, 65536, 65536, 65536, 65536, 123]);
    chunker.buffer.fill(7, 0, n);
    assert.deepEqual(lengths(chunker.cut(n, true)), [65536, 65536, 65536, 65536, 65536, 123]);
    chunker.buffer.fill(0, 0, n);
    const zeros = lengths(chunker.cut(n, true));
    assert.equal(zeros.length, Math.ceil(n / 8193));
    assert.ok(zeros.slice(0, -1).every((len) => len === 8193));
  });

  test('FIXED cut points of a generated input never change', async () => {
    // These cut points are the format's guarantee: every publisher and client must cut here.
    // Changing them (the Gear table, the masks, the algorithm, the defaults) breaks dedupe with
    // every existing remote and store. Never "update" these numbers to make the test pass.
    const data = xorshift(1 << 20, 0x70617175);
    const expected = [
      8279, 17201, 25968, 31152, 42832, 48564, 51423, 60384, 69357, 72803, 84624, 96689, 105210, 114081, 122821,
      135343, 145408, 155387, 165763, 167979, 177383, 186012, 190514, 199352, 207969, 219730, 228040, 238491, 247419,
      256556, 264798, 273067, 277227, 283485, 287766, 296160, 305757, 314720, 325737, 334152, 342860, 352105, 361042,
      370089, 379161, 387494, 395749, 405839, 416410, 426433, 430096, 439262, 445183, 449584, 461283, 469857, 478544,
      491414, 501637, 508949, 519986, 522688, 537266, 540638, 545748, 556744, 569012, 579139, 585718, 597383, 607400,
      616070, 625112, 635264, 643763, 653384, 664151, 672905, 690096, 696672, 707082, 716190, 724835, 734041, 746912,
      757358, 766824, 783826, 795382, 803625, 814811, 818396, 830033, 839208, 848801, 859821, 870484, 878924, 889700,
      898372, 904803, 913660, 924089, 933998, 943938, 952358, 961984, 966412, 977780, 986068, 995488, 998220,
      1008120, 1012751, 1026551, 1035850, 1048576,
    ];
    assert.deepEqual(cutAll(data, PINNED), expected);
    const wasm = await createWasmChunker(PINNED);
    wasm.buffer.set(data);
    assert.deepEqual(wasm.cut(data.length, true), expected);
  });

  test('FIXED cut points with the default parameters never change', async () => {
    // Same guarantee for the defaults every new remote uses (1 KiB / 4 KiB / 32 KiB).
    const data = xorshift(1 << 18, 0x70617175);
    const expected = [
      4595, 8279, 12581, 17201, 21668, 25968, 31152, 35520, 42832, 47925, 51423, 56787, 61624, 66685, 72344, 73996,
      77826, 84624, 89732, 95384, 99806, 104448, 109509, 114081, 118893, 123064, 127464, 130502, 135343, 139458,
      144382, 148999, 155387, 160527, 165116, 166325, 167979, 172435, 177383, 182141, 186352, 190464, 194939, 199352,
      201607, 205835, 211281, 216249, 221534, 225921, 230591, 237456, 241657, 245891, 250062, 254421, 258806, 262144,
    ];
    assert.deepEqual(DEFAULT_PARAMS, { minSize: 1024, avgSize: 4096, maxSize: 32768 });
    assert.deepEqual(cutAll(data, DEFAULT_PARAMS), expected);
    const wasm = await createWasmChunker(DEFAULT_PARAMS);
    wasm.buffer.set(data);
    assert.deepEqual(wasm.cut(data.length, true), expected);
  });
});

describe('WebAssembly chunker', () => {
  test('matches the JS reference on many inputs and parameters', async () => {
    let cases = 0;
    for (const params of PARAM_SETS) {
      const wasm = await createWasmChunker(params);
      const check = (data: Uint8Array, what: string) => {
        wasm.buffer.set(data);
        assert.deepEqual(wasm.cut(data.length, true), cutAll(data, params), `${what}, ${data.length} bytes, ${JSON.stringify(params)}`);
        cases++;
      };
      const { minSize: min, avgSize: avg, maxSize: max } = params;
      const sizes = [0, 1, 63, min - 1, min, min + 1, avg - 1, avg, avg + 1, max - 1, max, max + 1, 2 * max + 3, 3 * max + 1000];
      for (let s = 0; s < 6; s++) sizes.push(1 + ((xorshift(4, 1000 + s)[0] * 7919 + s * 104729) % (4 * max)));
      for (const [i, n] of sizes.entries()) {
        check(xorshift(n, 31 + i), 'random');
        check(textLike(n, 71 + i), 'text');
        check(new Uint8Array(n), 'zeros');
        check(new Uint8Array(n).fill(0xff), 'ones');
        // Mostly zeros with random islands: long runs force max cuts, the islands cut early.
        const islands = new Uint8Array(n);
        for (let k = 0; k < n; k += 5000) islands.set(xorshift(Math.min(300, n - k), k + 1), k);
        check(islands, 'islands');
        // A short repeated pattern (a constant hash after 32 bytes, hit or miss forever).
        const pat = new Uint8Array(n);
        for (let k = 0; k < n; k++) pat[k] = (k % 7) * 37;
        check(pat, 'pattern');
      }
      // Large inputs: many chunks through every code path.
      check(xorshift(3 << 20, 4242), 'random 3 MiB');
      check(textLike(2 << 20, 4343), 'text 2 MiB');
    }
    assert.ok(cases > 800);
  });

  test('matches the JS reference when cutting a stream (final = false)', async () => {
    for (const params of PARAM_SETS) {
      const data = textLike(5 * params.maxSize + 777, 9);
      for (const bufferSize of [params.maxSize, params.maxSize + 1, 2 * params.maxSize + 333, 4 * params.maxSize]) {
        const wasm = await createWasmChunker(params, bufferSize);
        const js = createJsChunker(params, bufferSize);
        const viaWasm = await collectEnds((f) => chunkBytes(data, wasm, f));
        const viaJs = await collectEnds((f) => chunkBytes(data, js, f));
        assert.deepEqual(viaWasm, cutAll(data, params), `buffer ${bufferSize}, ${JSON.stringify(params)}`);
        assert.deepEqual(viaJs, viaWasm);
      }
    }
  });

  test('its buffer is a view into WebAssembly memory that never moves', async () => {
    const chunker = await createWasmChunker(DEFAULT_PARAMS);
    const { buffer } = chunker;
    assert.ok(buffer.length >= DEFAULT_PARAMS.maxSize);
    assert.equal(buffer.buffer.byteLength % 65536, 0); // a WebAssembly.Memory is whole 64 KiB pages
    const backing = buffer.buffer;
    const data = xorshift(buffer.length, 3);
    for (let i = 0; i < 5; i++) {
      buffer.set(data);
      chunker.cut(buffer.length, i % 2 === 0);
      chunker.cutWithIds(buffer.length, i % 2 === 1);
    }
    assert.equal(chunker.buffer, buffer);
    assert.equal(buffer.buffer, backing);
    assert.equal(buffer.byteLength, data.length); // not detached
    assert.deepEqual(buffer, data); // cut never writes the input
  });

  test('createChunker uses WebAssembly and validates its arguments', async () => {
    const chunker = await createChunker();
    assert.equal(chunker.buffer.buffer.byteLength % 65536, 0);
    assert.deepEqual(chunker.params, DEFAULT_PARAMS);
    assert.throws(() => chunker.cut(chunker.buffer.length + 1, true), RangeError);
    assert.throws(() => chunker.cut(-1, true), RangeError);
    assert.throws(() => chunker.cutWithIds(chunker.buffer.length + 1, true), RangeError);
    await assert.rejects(createChunker({ minSize: 100, avgSize: 1000, maxSize: 2000 }), RangeError);
    await assert.rejects(createWasmChunker(DEFAULT_PARAMS, 1000), RangeError);
  });

  test('the shipped bytes were compiled from the shipped fastcdc.wat', () => {
    const watPath = new URL('../../src/chunk/fastcdc.wat', import.meta.url);
    const sha = crypto.createHash('sha256').update(fs.readFileSync(watPath)).digest('hex');
    assert.equal(sha, FASTCDC_WAT_SHA256, 'src/chunk/wasm-bytes.ts is stale: regenerate it (bench/README.md)');
  });
});

describe('chunkFile and chunkBytes', () => {
  const write = (name: string, data: Uint8Array) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, data);
    return p;
  };

  test('streaming a file with odd buffer sizes gives the same cuts as cutAll', async () => {
    const data = textLike(3 * 65536 * 4 + 12345, 17);
    const file = write('odd.bin', data);
    const expected = cutAll(data, DEFAULT_PARAMS);
    for (const bufferSize of [65536, 65537, 3 * 65536 + 1001, 4 << 20, data.length + 5]) {
      const chunker = await createWasmChunker(DEFAULT_PARAMS, bufferSize);
      const chunks: Buffer[] = [];
      const ends = await collectEnds((f) => chunkFile(file, chunker, (c) => {
        chunks.push(Buffer.from(c)); // the view is only valid during the callback
        f(c);
      }));
      assert.deepEqual(ends, expected, `buffer ${bufferSize}`);
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(data));
    }
    const js = createJsChunker(DEFAULT_PARAMS, 70001);
    assert.deepEqual(await collectEnds((f) => chunkFile(file, js, f)), expected);
  });

  test('awaits async callbacks in order, with a valid view', async () => {
    const data = xorshift(500_000, 23);
    const chunker = await createChunker();
    const seen: string[] = [];
    await chunkBytes(data, chunker, async (c) => {
      const before = Buffer.from(c).toString('hex');
      await new Promise((r) => setTimeout(r, 1));
      assert.equal(Buffer.from(c).toString('hex'), before);
      seen.push(before);
    });
    assert.equal(seen.join(''), Buffer.from(data).toString('hex'));
  });

  test('an empty file or input has no chunks', async () => {
    const chunker = await createChunker();
    let calls = 0;
    await chunkFile(write('empty', new Uint8Array(0)), chunker, () => void calls++);
    await chunkBytes(new Uint8Array(0), chunker, () => void calls++);
    assert.equal(calls, 0);
  });

  test('small inputs are one chunk', async () => {
    const chunker = await createChunker();
    for (const n of [1, 100, DEFAULT_PARAMS.minSize]) {
      const ends = await collectEnds((f) => chunkFile(write(`small${n}`, xorshift(n, n)), chunker, f));
      assert.deepEqual(ends, [n]);
    }
  });

  test('a chunker feeds one stream at a time', async () => {
    const chunker = await createChunker();
    const data = xorshift(200_000, 1);
    const first = chunkBytes(data, chunker, () => new Promise((r) => setTimeout(r, 1)));
    await assert.rejects(chunkBytes(data, chunker, () => {}), /already chunking/);
    await first;
    await chunkBytes(data, chunker, () => {}); // free again
  });

  test('a missing file is an error and the chunker stays usable', async () => {
    const chunker: Chunker = await createChunker();
    await assert.rejects(chunkFile(path.join(tmp, 'nope'), chunker, () => {}), { code: 'ENOENT' });
    assert.equal((await collectEnds((f) => chunkBytes(xorshift(10, 1), chunker, f))).length, 1);
  });
});

describe('chunk ids', () => {
  test('are xxh64 with seed 0, FIXED for known inputs', async () => {
    await initHash();
    // xxh64 of the empty input is a published test vector.
    assert.equal(idToHex(chunkId(new Uint8Array(0))), 'ef46db3751d8e999');
    assert.equal(idToHex(chunkId(new TextEncoder().encode('paquete'))), '430086a1a54bf534');
    // The first chunk of the FIXED input above: ids are part of the format too.
    const data = xorshift(1 << 20, 0x70617175);
    assert.equal(idToHex(chunkId(data.subarray(0, 8279))), '1133ec03d5e1cc58');
    assert.equal(chunkId(data), 0x6262376b932d24een);
  });

  test('the WebAssembly chunker computes the same ids as xxhash-wasm (cutWithIds), at every length and alignment', async () => {
    await initHash();
    let checked = 0;
    const check = (chunker: Chunker, data: Uint8Array, what: string) => {
      chunker.buffer.set(data);
      const { ends, ids } = chunker.cutWithIds(data.length, true);
      assert.deepEqual(ends, chunker.cut(data.length, true), what);
      assert.equal(ids.length, ends.length, what);
      ends.forEach((end, i) => {
        const start = i ? ends[i - 1] : 0;
        assert.equal(ids[i], chunkId(data.subarray(start, end)), `${what}: chunk ${i} [${start}, ${end})`);
        checked++;
      });
      return ends;
    };
    // Every length 0..64 and many up to 600 KiB, as the only chunk (aligned) and after a first
    // chunk of 1027 bytes (a run of 0xff is cut at max), so at an odd address.
    const single = await createWasmChunker({ minSize: 1 << 20, avgSize: 1 << 20, maxSize: 1 << 20 });
    const shifted = await createWasmChunker({ minSize: 64, avgSize: 256, maxSize: 1027 }, 1 << 20);
    const lengths = Array.from({ length: 65 }, (_, n) => n);
    for (let n = 65; n < 600_000; n = Math.ceil(n * 1.07) + 1) lengths.push(n, n + 1, n + 7);
    lengths.push(600_000);
    for (const n of lengths) {
      const data = xorshift(n, n + 1);
      check(single, data, `${n} bytes`);
      if (n <= 70_000) {
        const after = new Uint8Array(1027 + n).fill(0xff);
        after.set(data, 1027);
        assert.equal(check(shifted, after, `${n} bytes after 1027`)[0], 1027);
      }
    }
    // Content-defined chunks of every parameter set: all lengths between min and max, at odd offsets.
    for (const params of PARAM_SETS) {
      const wasm = await createWasmChunker(params);
      check(wasm, xorshift(3 * params.maxSize + 777, 5), `random ${JSON.stringify(params)}`);
      check(wasm, textLike(3 * params.maxSize + 777, 6), `text ${JSON.stringify(params)}`);
    }
    assert.ok(checked > 2000, `${checked} ids checked`);
    // The JS reference offers the same (ids from xxhash-wasm).
    const js = createJsChunker(DEFAULT_PARAMS);
    const data = textLike(300_000, 8);
    js.buffer.set(data);
    const wasm = await createWasmChunker(DEFAULT_PARAMS);
    wasm.buffer.set(data);
    assert.deepEqual(js.cutWithIds(data.length, true), wasm.cutWithIds(data.length, true));
    assert.deepEqual(js.cutWithIds(data.length, false), wasm.cutWithIds(data.length, false));
  });

  test('the first FIXED chunk has the same id through cutWithIds', async () => {
    const data = xorshift(1 << 20, 0x70617175);
    const wasm = await createWasmChunker(PINNED);
    wasm.buffer.set(data);
    const { ends, ids } = wasm.cutWithIds(data.length, true);
    assert.equal(ends[0], 8279);
    assert.equal(idToHex(ids[0]), '1133ec03d5e1cc58');
  });

  test('chunkFileWithIds and chunkBytesWithIds give the chunks and ids of chunkFile + chunkId', async () => {
    const data = new Uint8Array(3 * 65536 * 4 + 12345);
    data.set(textLike(400_000, 3));
    data.set(xorshift(data.length - 500_000, 4), 500_000); // text, zeros, random
    const file = path.join(tmp, 'ids.bin');
    fs.writeFileSync(file, data);
    const expected: string[] = [];
    await chunkFile(file, await createWasmChunker(DEFAULT_PARAMS), (c) => void expected.push(`${c.length}:${idToHex(chunkId(c))}`));
    assert.ok(expected.length > 100);
    for (const bufferSize of [65536, 65537, 3 * 65536 + 1001, 4 << 20]) {
      for (const chunker of [await createWasmChunker(DEFAULT_PARAMS, bufferSize), createJsChunker(DEFAULT_PARAMS, bufferSize)]) {
        const viaFile: string[] = [];
        const viaBytes: string[] = [];
        await chunkFileWithIds(file, chunker, (c, id) => {
          assert.equal(id, chunkId(c));
          viaFile.push(`${c.length}:${idToHex(id)}`);
        });
        await chunkBytesWithIds(data, chunker, async (c, id) => {
          await new Promise((r) => setImmediate(r)); // the view stays valid across an await
          assert.equal(id, chunkId(c));
          viaBytes.push(`${c.length}:${idToHex(id)}`);
        });
        assert.deepEqual(viaFile, expected, `file, buffer ${bufferSize}`);
        assert.deepEqual(viaBytes, expected, `bytes, buffer ${bufferSize}`);
      }
    }
  });

  test('hex and byte forms round-trip', () => {
    for (const id of [0n, 1n, 0x0123456789abcdefn, 0xffffffffffffffffn, 0x8000000000000000n]) {
      const hex = idToHex(id);
      assert.match(hex, /^[0-9a-f]{16}$/);
      assert.equal(idFromHex(hex), id);
      const bytes = idToBytes(id);
      assert.equal(bytes.length, 8);
      assert.equal(idFromBytes(bytes), id);
    }
    assert.equal(idToHex(1n), '0000000000000001');
    assert.deepEqual([...idToBytes(0x0102030405060708n)], [1, 2, 3, 4, 5, 6, 7, 8]); // big-endian
    const into = new Uint8Array(20);
    idToBytes(0xaabbn, into, 10);
    assert.equal(idFromBytes(into, 10), 0xaabbn);
    assert.throws(() => idToHex(-1n), RangeError);
    assert.throws(() => idToHex(1n << 64n), RangeError);
    assert.throws(() => idFromBytes(new Uint8Array(7)), RangeError);
    assert.throws(() => idFromHex('ABC'), RangeError);
  });
});
