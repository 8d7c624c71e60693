import { PaqueteError } from '../errors.js';

/**
 * The one encoder and one decoder of the primitive fields every binary format here uses:
 * unsigned LEB128 varints (up to 2^53 - 1), fixed-width little-endian integers, raw bytes and
 * length-prefixed UTF-8 strings. The reader checks every length against what is left, so a
 * hostile file cannot make us allocate or read past its end.
 */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.reserve(1);
    this.buf[this.length++] = v;
    return this;
  }

  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
    return this;
  }

  /** An IEEE 754 double, little-endian (file times as `fs.Stats` gives them, in ms). */
  f64(v: number): this {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
    return this;
  }

  /** A big-endian 32-bit value (half of a chunk id, as ids are written). */
  u32be(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, v, false);
    this.length += 4;
    return this;
  }

  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.reserve(8);
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
    return this;
  }

  /** Signed values (deltas) as zigzag varints so small negatives stay one byte. */
  zigzag(v: number): this {
    return this.varint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  bytes(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  string(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.varint(b.length).bytes(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

export class ByteReader {
  private readonly view: DataView;
  pos = 0;

  constructor(
    private readonly buf: Uint8Array,
    /** Names the thing being read in error messages: "snapshot index", "pack header"… */
    private readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(reason: string): never {
    throw new PaqueteError('BAD_FORMAT', `damaged ${this.what}: ${reason} (at byte ${this.pos})`);
  }

  /** Fails unless n more bytes are there. */
  need(n: number): void {
    if (n > this.remaining) this.fail(`needs ${n} more bytes, only ${this.remaining} left`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  u32be(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, false);
    this.pos += 4;
    return v;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) this.fail('number too large');
        return result;
      }
      scale *= 0x80;
    }
    return this.fail('varint longer than 8 bytes');
  }

  zigzag(): number {
    const v = this.varint();
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }

  /** A count of items that each take at least `minBytes`: bounded by what is left to read. */
  count(minBytes: number, label: string): number {
    const n = this.varint();
    if (n * minBytes > this.remaining) this.fail(`${label} count ${n} is larger than the data`);
    return n;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    const n = this.varint();
    const b = this.bytes(n);
    // Fatal: two different byte strings must never decode to one name (a lossy decoder maps
    // every invalid sequence to U+FFFD).
    try {
      return UTF8.decode(b);
    } catch {
      return this.fail('a string is not valid UTF-8');
    }
  }

  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected bytes at the end`);
  }
}
