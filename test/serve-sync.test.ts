/**
 * serve and sync on one directory at once (issue 15 item 6, docs/DESIGN-REMOTE-V3.md decision 8):
 * real pip and git clients read from `paquete serve` in a loop while `paquete sync` brings the
 * next snapshot from nginx. The interleaving is made, not hoped for: the sync pauses just before
 * its switch (PAQUETE_PAUSE_BEFORE_SWITCH) with the new files already placed, and the test moves
 * on only when each loop has run whole inside that window, and again after the sync ended.
 * Verdicts are on content: every pip download is one snapshot's set of wheels with their
 * published SHA-256 (pip checks the index's hashes too, and --require-hashes), every clone
 * passes git fsck at one snapshot's commit; a file being streamed while the sync replaces it
 * arrives as it was.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { cleanupAll, exec, onCleanup, paqueteBin, runPaquete, tmpDir, type Running, until } from './helpers/tmp.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { pseudoRandom, writeTree } from './helpers/trees.js';
import { writeWheel } from './helpers/wheels.js';
import { pipEnv } from './helpers/pip.js';

after(cleanupAll);

const GIT_ENV = { GIT_AUTHOR_NAME: 'T', GIT_AUTHOR_EMAIL: 't@paquete.invalid', GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@paquete.invalid' };
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function run(cmd: string, args: string[], cwd: string, env: Record<string, string | undefined> = GIT_ENV) {
  const r = await exec(cmd, args, { cwd, env });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}
const paquete = (args: string[], cwd: string) => run(process.execPath, [paqueteBin, ...args], cwd);

/** One GET on a new connection: answered from the generation current now. */
function getFresh(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

type Version = 'v1' | 'v2' | 'v3';
const VERSIONS: Version[] = ['v1', 'v2', 'v3'];
type Phase = 'before' | 'paused' | 'released' | 'synced';
interface Round {
  started: Phase;
  ended: Phase;
  /** What the client got: a snapshot's name ('v1', 'v2') or what was wrong. */
  got: string;
}

describe('serve while sync brings the next snapshot', () => {
  let dir: string;
  let work: string;
  let nginx: NginxServer;
  let serve: Running;
  let url: string;
  /** Per snapshot: wheel file name → SHA-256. */
  const wheels: Record<Version, Record<string, string>> = { v1: {}, v2: {}, v3: {} };
  const commits: Record<Version, string> = { v1: '', v2: '', v3: '' };
  const big = { v1: pseudoRandom(8 << 20, 11), v2: pseudoRandom(8 << 20, 12), v3: pseudoRandom(8 << 20, 13) };
  const page = { v1: '<p>page one</p>\n', v2: '<p>page two</p>\n', v3: '<p>page three</p>\n' };

  async function commit(repo: string, text: string): Promise<string> {
    writeFileSync(join(repo, 'README'), text);
    await run('git', ['add', '-A'], repo);
    await run('git', ['commit', '-q', '-m', text.trim()], repo);
    return (await run('git', ['rev-parse', 'HEAD'], repo)).stdout.trim();
  }

  function writeVersion(v: Version): void {
    const w = join(dir, 'wheels');
    rmSync(w, { recursive: true, force: true });
    const version = `${v.slice(1)}.0`;
    for (const path of [
      writeWheel(w, { name: 'alpha', version, requires: [`beta==${version}`], modules: { 'alpha/__init__.py': `VERSION = "${version}"\n`, 'alpha/data.txt': pseudoRandom(30_000, Number(v.slice(1))).toString('base64') } }),
      writeWheel(w, { name: 'beta', version, modules: { 'beta/__init__.py': `VERSION = "${version}"\n` } }),
    ]) {
      wheels[v][path.slice(path.lastIndexOf('/') + 1)] = sha(readFileSync(path));
    }
    writeTree(join(dir, 'html'), { 'index.html': '<h1>manual</h1>\n', 'page.html': page[v], 'big.bin': big[v] });
  }

  before(async () => {
    dir = await tmpDir('paquete-serve-sync-');
    work = join(dir, 'work');
    const repo = join(dir, 'repo');
    await run('git', ['init', '-q', '-b', 'main', repo], dir);
    commits.v1 = await commit(repo, 'one\n');
    writeVersion('v1');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'pypi:wh=wheels', 'docs:manual=html', 'git:proj=repo', '--to', 'remote', '--key', 'pub.key'], dir);
    nginx = await startNginx(join(dir, 'remote'));
    onCleanup(() => nginx.stop());
    await paquete(['init', nginx.url, work, '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', work], dir);
    serve = runPaquete(['serve', '--port', '0', '-C', work]);
    onCleanup(() => void serve.kill('SIGKILL'));
    await serve.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' });
    url = /at (http:\/\/\S+?)\/?\n/.exec(serve.stdout())![1];
    // The next release: both wheels replaced by new versions (the old ones leave the snapshot),
    // the docs' page and its 8 MB file changed in place, a new commit.
    commits.v2 = await commit(repo, 'two\n');
    writeVersion('v2');
    await paquete(['publish', 'pypi:wh=wheels', 'docs:manual=html', 'git:proj=repo', '--to', 'remote', '--key', 'pub.key'], dir);
  });

  /** What a fresh `pip download alpha` got: 'v1' or 'v2' when it is exactly one snapshot's wheels with their hashes. */
  async function pipRound(n: number): Promise<string> {
    const out = join(dir, `pip-${n}`);
    const r = await exec('python3', ['-m', 'pip', 'download', '-q', '-d', out, '--index-url', `${url}/simple/`, 'alpha'], { cwd: dir, env: pipEnv() });
    if (r.code !== 0) return `pip exited ${r.code}: ${r.stderr.trim().split('\n').pop()}`;
    const got = Object.fromEntries(readdirSync(out).map((f) => [f, sha(readFileSync(join(out, f)))]));
    rmSync(out, { recursive: true, force: true });
    for (const v of VERSIONS) if (JSON.stringify(got) === JSON.stringify(Object.fromEntries(Object.entries(wheels[v]).sort()))) return v;
    return `a mix: ${JSON.stringify(got)}`;
  }

  /** What a fresh `git clone` got: 'v1' or 'v2' when it passes fsck at that snapshot's commit. */
  async function gitRound(n: number): Promise<string> {
    const out = join(dir, `clone-${n}`);
    try {
      const c = await exec('git', ['clone', '-q', `${url}/git/proj.git`, out], { cwd: dir });
      if (c.code !== 0) return `git clone exited ${c.code}: ${c.stderr.trim()}`;
      const f = await exec('git', ['-C', out, 'fsck', '--full', '--strict'], { cwd: dir });
      if (f.code !== 0) return `git fsck exited ${f.code}: ${f.stderr.trim()}`;
      const head = (await exec('git', ['-C', out, 'rev-parse', 'HEAD'], { cwd: dir })).stdout.trim();
      return VERSIONS.find((v) => commits[v] === head) ?? `an unknown commit ${head}`;
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }

  test('pip and git read in a loop through the switch: one snapshot each, never an error; a file streamed while replaced arrives whole', async () => {
    let phase: Phase = 'before';
    let stop = false;
    const rounds: Record<'pip' | 'git', Round[]> = { pip: [], git: [] };
    const loop = async (kind: 'pip' | 'git') => {
      for (let n = 0; !stop; n++) {
        const started = phase;
        const got = await (kind === 'pip' ? pipRound(n) : gitRound(n));
        rounds[kind].push({ started, ended: phase, got });
      }
    };
    const loops = Promise.all([loop('pip'), loop('git')]);
    const within = (kind: 'pip' | 'git', p: Phase) => rounds[kind].filter((r) => r.started === p && r.ended === p).length;

    // A download of the 8 MB file begun before the sync, held still by the client mid-body.
    let streamed = 0;
    const parts: Buffer[] = [];
    let res!: import('node:http').IncomingMessage;
    await new Promise<void>((resolve, reject) => {
      request(`${url}/docs/manual/big.bin`, { agent: false }, (r) => {
        res = r;
        r.on('data', (b: Buffer) => {
          parts.push(b);
          streamed += b.length;
          if (streamed >= 64 << 10 && phase === 'before') {
            r.pause();
            resolve();
          }
        });
        r.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
    const ended = new Promise<void>((resolve) => res.on('end', resolve));

    const marker = join(dir, 'paused');
    const sync = runPaquete(['sync', '-C', work], { env: { PAQUETE_PAUSE_BEFORE_SWITCH: marker } });
    onCleanup(() => void sync.kill('SIGKILL'));
    await until('the sync to reach its switch', () => existsSync(marker));
    phase = 'paused';
    // By construction the new files are in the tree already: what serve answers is not the tree.
    assert.equal(readFileSync(join(work, 'manual', 'page.html'), 'utf8'), page.v2);
    assert.ok(!existsSync(join(work, 'wh', Object.keys(wheels.v1)[0])), 'the old wheels left the tree');
    const during = await getFresh(`${url}/docs/manual/page.html`);
    assert.equal(during.body.toString(), page.v1);
    // pip's own hash checking, every requirement pinned to the generation served.
    const reqs = join(dir, 'req-v1.txt');
    writeFileSync(reqs, Object.entries(wheels.v1).map(([f, h]) => `${f.split('-')[0]}==${f.split('-')[1]} --hash=sha256:${h}\n`).join(''));
    await run('python3', ['-m', 'pip', 'download', '-q', '--require-hashes', '--no-deps', '-d', join(dir, 'pinned-v1'), '--index-url', `${url}/simple/`, '-r', reqs], dir, pipEnv());
    // Read-only commands work beside both.
    const status = await paquete(['status', '-C', work], dir);
    assert.match(status.stdout + status.stderr, /manual|wh|proj/);
    await until('a whole pip and git round while the sync waits at its switch', () => within('pip', 'paused') >= 1 && within('git', 'paused') >= 1);

    phase = 'released';
    rmSync(marker);
    const s = await sync.done;
    assert.equal(s.code, 0, `sync exited ${s.code}: ${s.stderr}`);
    phase = 'synced';
    const startedAfter = (kind: 'pip' | 'git') => rounds[kind].filter((r) => r.started === 'synced').length;
    await until('a pip and git round after the sync', () => startedAfter('pip') >= 1 && startedAfter('git') >= 1);
    stop = true;
    await loops;

    for (const kind of ['pip', 'git'] as const) {
      for (const r of rounds[kind]) {
        assert.ok(r.got === 'v1' || r.got === 'v2', `${kind} round started ${r.started}: ${r.got}`);
        if (r.ended === 'before' || r.ended === 'paused') assert.equal(r.got, 'v1', `${kind} before the switch`);
        if (r.started === 'synced') assert.equal(r.got, 'v2', `${kind} after the sync`);
      }
    }
    // gc beside serve, while the held connection still answers from the old generation: what
    // that generation names stays (the replaced 8 MB file among what the sync kept).
    await paquete(['gc', '-C', work], dir);
    assert.ok(existsSync(join(work, '.paquete', 'keep', sha(big.v1))), 'the replaced file is kept while a connection reads it');
    // The held download, resumed after the file was replaced, the switch made and gc run: the old bytes, whole.
    res.resume();
    await ended;
    assert.equal(sha(Buffer.concat(parts)), sha(big.v1));
    assert.equal((await getFresh(`${url}/docs/manual/page.html`)).body.toString(), page.v2);
    assert.equal(sha((await getFresh(`${url}/docs/manual/big.bin`)).body), sha(big.v2));
  });

  test('status, a dry run and gc while serving; gc leaves nothing a reader needs and serve answers on', async () => {
    await paquete(['status', '-C', work], dir);
    await paquete(['sync', '--dry-run', '-C', work], dir);
    await paquete(['gc', '-C', work], dir);
    assert.equal(await pipRound(1000), 'v2');
    assert.equal(await gitRound(1000), 'v2');
    // Nothing is kept once no reader's generation names it; only generations in use stay.
    const meta = join(work, '.paquete');
    await paquete(['gc', '-C', work], dir);
    const current = readFileSync(join(meta, 'current'), 'utf8').trim();
    const reg = /^(\d+) #\d+:\d+ serve((?: \d+)+)\n$/.exec(readFileSync(join(meta, 'readers', String(serve.pid)), 'utf8'));
    assert.ok(reg, 'serve is registered as a reader');
    const used = new Set([current, ...reg[2].trim().split(' ')]);
    for (const g of readdirSync(join(meta, 'generations'))) assert.ok(used.has(g), `generation ${g} is in use`);
    assert.deepEqual(existsSync(join(meta, 'keep')) ? readdirSync(join(meta, 'keep')) : [], []);
  });

  test('verify --repair refuses while serve reads; a copy of the folder made while serving is not held by it', async () => {
    const r = await exec(process.execPath, [paqueteBin, 'verify', '--repair', '-C', work], { cwd: dir });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /serve \(pid \d+\) is reading this directory/);
    const copy = join(dir, 'copy');
    await run('cp', ['-a', work, copy], dir);
    await paquete(['status', '-C', copy], dir);
    await paquete(['verify', '--repair', '-C', copy], dir);
    await paquete(['sync', '-C', copy], dir);
  });

  test('a sync killed (kill -9) with the new snapshot placed but not switched leaves serve on the one before; the next sync switches', async () => {
    const repo = join(dir, 'repo');
    commits.v3 = await commit(repo, 'three\n');
    writeVersion('v3');
    await paquete(['publish', 'pypi:wh=wheels', 'docs:manual=html', 'git:proj=repo', '--to', 'remote', '--key', 'pub.key'], dir);
    const before = readFileSync(join(work, '.paquete', 'current'), 'utf8');
    const was = (await pipRound(1999)) as Version;
    assert.ok(was === 'v1' || was === 'v2', `served before: ${was}`);
    const marker = join(dir, 'paused-v3');
    const sync = runPaquete(['sync', '-C', work], { env: { PAQUETE_PAUSE_BEFORE_SWITCH: marker } });
    onCleanup(() => void sync.kill('SIGKILL'));
    await until('the sync to reach its switch', () => existsSync(marker));
    sync.kill('SIGKILL');
    await sync.done;
    rmSync(marker);
    // Everything of v3 is in the tree, and nothing of it is served.
    assert.equal(readFileSync(join(work, 'manual', 'page.html'), 'utf8'), page.v3);
    assert.equal(readFileSync(join(work, '.paquete', 'current'), 'utf8'), before, 'no switch');
    assert.equal(await pipRound(2000), was);
    assert.equal(await gitRound(2000), was);
    assert.equal((await getFresh(`${url}/docs/manual/page.html`)).body.toString(), page[was]);
    assert.equal(sha((await getFresh(`${url}/docs/manual/big.bin`)).body), sha(big[was]));
    // The next sync finds the tree placed, fetches nothing more and switches.
    await paquete(['sync', '-C', work], dir);
    assert.equal(await pipRound(2001), 'v3');
    assert.equal(await gitRound(2001), 'v3');
    assert.equal((await getFresh(`${url}/docs/manual/page.html`)).body.toString(), page.v3);
    // serve moved on (its first new connection after the switch) and lets go of the old one: the
    // next writer removes what only that one named.
    await paquete(['gc', '-C', work], dir);
    assert.deepEqual(existsSync(join(work, '.paquete', 'keep')) ? readdirSync(join(work, '.paquete', 'keep')) : [], []);
  });
});
