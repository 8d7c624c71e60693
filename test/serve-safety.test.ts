/**
 * What `paquete serve` may hand out, through real HTTP requests: nothing outside the mirror and
 * nothing of its own .paquete directory, whatever a hostile snapshot names its sources and
 * whatever symlinks the tree holds; and no remote URL's user and password, on the catalog, in
 * status, in --json or in an error (the remote here is nginx behind a real password).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, exec, onCleanup, runPaquete, tmpDir, type Running, paqueteExpecting } from './helpers/tmp.js';
import { writeTree } from './helpers/trees.js';
import { forgeSnapshot } from './helpers/forge.js';
import { NginxServer, startNginx } from './helpers/nginx.js';

after(cleanupAll);

const paquete = paqueteExpecting();

async function serve(workDir: string): Promise<{ url: string; proc: Running; stop: () => Promise<void> }> {
  const proc = runPaquete(['serve', '--port', '0', '-C', workDir]);
  onCleanup(() => void proc.kill('SIGKILL'));
  await proc.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' });
  const url = /at (http:\/\/\S+?)\/?\n/.exec(proc.stdout())![1];
  return {
    url,
    proc,
    stop: async () => {
      proc.kill('SIGTERM');
      await proc.done;
    },
  };
}

/** Every way a path could be asked for: raw, percent-encoded, double-encoded slashes. */
const spellings = (name: string) => [encodeURIComponent(name), name.replaceAll('/', '%2F'), name.replaceAll('/', '%252F')];

describe('serve hands out nothing outside the mirror', () => {
  let dir: string;
  const passwd = readFileSync('/etc/passwd', 'utf8');

  before(async () => {
    dir = await tmpDir('paquete-serve-safety-');
    writeTree(join(dir, 'html'), { 'index.html': '<html><body>manual</body></html>', 'guide/page.html': '<p>page</p>' });
    writeTree(join(dir, 'site'), { 'notes.txt': 'a tree source\n' });
    writeTree(join(dir, 'outside'), { 'secret.txt': 'not part of any mirror\n' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'docs:html', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  });

  test('a signed snapshot whose sources are named ../../../../.. is refused by sync, before anything is written', async () => {
    const evil = join(dir, 'evil');
    await exec('cp', ['-r', join(dir, 'remote'), evil]);
    await paquete(['init', 'evil', 'w-evil', '--trust', 'pub.key.pub'], dir);
    forgeSnapshot(evil, join(dir, 'pub.key'), (s) => {
      s.sources.push({ kind: 'docs', name: '../../../../..' }, { kind: 'tree', name: '../../../../../etc' });
    });
    const r = await paquete(['sync', '-C', 'w-evil'], dir, null);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /refusing source name "\.\.\/\.\.\/\.\.\/\.\.\/\.\."/);
    assert.equal(existsSync(join(dir, 'w-evil/html')), false, 'nothing placed');
    const trusted = join(dir, 'w-evil/.paquete/manifest.json');
    assert.ok(!existsSync(trusted) || !readFileSync(trusted, 'utf8').includes('../'), 'the hostile manifest is not trusted');
    // init refuses such a remote outright.
    const again = await paquete(['init', 'evil', 'w-evil2', '--trust', 'pub.key.pub'], dir, null);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /refusing source name/);
  });

  test('the same snapshot already in a directory (copied from a stick): serve refuses it and never answers /etc/passwd', async () => {
    // A working directory with the hostile manifest and index in its cache, as an older paquete
    // would have accepted them.
    await paquete(['init', 'remote', 'w-cached', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w-cached'], dir);
    const evil = join(dir, 'evil-cached');
    await exec('cp', ['-r', join(dir, 'remote'), evil]);
    forgeSnapshot(evil, join(dir, 'pub.key'), (s) => s.sources.push({ kind: 'docs', name: '../../../../..' }, { kind: 'tree', name: '../../../../../etc' }));
    await exec('sh', ['-c', `cp ${evil}/snapshots/*.snap ${dir}/w-cached/.paquete/snapshots/ && cp ${evil}/manifest.json ${dir}/w-cached/.paquete/manifest.json`]);
    const proc = runPaquete(['serve', '--port', '0', '-C', join(dir, 'w-cached')]);
    onCleanup(() => void proc.kill('SIGKILL'));
    const started = await Promise.race([proc.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' }).then(() => true, () => false), proc.done.then(() => false)]);
    if (started) {
      // A server that starts anyway must not serve it.
      const url = /at (http:\/\/\S+?)\/?\n/.exec(proc.stdout())![1];
      for (const path of [...spellings('../../../../..').map((n) => `/docs/${n}/etc/passwd`), ...spellings('../../../../../etc').map((n) => `/files/${n}/passwd`)]) {
        const res = await fetch(`${url}${path}`);
        const body = await res.text();
        assert.notEqual(res.status, 200, path);
        assert.ok(!body.includes(passwd.slice(0, 20)), path);
      }
      proc.kill('SIGTERM');
    }
    const r = await proc.done;
    if (!started) assert.match(r.stderr, /refusing source name/);
  });

  test('symlinks out of the tree, or into .paquete, are not followed: 404 through real requests', async () => {
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w'], dir);
    const w = join(dir, 'w');
    // The tree source's folder itself replaced by a symlink to a folder outside the mirror.
    rmSync(join(w, 'site'), { recursive: true });
    symlinkSync(join(dir, 'outside'), join(w, 'site'));
    // Links inside a docs tree: to the store's directory, to its config, to /etc, and up and out.
    symlinkSync('../.paquete', join(w, 'html/store'));
    symlinkSync('../.paquete/config.json', join(w, 'html/config.json'));
    symlinkSync('/etc', join(w, 'html/etc'));
    symlinkSync('../../outside/secret.txt', join(w, 'html/guide/secret.txt'));
    mkdirSync(join(w, 'html/ok'));
    writeFileSync(join(w, 'html/ok/here.txt'), 'inside\n');
    const s = await serve(w);
    try {
      const get = async (path: string) => {
        const res = await fetch(`${s.url}${path}`);
        return { status: res.status, body: await res.text() };
      };
      for (const path of ['/files/site/secret.txt', '/files/site/', '/docs/html/store/config.json', '/docs/html/config.json', '/docs/html/etc/passwd', '/docs/html/guide/secret.txt', '/docs/html/store/']) {
        const r = await get(path);
        assert.equal(r.status, 404, `${path}: ${r.status} ${r.body.slice(0, 80)}`);
        assert.ok(!r.body.includes('not part of any mirror') && !r.body.includes('"publisher"') && !r.body.includes(passwd.slice(0, 20)), path);
      }
      // Encoded dots and slashes never climb out either.
      for (const path of ['/docs/html/..%2F.paquete/config.json', '/docs/html/%2E%2E/.paquete/config.json', '/docs/%2E%2E/etc/passwd', '/files/..%2F..%2Fetc/passwd', '/docs/.paquete/config.json', '/files/.paquete/config.json', '/packages/..%2F.paquete/config.json']) {
        const r = await get(path);
        assert.notEqual(r.status, 200, path);
        assert.ok(!r.body.includes('"publisher"') && !r.body.includes(passwd.slice(0, 20)), path);
      }
      // What is inside is still served.
      assert.equal((await get('/docs/html/')).status, 200);
      assert.equal((await get('/docs/html/guide/page.html')).body, '<p>page</p>');
      assert.equal((await get('/docs/html/ok/here.txt')).body, 'inside\n');
    } finally {
      await s.stop();
    }
  });
});

describe('no remote password is ever shown', () => {
  let dir: string;
  let ng: NginxServer;
  const password = 'hunter2-Pa55';

  before(async () => {
    dir = await tmpDir('paquete-creds-');
    writeTree(join(dir, 'html'), { 'index.html': '<p>docs</p>' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'docs:html', '--to', 'remote', '--key', 'pub.key'], dir);
    const hash = (await exec('openssl', ['passwd', '-apr1', password])).stdout.trim();
    writeFileSync(join(dir, 'htpasswd'), `alice:${hash}\n`);
    ng = await startNginx(join(dir, 'remote'), { extraConfig: `auth_basic "mirror"; auth_basic_user_file ${join(dir, 'htpasswd')};` });
    onCleanup(() => ng.stop());
  });

  const noSecret = (text: string, where: string) => {
    assert.ok(!text.includes(password), `${where} shows the password:\n${text}`);
    assert.ok(!text.includes('alice:'), `${where} shows the user:\n${text}`);
  };

  test('the remote needs the password; catalog, status, --json and errors never show it', async () => {
    const url = ng.url.replace('http://', `http://alice:${password}@`);
    // Without the password the remote refuses: the credentials really are used.
    assert.equal((await fetch(`${ng.url}manifest.json`)).status, 401);
    const init = await paquete(['init', url, 'w', '--trust', 'pub.key.pub', '--json'], dir);
    noSecret(init.stdout + init.stderr, 'init');
    const sync = await paquete(['sync', '-C', 'w', '--json'], dir);
    noSecret(sync.stdout + sync.stderr, 'sync');
    assert.ok(existsSync(join(dir, 'w/html/index.html')));
    for (const args of [['status'], ['status', '--json'], ['remote', 'list'], ['remote', 'list', '--json']]) {
      const r = await paquete([...args, '-C', 'w'], dir);
      noSecret(r.stdout + r.stderr, args.join(' '));
      assert.match(r.stdout, /\*\*\*@127\.0\.0\.1|status|synced/);
    }
    const s = await serve(join(dir, 'w'));
    try {
      const page = await (await fetch(`${s.url}/`)).text();
      noSecret(page, 'the catalog page');
      assert.match(page, /http:\/\/\*\*\*@127\.0\.0\.1:\d+\//, 'the remote is still named, without its credentials');
    } finally {
      await s.stop();
    }
    // An error naming the remote: the server gone.
    await ng.stop();
    const down = await runPaquete(['sync', '-C', 'w'], { cwd: dir, env: { PAQUETE_RETRIES: '0', PAQUETE_CONNECT_TIMEOUT: '2' } }).done;
    assert.notEqual(down.code, 0);
    noSecret(down.stdout + down.stderr, 'sync with the remote down');
    const downJson = await runPaquete(['sync', '-C', 'w', '--json'], { cwd: dir, env: { PAQUETE_RETRIES: '0', PAQUETE_CONNECT_TIMEOUT: '2' } }).done;
    noSecret(downJson.stdout + downJson.stderr, 'sync --json with the remote down');
  });
});
