import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { ChunkTable, decodeSnapshot, encodeSnapshot, fileTableOf, FileTable, Snapshot, snapshotBody, snapshotFileOfBody, SNAPSHOT_VERSION } from '../src/snapshot/snapshot.js';
import { Repr } from '../src/store/pack.js';
import { PaqueteError } from '../src/errors.js';

const chunks = ChunkTable.of([
  { id: 1n, pack: 0, offset: 8, repr: Repr.Raw, rawLength: 100, storedLength: 100 },
  { id: 2n, pack: 0, offset: 125, repr: Repr.Raw, rawLength: 50, storedLength: 50 },
  { id: 3n, pack: 0, offset: 192, repr: Repr.Raw, rawLength: 7, storedLength: 7 },
]);

const snapshotOf = (files: Snapshot['files']): Snapshot => ({
  params: { minSize: 2048, avgSize: 8192, maxSize: 65536 },
  created: 1_790_000_000,
  sources: [{ kind: 'tree', name: 'src' }],
  packs: [randomBytes(32).toString('hex')],
  chunks,
  files,
});

const sizeOf = (list: number[]) => list.reduce((n, i) => n + chunks.rawLength[i], 0);

test('a file table holds what the entries say, and gives them back', () => {
  const name = fc.stringMatching(/^[a-zA-Z0-9ñú é_-]{1,12}$/).filter((n) => n.trim() === n && !n.endsWith('.') && n !== '.paquete');
  fc.assert(
    fc.property(fc.uniqueArray(name, { minLength: 0, maxLength: 30, comparator: (a, b) => a.toLowerCase() === b.toLowerCase() }), fc.array(fc.array(fc.nat(2), { maxLength: 6 }), { minLength: 30, maxLength: 30 }), (names, lists) => {
      const files = names.map((n, k) => {
        const list = lists[k];
        return { path: `src/${n}`, mode: k % 2 ? 0o755 : 0o644, size: sizeOf(list), sha256: randomBytes(32), chunks: list, ...(k % 5 === 4 ? { rebuiltSize: 1000 + k } : {}) };
      });
      const t = FileTable.of(files);
      assert.equal(t.length, files.length);
      files.forEach((f, i) => {
        assert.equal(t.path(i), f.path);
        assert.equal(t.sourceName(i), 'src');
        assert.deepEqual([...t.chunks(i)], f.chunks);
        assert.equal(t.placedSize(i), f.rebuiltSize ?? f.size);
        assert.deepEqual(Buffer.from(t.sha256(i)), Buffer.from(f.sha256));
      });
      assert.deepEqual(t.entries().map((e) => ({ ...e, sha256: Buffer.from(e.sha256) })), files.map((f) => ({ ...f, sha256: Buffer.from(f.sha256) })));
      // And through the wire format: the decoded snapshot's table is the same, without objects.
      const decoded = decodeSnapshot(encodeSnapshot(snapshotOf(files)));
      const dt = fileTableOf(decoded);
      assert.deepEqual([...dt.pathStart], [...t.pathStart]);
      assert.deepEqual(Buffer.from(dt.pathBytes), Buffer.from(t.pathBytes));
      assert.deepEqual([...dt.chunkList], [...t.chunkList]);
      assert.deepEqual([...dt.size], [...t.size]);
      assert.deepEqual([...dt.rebuilt], [...t.rebuilt]);
    }),
    { numRuns: 60 },
  );
});

test('a decoded snapshot makes file objects only when asked, and a change to them is what is encoded', () => {
  const files = [
    { path: 'src/a', mode: 0o644, size: sizeOf([0, 1]), sha256: randomBytes(32), chunks: [0, 1] },
    { path: 'src/b', mode: 0o644, size: sizeOf([2]), sha256: randomBytes(32), chunks: [2] },
  ];
  const decoded = decodeSnapshot(encodeSnapshot(snapshotOf(files)));
  const table = fileTableOf(decoded);
  assert.equal(fileTableOf(decoded), table, 'the decoder’s table, not a new one');
  decoded.files[1].path = 'src/c';
  assert.equal(fileTableOf(decoded).path(1), 'src/c', 'once files are objects, they are what counts');
  assert.equal(fileTableOf(decodeSnapshot(encodeSnapshot(decoded))).path(1), 'src/c');
  // A snapshot made from a decoded one with other files has those files.
  const one = { ...decodeSnapshot(encodeSnapshot(snapshotOf(files))), files: [files[0]] };
  assert.equal(fileTableOf(one).length, 1);
});

test('the decoder refuses a path listed twice and a file that is also a folder', () => {
  const refused = (files: Snapshot['files'], why: RegExp) =>
    assert.throws(
      () => decodeSnapshot(encodeSnapshot(snapshotOf(files))),
      (e) => e instanceof PaqueteError && why.test(e.message),
    );
  const f = (path: string, list: number[] = []) => ({ path, mode: 0o644, size: sizeOf(list), sha256: randomBytes(32), chunks: list });
  refused([f('src/a'), f('src/b', [1]), f('src/a', [2])], /listed twice/);
  // Many files, so the hash set probes past collisions and still finds the repeat.
  const many = Array.from({ length: 5000 }, (_, i) => f(`src/d${i % 7}/f${i}`));
  refused([...many, f('src/d3/f4000')], /listed twice/);
  refused([f('src/x/y/z'), f('src/x/y')], /both a file and a directory/);
  refused([f('src/x'), f('src/x/y')], /both a file and a directory/);
  // A path that is not UTF-8 (an uncompressed copy with its second byte of ñ made invalid).
  const body = Buffer.from(snapshotBody(encodeSnapshot(snapshotOf([f('src/\u00f1')]))));
  body[body.indexOf(Buffer.from('src/\u00f1')) + 5] = 0x41;
  assert.throws(() => decodeSnapshot(snapshotFileOfBody(body, SNAPSHOT_VERSION)), /not valid UTF-8/);
});
