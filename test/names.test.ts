/**
 * The one name checker (src/snapshot/paths.ts): the rules that always apply, in every guise an
 * attacker can spell the store's directory; source names wherever they are decoded.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PaqueteError } from '../src/errors.js';
import { checkSnapshotPath, checkSourceName, isStoreDirName } from '../src/snapshot/paths.js';
import { decodeSnapshot, encodeSnapshot, Snapshot, snapshotBody } from '../src/snapshot/snapshot.js';
import { decodeManifest, encodeManifest } from '../src/snapshot/manifest.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { sampleManifestBody } from './helpers/fixtures.js';
import { parseSourceSpec } from '../src/sources/spec.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof PaqueteError, String(e));
    return e.code;
  }
};

/** The store's directory as FAT/exFAT, NTFS, HFS+/APFS or a Unicode trick could spell it. */
export const STORE_DIR_GUISES = [
  '.paquete',
  '.Paquete',
  '.PAQUETE',
  '.paquete.',
  '.paquete..',
  '.paquete ',
  '.paquete . ',
  '.paq\u200cuete', // zero-width non-joiner: HFS+ ignores it
  '.paquete\ufeff',
  '\u200b.paquete',
  '.paqu\u00ADete', // soft hyphen
  '\uff0e\uff50\uff41\uff51\uff55\uff45\uff54\uff45', // fullwidth
  '.paquete:config.json', // an NTFS stream of .paquete
  '.paquete::$INDEX_ALLOCATION',
  'PAQUET~1',
  'paquet~2',
  '.PAQUET~1',
];

describe('names that are never safe', () => {
  test("the store's directory in every guise, at any depth, is refused", () => {
    for (const g of STORE_DIR_GUISES) {
      assert.ok(isStoreDirName(g), JSON.stringify(g));
      for (const path of [`${g}/config.json`, `site/${g}/config.json`, `site/a/${g}`]) {
        assert.equal(codeOf(() => checkSnapshotPath(path)), 'UNSAFE_PATH', JSON.stringify(path));
      }
      assert.equal(codeOf(() => checkSourceName(g)), 'UNSAFE_PATH', JSON.stringify(g));
    }
    for (const ok of ['paquete', '.paquetes', 'a.paquete', '.paquete-x', 'paquete~1x', 'site/paquete/x']) {
      assert.equal(isStoreDirName(ok.split('/').pop()!), false, ok);
      assert.equal(codeOf(() => checkSnapshotPath(`site/${ok}`)), undefined, ok);
    }
  });

  test('structure, control characters and broken Unicode are refused; ordinary names pass', () => {
    const bad = ['', '/etc/passwd', 'C:/x', 'site/../x', 'site/./x', 'site//x', 'site/', 'a\\b', 'a\0b', 'site/a\nb', 'site/\x1b[31mred', 'site/a\x7f', 'site/\u0085', 'site/\ud800x', 'x'.repeat(4097)];
    for (const p of bad) assert.equal(codeOf(() => checkSnapshotPath(p)), 'UNSAFE_PATH', JSON.stringify(p));
    // FAT/NTFS-only problems are not refused here: they depend on the disk (nameProblems).
    for (const p of ['site/a.txt', 'site/CON', 'site/a:b', 'site/trailing.', 'site/ü/ß', 'site/e\u0301', 'site/😀', 'site/a b']) {
      assert.equal(codeOf(() => checkSnapshotPath(p)), undefined, JSON.stringify(p));
    }
  });

  test('source names: one plain component, wherever they come from', () => {
    for (const n of ['../../../../..', '../../../../../etc', '..', '.', '', 'a/b', 'a b', 'x'.repeat(101), '.paquete', '.Paquete.', 'ü']) {
      assert.equal(codeOf(() => checkSourceName(n)), 'UNSAFE_PATH', JSON.stringify(n));
      if (/^[A-Za-z0-9._+-]+$/.test(n)) assert.equal(codeOf(() => parseSourceSpec(`${n}=./dir`)), 'USAGE', n);
    }
    for (const n of ['site', 'py312', 'a.b_c+d-e', 'x'.repeat(100)]) assert.equal(codeOf(() => checkSourceName(n)), undefined, n);
    assert.equal(codeOf(() => checkSourceName(7)), 'UNSAFE_PATH');
  });

  const snapshot = (sources: Snapshot['sources']): Snapshot => ({ params: { minSize: 16384, avgSize: 65536, maxSize: 262144 }, created: 1, sources, packs: [], chunks: [], files: [] });

  test('a snapshot index or a signed manifest naming a hostile source is refused when decoded', () => {
    const { key, publicKey } = parseSecretKey(generateKeys().secretPem, 'k');
    for (const sources of [[{ kind: 'docs', name: '../../../../..' }], [{ kind: 'tree', name: '.PAQUETE' }], [{ kind: 'tree', name: 'a' }, { kind: 'tree', name: 'A' }], [{ kind: '../x', name: 'a' }]]) {
      assert.ok(['UNSAFE_PATH', 'BAD_FORMAT'].includes(codeOf(() => decodeSnapshot(encodeSnapshot(snapshot(sources))))!), JSON.stringify(sources));
      const body = sampleManifestBody(publicKey);
      body.snapshots[0].sources = sources;
      assert.ok(['UNSAFE_PATH', 'BAD_FORMAT'].includes(codeOf(() => decodeManifest(encodeManifest(body, key), 'm'))!), JSON.stringify(sources));
    }
    const body = sampleManifestBody(publicKey);
    (body.snapshots[0] as { sources: unknown }).sources = 'site';
    assert.equal(codeOf(() => decodeManifest(encodeManifest(body, key), 'm')), 'BAD_FORMAT');
    assert.equal(codeOf(() => decodeSnapshot(encodeSnapshot(snapshot([{ kind: 'docs', name: 'manual' }])))), undefined);
  });

  test('a string that is not valid UTF-8 is refused, not turned into U+FFFD', () => {
    const good = Buffer.from(encodeSnapshot(snapshot([{ kind: 'tree', name: 'abc' }])));
    // Uncompressed copy with the name's bytes replaced by an invalid sequence.
    const body = Buffer.from(snapshotBody(good));
    const at = body.indexOf(Buffer.from('abc'));
    body[at] = 0xff;
    const bytes = Buffer.concat([Buffer.from('PQSN'), Buffer.from([2, 0, 0, 0]), body]);
    assert.equal(codeOf(() => decodeSnapshot(bytes)), 'BAD_FORMAT');
  });
});
