/**
 * Wheels and sdists as contents + a recipe (src/rebuild/): real wheels of this machine's
 * wheelhouse, a real setuptools sdist and a gzip file shipped on PyPI rebuilt byte for byte,
 * pushed in pieces of any size;
 * a member no deflate parameters reproduce (Node's zlib) kept compressed, stored members and a
 * data descriptor kept as they are; a damaged recipe refused by the rebuilder and by the place
 * worker (nothing placed, the reason reported); the snapshot and update versions an older client
 * refuses; and real pip installing wheels and downloading the sdist with --require-hashes from
 * `paquete serve`.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import pako from 'pako';
import { buildStoredForm, storedSize, streamCuts } from '../src/rebuild/form.js';
import { decodeRecipe, encodeRecipe, Rebuilder, RECIPE_HEADER_SIZE } from '../src/rebuild/recipe.js';
import { CANDIDATES, DeflateParams, FaithfulDeflate, findParams } from '../src/rebuild/deflate.js';
import { DEFLATE_SOURCES_SHA256 } from '../src/rebuild/deflate-wasm-bytes.js';
import { ChunkTable, decodeSnapshot, encodeSnapshot, FileEntry, Snapshot } from '../src/snapshot/snapshot.js';
import { decodeUpdateHead, encodeUpdateHead } from '../src/delta/update.js';
import { ChunkStore } from '../src/store/store.js';
import { Restorer } from '../src/sync/restorer.js';
import { chunkId, DEFAULT_PARAMS, initHash } from '../src/chunk/index.js';
import { cleanupAll, exec, onCleanup, runPaquete, tmpDir } from './helpers/tmp.js';
import { pipEnv } from './helpers/pip.js';
import { zip } from './helpers/wheels.js';
import { pseudoRandom } from './helpers/trees.js';

after(cleanupAll);

/** The repository (this file runs from dist/test/). */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Real wheels from this machine's wheelhouse (pip's extra indexes point there). */
const WHEELHOUSE = ['/opt/pypi/files', '/opt/pypi-more/files'];
function realWheel(prefix: string): string {
  for (const dir of WHEELHOUSE) {
    const name = existsSync(dir) ? readdirSync(dir).find((n) => n.startsWith(prefix) && n.endsWith('.whl')) : undefined;
    if (name) return join(dir, name);
  }
  throw new Error(`no ${prefix}*.whl in ${WHEELHOUSE.join(' or ')}: these tests use the local wheelhouse`);
}

/** Rebuilds a stream pushed in pieces of `piece` bytes; returns the rebuilt file. */
function rebuild(stream: Uint8Array, piece: number): Buffer {
  const parts: Buffer[] = [];
  const r = new Rebuilder((b) => parts.push(Buffer.from(b)));
  for (let i = 0; i < stream.length; i += piece) r.push(stream.subarray(i, i + piece));
  r.end();
  return Buffer.concat(parts);
}

/** A real sdist, made by setuptools (`setup.py sdist`: tarfile through Python's gzip) in `src`; returns its path. */
async function buildSdist(src: string): Promise<string> {
  mkdirSync(join(src, 'pkg'), { recursive: true });
  writeFileSync(join(src, 'setup.py'), 'from setuptools import setup\nsetup(name="demo_sd", version="1.0", packages=["pkg"])\n');
  writeFileSync(join(src, 'pkg', '__init__.py'), Array.from({ length: 400 }, (_, i) => `def f${i}(x):\n    return x * ${i}\n`).join(''));
  const r = await exec('python3', ['setup.py', '-q', 'sdist'], { cwd: src });
  assert.equal(r.code, 0, r.stderr);
  const path = join(src, 'dist', readdirSync(join(src, 'dist'))[0]);
  assert.match(path, /demo_sd-1\.0\.tar\.gz$/);
  return path;
}

/** The stream of a stored form: the recipe, then the contents file. */
const streamOf = (recipe: Uint8Array, contentsPath: string) => Buffer.concat([recipe, readFileSync(contentsPath)]);

describe('rebuild streams of real files', async () => {
  const dir = await tmpDir('paquete-rebuild-');

  for (const prefix of ['six-1.17.0', 'idna-3.20', 'markupsafe-3.0.3', 'msgpack-1.1.2']) {
    test(`${prefix}: every member reproduced, rebuilt byte for byte whatever the pieces`, () => {
      const path = realWheel(prefix);
      const original = readFileSync(path);
      const contents = join(dir, `${prefix}.contents`);
      const form = buildStoredForm(path, contents)!;
      assert.ok(form, 'a rebuild stream was made');
      assert.equal(form.opaque, 0);
      assert.equal(form.reproduced, form.deflated);
      assert.ok(form.deflated > 0);
      assert.equal(form.placedSize, original.length);
      assert.equal(Buffer.from(form.sha256).toString('hex'), sha(original));
      const stream = streamOf(form.recipe, contents);
      assert.equal(stream.length, storedSize(form));
      for (const piece of [1 << 20, 4093, 1]) {
        if (piece === 1 && stream.length > 200_000) continue;
        assert.equal(sha(rebuild(stream, piece)), sha(original), `pieces of ${piece}`);
      }
      // The chunker is forced to cut after the recipe and where each member's contents begin.
      const cuts = streamCuts(form);
      assert.equal(cuts[0], form.recipe.length);
      assert.equal(cuts.length, 1 + form.sections.length);
    });
  }

  test('a real sdist (setuptools, gzip level 9) rebuilds byte for byte', async () => {
    const path = await buildSdist(join(dir, 'sdist-src'));
    const form = buildStoredForm(path, join(dir, 'sdist.contents'))!;
    assert.ok(form);
    assert.deepEqual([form.deflated, form.reproduced], [1, 1]);
    assert.equal(decodeRecipe(form.recipe).params[0].level, 9, "Python's gzip module deflates at level 9");
    assert.equal(sha(rebuild(streamOf(form.recipe, join(dir, 'sdist.contents')), 1000)), sha(readFileSync(path)));
  });

  test("a real gzip file from PyPI (python-dateutil's zoneinfo tarball, gzip level 9) rebuilds byte for byte", async () => {
    const wheel = realWheel('python_dateutil-2.9.0.post0');
    const path = join(dir, 'dateutil-zoneinfo.tar.gz');
    const r = await exec('python3', ['-c', `import zipfile,sys; open(sys.argv[2],'wb').write(zipfile.ZipFile(sys.argv[1]).read('dateutil/zoneinfo/dateutil-zoneinfo.tar.gz'))`, wheel, path]);
    assert.equal(r.code, 0, r.stderr);
    const form = buildStoredForm(path, join(dir, 'zoneinfo.contents'))!;
    assert.ok(form, 'a rebuild stream was made');
    assert.deepEqual([form.deflated, form.reproduced, form.opaque], [1, 1, 0]);
    assert.ok(form.contentSize > 5 * form.placedSize, 'the contents are the tar, uncompressed');
    assert.equal(sha(rebuild(streamOf(form.recipe, join(dir, 'zoneinfo.contents')), 65536)), sha(readFileSync(path)));
  });

  test('zlib deflates the same bytes whatever the pieces its input comes in, and the same as pako', () => {
    const data = Buffer.concat([pseudoRandom(100_000, 3), Buffer.from('abc'.repeat(200_000)), pseudoRandom(300_000, 4)]);
    const deflated = (p: DeflateParams, piece: number) => {
      const parts: Buffer[] = [];
      const d = new FaithfulDeflate(p, (c) => parts.push(Buffer.from(c)));
      for (let i = 0; i < data.length; i += piece) d.push(data.subarray(i, i + piece));
      d.finish();
      return Buffer.concat(parts);
    };
    const once = deflated(CANDIDATES[0], data.length);
    // pako is an independent port of zlib: the same bytes from both is what "faithful" means.
    assert.equal(sha(once), sha(pako.deflateRaw(data, { level: 6 })));
    for (const piece of [17, 65535, 65536, 65537, 1 << 20]) assert.equal(sha(deflated(CANDIDATES[0], piece)), sha(once), `pieces of ${piece}`);
  });

  test('zlib and pako agree on every member of a real wheel, at every level and memLevel tried', () => {
    const path = realWheel('markupsafe-3.0.3');
    const form = buildStoredForm(path, join(dir, 'agree.contents'))!;
    const contents = readFileSync(join(dir, 'agree.contents'));
    const raws: Buffer[] = [];
    let at = 0;
    for (const op of decodeRecipe(form.recipe).ops) {
      if (op.kind === 'deflate') raws.push(contents.subarray(at, at + op.rawLength));
      if (op.kind !== 'literal') at += op.kind === 'copy' ? op.length : op.rawLength;
    }
    assert.ok(raws.length >= 10);
    for (const p of CANDIDATES) {
      for (const raw of raws) {
        const parts: Buffer[] = [];
        const d = new FaithfulDeflate(p, (c) => parts.push(Buffer.from(c)));
        d.push(raw);
        d.finish();
        const ours = Buffer.concat(parts);
        const theirs = pako.deflateRaw(raw, { level: p.level as 6, memLevel: p.memLevel as 8, windowBits: p.windowBits, strategy: p.strategy as 0 });
        assert.ok(ours.equals(theirs), `${JSON.stringify(p)}: a ${raw.length}-byte member`);
      }
    }
  });

  test('the compiled zlib is the one its sources make (regenerate with scripts/build-deflate-wasm.sh)', () => {
    const files = ['src/rebuild/deflate-wasm.c', ...['deflate.c', 'trees.c', 'zutil.c', 'adler32.c', 'deflate.h', 'trees.h', 'zutil.h', 'zlib.h', 'zconf.h'].map((f) => `vendor/zlib-1.3.1/${f}`), 'scripts/build-deflate-wasm.sh'];
    const h = createHash('sha256');
    for (const f of files) h.update(readFileSync(join(REPO, f)));
    assert.equal(h.digest('hex'), DEFLATE_SOURCES_SHA256, 'src/rebuild/deflate-wasm-bytes.ts is stale');
  });
});

describe('members that cannot be reproduced, and odd zips', async () => {
  const dir = await tmpDir('paquete-rebuild-odd-');
  const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `line ${i}: the quick brown fox ${i % 17} jumps\n`).join(''));

  test("a member deflated by Node's zlib is kept compressed; stored members and the rest rebuild", () => {
    // Node's zlib is a fork that finds other matches: no zlib parameters give its bytes.
    const nodeDeflated = deflateRawSync(text, { level: 6 });
    assert.equal(findParams(text, nodeDeflated), undefined, "zlib must not reproduce Node's zlib here");
    const big = Buffer.from(Array.from({ length: 9000 }, (_, i) => `value_${i} = ${i * 7} # reproduced by pako\n`).join(''));
    const bytes = zip(
      [['a/node.txt', text], ['a/pako.py', big], ['a/stored.bin', pseudoRandom(5000, 5)], ['a/empty', Buffer.alloc(0)]],
      new Date(Date.UTC(2025, 0, 2)),
      { 'a/pako.py': (b) => pako.deflateRaw(b, { level: 6 }), 'a/stored.bin': 'store', 'a/empty': 'store' },
    );
    const path = join(dir, 'odd-1.0-py3-none-any.whl');
    writeFileSync(path, bytes);
    const form = buildStoredForm(path, join(dir, 'odd.contents'))!;
    assert.ok(form, 'reproduced bytes outweigh the opaque ones: a rebuild stream pays');
    assert.deepEqual({ deflated: form.deflated, reproduced: form.reproduced, opaque: form.opaque }, { deflated: 2, reproduced: 1, opaque: 1 });
    const ops = decodeRecipe(form.recipe).ops.map((o) => o.kind);
    assert.deepEqual(ops.filter((k) => k !== 'literal'), ['copy', 'deflate', 'copy']);
    assert.equal(sha(rebuild(streamOf(form.recipe, join(dir, 'odd.contents')), 777)), sha(bytes));
  });

  test('a data descriptor and bytes between members are literals', () => {
    const member = Buffer.from('x = 1\n'.repeat(5000));
    const plain = zip([['p/m.py', member]], new Date(Date.UTC(2025, 0, 2)), { 'p/m.py': (b) => pako.deflateRaw(b, { level: 6 }) });
    // Insert a data descriptor (signature, CRC, sizes) after the member's data and fix the directory offset.
    const dataEnd = 30 + 'p/m.py'.length + pako.deflateRaw(member, { level: 6 }).length;
    const descriptor = Buffer.alloc(16);
    descriptor.writeUInt32LE(0x08074b50, 0);
    descriptor.writeUInt32LE(plain.readUInt32LE(14), 4);
    descriptor.writeUInt32LE(plain.readUInt32LE(18), 8);
    descriptor.writeUInt32LE(plain.readUInt32LE(22), 12);
    const bytes = Buffer.concat([plain.subarray(0, dataEnd), descriptor, plain.subarray(dataEnd)]);
    bytes.writeUInt32LE(bytes.readUInt32LE(bytes.length - 6) + 16, bytes.length - 6);
    const path = join(dir, 'dd-1.0-py3-none-any.whl');
    writeFileSync(path, bytes);
    const form = buildStoredForm(path, join(dir, 'dd.contents'))!;
    assert.ok(form);
    assert.equal(form.reproduced, 1);
    assert.equal(sha(rebuild(streamOf(form.recipe, join(dir, 'dd.contents')), 100)), sha(bytes));
  });

  test('a zip whose members are all opaque, or a file that is no zip, is published as it is', () => {
    const path = join(dir, 'nodeonly-1.0-py3-none-any.whl');
    writeFileSync(path, zip([['n.txt', text]], new Date(Date.UTC(2025, 0, 2))));
    assert.equal(buildStoredForm(path, join(dir, 'n.contents')), undefined);
    const fake = join(dir, 'fake-1.0-py3-none-any.whl');
    writeFileSync(fake, 'not a zip');
    assert.equal(buildStoredForm(fake, join(dir, 'f.contents')), undefined);
  });
});

describe('a damaged recipe', async () => {
  const dir = await tmpDir('paquete-rebuild-bad-');
  const path = realWheel('six-1.17.0');
  const form = buildStoredForm(path, join(dir, 'six.contents'))!;
  const stream = streamOf(form.recipe, join(dir, 'six.contents'));

  test('the rebuilder refuses it by name: magic, version, sizes, deflate lengths, short or long contents', () => {
    const damaged = (mutate: (b: Buffer) => Buffer) => () => rebuild(mutate(Buffer.from(stream)), 4096);
    const refused = (e: Error & { code?: string }) => e.code === 'BAD_FORMAT' && /rebuild recipe/.test(e.message);
    assert.throws(damaged((b) => ((b[0] = 0x58), b)), refused);
    assert.throws(damaged((b) => ((b[4] = 9), b)), /rebuild recipe version 9, which this paquete .* does not read \(it reads rebuild recipe 1\)/);
    assert.throws(damaged((b) => b.subarray(0, b.length - 10)), refused);
    assert.throws(damaged((b) => Buffer.concat([b, Buffer.from('junk')])), refused);
    // One deflate op claiming one byte more: the operations no longer add up to the file's size.
    const recipe = decodeRecipe(form.recipe);
    const op = recipe.ops.find((o) => o.kind === 'deflate')!;
    if (op.kind === 'deflate') op.deflatedLength += 1;
    const lying = encodeRecipe({ ...recipe, placedSize: recipe.placedSize + 1 });
    assert.throws(() => rebuild(Buffer.concat([lying, stream.subarray(form.recipe.length)]), 4096), /deflated to \d+ bytes, the recipe says/);
    assert.throws(damaged((b) => (b.writeUInt32LE(RECIPE_HEADER_SIZE + (1 << 30), 8), b)), refused);
  });

  test('the place worker places nothing and says why; a good stream places the original', async () => {
    await initHash();
    const store = await ChunkStore.open(join(dir, 'store'));
    onCleanup(() => store.close());
    const root = join(dir, 'tree');
    const tmp = join(dir, 'tmp');
    mkdirSync(root, { recursive: true });
    mkdirSync(tmp, { recursive: true });
    const place = async (name: string, bytes: Uint8Array, recipeLength = form.recipe.length) => {
      const pieces = [bytes.subarray(0, recipeLength), bytes.subarray(recipeLength)];
      const chunks = pieces.map((p) => ({ id: chunkId(p), pack: 0, offset: 8, repr: 0, rawLength: p.length, storedLength: p.length }));
      for (let i = 0; i < pieces.length; i++) await store.add(chunks[i].id, pieces[i]);
      await store.flush();
      const f: FileEntry = { path: name, mode: 0o644, size: bytes.length, sha256: form.sha256, chunks: [0, 1], rebuiltSize: form.placedSize };
      const snapshot = { params: DEFAULT_PARAMS, created: 0, sources: [], packs: [''], chunks: ChunkTable.of(chunks), files: [f] } as Snapshot;
      const r = new Restorer({ root, tmpDir: tmp, store }, snapshot, { version: 1, snapshot: '', files: {} } as never);
      const placed = await r.place(f, true);
      return { ok: placed === 'placed', placed, why: r.details.get(name) };
    };
    // A recipe whose first deflate claims one byte more (and the file one byte more, so it decodes).
    const recipe = decodeRecipe(form.recipe);
    const op = recipe.ops.find((o) => o.kind === 'deflate')!;
    if (op.kind === 'deflate') op.deflatedLength += 1;
    const lying = encodeRecipe({ ...recipe, placedSize: recipe.placedSize + 1 });
    const r = await place('bad.whl', Buffer.concat([lying, stream.subarray(form.recipe.length)]), lying.length);
    assert.equal(r.ok, false);
    assert.equal(r.placed, 'inconsistent', "chunks straight from the publisher that do not rebuild are the publisher's fault");
    assert.match(r.why!, /^it did not rebuild: damaged rebuild recipe: member at operation \d+ deflated to \d+ bytes, the recipe says \d+/);
    assert.equal(existsSync(join(root, 'bad.whl')), false, 'nothing placed');
    const contentFlip = Buffer.from(stream);
    contentFlip[stream.length - 5] ^= 0x01;
    const c = await place('flip.whl', contentFlip);
    assert.equal(c.ok, false, 'a flipped content byte fails the SHA-256 of the original');
    assert.equal(c.why, undefined, 'it rebuilt, to other bytes: a plain checksum mismatch');
    assert.equal(existsSync(join(root, 'flip.whl')), false);
    // A literal of the recipe flipped (in the central directory, the last operation): it rebuilds, to other bytes.
    const literalFlip = Buffer.from(stream);
    literalFlip[form.recipe.length - 30] ^= 0x01;
    const l = await place('literal.whl', literalFlip);
    assert.equal(l.ok, false, 'a flipped recipe byte fails the SHA-256 of the original');
    assert.equal(existsSync(join(root, 'literal.whl')), false);
    const good = await place('good.whl', stream);
    assert.equal(good.ok, true);
    assert.equal(sha(readFileSync(join(root, 'good.whl'))), sha(readFileSync(path)));
  });
});

describe('older clients are told to upgrade', () => {
  const file = (rebuiltSize?: number): FileEntry => ({ path: 'p/x.whl', mode: 0o644, size: 5, sha256: new Uint8Array(32), chunks: [0], ...(rebuiltSize ? { rebuiltSize } : {}) });
  const snap = (f: FileEntry): Snapshot => ({ params: DEFAULT_PARAMS, created: 1, sources: [{ kind: 'pypi', name: 'p' }], packs: ['00'.repeat(32)], chunks: ChunkTable.of([{ id: 1n, pack: 0, offset: 8, repr: 0, rawLength: 5, storedLength: 5 }]), files: [f] });

  test('an index with a rebuilt file is version 3 and round-trips; without one it stays version 2', () => {
    const v3 = encodeSnapshot(snap(file(1234)));
    assert.equal(v3[4], 3);
    assert.equal(decodeSnapshot(v3).files[0].rebuiltSize, 1234);
    const v2 = encodeSnapshot(snap(file()));
    assert.equal(v2[4], 2, 'remotes without rebuilt files stay readable by older clients');
    assert.equal(decodeSnapshot(v2).files[0].rebuiltSize, undefined);
    // What an older client does with a version it does not know (src/snapshot/snapshot.ts of format 2).
    const future = Buffer.from(v3);
    future[4] = 4;
    assert.throws(() => decodeSnapshot(future), (e: Error & { hint?: string }) => /snapshot index version 4, which this paquete/.test(e.message) && /^upgrade paquete: /.test(String(e.hint)));
  });

  test('an update into a version 3 index has head version 2, which a format-2 reader refuses', () => {
    const head = { target: 'ab'.repeat(32), base: null, framesFile: 'cd'.repeat(32), framesSize: 8, indexDelta: new Uint8Array(0), indexBodySize: 0, frames: [] };
    const v2 = encodeUpdateHead({ ...head, indexVersion: 3 });
    assert.equal(v2[4], 2);
    assert.equal(decodeUpdateHead(v2).indexVersion, 3);
    assert.equal(encodeUpdateHead({ ...head, indexVersion: 2 })[4], 1);
  });
});

describe('pip installs with --require-hashes from paquete serve', () => {
  test('real wheels published as contents + recipe, synced, served identical to PyPI', async () => {
    const dir = await tmpDir('paquete-rebuild-pip-');
    const wheels = join(dir, 'wheels');
    mkdirSync(wheels);
    const picked = ['six-1.17.0', 'markupsafe-3.0.3'].map(realWheel);
    const sdist = await buildSdist(join(dir, 'sdist-src'));
    // What pip's isolated build of the sdist installs (setuptools, wheel and its packaging), from the mirror too.
    const buildDeps = ['setuptools-80.9.0', 'wheel-0.46.3', 'packaging-26.3'].map(realWheel);
    const published = [...picked, ...buildDeps, sdist];
    for (const p of published) writeFileSync(join(wheels, p.split('/').pop()!), readFileSync(p));
    const run = async (args: string[]) => {
      const r = await runPaquete(args, { cwd: dir }).done;
      assert.equal(r.code, 0, `paquete ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
      return r;
    };
    await run(['keygen', '--out', 'k.key']);
    const pub = await run(['publish', 'pypi:wheels=wheels', '--to', 'remote', '--key', 'k.key']);
    assert.match(pub.stdout, /rebuilt files: 6 zip\/gzip files as contents \+ recipe, (\d+) of \1 deflated members reproduced/);
    const snapName = readdirSync(join(dir, 'remote', 'snapshots'))[0];
    assert.equal(readFileSync(join(dir, 'remote', 'snapshots', snapName))[4], 3, 'the index says version 3');
    await run(['init', './remote', 'work', '--trust', 'k.key.pub']);
    await run(['sync', '-C', 'work']);
    for (const p of published) assert.equal(sha(readFileSync(join(dir, 'work', 'wheels', p.split('/').pop()!))), sha(readFileSync(p)));

    // A pip cache holding the same wheels and sdist: seed cuts them into the same stream chunks as the
    // publisher (recipe and contents), so the seeded directory places them for nothing.
    const cache = join(dir, 'pip-cache');
    mkdirSync(cache);
    for (const p of published) writeFileSync(join(cache, p.split('/').pop()!), readFileSync(p));
    await run(['init', './remote', 'seeded', '--trust', 'k.key.pub']);
    await run(['sync', '-C', 'seeded', '--dry-run']);
    const seed = JSON.parse((await run(['seed', '-C', 'seeded', cache, '--json'])).stdout) as { missingAfter: number; placement: { placed: string[]; incomplete: string[] } };
    // Every chunk of the streams came from the cache; only the sdist's metadata file, which the
    // publisher wrote from its PKG-INFO (inside the tar, never cut apart), is left to download.
    assert.deepEqual(seed.placement.incomplete, ['wheels/demo_sd-1.0.tar.gz.metadata'], JSON.stringify(seed));
    assert.ok(seed.missingAfter < statSync(join(dir, 'work', 'wheels', 'demo_sd-1.0.tar.gz.metadata')).size + 100, JSON.stringify(seed));
    assert.deepEqual(seed.placement.placed.filter((p) => /\.(whl|tar\.gz)$/.test(p)).sort(), published.map((p) => `wheels/${p.split('/').pop()}`).sort());
    for (const p of published) assert.equal(sha(readFileSync(join(dir, 'seeded', 'wheels', p.split('/').pop()!))), sha(readFileSync(p)));

    const proc = runPaquete(['serve', '--port', '0', '-C', 'work'], { cwd: dir });
    onCleanup(() => void proc.kill('SIGKILL'));
    await proc.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' });
    const url = /at (http:\/\/\S+?)\/?\n/.exec(proc.stdout())![1];
    const requirements = join(dir, 'requirements.txt');
    writeFileSync(requirements, picked.map((p) => `${p.split('/').pop()!.split('-')[0]}==${p.split('/').pop()!.split('-')[1]} --hash=sha256:${sha(readFileSync(p))}\n`).join(''));
    const venv = join(dir, 'venv');
    assert.equal((await exec('python3', ['-m', 'venv', '--without-pip', venv])).code, 0);
    const env = pipEnv();
    const install = await exec('python3', ['-m', 'pip', '--python', join(venv, 'bin/python'), 'install', '--require-hashes', '--no-deps', '--index-url', `${url}/simple/`, '-r', requirements], { env });
    assert.equal(install.code, 0, `pip install failed\n${install.stdout}\n${install.stderr}`);
    assert.match(install.stdout, /Successfully installed markupsafe-3\.0\.3 six-1\.17\.0/);
    const ran = await exec(join(venv, 'bin/python'), ['-c', 'import six, markupsafe; print(six.__version__, markupsafe.escape("<a>"))']);
    assert.equal(ran.stdout.trim(), '1.17.0 &lt;a&gt;', ran.stderr);
    // The sdist, rebuilt from its stream, through pip's own hash check; pip prepares its metadata
    // in an isolated build environment, installing setuptools and wheel from the mirror.
    writeFileSync(requirements, `demo_sd==1.0 --hash=sha256:${sha(readFileSync(sdist))}\n`);
    const got = join(dir, 'downloaded');
    const download = await exec('python3', ['-m', 'pip', 'download', '--require-hashes', '--no-deps', '--index-url', `${url}/simple/`, '-d', got, '-r', requirements], { env });
    assert.equal(download.code, 0, `pip download failed\n${download.stdout}\n${download.stderr}`);
    assert.equal(sha(readFileSync(join(got, 'demo_sd-1.0.tar.gz'))), sha(readFileSync(sdist)));
    proc.kill('SIGTERM');
    await proc.done;
  });
});
