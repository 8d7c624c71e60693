/**
 * `paquete serve` end to end, with the real tools: wheels built here, published, synced with
 * `--want pypi:alpha` (dependency closure), served; real pip installs and downloads from the
 * index; docs come with the right content types; a second working directory syncs from the
 * first one's /remote/ (virtual packs) byte for byte; Debian's chromium screenshots the catalog.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { cleanupAll, exec, onCleanup, runPaquete, tmpDir, type Running, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { wheelFileName, writeSdist, writeWheel } from './helpers/wheels.js';
import { pipEnv } from './helpers/pip.js';
import { chromiumPath, NO_CHROMIUM, screenshot } from './helpers/chromium.js';

after(cleanupAll);

const paquete = paqueteExpecting();

/** Starts `paquete serve --port 0` on a working directory; resolves with its URL. */
async function serve(workDir: string): Promise<{ url: string; proc: Running; stop: () => Promise<void> }> {
  const proc = runPaquete(['serve', '--port', '0', '-C', workDir]);
  await proc.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' });
  const url = /at (http:\/\/\S+?)\/?\n/.exec(proc.stdout())![1];
  const stop = async () => {
    proc.kill('SIGTERM');
    const r = await proc.done;
    assert.equal(r.code, 0, `serve exited ${r.code}: ${r.stderr}`);
  };
  onCleanup(() => void proc.kill('SIGKILL'));
  return { url, proc, stop };
}


const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('paquete serve', () => {
  let dir: string;
  let server: Awaited<ReturnType<typeof serve>>;
  const wheels: Record<string, string> = {};

  before(async () => {
    dir = await tmpDir('paquete-serve-');
    const w = join(dir, 'wheels');
    // alpha needs beta; beta 2.0 needs a Python from the future, so 1.0 is the one that fits.
    wheels.alpha09 = writeWheel(w, { name: 'alpha', version: '0.9', requires: ['beta'], modules: { 'alpha/__init__.py': 'VERSION = "0.9"\n' } });
    writeFileSync(`${wheels.alpha09}.yanked`, 'broken import\n');
    wheels.alpha = writeWheel(w, {
      name: 'alpha',
      version: '1.0',
      requires: ['beta>=1.0', 'gamma; python_version < "3"', 'delta; extra == "fancy"'],
      modules: { 'alpha/__init__.py': 'from beta import VERSION as BETA\nVERSION = "1.0"\n', 'alpha/data.txt': pseudoRandom(20_000, 3).toString('base64') },
    });
    // A PEP 503 tree for beta: one folder per project.
    wheels.beta = writeWheel(join(w, 'beta'), { name: 'beta', version: '1.0', requiresPython: '>=3.7', modules: { 'beta/__init__.py': 'VERSION = "1.0"\n' } });
    wheels.beta2 = writeWheel(join(w, 'beta'), { name: 'beta', version: '2.0', requiresPython: '>=3.99', modules: { 'beta/__init__.py': 'VERSION = "2.0"\n' } });
    wheels.gamma = writeWheel(w, { name: 'Gamma_Ray', version: '3.0', modules: { 'gamma_ray/__init__.py': 'X = 1\n' } });
    wheels.gammaSdist = writeSdist(w, { name: 'Gamma_Ray', version: '3.0', requiresPython: '>=3.8' });
    writeTree(join(dir, 'html'), {
      'index.html': '<!DOCTYPE html><html><head><link rel="stylesheet" href="_static/style.css"><script src="_static/app.js"></script></head><body><h1>Manual</h1><img src="img/logo.svg"></body></html>',
      '_static/style.css': 'h1 { color: #234; }\n',
      '_static/app.js': 'console.log("docs");\n',
      '_static/font.woff2': pseudoRandom(3000, 5),
      'img/logo.svg': '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
      'img/shot.png': Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), pseudoRandom(500, 6)]),
      'search/index.json': '{"a":1}',
      'guide/index.html': '<html><body>guide</body></html>',
    });
    writeTree(join(dir, 'site'), { 'notes.txt': 'a tree source\n', 'big.bin': pseudoRandom(300_000, 9) });
    writeFileSync(join(dir, 'secret.txt'), 'outside the mirror\n');
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    const git = (...args: string[]) => exec('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main', ...args], { cwd: repo });
    await git('init', '-q');
    writeFileSync(join(repo, 'README'), 'a repository\n');
    await git('add', 'README');
    await git('commit', '-qm', 'first');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'pypi:wheels', 'docs:manual=html', 'site', 'git:repo', '--to', 'remote', '--key', 'pub.key'], dir);
    await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
  });

  test('--want pypi:alpha brings alpha and its dependency closure for this Python, and nothing else', async () => {
    const r = await paquete(['sync', '-C', 'work', '--want', 'pypi:alpha', '--json'], dir);
    const report = JSON.parse(r.stdout);
    const placed = new Set<string>(report.placed);
    assert.ok(placed.has(`wheels/${wheelFileName({ name: 'alpha', version: '1.0', modules: {} })}`), r.stdout);
    assert.ok(placed.has('wheels/beta/beta-1.0-py3-none-any.whl'), 'beta 1.0: 2.0 needs Python >= 3.99');
    assert.ok(!placed.has('wheels/beta/beta-2.0-py3-none-any.whl'));
    assert.ok(![...placed].some((p) => p.includes('Gamma') || /^(manual|site|repo)\//.test(p)), `too much: ${[...placed].join(', ')}`);
    // The publisher wrote each distribution's metadata beside it; it came first, to resolve.
    assert.ok(existsSync(join(dir, 'work/wheels/beta/beta-1.0-py3-none-any.whl.metadata')));
    assert.match(readFileSync(join(dir, 'work/wheels/beta/beta-1.0-py3-none-any.whl.metadata'), 'utf8'), /Requires-Python: >=3.7/);
    assert.equal(sha(readFileSync(join(dir, 'work/wheels/beta/beta-1.0-py3-none-any.whl'))), sha(readFileSync(wheels.beta)));
  });

  test('the index lists only what is complete in the tree', async () => {
    const s = await serve(join(dir, 'work'));
    try {
      const root = await (await fetch(`${s.url}/simple/`, { headers: { Accept: 'application/vnd.pypi.simple.v1+json' } })).json();
      assert.deepEqual(root.projects.map((p: { name: string }) => p.name).sort(), ['alpha', 'beta']);
      assert.equal((await fetch(`${s.url}/simple/gamma-ray/`)).status, 404);
    } finally {
      await s.stop();
    }
  });

  test('after a full sync, serve starts and prints its URL', async () => {
    await paquete(['sync', '-C', 'work'], dir);
    server = await serve(join(dir, 'work'));
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  test('PEP 503 HTML: sha256 fragments, requires-python, yanked, metadata, normalized names', async () => {
    const res = await fetch(`${server.url}/simple/beta/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/html/);
    const html = await res.text();
    assert.match(html, /<meta name="pypi:repository-version" content="1\.1">/);
    assert.match(html, new RegExp(`href="/packages/wheels/beta/beta-1\\.0-py3-none-any\\.whl#sha256=${sha(readFileSync(wheels.beta))}"`));
    assert.match(html, /data-requires-python="&gt;=3\.99"/);
    const meta = readFileSync(join(dir, 'work/wheels/beta/beta-1.0-py3-none-any.whl.metadata'));
    assert.match(html, new RegExp(`data-dist-info-metadata="sha256=${sha(meta)}" data-core-metadata="sha256=${sha(meta)}"`));
    const alpha = await (await fetch(`${server.url}/simple/alpha/`)).text();
    assert.match(alpha, /alpha-0\.9-py3-none-any\.whl#sha256=[0-9a-f]{64}" data-dist-info-metadata="sha256=[0-9a-f]{64}" data-core-metadata="sha256=[0-9a-f]{64}" data-yanked="broken import"/);
    // Non-normalized names redirect to the one URL of the project.
    const redir = await fetch(`${server.url}/simple/Gamma_Ray/`, { redirect: 'manual' });
    assert.equal(redir.status, 301);
    assert.equal(redir.headers.get('location'), '/simple/gamma-ray/');
    const gamma = await (await fetch(`${server.url}/simple/gamma-ray/`)).text();
    assert.match(gamma, /Gamma_Ray-3\.0\.tar\.gz#sha256=[0-9a-f]{64}" data-requires-python="&gt;=3\.8">/, 'sdist: Requires-Python from PKG-INFO, no PEP 658 metadata');
  });

  test('PEP 691 JSON by Accept, with PEP 700 versions and size; metadata files match their hashes', async () => {
    const res = await fetch(`${server.url}/simple/beta/`, { headers: { Accept: 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1, text/html;q=0.01' } });
    assert.equal(res.headers.get('content-type'), 'application/vnd.pypi.simple.v1+json');
    assert.equal(res.headers.get('vary'), 'Accept');
    const j = await res.json();
    assert.equal(j.meta['api-version'], '1.1');
    assert.equal(j.name, 'beta');
    assert.deepEqual(j.versions, ['1.0', '2.0']);
    const f = j.files.find((x: { filename: string }) => x.filename === 'beta-2.0-py3-none-any.whl');
    assert.equal(f.size, statSync(wheels.beta2).size);
    assert.equal(f['requires-python'], '>=3.99');
    assert.equal(f.yanked, false);
    assert.equal(f.hashes.sha256, sha(readFileSync(wheels.beta2)));
    const md = await fetch(`${server.url}${f.url}.metadata`);
    assert.equal(md.status, 200);
    const mdBytes = Buffer.from(await md.arrayBuffer());
    assert.equal(sha(mdBytes), f['core-metadata'].sha256);
    assert.deepEqual(f['dist-info-metadata'], f['core-metadata']);
    assert.match(mdBytes.toString(), /Version: 2\.0/);
    const html = await fetch(`${server.url}/simple/`, { headers: { Accept: 'application/vnd.pypi.simple.v1+html' } });
    assert.equal(html.headers.get('content-type'), 'application/vnd.pypi.simple.v1+html; charset=utf-8');
    assert.equal((await fetch(`${server.url}/simple/`, { headers: { Accept: 'image/png' } })).status, 406);
    // PEP 691's "latest" aliases are answered with the real version in the Content-Type.
    for (const [accept, type] of [
      ['application/vnd.pypi.simple.latest+json', 'application/vnd.pypi.simple.v1+json'],
      ['application/vnd.pypi.simple.latest+html', 'application/vnd.pypi.simple.v1+html; charset=utf-8'],
    ]) {
      const r = await fetch(`${server.url}/simple/beta/`, { headers: { Accept: accept } });
      assert.equal(r.status, 200, accept);
      assert.equal(r.headers.get('content-type'), type);
      if (type.includes('json')) assert.equal((await r.json()).name, 'beta');
      else assert.match(await r.text(), /beta-2\.0-py3-none-any\.whl/);
    }
  });

  test('real pip installs alpha with its dependency into a fresh venv, and pip download fetches both', async () => {
    const venv = join(dir, 'venv');
    const mk = await exec('python3', ['-m', 'venv', '--without-pip', venv]);
    assert.equal(mk.code, 0, mk.stderr);
    const env = pipEnv();
    const install = await exec('python3', ['-m', 'pip', '--python', join(venv, 'bin/python'), 'install', '--index-url', `${server.url}/simple/`, 'alpha'], { env });
    assert.equal(install.code, 0, `pip install failed\n${install.stdout}\n${install.stderr}`);
    assert.match(install.stdout, /Successfully installed alpha-1\.0 beta-1\.0/);
    const run = await exec(join(venv, 'bin/python'), ['-c', 'import alpha; print(alpha.VERSION, alpha.BETA)']);
    assert.equal(run.stdout.trim(), '1.0 1.0', run.stderr);

    const dest = join(dir, 'downloads');
    const dl = await exec('python3', ['-m', 'pip', 'download', '--index-url', `${server.url}/simple/`, '--dest', dest, 'alpha'], { env });
    assert.equal(dl.code, 0, `pip download failed\n${dl.stdout}\n${dl.stderr}`);
    assert.deepEqual(readdirSync(dest).sort(), ['alpha-1.0-py3-none-any.whl', 'beta-1.0-py3-none-any.whl']);
    assert.equal(sha(readFileSync(join(dest, 'alpha-1.0-py3-none-any.whl'))), sha(readFileSync(wheels.alpha)));
  });

  test('docs are served with their content types, folders give index.html, and nothing outside leaks', async () => {
    const types: Record<string, RegExp> = {
      '/docs/manual/': /^text\/html; charset=utf-8$/,
      '/docs/manual/_static/style.css': /^text\/css/,
      '/docs/manual/_static/app.js': /^text\/javascript/,
      '/docs/manual/_static/font.woff2': /^font\/woff2$/,
      '/docs/manual/img/logo.svg': /^image\/svg\+xml$/,
      '/docs/manual/img/shot.png': /^image\/png$/,
      '/docs/manual/search/index.json': /^application\/json$/,
      '/docs/manual/guide/': /^text\/html/,
    };
    for (const [path, type] of Object.entries(types)) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type')!, type, path);
      const body = Buffer.from(await res.arrayBuffer());
      const file = path.endsWith('/') ? `${path}index.html` : path;
      assert.deepEqual(body, readFileSync(join(dir, 'html', file.slice('/docs/manual/'.length))), path);
    }
    const noSlash = await fetch(`${server.url}/docs/manual/guide`, { redirect: 'manual' });
    assert.equal(noSlash.status, 301);
    assert.equal(noSlash.headers.get('location'), '/docs/manual/guide/');
    for (const evil of ['/docs/manual/..%2f..%2fsecret.txt', '/docs/manual/%2e%2e/%2e%2e/secret.txt', '/docs/manual/..%5c..%5csecret.txt', '/docs/site/notes.txt', '/packages/wheels/..%2f..%2fsecret.txt']) {
      const res = await fetch(`${server.url}${evil}`);
      assert.equal(res.status, 404, evil);
      assert.ok(!(await res.text()).includes('outside the mirror'), evil);
    }
    const list = await (await fetch(`${server.url}/files/site/`)).text();
    assert.match(list, /<a href="notes\.txt">notes\.txt<\/a>/, 'a tree source is browsable');
    const range = await fetch(`${server.url}/docs/manual/_static/style.css`, { headers: { Range: 'bytes=0-1' } });
    assert.equal(range.status, 206);
    assert.equal(await range.text(), 'h1');
  });

  test('git clone works through /git/NAME.git', async () => {
    const r = await exec('git', ['clone', '-q', `${server.url}/git/repo.git`, join(dir, 'clone')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(dir, 'clone/README'), 'utf8'), 'a repository\n');
  });

  test('the catalog page lists every source with versions, sizes and what is complete', async () => {
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/html/);
    const html = await res.text();
    for (const s of ['wheels', 'manual', 'site', 'repo']) assert.match(html, new RegExp(`<tr id="src-${s}">`), s);
    assert.match(html, /<td>pypi<\/td>/);
    assert.match(html, /<td>docs<\/td>/);
    assert.match(html, /git clone http:\/\/127\.0\.0\.1:\d+\/git\/repo\.git/);
    assert.match(html, /\d+ of \d+ files complete/);
    assert.match(html, /nothing missing/);
    assert.match(html, /<a href="\/simple\/alpha\/">alpha<\/a><\/td><td><span class="v ok"[^>]*>0\.9 <small>[\d.]+ k?B, yanked<\/small><\/span> <span class="v ok"[^>]*>1\.0 <small>[\d.]+ kB/);
    assert.match(html, /gamma-ray/);
    assert.match(html, /300 kB/, 'the tree source and its size');
    assert.match(html, /pip install --index-url http:\/\/127\.0\.0\.1:\d+\/simple\/ NAME/);
  });

  test('headless chromium renders the catalog (screenshot)', async (t) => {
    const chromium = chromiumPath();
    if (!chromium) {
      process.stderr.write(`\n${NO_CHROMIUM}\n\n`);
      t.skip(NO_CHROMIUM);
      return;
    }
    const bytes = await screenshot(chromium, `${server.url}/`, dir, join(dir, 'catalog.png'));
    // A blank page compresses to a few kB; text, tables and colours do not.
    assert.ok(bytes.length > 20_000, `screenshot is only ${bytes.length} bytes: blank page?`);
    if (process.env.PAQUETE_KEEP_SCREENSHOT) writeFileSync(process.env.PAQUETE_KEEP_SCREENSHOT, bytes);
  });

  test('a LAN peer inits from /remote/ and syncs byte for byte from virtual packs', async () => {
    const peer = join(dir, 'peer');
    await paquete(['init', `${server.url}/remote/`, peer, '--trust', 'pub.key.pub'], dir);
    const r = await paquete(['sync', '-C', peer, '--json'], dir);
    const report = JSON.parse(r.stdout);
    assert.equal(report.completeFiles, report.wantedFiles);
    const want = treeDigest(join(dir, 'work'));
    assert.deepEqual(treeDigest(peer), want);
    const v = await paquete(['verify', '-C', peer], dir);
    assert.match(v.stdout, /store ok/);
  });

  test('virtual packs: single ranges honoured, unknown bytes refused', async () => {
    const manifest = JSON.parse(readFileSync(join(dir, 'remote/manifest.json'), 'utf8'));
    const packName = readdirSync(join(dir, 'remote/packs')).find((n) => n.endsWith('.pack'))!;
    const real = readFileSync(join(dir, 'remote/packs', packName));
    const url = `${server.url}/remote/packs/${packName}`;
    for (const [a, b] of [[0, 99], [5, 40], [1000, 5000], [real.length - 30, real.length - 1]]) {
      const res = await fetch(url, { headers: { Range: `bytes=${a}-${b}` } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), `bytes ${a}-${b}/${real.length}`);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), real.subarray(a, b + 1));
    }
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), real);
    assert.equal((await fetch(url, { headers: { Range: `bytes=${real.length}-` } })).status, 416);
    assert.equal((await fetch(`${server.url}/remote/packs/${'0'.repeat(64)}.pack`)).status, 404);
    const snap = manifest.signed.snapshots[0].name;
    const s = await fetch(`${server.url}/remote/snapshots/${snap}.snap`);
    assert.deepEqual(Buffer.from(await s.arrayBuffer()), readFileSync(join(dir, 'remote/snapshots', `${snap}.snap`)));
    const m = await fetch(`${server.url}/remote/manifest.json`);
    assert.deepEqual(Buffer.from(await m.arrayBuffer()), readFileSync(join(dir, 'remote/manifest.json')));
  });

  test('serve stops cleanly on SIGTERM', async () => {
    await server.stop();
  });
});
