import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { ByteReader, ByteWriter } from '../src/util/bytes.js';
import { ChunkTable, decodeSnapshot, encodeSnapshot, Snapshot } from '../src/snapshot/snapshot.js';
import { decodeManifest, encodeManifest } from '../src/snapshot/manifest.js';
import { generateKeys, parsePublicKey, parseSecretKey, fingerprint } from '../src/snapshot/keys.js';
import { decodePayload, decodeRecordHeader, encodeRecord, RecordStream, Repr, RECORD_HEADER_SIZE } from '../src/store/pack.js';
import { PaqueteError } from '../src/errors.js';
import { parseSize } from '../src/util/size.js';
import { parseSourceSpec } from '../src/sources/spec.js';
import { sampleManifestBody } from './helpers/fixtures.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof PaqueteError, `expected a PaqueteError, got ${e}`);
    return e.code;
  }
  assert.fail('expected an error');
};

test('varints and zigzags round-trip every safe integer', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.maxSafeNat(), fc.integer({ min: -(2 ** 40), max: 2 ** 40 }))), (pairs) => {
      const w = new ByteWriter(1);
      for (const [u, s] of pairs) w.varint(u).zigzag(s);
      const r = new ByteReader(w.finish(), 'test');
      for (const [u, s] of pairs) {
        assert.equal(r.varint(), u);
        assert.equal(r.zigzag(), s);
      }
      r.end();
    }),
  );
});

test('the reader refuses to read past the end and names what was damaged', () => {
  const r = new ByteReader(Uint8Array.of(0x80, 0x80), 'snapshot index');
  assert.throws(() => r.varint(), /damaged snapshot index/);
  const c = new ByteReader(new ByteWriter().varint(1_000_000).finish(), 'x');
  assert.throws(() => c.count(8, 'file'), /file count 1000000 is larger than the data/);
});

function sampleSnapshot(): Snapshot {
  const packs = [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')];
  const mk = (pack: number, offset: number, raw: number, stored: number, repr: Repr) => ({ id: randomBytes(8).readBigUInt64BE(), pack, offset, repr, rawLength: raw, storedLength: stored });
  const chunks = [mk(0, 8, 100, 60, Repr.Deflate), mk(0, 8 + 17 + 60, 50, 50, Repr.Raw), mk(0, 5000, 7, 7, Repr.Raw), mk(1, 8, 10, 10, Repr.Raw)];
  return {
    params: { minSize: 2048, avgSize: 8192, maxSize: 65536 },
    created: 1_790_000_000,
    sources: [{ kind: 'tree', name: 'src' }, { kind: 'docs', name: 'py' }],
    packs,
    chunks: ChunkTable.of(chunks),
    files: [
      { path: 'src/empty', mode: 0o644, size: 0, sha256: randomBytes(32), chunks: [] },
      { path: 'src/a b/ñandú.txt', mode: 0o755, size: 160, sha256: randomBytes(32), chunks: [0, 1, 3] },
      { path: 'py/index.html', mode: 0o644, size: 257, sha256: randomBytes(32), chunks: [1, 0, 2, 1, 1] },
    ],
  };
}

test('snapshot index round-trips', () => {
  const s = sampleSnapshot();
  const decoded = decodeSnapshot(encodeSnapshot(s));
  assert.deepEqual(decoded, s);
});

test('snapshot index stays compact: about 11-14 bytes per chunk when chunk lists are sequential', () => {
  const n = 20000;
  const chunks = [];
  let off = 8;
  for (let i = 0; i < n; i++) {
    const stored = 3000 + (i % 2000);
    chunks.push({ id: randomBytes(8).readBigUInt64BE(), pack: 0, offset: off, repr: Repr.Deflate, rawLength: 8192 + (i % 977), storedLength: stored });
    off += RECORD_HEADER_SIZE + stored;
  }
  const size = chunks.reduce((a, c) => a + c.rawLength, 0);
  const s: Snapshot = { params: { minSize: 2048, avgSize: 8192, maxSize: 65536 }, created: 1, sources: [{ kind: 'tree', name: 't' }], packs: [randomBytes(32).toString('hex')], chunks: ChunkTable.of(chunks), files: [{ path: 't/big', mode: 0o644, size, sha256: randomBytes(32), chunks: chunks.map((_, i) => i) }] };
  const bytes = encodeSnapshot(s).length;
  assert.ok(bytes / n < 14, `${(bytes / n).toFixed(2)} bytes per chunk`);
});

test('snapshot decoding rejects names escaping the directory, bad references and sizes that do not add up', () => {
  for (const path of ['../evil', '/etc/passwd', 'a/../../b', 'a//b', '.paquete/config.json', 'a\\b', 'a/./b', 'C:/x']) {
    const s = sampleSnapshot();
    s.files[0].path = path;
    assert.equal(code(() => decodeSnapshot(encodeSnapshot(s))), 'UNSAFE_PATH', path);
  }
  const wrongSize = sampleSnapshot();
  wrongSize.files[1].size = 161;
  assert.equal(code(() => decodeSnapshot(encodeSnapshot(wrongSize))), 'BAD_FORMAT');
  const fileAndDir = sampleSnapshot();
  fileAndDir.files[0].path = 'src/a b';
  assert.equal(code(() => decodeSnapshot(encodeSnapshot(fileAndDir))), 'BAD_FORMAT');
  const bytes = encodeSnapshot(sampleSnapshot());
  assert.equal(code(() => decodeSnapshot(bytes.subarray(0, bytes.length - 3))), 'BAD_FORMAT');
  assert.equal(code(() => decodeSnapshot(Buffer.from('<html>login</html>'))), 'BAD_FORMAT');
});

test('snapshot decoding never crashes on garbage: every failure is a clear BAD_FORMAT or UNSAFE_PATH', () => {
  const good = encodeSnapshot(sampleSnapshot());
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (junk, at) => {
      const mutated = Buffer.concat([good.subarray(0, at % good.length), junk]);
      try {
        decodeSnapshot(mutated);
      } catch (e) {
        assert.ok(e instanceof PaqueteError && ['BAD_FORMAT', 'UNSAFE_PATH'].includes(e.code), String(e));
      }
    }),
    { numRuns: 300 },
  );
});

test('manifest: signed, verified, and any change to it is caught', () => {
  const { secretPem, publicLine } = generateKeys();
  const { key, publicKey } = parseSecretKey(secretPem, 'k');
  assert.equal(fingerprint(parsePublicKey(publicLine, 'k.pub')), fingerprint(publicKey));
  const body = sampleManifestBody(publicKey);
  const bytes = encodeManifest(body, key);
  assert.deepEqual(decodeManifest(bytes, 'here').body, body);
  const tampered = Buffer.from(bytes.toString().replace('"serial":3', '"serial":4'));
  assert.equal(code(() => decodeManifest(tampered, 'here')), 'BAD_SIGNATURE');
  // Re-signed by someone else: valid signature, different key (the caller checks trust).
  const other = parseSecretKey(generateKeys().secretPem, 'o');
  const forged = decodeManifest(encodeManifest({ ...body, publisher: Buffer.from(other.publicKey.raw).toString('base64') }, other.key), 'here');
  assert.notDeepEqual(forged.publisher.raw, publicKey.raw);
  assert.equal(code(() => decodeManifest(Buffer.from('<!DOCTYPE html><p>log in</p>'), 'here')), 'NOT_A_REMOTE');
});

test('pack records round-trip raw and compressed, and a stream cut anywhere yields whole records only', () => {
  const chunks = [randomBytes(5000), Buffer.alloc(9000, 7), Buffer.alloc(0), randomBytes(10)];
  const records = chunks.map((c, i) => encodeRecord(BigInt(i + 1), c));
  assert.equal(decodeRecordHeader(records[0]).repr, Repr.Raw);
  assert.equal(decodeRecordHeader(records[1]).repr, Repr.Deflate);
  const all = Buffer.concat(records);
  fc.assert(
    fc.property(fc.array(fc.nat({ max: all.length }), { maxLength: 6 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const stream = new RecordStream();
      const got: Uint8Array[] = [];
      let prev = 0;
      for (const p of [...points, all.length]) {
        for (const r of stream.push(all.subarray(prev, p))) got.push(decodePayload(r.header, r.payload));
        prev = p;
      }
      assert.equal(got.length, chunks.length);
      got.forEach((g, i) => assert.deepEqual(Buffer.from(g), chunks[i]));
    }),
  );
  const bad = Buffer.from(records[1]);
  bad[RECORD_HEADER_SIZE + 3] ^= 0xff;
  assert.throws(() => decodePayload(decodeRecordHeader(bad), bad.subarray(RECORD_HEADER_SIZE)), PaqueteError);
});

test('sizes parse as the command line promises', () => {
  assert.equal(parseSize('300MB'), 300_000_000);
  assert.equal(parseSize('300MiB'), 300 * 2 ** 20);
  assert.equal(parseSize('1.5GB'), 1_500_000_000);
  assert.equal(parseSize('12345'), 12345);
  assert.equal(code(() => parseSize('lots')), 'USAGE');
});

test('source specs: [KIND:][NAME=]PATH', () => {
  assert.deepEqual(parseSourceSpec('./wheels'), { kind: 'tree', name: 'wheels', path: './wheels' });
  assert.deepEqual(parseSourceSpec('docs:py312=./html'), { kind: 'docs', name: 'py312', path: './html' });
  assert.deepEqual(parseSourceSpec('pypi:./w'), { kind: 'pypi', name: 'w', path: './w' });
  assert.equal(code(() => parseSourceSpec('bogus:./x')), 'USAGE');
});
