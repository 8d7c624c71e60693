/**
 * The PyPI pieces that are pure: the zip reader and wheel cut points, the forced-cut chunker,
 * PEP 440 / PEP 508, dependency resolution on a snapshot, the simple-index pages, and the HTTP
 * helpers (Range, Accept). Fast; the real-pip end to end test is serve.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cutAll, DEFAULT_PARAMS } from '../src/chunk/index.js';
import { chunkBytesWithCuts, cutAllWithCuts } from '../src/chunk/forced.js';
import { dataOffset, readZipDirectory, readZipMember, wheelCutPoints, wheelMetadata, zipFromBytes } from '../src/sources/wheel.js';
import { distMetadataFromBytes, normalizeName, parseCoreMetadata, parseDistFileName } from '../src/sources/pypi.js';
import { compareVersions, evaluateMarker, parseMarker, parseRequirement, parseSpecifiers, parseVersion, satisfies } from '../src/sources/pep440.js';
import { markerEnvFor, platformCompatible, PythonTarget, resolvePypi } from '../src/sources/pypi-wants.js';
import { ChunkTable, FileEntry, Snapshot } from '../src/snapshot/snapshot.js';
import { negotiate, parseRange, safeParts } from '../src/serve/http.js';
import { projectHtml, projectJson } from '../src/serve/simple.js';
import { pseudoRandom } from './helpers/trees.js';
import { buildWheel, metadataText, wheelFileName, WheelSpec } from './helpers/wheels.js';

const v = (s: string) => parseVersion(s)!;

describe('wheels as zip files', () => {
  const spec: WheelSpec = { name: 'demo.pkg', version: '1.2', requires: ['six'], modules: { 'demo/__init__.py': 'x = 1\n', 'demo/big.bin': pseudoRandom(50_000, 1) } };
  const bytes = buildWheel(spec);

  test('the central directory, members and METADATA read back', () => {
    const zip = zipFromBytes(bytes);
    const dir = readZipDirectory(zip);
    assert.deepEqual(dir.entries.map((e) => e.name), ['demo/__init__.py', 'demo/big.bin', 'demo_pkg-1.2.dist-info/METADATA', 'demo_pkg-1.2.dist-info/WHEEL', 'demo_pkg-1.2.dist-info/RECORD']);
    assert.deepEqual(Buffer.from(readZipMember(zip, dir.entries[1])), pseudoRandom(50_000, 1));
    const meta = parseCoreMetadata(wheelMetadata(zip, 'demo_pkg-1.2'));
    assert.equal(meta.name, 'demo.pkg');
    assert.deepEqual(meta.requiresDist, ['six']);
    assert.deepEqual(distMetadataFromBytes(bytes, wheelFileName(spec)), Buffer.from(metadataText(spec)));
  });

  test('cut points: every local header, every data start, the central directory; sorted and inside', () => {
    const zip = zipFromBytes(bytes);
    const dir = readZipDirectory(zip);
    const cuts = wheelCutPoints(zip)!;
    const want = new Set([dir.directoryOffset, ...dir.entries.flatMap((e) => [e.headerOffset, dataOffset(zip, e)])].filter((c) => c > 0));
    assert.deepEqual(cuts, [...want].sort((a, b) => a - b));
    assert.equal(wheelCutPoints(zipFromBytes(Buffer.from('not a zip at all, not even close to one'))), undefined);
  });

  test('a damaged zip is refused with BAD_FORMAT, never a crash', () => {
    const broken = Buffer.from(bytes);
    broken.writeUInt32LE(0xffffff, broken.length - 6); // central directory offset far away
    assert.throws(() => readZipDirectory(zipFromBytes(broken)), (e: Error & { code?: string }) => e.code === 'BAD_FORMAT');
    const flipped = Buffer.from(bytes);
    const e = readZipDirectory(zipFromBytes(bytes)).entries[1];
    flipped[dataOffset(zipFromBytes(bytes), e) + 100] ^= 0xff;
    assert.throws(() => readZipMember(zipFromBytes(flipped), e), /CRC|inflate/);
  });

  test('forced cuts: no chunk spans a cut, FastCDC within, and unchanged members dedupe across builds', async () => {
    const data = pseudoRandom(300_000, 7);
    assert.deepEqual(cutAllWithCuts(data, DEFAULT_PARAMS, []), cutAll(data, DEFAULT_PARAMS));
    const cuts = [10, 5000, 5001, 123_456];
    const ends = cutAllWithCuts(data, DEFAULT_PARAMS, cuts);
    for (const c of cuts) assert.ok(ends.includes(c), `cut at ${c}`);
    const streamed: number[] = [];
    let pos = 0;
    await chunkBytesWithCuts(data, DEFAULT_PARAMS, cuts, (chunk) => {
      pos += chunk.length;
      streamed.push(pos);
    });
    assert.deepEqual(streamed, ends, 'the windowed reader cuts exactly where the reference does');

    // Same member bytes, another build time and another member before it: the member's chunks stay.
    const member = pseudoRandom(40_000, 9);
    const chunksOf = (w: Buffer) => {
      const c = wheelCutPoints(zipFromBytes(w))!;
      const e = cutAllWithCuts(w, DEFAULT_PARAMS, c);
      return new Set(e.map((end, i) => createHash('sha1').update(w.subarray(i ? e[i - 1] : 0, end)).digest('hex')));
    };
    const a = buildWheel({ name: 'm', version: '1', modules: { 'm/a.py': 'a\n', 'm/data.bin': member }, date: new Date(Date.UTC(2024, 0, 1)) });
    const b = buildWheel({ name: 'm', version: '2', modules: { 'm/a.py': 'a = 2\n' + 'x'.repeat(3000), 'm/data.bin': member }, date: new Date(Date.UTC(2025, 5, 6)) });
    const shared = [...chunksOf(b)].filter((h) => chunksOf(a).has(h)).length;
    assert.ok(shared >= 3, `only ${shared} chunks of the unchanged 40 kB member were shared`);
  });
});

describe('names, versions, specifiers, markers', () => {
  test('PEP 503 normalization and file names', () => {
    assert.equal(normalizeName('Foo.Bar__baz-Qux'), 'foo-bar-baz-qux');
    assert.deepEqual(parseDistFileName('Gamma_Ray-3.0.tar.gz'), { project: 'Gamma_Ray', normalized: 'gamma-ray', version: '3.0', kind: 'sdist' });
    const w = parseDistFileName('numpy-2.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl')!;
    assert.equal(w.version, '2.0.2');
    assert.deepEqual(w.tags!.platform, ['manylinux_2_17_x86_64', 'manylinux2014_x86_64']);
    assert.equal(parseDistFileName('pkg-1.0-1build-py3-none-any.whl')!.version, '1.0');
    assert.equal(parseDistFileName('x.whl.metadata'), undefined);
  });

  test('PEP 440 order', () => {
    const order = ['1.0.dev1', '1.0a1', '1.0a2.dev1', '1.0b1', '1.0rc1', '1.0', '1.0+local', '1.0.post1', '1.1', '2!0.1'];
    for (let i = 1; i < order.length; i++) assert.ok(compareVersions(v(order[i - 1]), v(order[i])) < 0, `${order[i - 1]} < ${order[i]}`);
    assert.equal(compareVersions(v('1.0'), v('1.0.0')), 0);
  });

  test('specifiers', () => {
    const ok = (ver: string, spec: string) => satisfies(v(ver), parseSpecifiers(spec));
    assert.ok(ok('2.31.0', '>=2.0,<3'));
    assert.ok(!ok('3.0', '>=2.0,<3'));
    assert.ok(ok('1.4.5', '~=1.4.2') && !ok('1.5', '~=1.4.2'));
    assert.ok(ok('1.4.9', '==1.4.*') && !ok('1.5', '==1.4.*'));
    assert.ok(!ok('3.0a1', '<3.0'), '<V excludes pre-releases of V');
    assert.ok(!ok('1.0.post1', '>1.0'), '>V excludes post-releases of V');
    assert.ok(ok('3.11.7', '>=3.7') && !ok('3.11.7', '>=3.99'));
  });

  test('requirements and markers', () => {
    const r = parseRequirement('Requests[socks,security] (>=2.0,!=2.1) ; python_version >= "3.8" and extra == "net"');
    assert.equal(r.name, 'Requests');
    assert.deepEqual(r.extras, ['socks', 'security']);
    assert.equal(r.specifiers.clauses.length, 2);
    const env = markerEnvFor('3.11.7', 'manylinux_2_28_x86_64');
    assert.ok(!evaluateMarker(r.marker!, { ...env, extra: '' }));
    assert.ok(evaluateMarker(r.marker!, { ...env, extra: 'net' }));
    assert.ok(evaluateMarker(parseMarker('sys_platform == "linux" and (platform_machine == "x86_64" or platform_machine == "aarch64")'), env));
    assert.ok(!evaluateMarker(parseMarker("os_name == 'nt'"), env));
    assert.ok(evaluateMarker(parseMarker('python_version < "3.12"'), env), 'versions compare as versions, not strings');
    assert.ok(!evaluateMarker(parseMarker('python_version < "3.9"'), env));
    assert.equal(parseRequirement('pkg @ https://x/pkg.whl ; python_version > "3"').url, 'https://x/pkg.whl');
  });

  test('platform tags', () => {
    assert.ok(platformCompatible('manylinux2014_x86_64', 'manylinux_2_28_x86_64'));
    assert.ok(!platformCompatible('manylinux_2_34_x86_64', 'manylinux_2_28_x86_64'));
    assert.ok(!platformCompatible('manylinux_2_17_aarch64', 'manylinux_2_28_x86_64'));
    assert.ok(platformCompatible('macosx_10_9_universal2', 'macosx_11_0_arm64'));
    assert.ok(platformCompatible('any', 'win_amd64') && !platformCompatible('win32', 'win_amd64'));
  });
});

describe('resolving pypi: wants on a snapshot', () => {
  const meta = new Map<string, string>();
  const files: FileEntry[] = [];
  const add = (path: string, text?: string) => {
    files.push({ path, mode: 0o644, size: 0, sha256: new Uint8Array(32), chunks: [] });
    if (text !== undefined) {
      meta.set(`${path}.metadata`, text);
      files.push({ path: `${path}.metadata`, mode: 0o644, size: 0, sha256: new Uint8Array(32), chunks: [] });
    }
  };
  const m = (name: string, version: string, requires: string[] = [], requiresPython?: string) => metadataText({ name, version, requires, requiresPython });
  add('py/app-1.0-py3-none-any.whl', m('app', '1.0', ['lib>=1', 'extra-only; extra == "x"', 'winonly; sys_platform == "win32"']));
  add('py/app-2.0rc1-py3-none-any.whl', m('app', '2.0rc1'));
  add('py/lib-1.0-py3-none-any.whl', m('lib', '1.0', ['base']));
  add('py/lib-1.5-py3-none-any.whl', m('lib', '1.5', ['base'], '>=3.99'));
  add('py/lib-1.5.tar.gz', m('lib', '1.5'));
  add('py/base-1.0-cp311-cp311-manylinux_2_17_x86_64.whl', m('base', '1.0'));
  add('py/base-1.0-cp311-cp311-win_amd64.whl', m('base', '1.0'));
  add('py/base-1.0.tar.gz', m('base', '1.0'));
  add('py/extra_only-1.0-py3-none-any.whl', m('extra-only', '1.0'));
  add('py/winonly-1.0-py3-none-any.whl', m('winonly', '1.0'));
  add('other/app-9.0-py3-none-any.whl', m('app', '9.0'));
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  const snapshot: Snapshot = { params: DEFAULT_PARAMS, created: 0, sources: [{ kind: 'pypi', name: 'py' }, { kind: 'tree', name: 'other' }], packs: [], chunks: new ChunkTable(0), files };
  const target: PythonTarget = { version: '3.11.7', platform: 'manylinux_2_28_x86_64', env: markerEnvFor('3.11.7', 'manylinux_2_28_x86_64') };
  const rounds: string[][] = [];
  const read = async (paths: string[]) => {
    rounds.push(paths);
    return new Map(paths.filter((p) => meta.has(p)).map((p) => [p, Buffer.from(meta.get(p)!)]));
  };

  test('newest fitting versions, Requires-Python, markers, platform wheels over sdists, one round per level', async () => {
    rounds.length = 0;
    const r = await resolvePypi(['app'], snapshot, target, read);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.chosen.map((c) => `${c.name} ${c.version}`), ['app 1.0', 'lib 1.0', 'base 1.0']);
    assert.deepEqual(r.chosen[2].files, ['py/base-1.0-cp311-cp311-manylinux_2_17_x86_64.whl']);
    assert.ok(r.paths.includes('py/lib-1.0-py3-none-any.whl.metadata'));
    assert.ok(!r.paths.some((p) => p.startsWith('other/')), 'only pypi sources');
    assert.equal(rounds.length, 4, `rounds: ${JSON.stringify(rounds)}`); // app; lib 1.5 (refused); lib 1.0; base
  });

  test('extras, explicit pre-releases, and what is not there', async () => {
    const r = await resolvePypi(['app[x]==1.0', 'nothere'], snapshot, target, read);
    assert.ok(r.chosen.some((c) => c.name === 'extra-only'));
    assert.deepEqual(r.problems, ['nothere: not in the mirror']);
    const pre = await resolvePypi(['app>=2.0rc1'], snapshot, target, read);
    assert.equal(pre.chosen[0].version, '2.0rc1');
    const win = await resolvePypi(['app'], snapshot, { version: '3.11.0', platform: 'win_amd64', env: markerEnvFor('3.11.0', 'win_amd64') }, read);
    assert.ok(win.chosen.some((c) => c.name === 'winonly'));
    assert.deepEqual(win.chosen.find((c) => c.name === 'base')!.files, ['py/base-1.0-cp311-cp311-win_amd64.whl']);
  });
});

describe('simple index pages and HTTP helpers', () => {
  test('HTML and JSON of a project', () => {
    const file: FileEntry = { path: 'w/a b-1.0-py3-none-any.whl', mode: 0o644, size: 123, sha256: new Uint8Array(32), chunks: [] };
    const dist = { file, dist: parseDistFileName('a_b-1.0-py3-none-any.whl')!, source: 'w', fileName: 'a_b-1.0-py3-none-any.whl', sha256: 'ab'.repeat(32), yanked: 'bad "release"' as const };
    const files = [{ dist, meta: { requiresPython: '>=3.8,<4', metadataSha256: 'cd'.repeat(32) } }];
    const html = projectHtml('a-b', files);
    assert.match(html, /href="\/packages\/w\/a%20b-1\.0-py3-none-any\.whl#sha256=(ab){32}"/);
    assert.match(html, /data-requires-python="&gt;=3\.8,&lt;4"/);
    assert.match(html, /data-yanked="bad &quot;release&quot;"/);
    const j = JSON.parse(projectJson('a-b', files));
    assert.deepEqual(j.files[0]['core-metadata'], { sha256: 'cd'.repeat(32) });
    assert.equal(j.files[0].yanked, 'bad "release"');
    assert.deepEqual(j.versions, ['1.0']);
  });

  test('Range: one range honoured, several answered whole, out of range refused', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 10 });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 100 });
    assert.deepEqual(parseRange('bytes=-5', 100), { start: 95, end: 100 });
    assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 100 });
    assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-1,5-6', 100), 'none');
    assert.equal(parseRange(undefined, 100), 'none');
  });

  test('Accept negotiation as pip and browsers send it', () => {
    const offered = ['text/html', 'application/vnd.pypi.simple.v1+html', 'application/vnd.pypi.simple.v1+json'];
    assert.equal(negotiate('application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01', offered), offered[2]);
    assert.equal(negotiate('text/html,application/xhtml+xml,*/*;q=0.8', offered), 'text/html');
    assert.equal(negotiate(undefined, offered), 'text/html');
    assert.equal(negotiate('*/*', offered), 'text/html');
    assert.equal(negotiate('image/png', offered), undefined);
    assert.equal(negotiate('application/vnd.pypi.simple.v1+json;q=0, */*', offered), 'text/html');
  });

  test('safe path parts', () => {
    assert.deepEqual(safeParts('a/b%20c/d.html'), ['a', 'b c', 'd.html']);
    assert.deepEqual(safeParts('dir/'), ['dir']);
    for (const bad of ['..', 'a/../b', '%2e%2e/x', 'a%2fb', 'a%5cb', 'a%00', 'a//b', '%zz']) assert.equal(safeParts(bad), undefined, bad);
  });
});
