/**
 * `paquete serve` on a partly synced mirror (issue 17.4): what is not here yet says so and gives
 * the exact command that brings it, and running that command (pasted as a user would, through a
 * shell) brings it; the catalog's hints work when pasted; git sources show branches and tags.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, exec, onCleanup, paqueteBin, runPaquete, tmpDir, type Running } from './helpers/tmp.js';
import { writeTree } from './helpers/trees.js';
import { writeWheel } from './helpers/wheels.js';
import { chromiumPath, NO_CHROMIUM, renderedDom, screenshot } from './helpers/chromium.js';

after(cleanupAll);

const GIT_ENV = { GIT_AUTHOR_NAME: 'T', GIT_AUTHOR_EMAIL: 't@paquete.invalid', GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@paquete.invalid' };

async function run(cmd: string, args: string[], cwd: string) {
  const r = await exec(cmd, args, { cwd, env: GIT_ENV });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}
const paquete = (args: string[], cwd: string) => run(process.execPath, [paqueteBin, ...args], cwd);

/** Runs a command exactly as serve printed it, through a shell, with `paquete` being this checkout's. */
async function paste(command: string, cwd: string) {
  assert.match(command, /^paquete sync /);
  const script = `paquete() { "${process.execPath}" "${paqueteBin}" "$@"; }\n${command}\n`;
  return run('bash', ['-c', script], cwd);
}

/** The command line a 404 page or the catalog offers. */
const offered = (text: string): string => {
  const m = /(paquete sync -C [^\n<]+)/.exec(text.replace(/&#39;/g, "'").replace(/&amp;/g, '&').replace(/&quot;/g, '"'));
  assert.ok(m, `a command is offered in:\n${text}`);
  return m[1].trim();
};

describe('serve on a partly synced mirror', () => {
  let dir: string;
  let url: string;
  let proc: Running;

  before(async () => {
    dir = await tmpDir('paquete-serve-missing-');
    writeTree(join(dir, 'html'), {
      'index.html': '<h1>docs</h1>\n',
      'library/os.html': '<p>os</p>\n',
      "library/it's here.html": '<p>quoted</p>\n',
      'tutorial/index.html': '<p>tutorial</p>\n',
    });
    writeTree(join(dir, 'tree'), { 'a.txt': 'a\n', 'sub/b.txt': 'b\n' });
    mkdirSync(join(dir, 'wheels'));
    writeWheel(join(dir, 'wheels'), { name: 'alpha', version: '1.0', modules: { 'alpha/__init__.py': 'X = 1\n' } });
    const src = join(dir, 'repo');
    await run('git', ['init', '-q', '-b', 'main', src], dir);
    writeFileSync(join(src, 'README'), 'hi\n');
    await run('git', ['add', '-A'], src);
    await run('git', ['commit', '-q', '-m', 'first'], src);
    await run('git', ['tag', 'v1.0'], src);
    await run('git', ['branch', 'feature'], src);
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'docs:py=html', 'tree:stuff=tree', 'pypi:wh=wheels', 'git:proj=repo', '--to', 'remote', '--key', 'pub.key'], dir);
    await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
    // Only the docs' front page and the git source are here.
    await paquete(['sync', '-C', 'work', '--want', 'py/index.html', '--want', 'git:proj'], dir);
    await startServe();
  });

  async function startServe(): Promise<void> {
    proc = runPaquete(['serve', '--port', '0', '-C', join(dir, 'work')]);
    const p = proc;
    onCleanup(() => void p.kill('SIGKILL'));
    await proc.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' });
    url = /at (http:\/\/\S+?)\/?\n/.exec(proc.stdout())![1];
  }

  /**
   * Pastes the offered command, with serve stopped meanwhile: a sync beside a running serve is
   * test/serve-sync.test.ts's; here fetch's kept-alive connection would be answered from the
   * generation it began with (src/serve/generations.ts) until it closes.
   */
  async function pasteBetweenServes(command: string): Promise<void> {
    proc.kill('SIGTERM');
    await proc.done;
    await paste(command, dir);
    await startServe();
  }
  const get = (path: string) => fetch(url + path);

  test('a page not synced yet says so and how; the command it gives brings it', async () => {
    const missing = await fetch(`${url}/docs/py/library/os.html`);
    assert.equal(missing.status, 404);
    const text = await missing.text();
    assert.match(text, /not synced yet: py\/library\/os\.html/);
    await pasteBetweenServes(offered(text));
    const r = await get('/docs/py/library/os.html');
    assert.equal(r.status, 200);
    assert.equal(await r.text(), '<p>os</p>\n');
    // A page that does not exist is not "not synced yet".
    const none = await fetch(`${url}/docs/py/library/nope.html`);
    assert.equal(none.status, 404);
    assert.doesNotMatch(await none.text(), /not synced yet/);
  });

  test('in a browser, a page not synced yet shows what is missing and the command that brings it', async (t) => {
    const chromium = chromiumPath();
    if (!chromium) {
      process.stderr.write(`\n${NO_CHROMIUM}\n\n`);
      t.skip(NO_CHROMIUM);
      return;
    }
    const page = `${url}/docs/py/tutorial/index.html`;
    const dom = await renderedDom(chromium, page, dir);
    assert.match(dom, /not synced yet: py\/tutorial\/index\.html/);
    // The command as the browser shows it (entities decoded) is the one serve offers over HTTP.
    assert.equal(offered(dom), offered(await (await fetch(page)).text()));
    const png = await screenshot(chromium, page, dir, join(dir, 'not-synced.png'), 1000, 600);
    // A page with its text drawn is well over a blank page's few hundred bytes.
    assert.ok(png.length > 5_000, `screenshot is only ${png.length} bytes: blank page?`);
    if (process.env.PAQUETE_KEEP_SCREENSHOT) writeFileSync(process.env.PAQUETE_KEEP_SCREENSHOT.replace(/(\.png)?$/, '-not-synced.png'), png);
  });

  test('a name with a quote is offered as one shell word, and the command works', async () => {
    const text = await (await fetch(`${url}/docs/py/library/${encodeURIComponent("it's here.html")}`)).text();
    await pasteBetweenServes(offered(text));
    assert.equal(await (await get(`/docs/py/library/${encodeURIComponent("it's here.html")}`)).text(), '<p>quoted</p>\n');
  });

  test('a folder not synced at all, and a tree source with nothing here, say so instead of a bare 404', async () => {
    const tut = await (await fetch(`${url}/docs/py/tutorial/`)).text();
    assert.match(tut, /not synced yet/);
    const stuff = await fetch(`${url}/files/stuff/`);
    assert.equal(stuff.status, 404);
    const text = await stuff.text();
    assert.match(text, /not synced yet: stuff\/ \(2 of 2 files/);
    await pasteBetweenServes(offered(text));
    assert.equal((await get('/files/stuff/sub/b.txt')).status, 200);
  });

  test("the catalog's hints work when pasted, a PyPI source's included; git sources show branches and tags", async () => {
    const page = await (await fetch(`${url}/`)).text();
    assert.match(page, /<code[^>]*>main<\/code> \(HEAD\)/);
    assert.match(page, /<code[^>]*>feature<\/code>/);
    assert.match(page, /1 tag: <code[^>]*>v1\.0<\/code>/);
    const section = page.slice(page.indexOf('id="pypi-wh"'));
    const command = offered(section);
    assert.match(command, /--want 'wh\/\*\*'|--want wh\/\*\*/);
    await pasteBetweenServes(command);
    const simple = await get('/simple/alpha/');
    assert.equal(simple.status, 200);
    assert.match(await simple.text(), /alpha-1\.0-py3-none-any\.whl/);
  });
});
