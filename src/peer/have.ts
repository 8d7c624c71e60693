import { createHash } from 'node:crypto';
import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { ByteReader, ByteWriter } from '../util/bytes.js';

/**
 * The have-summary: what a friend's store holds, written by `paquete have` and read by
 * `paquete export --for`. It travels on a stick and maybe over the paid link, so the chunk ids
 * (nearly all of it) are an exact sorted list, Golomb-Rice coded: uniformly spread 64-bit ids
 * cost about 64 − log2(n) + 1.5 bits each (≈ 6.1 bytes at 100 000 chunks) instead of 8.
 *
 * Exact rather than a Bloom or Golomb-coded filter on purpose: a filter's false positive says
 * "the friend has it" for a chunk they lack, so the exporter would leave it out and the friend
 * would pay for it on the link. That is the costly direction; an exact list never errs. The
 * id-coding byte leaves room for a filter whose errors go the other way, should one be needed.
 *
 * Layout in docs/FORMATS.md §Have-summary. One encoder, one decoder, side by side.
 */
export const HAVE_MAGIC = Buffer.from('PQHV', 'ascii');
export const HAVE_VERSION = 1;
/** Id coding 1: sorted distinct ids, gaps Golomb-Rice coded. */
export const HAVE_CODING_RICE = 1;
const FIXED_SIZE = 40;
const CHECKSUM_SIZE = 8;
/**
 * More ids than any real store holds (2^26 chunks is ~512 GiB at 8 KiB), so a hostile file
 * cannot make the reader allocate gigabytes: each id may cost as little as one bit.
 */
export const MAX_HAVE_IDS = 2 ** 26;

export interface HaveSummary {
  /** The 32-byte Ed25519 key the friend's working directory trusts. */
  publisher: Uint8Array;
  /** Serial of the manifest the friend trusts; undefined when they never accepted one. */
  serial?: number;
  /** Hex names of the snapshot indexes the friend has cached (no need to send them again). */
  snapshots: string[];
  /** Unix seconds when the summary was written. */
  created: number;
  /** Chunk ids in the friend's store, ascending and distinct. */
  ids: BigUint64Array;
}

const U64_MAX = (1n << 64n) - 1n;

export function encodeHave(h: HaveSummary): Uint8Array {
  if (h.publisher.length !== 32) throw new RangeError('the publisher key has 32 bytes');
  const ids = BigUint64Array.from(h.ids).sort();
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (i === 0 || ids[i] !== ids[n - 1]) ids[n++] = ids[i];
  if (n > MAX_HAVE_IDS) throw new RangeError(`a have-summary holds at most ${MAX_HAVE_IDS} ids`);
  const sorted = ids.subarray(0, n);

  const w = new ByteWriter(64 + n * 7);
  const fixed = Buffer.alloc(FIXED_SIZE);
  HAVE_MAGIC.copy(fixed, 0);
  fixed[4] = HAVE_VERSION;
  fixed[5] = HAVE_CODING_RICE;
  fixed.set(h.publisher, 8);
  w.bytes(fixed);
  w.varint(h.serial === undefined ? 0 : h.serial + 1);
  w.varint(h.created);
  w.varint(h.snapshots.length);
  for (const s of h.snapshots) {
    if (!/^[0-9a-f]{64}$/.test(s)) throw new RangeError(`not a snapshot name: ${s}`);
    w.bytes(Buffer.from(s, 'hex'));
  }
  const { k, stream } = riceEncode(sorted);
  w.varint(n).u8(k).varint(stream.length).bytes(stream);
  const body = w.finish();
  const sum = createHash('sha256').update(body).digest().subarray(0, CHECKSUM_SIZE);
  return Buffer.concat([body, sum]);
}

export function decodeHave(data: Uint8Array): HaveSummary {
  const what = 'have-summary';
  if (data.length < 4 || !HAVE_MAGIC.equals(data.subarray(0, 4))) {
    throw new PaqueteError('BAD_FORMAT', `not a paquete ${what} (bad magic); make one with paquete have --out FILE`);
  }
  if (data.length < FIXED_SIZE + CHECKSUM_SIZE) throw new PaqueteError('BAD_FORMAT', `damaged ${what}: only ${data.length} bytes`);
  requireFormat(what, 'have-list', data[4], [HAVE_VERSION]);
  if (data[5] !== HAVE_CODING_RICE) {
    throw new PaqueteError('BAD_FORMAT', `${what} uses id coding ${data[5]}, which this paquete cannot read`, 'upgrade paquete');
  }
  const body = data.subarray(0, data.length - CHECKSUM_SIZE);
  const sum = createHash('sha256').update(body).digest().subarray(0, CHECKSUM_SIZE);
  if (!sum.equals(data.subarray(data.length - CHECKSUM_SIZE))) {
    throw new PaqueteError('BAD_FORMAT', `damaged ${what}: checksum mismatch (the file was changed or cut)`, 'ask your friend for a fresh paquete have');
  }
  const publisher = Buffer.from(body.subarray(8, 40));
  const r = new ByteReader(body.subarray(FIXED_SIZE), what);
  const serialPlus = r.varint();
  const created = r.varint();
  const snapshots: string[] = [];
  for (let n = r.count(32, 'snapshot'); n > 0; n--) snapshots.push(Buffer.from(r.bytes(32)).toString('hex'));
  const n = r.varint();
  const k = r.u8();
  if (k > 63) r.fail(`Rice parameter ${k} is above 63`);
  const streamLength = r.varint();
  const stream = r.bytes(streamLength);
  r.end();
  if (n > MAX_HAVE_IDS) r.fail(`${n} ids is more than any store holds`);
  // Every id costs at least k + 1 bits: refuse a count the stream cannot hold before allocating.
  if (n * (k + 1) > stream.length * 8) r.fail(`id count ${n} is larger than the data`);
  const ids = riceDecode(stream, n, k, what);
  return { publisher, serial: serialPlus === 0 ? undefined : serialPlus - 1, snapshots, created, ids };
}

/** Whether the summary lists `id` (binary search). */
export function haveHas(h: HaveSummary, id: bigint): boolean {
  const a = h.ids;
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < a.length && a[lo] === id;
}

/**
 * Golomb-Rice code of the gaps of a sorted distinct list: gap g (the first id itself, then
 * id − previous − 1) is written as g >> k in unary (that many 1 bits, then a 0), followed by the
 * low k bits of g, most significant first. k is chosen to make the stream shortest.
 */
function riceEncode(ids: BigUint64Array): { k: number; stream: Uint8Array } {
  const n = ids.length;
  if (n === 0) return { k: 0, stream: new Uint8Array(0) };
  // Gaps as 32-bit halves: BigInt arithmetic per id made a million ids take seconds.
  const words = new Uint32Array(ids.buffer, ids.byteOffset, n * 2);
  const [H, L] = LITTLE_ENDIAN ? [1, 0] : [0, 1];
  const gapHi = new Uint32Array(n);
  const gapLo = new Uint32Array(n);
  const approx = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    let hi = words[2 * i + H];
    let lo = words[2 * i + L];
    if (i > 0) {
      lo = lo - words[2 * i - 2 + L] - 1;
      hi = hi - words[2 * i - 2 + H];
      if (lo < 0) {
        lo += 2 ** 32;
        hi -= 1;
      }
    }
    gapHi[i] = hi;
    gapLo[i] = lo;
    approx[i] = hi * 2 ** 32 + lo;
    sum += approx[i];
  }
  // Cost n(k+1) + Σ(g >> k) is smallest near k = log2(mean gap · ln 2): try its neighbours
  // (approximate sums are enough to pick k; the stream itself is exact).
  const mean = sum / n;
  const guess = mean < 1 ? 0 : Math.floor(Math.log2(mean * Math.LN2));
  let best = { k: 0, bits: Infinity };
  for (let k = Math.max(0, guess - 1); k <= Math.min(63, guess + 1); k++) {
    const scale = 2 ** k;
    let q = 0;
    for (let i = 0; i < n; i++) q += Math.floor(approx[i] / scale);
    const bits = q + n * (k + 1);
    if (bits < best.bits) best = { k, bits };
  }
  const { k } = best;
  // The sums above may be off by one per id (doubles round above 2^53): room for that.
  const out = new Uint8Array(Math.ceil((best.bits + n) / 8) + 16);
  let bitPos = 0;
  const put = (value: number, count: number) => {
    // `count` ≤ 32 bits of `value`, most significant first.
    for (let b = count - 1; b >= 0; b--) {
      if ((value >>> b) & 1) out[bitPos >>> 3] |= 0x80 >>> (bitPos & 7);
      bitPos++;
    }
  };
  for (let i = 0; i < n; i++) {
    const hi = gapHi[i];
    const lo = gapLo[i];
    let q: number;
    if (k >= 32) q = k === 32 ? hi : hi >>> (k - 32);
    else q = hi * 2 ** (32 - k) + (k === 0 ? lo : lo >>> k);
    // Unary: q ones (zero bytes already mean 0 bits, so only the ones are written), then a 0.
    while (q > 0 && (bitPos & 7) !== 0) {
      out[bitPos >>> 3] |= 0x80 >>> (bitPos & 7);
      bitPos++;
      q--;
    }
    while (q >= 8) {
      out[bitPos >>> 3] = 0xff;
      bitPos += 8;
      q -= 8;
    }
    while (q > 0) {
      out[bitPos >>> 3] |= 0x80 >>> (bitPos & 7);
      bitPos++;
      q--;
    }
    bitPos++;
    if (k > 32) {
      put(hi & (2 ** (k - 32) - 1), k - 32);
      put(lo, 32);
    } else if (k === 32) put(lo, 32);
    else if (k > 0) put(lo & (2 ** k - 1), k);
  }
  return { k, stream: out.subarray(0, Math.ceil(bitPos / 8)) };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function riceDecode(stream: Uint8Array, n: number, k: number, what: string): BigUint64Array {
  const fail = (why: string): never => {
    throw new PaqueteError('BAD_FORMAT', `damaged ${what}: ${why}`);
  };
  const totalBits = stream.length * 8;
  let bitPos = 0;
  const take = (count: number): number => {
    // `count` ≤ 32 bits, most significant first.
    if (bitPos + count > totalBits) fail('the id list ends early');
    let v = 0;
    for (let b = 0; b < count; b++) {
      v = v * 2 + ((stream[bitPos >>> 3] >>> (7 - (bitPos & 7))) & 1);
      bitPos++;
    }
    return v;
  };
  const ids = new BigUint64Array(n);
  const shift = BigInt(k);
  // The largest quotient that can still give an id below 2^64.
  const maxQ = Number(U64_MAX >> shift);
  let prev = -1n;
  for (let i = 0; i < n; i++) {
    let q = 0;
    for (;;) {
      if (bitPos >= totalBits) fail('the id list ends early');
      const byte = stream[bitPos >>> 3];
      if ((bitPos & 7) === 0 && byte === 0xff) {
        q += 8;
        bitPos += 8;
      } else if ((byte >>> (7 - (bitPos & 7))) & 1) {
        q++;
        bitPos++;
      } else {
        bitPos++;
        break;
      }
      if (q > maxQ) fail('an id gap is larger than 64 bits');
    }
    let low: bigint;
    if (k > 32) {
      const hi = take(k - 32);
      low = (BigInt(hi) << 32n) | BigInt(take(32));
    } else low = BigInt(take(k));
    const id = prev + 1n + ((BigInt(q) << shift) | low);
    if (id > U64_MAX) fail('an id is larger than 64 bits');
    ids[i] = id;
    prev = id;
  }
  // The stream is canonical: it ends in the last byte it needs, padded with zero bits.
  if (stream.length !== Math.ceil(bitPos / 8)) fail(`${stream.length - Math.ceil(bitPos / 8)} unexpected bytes after the id list`);
  if (bitPos & 7 && stream[stream.length - 1] & (0xff >>> (bitPos & 7))) fail('nonzero padding after the id list');
  return ids;
}
