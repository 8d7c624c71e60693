/**
 * The one name checker (src/snapshot/paths.ts): the rules that always apply, in every guise an
 * attacker can spell the store's directory; source names wherever they are decoded; the rules
 * of the disk the files go to (collisions refused as pairs, FAT/NTFS names, lengths), with the
 * probe that finds them; the publisher's refusals and warnings; fuzzing of every name field.
 */

after(cleanupAll);

const paquete = paqueteExpecting();
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import fc from 'fast-check';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { writeTree } from './helpers/trees.js';
import { forgeSnapshot } from './helpers/forge.js';
import { NameRules, nameProblems, nameProblemsOf, PORTABLE_RULES } from '../src/snapshot/paths.js';
import { FileTable } from '../src/snapshot/file-table.js';
import { probeNameRules } from '../src/workdir/fs-probe.js';
import { decodeGitRefs } from '../src/sources/git-refs.js';
import { isProjectName, parseDistFileName } from '../src/sources/pypi.js';
import { PaqueteError } from '../src/errors.js';
import { checkSnapshotPath, checkSourceName, isStoreDirName } from '../src/snapshot/paths.js';
import { ChunkTable, decodeSnapshot, encodeSnapshot, Snapshot, snapshotBody } from '../src/snapshot/snapshot.js';
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

  const snapshot = (sources: Snapshot['sources']): Snapshot => ({ params: { minSize: 16384, avgSize: 65536, maxSize: 262144 }, created: 1, sources, packs: [], chunks: new ChunkTable(0), files: [] });

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

const EXT4: NameRules = { caseInsensitive: false, normalizationInsensitive: false, windowsNames: false, maxComponent: 255, componentUnit: 'bytes', maxPathBytes: 4000 };

describe("the disk's own rules", () => {
  const refusedBy = (paths: string[], rules: NameRules) => new Map(nameProblems(paths, rules).map((p) => [p.path, p]));

  test('on a case- and normalization-insensitive disk, colliding names are refused as a pair, naming both', () => {
    const paths = ['site/A.TXT', 'site/a.txt', 'site/caf\u00e9', 'site/cafe\u0301', 'site/Docs/x', 'site/docs/y', 'site/Lib', 'site/lib/z', 'site/stra\u00dfe', 'site/STRASSE', 'site/ok.txt', 'site/sub/ok'];
    const r = refusedBy(paths, PORTABLE_RULES);
    for (const [a, b] of [['site/A.TXT', 'site/a.txt'], ['site/caf\u00e9', 'site/cafe\u0301'], ['site/Docs/x', 'site/docs/y'], ['site/Lib', 'site/lib/z'], ['site/stra\u00dfe', 'site/STRASSE']]) {
      assert.ok(r.has(a) && r.has(b), `${a} / ${b}: ${[...r.keys()].join(', ')}`);
      assert.equal(r.get(a)!.collidesWith, b);
      assert.equal(r.get(b)!.collidesWith, a);
      assert.ok(r.get(a)!.reason.includes(b.split('/').slice(0, -1).length ? '' : b));
    }
    assert.ok(!r.has('site/ok.txt') && !r.has('site/sub/ok'));
    // On ext4 every one of them is a file of its own.
    assert.equal(refusedBy(paths, EXT4).size, 0);
    // Case only (Windows with NTFS): NFC/NFD twins are two files there.
    const caseOnly = refusedBy(paths, { ...PORTABLE_RULES, normalizationInsensitive: false });
    assert.ok(!caseOnly.has('site/caf\u00e9') && caseOnly.has('site/a.txt'));
  });

  test('FAT/NTFS names are refused where the disk is one Windows reads; long names where the disk limits them', () => {
    const bad = ['site/CON', 'site/con.txt', 'site/Nul', 'site/COM1', 'site/lpt9.log', 'site/COM\u00b9', 'site/a:b', 'site/a<b', 'site/a>b', 'site/a|b', 'site/a?b', 'site/a*b', 'site/a"b', 'site/dot.', 'site/space ', 'site/CON/x'];
    const win = refusedBy(bad, PORTABLE_RULES);
    for (const p of bad) assert.ok(win.has(p), p);
    assert.match(win.get('site/a:b')!.reason, /":" cannot be in a name/);
    assert.match(win.get('site/CON')!.reason, /device name/);
    assert.equal(refusedBy(bad, EXT4).size, 0);
    assert.equal(refusedBy(['site/console', 'site/com10', 'site/CONx.txt', 'site/a.b'], PORTABLE_RULES).size, 0);
    const long = 'site/' + '\u00e9'.repeat(200); // 200 characters, 400 bytes
    assert.ok(refusedBy([long], EXT4).has(long), 'ext4 counts bytes');
    assert.equal(refusedBy([long], PORTABLE_RULES).size, 0, 'FAT and NTFS count characters');
    assert.ok(refusedBy(['site/' + 'a'.repeat(256)], PORTABLE_RULES).size === 1);
    assert.match(refusedBy(['site/' + 'a/'.repeat(2100) + 'x'], EXT4).values().next().value!.reason, /longer than the 4000 bytes/);
  });

  test('the probe of this disk: what it finds, in a scratch folder it removes', async () => {
    const dir = await tmpDir('paquete-probe-');
    const meta = join(dir, '.paquete');
    mkdirSync(meta);
    const t0 = performance.now();
    const rules = probeNameRules(meta, dir);
    const ms = performance.now() - t0;
    assert.deepEqual(readdirSync(meta), [], 'nothing left behind');
    // The test machines' disks are Linux ext4/overlay/tmpfs: case and normalization kept, no
    // Windows rules, 255 bytes a component.
    assert.deepEqual({ ...rules, maxPathBytes: 0 }, { ...EXT4, maxPathBytes: 0 });
    assert.equal(rules.maxPathBytes, 4096 - 2 - Buffer.byteLength(dir));
    console.log(`probe: ${ms.toFixed(1)} ms`);
    // A disk that cannot be written: the portable rules.
    assert.deepEqual({ ...probeNameRules(join(dir, 'no', '\0'), dir), maxPathBytes: 0 }, { ...PORTABLE_RULES, maxPathBytes: 0 });
  });
});

describe('end to end: publish warns, sync refuses what the disk cannot hold and places the rest', () => {
  test('a tree with A.TXT beside a.txt, CON and a:b: published with a warning; on a portable disk those are refused by name, the rest placed', async () => {
    const dir = await tmpDir('paquete-names-e2e-');
    writeTree(join(dir, 'site'), { 'A.TXT': 'upper\n', 'a.txt': 'lower\n', CON: 'device\n', 'a:b': 'colon\n', 'ok.txt': 'fine\n', 'sub/ok2.txt': 'fine too\n' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    const pub = await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    assert.match(pub.stderr, /4 names cannot be placed on a FAT\/exFAT stick, macOS or Windows/);
    for (const n of ['site/A.TXT', 'site/a.txt', 'site/CON', 'site/a:b']) assert.ok(pub.stderr.includes(JSON.stringify(n)), n);
    // On this (ext4) disk all six are placed.
    await paquete(['init', 'remote', 'w-linux', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w-linux'], dir);
    assert.equal(readFileSync(join(dir, 'w-linux/site/A.TXT'), 'utf8'), 'upper\n');
    assert.equal(readFileSync(join(dir, 'w-linux/site/a.txt'), 'utf8'), 'lower\n');
    // A tree bound for a stick: refused by name before any write; the rest placed; exit 1.
    const portable = { PAQUETE_NAMES: 'portable' };
    const init = await paquete(['init', 'remote', 'w-stick', '--trust', 'pub.key.pub'], dir, 0, portable);
    assert.match(init.stdout, /this disk ignores case, ignores Unicode normalization, cannot hold names FAT\/NTFS refuse/);
    const r = await paquete(['sync', '-C', 'w-stick'], dir, 1, portable);
    assert.match(r.stderr, /4 files could not be placed \(the others were\)/);
    assert.match(r.stderr, /site\/A\.TXT: "site\/a\.txt" is the same name on this disk \(case and Unicode normalization ignored\) \(NAME_COLLISION\)/);
    assert.match(r.stderr, /site\/a\.txt: "site\/A\.TXT" is the same name on this disk/);
    assert.match(r.stderr, /site\/CON: "CON" is a device name on Windows \(NAME_INVALID\)/);
    assert.match(r.stderr, /site\/a:b: ":" cannot be in a name/);
    // status tells the same, with no network.
    const st = await paquete(['status', '-C', 'w-stick'], dir, null, portable);
    assert.match(st.stdout + st.stderr, /4 not placed/);
    assert.deepEqual(readdirSync(join(dir, 'w-stick/site')).sort(), ['ok.txt', 'sub']);
    assert.equal(readFileSync(join(dir, 'w-stick/site/sub/ok2.txt'), 'utf8'), 'fine too\n');
    const j = JSON.parse((await paquete(['sync', '-C', 'w-stick', '--json'], dir, 1, portable)).stdout);
    assert.deepEqual(j.refused.map((p: { path: string }) => p.path).sort(), ['site/A.TXT', 'site/CON', 'site/a.txt', 'site/a:b']);
    // Wanting only what fits is a complete sync.
    await paquete(['sync', '-C', 'w-stick', '--want', 'site/sub'], dir, 0, portable);
  });

  test('publish refuses names no client may accept, before writing anything', async () => {
    const dir = await tmpDir('paquete-names-pub-');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    for (const [i, bad] of ['.Paquete/config.json', 'deep/.paquete/config.json', 'a\x1b[2Jb', 'x\\y'].entries()) {
      writeTree(join(dir, `src${i}`), { 'ok.txt': 'ok\n', [bad]: 'hostile\n' });
      const r = await paquete(['publish', `site=src${i}`, '--to', `remote${i}`, '--key', 'pub.key'], dir, 2);
      assert.match(r.stderr, /refusing to publish 1 names no client may accept/, bad);
      assert.ok(!existsSync(join(dir, `remote${i}`, 'manifest.json')), bad);
      assert.ok(!existsSync(join(dir, `remote${i}`, 'packs')) || readdirSync(join(dir, `remote${i}`, 'packs')).length === 0, bad);
    }
  });

  test("a signed snapshot naming .Paquete/config.json, .paquete./x or .paquete /x is refused before anything is written", async () => {
    const dir = await tmpDir('paquete-names-store-');
    writeTree(join(dir, 'site'), { 'a.txt': 'a\n' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'honest', '--key', 'pub.key'], dir);
    cpSync(join(dir, 'honest'), join(dir, 'remote'), { recursive: true });
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir);
    const config = readFileSync(join(dir, 'w/.paquete/config.json'));
    for (const hostile of ['.Paquete/config.json', '.paquete./config.json', '.paquete /config.json', 'site/.PAQUETE/config.json', '.paq\u200cuete/config.json']) {
      // Each forged from the honest snapshot, a serial above the last.
      rmSync(join(dir, 'remote'), { recursive: true, force: true });
      cpSync(join(dir, 'honest'), join(dir, 'remote'), { recursive: true });
      forgeSnapshot(join(dir, 'remote'), join(dir, 'pub.key'), (s) => {
        s.files[0].path = hostile;
      });
      const r = await paquete(['sync', '-C', 'w'], dir, null);
      assert.notEqual(r.code, 0, hostile);
      assert.match(r.stderr, /refusing file name .*store's own \.paquete directory/, hostile);
      assert.deepEqual(readdirSync(join(dir, 'w')).sort(), ['.paquete'], `${hostile}: nothing placed`);
      assert.deepEqual(readFileSync(join(dir, 'w/.paquete/config.json')), config);
    }
  });
});

describe('fuzz: hostile names in every name-bearing field are refused or stay inside DIR', () => {
  /** Pieces an attacker combines: separators, dots, the store's name in guises, controls, Unicode. */
  const piece = fc.oneof(
    fc.constantFrom('..', '.', '', '/', '\\', '\0', '\n', '\x1b', ':', '~1', ' ', '.', 'C:', 'CON', 'site', 'a', 'A', '\u00e9', 'e\u0301', '\u200c', '\ufeff', '\ud800', '%2F', '..%2F'),
    fc.constantFrom(...STORE_DIR_GUISES),
    fc.string({ maxLength: 6 }),
    fc.string({ unit: 'grapheme', maxLength: 4 }),
  );
  const hostileName = fc.array(piece, { minLength: 1, maxLength: 6 }).map((p) => p.join(''));
  const hostilePath = fc.array(hostileName, { minLength: 1, maxLength: 5 }).map((p) => p.join('/'));
  const dir = resolve('/tmp/paquete-fuzz-dir');
  const staysInside = (path: string) => {
    const abs = resolve(dir, path);
    assert.ok(abs.startsWith(dir + sep), `${JSON.stringify(path)} escapes to ${abs}`);
    for (const part of path.split('/')) assert.ok(!isStoreDirName(part), `${JSON.stringify(path)} reaches the store`);
    assert.ok(!/[\0-\x1f\x7f-\x9f\\]/.test(path), JSON.stringify(path));
  };
  const snap = (sources: Snapshot['sources'], paths: string[]): Snapshot => ({
    params: { minSize: 16384, avgSize: 65536, maxSize: 262144 },
    created: 1,
    sources,
    packs: [],
    chunks: new ChunkTable(0),
    files: paths.map((path) => ({ path, mode: 0o644, size: 0, sha256: new Uint8Array(32), chunks: [] })),
  });

  test('snapshot paths and source names: decoded only if safe, never a PaqueteError-less crash', () => {
    fc.assert(
      fc.property(fc.array(hostileName, { maxLength: 3 }), fc.array(hostilePath, { maxLength: 4 }), (names, paths) => {
        let s: Snapshot;
        try {
          s = decodeSnapshot(encodeSnapshot(snap(names.map((name) => ({ kind: 'tree', name })), [...new Set(paths)])));
        } catch (e) {
          assert.ok(e instanceof PaqueteError && ['UNSAFE_PATH', 'BAD_FORMAT'].includes(e.code), String(e));
          return;
        }
        for (const f of s.files) staysInside(f.path);
        for (const src of s.sources) {
          staysInside(src.name);
          assert.match(src.name, /^[A-Za-z0-9._+-]{1,100}$/);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('manifest source names: refused unless safe, signature or not', () => {
    const { key, publicKey } = parseSecretKey(generateKeys().secretPem, 'k');
    fc.assert(
      fc.property(hostileName, fc.constantFrom('tree', 'docs', 'git', '../x', ''), (name, kind) => {
        const body = sampleManifestBody(publicKey);
        body.snapshots[0].sources = [{ kind, name }];
        try {
          const m = decodeManifest(encodeManifest(body, key), 'm');
          for (const s of m.body.snapshots[0].sources) staysInside(s.name);
        } catch (e) {
          assert.ok(e instanceof PaqueteError, String(e));
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('on every disk profile, nameProblems never accepts two names the disk folds together', () => {
    const profiles: NameRules[] = [PORTABLE_RULES, EXT4, { ...PORTABLE_RULES, windowsNames: false }, { ...PORTABLE_RULES, normalizationInsensitive: false }];
    const letter = fc.constantFrom('a', 'A', 'b', 'B', '\u00e9', 'E\u0301', 'e\u0301', '\u00c9', '\u00df', 'SS', 'ss', 'x/');
    const name = fc.array(letter, { minLength: 1, maxLength: 4 }).map((l) => `s/${l.join('')}`.replace(/\/$/, '/z').replace(/\/\//g, '/z/'));
    fc.assert(
      fc.property(fc.array(name, { maxLength: 8 }), fc.constantFrom(...profiles), (raw, rules) => {
        const paths = [...new Set(raw)];
        const refused = new Set(nameProblems(paths, rules).map((p) => p.path));
        const kept = paths.filter((p) => !refused.has(p));
        const fold = (p: string) => {
          let s = rules.normalizationInsensitive ? p.normalize('NFD') : p;
          if (rules.caseInsensitive) s = s.toUpperCase().toLowerCase();
          return s;
        };
        // No two kept paths fold together, and no kept file is a folded folder of another.
        const keys = new Set<string>();
        for (const p of kept) {
          assert.ok(!keys.has(fold(p)), `${p} kept beside its twin in ${JSON.stringify(paths)}`);
          keys.add(fold(p));
        }
        for (const p of kept) for (const q of kept) if (p !== q) assert.ok(!fold(q).startsWith(fold(p) + '/'), `${p} is a folder of ${q}`);
      }),
      { numRuns: 3000 },
    );
  });

  test('nameProblemsOf a file table judges as nameProblems of its paths, on every disk profile (property)', () => {
    const profiles: NameRules[] = [PORTABLE_RULES, EXT4, { ...EXT4, maxComponent: 6, maxPathBytes: 14 }, { ...PORTABLE_RULES, maxComponent: 5, windowsNames: false, caseInsensitive: false, normalizationInsensitive: false }];
    const part = fc.array(fc.constantFrom('a', 'B', '\u00e9', 'e\u0301', 'x', ':', '.', 'con'), { minLength: 1, maxLength: 9 }).map((l) => l.join(''));
    fc.assert(
      fc.property(fc.array(fc.array(part, { minLength: 1, maxLength: 4 }), { maxLength: 10 }), fc.constantFrom(...profiles), (raw, rules) => {
        const paths = [...new Set(raw.map((p) => `s/${p.join('/')}`))];
        const table = FileTable.of(paths.map((path) => ({ path, mode: 0o644, size: 0, sha256: new Uint8Array(32), chunks: [] })));
        assert.deepEqual(nameProblemsOf(table, rules), nameProblems(paths, rules));
      }),
      { numRuns: 2000 },
    );
  });

  test('git ref names: a decoded refs file names only refs/heads or refs/tags paths that stay there', () => {
    const oid = 'a'.repeat(40);
    fc.assert(
      fc.property(fc.array(hostilePath, { minLength: 1, maxLength: 3 }), fc.constantFrom('refs/heads/', 'refs/tags/', 'refs/', ''), (names, prefix) => {
        const text = ['paquete-git 1', 'object-format sha1', 'full-size 10', `bundle 000001.bundle 10 ${'b'.repeat(64)}`, ...names.map((n) => `${oid} ${prefix}${n}`)].join('\n') + '\n';
        try {
          const refs = decodeGitRefs(text, 'refs');
          for (const r of refs.refs) {
            assert.match(r.name, /^refs\/(heads|tags)\/./);
            const parts = r.name.split('/');
            assert.ok(parts.every((p) => p !== '' && p !== '.' && p !== '..' && !p.startsWith('.')), r.name);
            assert.ok(!/[\0-\x20\x7f\\:?*[~^]/.test(r.name), r.name);
            assert.ok(resolve('/r', r.name).startsWith('/r/refs/'), r.name);
          }
        } catch (e) {
          assert.ok(e instanceof PaqueteError, String(e));
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('PyPI project names: a file is a distribution only when its project is a PEP 508 name', () => {
    fc.assert(
      fc.property(hostileName, fc.constantFrom('-1.0-py3-none-any.whl', '-1.0.tar.gz'), (project, tail) => {
        const d = parseDistFileName(project + tail);
        if (d) {
          assert.ok(isProjectName(d.project), d.project);
          assert.match(d.normalized, /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/);
        }
      }),
      { numRuns: 2000 },
    );
    assert.equal(parseDistFileName('..-1.0-py3-none-any.whl'), undefined);
    assert.equal(parseDistFileName('<script>-1.0.tar.gz'), undefined);
    assert.equal(parseDistFileName('Gamma_Ray-3.0.tar.gz')?.normalized, 'gamma-ray');
  });
});
