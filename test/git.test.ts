import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, exec, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom } from './helpers/trees.js';
import { startNginx, NginxServer } from './helpers/nginx.js';
import { decodeGitRefs, encodeGitRefs, GitRefs } from '../src/sources/git-refs.js';
import { gitRepoDir, gitServeDir, stageGitSource } from '../src/sources/git.js';
import { PaqueteError } from '../src/errors.js';

after(cleanupAll);

/** Real git with a fixed identity and no user or system configuration in the way. */
const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Paquete Test',
  GIT_AUTHOR_EMAIL: 'test@paquete.invalid',
  GIT_COMMITTER_NAME: 'Paquete Test',
  GIT_COMMITTER_EMAIL: 'test@paquete.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
};

async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await exec('git', args, { cwd, env: GIT_ENV });
  assert.equal(r.code, 0, `git ${args.join(' ')} in ${cwd} exited ${r.code}\n${r.stderr}`);
  return r.stdout;
}

const paquete = paqueteExpecting(GIT_ENV);

/** Branches and tags with what they point at, as `oid name` lines, sorted. */
async function refsOf(repo: string): Promise<string[]> {
  return (await git(repo, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags')).split('\n').filter(Boolean).sort();
}

/** What a remote advertises (heads and tags, peeled lines left out), as `oid name` lines, sorted. */
async function lsRemote(cwd: string, url: string): Promise<string[]> {
  return (await git(cwd, 'ls-remote', '--heads', '--tags', url))
    .split('\n')
    .filter((l) => l && !l.endsWith('^{}'))
    .map((l) => l.replace('\t', ' '))
    .sort();
}

async function commitFile(repo: string, file: string, content: string | Uint8Array, message: string): Promise<void> {
  mkdirSync(join(repo, file, '..'), { recursive: true });
  writeFileSync(join(repo, file), content);
  await git(repo, 'add', '-A');
  await git(repo, 'commit', '-q', '-m', message);
}

describe('git sources: publish → sync → clone over dumb HTTP → update → fetch', () => {
  let dir: string;
  let src: string;
  let work: string;
  let ng: NginxServer;
  let url: string;

  before(async () => {
    dir = await tmpDir('paquete-git-');
    src = join(dir, 'src');
    await git(dir, 'init', '-q', '-b', 'main', src);
    await commitFile(src, 'README', 'hello from the park\n', 'first');
    await commitFile(src, 'lib/code.js', 'export const x = 1;\n'.repeat(200), 'code');
    await commitFile(src, 'data/blob.bin', pseudoRandom(50_000, 3), 'binary');
    await git(src, 'tag', 'v1');
    await git(src, 'branch', 'feat', 'HEAD~1');
    await git(src, 'tag', '-a', 'v1.1', '-m', 'an annotated tag');
    // Refs a mirror must leave out: pull requests, remote-tracking branches, notes.
    await git(src, 'update-ref', 'refs/pull/1/head', 'HEAD~2');
    await git(src, 'update-ref', 'refs/remotes/origin/old', 'HEAD~2');
    await git(src, 'notes', 'add', '-m', 'a note', 'HEAD');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key'], dir);
    await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
    work = join(dir, 'work');
    await paquete(['sync'], work);
    // The layout `paquete serve` mounts: /git/NAME.git/ → WORK/.paquete/git/NAME.git/.
    ng = await startNginx(join(work, '.paquete'));
    onCleanup(() => ng.stop());
    url = `${ng.url}git/proj.git`;
  });

  test('the working tree holds one full bundle and the refs file', async () => {
    assert.deepEqual(readdirSync(join(work, 'proj')).sort(), ['bundles', 'refs']);
    assert.deepEqual(readdirSync(join(work, 'proj/bundles')), ['000001.bundle']);
    const refs = decodeGitRefs(readFileSync(join(work, 'proj/refs'), 'utf8'), 'refs');
    assert.equal(refs.head, 'refs/heads/main');
    assert.equal(refs.bundles.length, 1);
    assert.deepEqual(refs.refs.map((r) => `${r.oid} ${r.name}`).sort(), await refsOf(src));
    // git itself reads the bundle and finds every branch and tag there.
    const heads = (await git(dir, 'bundle', 'list-heads', join(work, 'proj/bundles/000001.bundle'))).split('\n').filter(Boolean).sort();
    assert.deepEqual(heads, await refsOf(src));
  });

  test('git clone over dumb HTTP gives the same refs and commits, and fsck passes', async () => {
    const served = await gitServeDir(work, 'proj');
    assert.equal(served, gitRepoDir(work, 'proj'));
    await git(dir, 'clone', '-q', url, 'c1');
    const c1 = join(dir, 'c1');
    assert.equal((await git(c1, 'rev-parse', 'HEAD')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    assert.equal((await git(c1, 'symbolic-ref', 'HEAD')).trim(), 'refs/heads/main');
    assert.deepEqual(await lsRemote(dir, url), await refsOf(src));
    const advertised = await git(dir, 'ls-remote', url);
    assert.doesNotMatch(advertised, /refs\/(pull|remotes|notes)\//, 'only branches and tags are mirrored');
    assert.deepEqual((await git(c1, 'tag', '-l')).split('\n').filter(Boolean), ['v1', 'v1.1']);
    assert.equal((await git(c1, 'cat-file', '-t', 'v1.1')).trim(), 'tag', 'annotated tags stay annotated');
    assert.equal(readFileSync(join(c1, 'data/blob.bin')).compare(pseudoRandom(50_000, 3)), 0);
    await git(c1, 'fsck', '--full', '--strict');
    await git(served, 'fsck', '--full', '--strict');
  });

  test('paquete git-export writes a bare repository that git clone reads', async () => {
    const r = await paquete(['git-export', 'proj', '../exported', '--json'], work);
    const report = JSON.parse(r.stdout);
    assert.equal(report.branches, 2);
    assert.equal(report.tags, 2);
    assert.equal(report.head, 'refs/heads/main');
    assert.deepEqual(await refsOf(join(dir, 'exported')), await refsOf(src));
    await git(dir, 'clone', '-q', 'exported', 'c2');
    assert.equal((await git(join(dir, 'c2'), 'rev-parse', 'HEAD')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    await git(join(dir, 'c2'), 'fsck', '--full', '--strict');
  });

  test('asking again with nothing new changes nothing, and parallel asks share one build', async () => {
    const infoRefs = join(gitRepoDir(work, 'proj'), 'info/refs');
    const before = readFileSync(infoRefs, 'utf8');
    const dirs = await Promise.all([gitServeDir(work, 'proj'), gitServeDir(work, 'proj'), gitServeDir(work, 'proj')]);
    assert.deepEqual(new Set(dirs), new Set([gitRepoDir(work, 'proj')]));
    assert.equal(readFileSync(infoRefs, 'utf8'), before);
  });

  test('an update (new commits, a new tag, a deleted and a new branch) syncs only its bundle and arrives by git fetch', async () => {
    await commitFile(src, 'lib/code.js', 'export const x = 2;\n'.repeat(200), 'change');
    await commitFile(src, 'NEWS', 'version 2\n', 'news');
    await git(src, 'tag', '-a', 'v2', '-m', 'version 2');
    await git(src, 'branch', '-D', 'feat');
    await git(src, 'branch', 'topic', 'HEAD~1');
    const pub = JSON.parse((await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key', '--json'], dir)).stdout);
    assert.ok(pub.newStoredBytes < 5_000, `the update wrote ${pub.newStoredBytes} bytes`);
    const s = JSON.parse((await paquete(['sync', '--json'], work)).stdout);
    assert.deepEqual([...s.placed].sort(), ['proj/bundles/000002.bundle', 'proj/refs']);
    const refs = decodeGitRefs(readFileSync(join(work, 'proj/refs'), 'utf8'), 'refs');
    assert.deepEqual(refs.bundles.map((b) => b.file), ['000001.bundle', '000002.bundle']);
    // The new bundle is a thin pack against the previous tips: git lists them as prerequisites.
    const verify = await exec('git', ['bundle', 'verify', join(work, 'proj/bundles/000002.bundle')], { cwd: gitRepoDir(work, 'proj'), env: GIT_ENV });
    assert.match(verify.stdout + verify.stderr, /requires/);

    await gitServeDir(work, 'proj');
    const c1 = join(dir, 'c1');
    await git(c1, 'fetch', '-q', '--prune', '--tags', 'origin');
    assert.equal((await git(c1, 'rev-parse', 'origin/main')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    assert.equal((await git(c1, 'rev-parse', 'v2^{commit}')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    const remoteBranches = (await git(c1, 'branch', '-r')).split('\n').map((l) => l.trim()).filter(Boolean).sort();
    assert.deepEqual(remoteBranches, ['origin/HEAD -> origin/main', 'origin/main', 'origin/topic']);
    assert.deepEqual(await lsRemote(dir, url), await refsOf(src));
    await git(c1, 'fsck', '--full', '--strict');
    await git(gitRepoDir(work, 'proj'), 'fsck', '--full', '--strict');

    // An exported folder follows too: the deleted branch goes, the new tag comes.
    await paquete(['git-export', 'proj', '../exported'], work);
    assert.deepEqual(await refsOf(join(dir, 'exported')), await refsOf(src));
  });

  test('publishing an unchanged repository adds no bundle, and the sync has nothing to place', async () => {
    const pub = JSON.parse((await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key', '--json'], dir)).stdout);
    assert.equal(pub.newChunks, 0);
    const s = JSON.parse((await paquete(['sync', '--json'], work)).stdout);
    assert.deepEqual(s.placed, []);
  });

  test('a branch moved back (no new objects) changes only the refs file, and fetch follows the forced update', async () => {
    await git(src, 'reset', '-q', '--hard', 'HEAD~1');
    await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key'], dir);
    const s = JSON.parse((await paquete(['sync', '--json'], work)).stdout);
    assert.deepEqual(s.placed, ['proj/refs']);
    await gitServeDir(work, 'proj');
    const c1 = join(dir, 'c1');
    await git(c1, 'fetch', '-q', '--prune', 'origin');
    assert.equal((await git(c1, 'rev-parse', 'origin/main')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    assert.deepEqual(await lsRemote(dir, url), await refsOf(src));
  });

  test('a fresh clone after several updates equals the source', async () => {
    await git(dir, 'clone', '-q', url, 'c3');
    assert.deepEqual(await refsOf(join(dir, 'c3')).then((r) => r.filter((l) => l.includes('refs/tags/'))), (await refsOf(src)).filter((l) => l.includes('refs/tags/')));
    assert.equal((await git(join(dir, 'c3'), 'rev-parse', 'HEAD')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    await git(join(dir, 'c3'), 'fsck', '--full', '--strict');
  });
});

describe('git sources through paquete serve', () => {
  test('git clone http://…/git/NAME.git, then an update synced while serve is stopped arrives by git fetch', async () => {
    const dir = await tmpDir('paquete-git-serve-');
    const src = join(dir, 'src');
    await git(dir, 'init', '-q', '-b', 'main', src);
    await commitFile(src, 'a.txt', 'one\n', 'one');
    await git(src, 'branch', 'old');
    await git(src, 'tag', '-a', 'v1', '-m', 'v1');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key'], dir);
    await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
    const work = join(dir, 'work');
    await paquete(['sync'], work);

    // The second serve takes the first one's port, so the clone's origin URL stays right.
    let port = 0;
    const serve = async () => {
      const p = runPaquete(['serve', '--port', String(port), '--json'], { cwd: work, env: GIT_ENV });
      onCleanup(async () => {
        p.kill('SIGKILL');
        await p.done;
      });
      await p.waitForOutput(/"url"/, { stream: 'stdout' });
      const { url, port: used } = JSON.parse(p.stdout()) as { url: string; port: number };
      port = used;
      return {
        url: `${url}git/proj.git`,
        stop: async () => {
          p.kill('SIGTERM');
          await p.done;
        },
      };
    };
    let s = await serve();
    await git(dir, 'clone', '-q', s.url, 'c1');
    const c1 = join(dir, 'c1');
    assert.deepEqual(await lsRemote(dir, s.url), await refsOf(src));
    assert.equal((await git(c1, 'rev-parse', 'HEAD')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    await s.stop();

    await commitFile(src, 'b.txt', 'two\n', 'two');
    await git(src, 'tag', '-a', 'v2', '-m', 'v2');
    await git(src, 'branch', '-D', 'old');
    await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key'], dir);
    await paquete(['sync'], work);
    s = await serve();
    await git(c1, 'fetch', '-q', '--prune', '--tags', 'origin');
    assert.equal((await git(c1, 'rev-parse', 'origin/main')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    assert.equal((await git(c1, 'rev-parse', 'v2^{commit}')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    assert.equal((await git(c1, 'branch', '-r', '--list', 'origin/old')).trim(), '', 'the deleted branch is gone');
    assert.deepEqual(await lsRemote(dir, s.url), await refsOf(src));
    await git(c1, 'fsck', '--full', '--strict');
    await s.stop();
  });
});

describe('git sources: a chain that outgrows a full bundle starts afresh', () => {
  test('after force pushes the chain is replaced by one full bundle; the client rebuilds and clones still fetch', async () => {
    const dir = await tmpDir('paquete-git-chain-');
    const src = join(dir, 'src');
    await git(dir, 'init', '-q', '-b', 'main', src);
    await commitFile(src, 'big.bin', pseudoRandom(200_000, 1), 'history 1');
    await git(src, 'tag', 'first');
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key'], dir);
    await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
    const work = join(dir, 'work');
    await paquete(['sync'], work);
    await paquete(['git-export', 'proj', '../exported'], work);
    await git(dir, 'clone', '-q', 'exported', 'c1');

    // Two rewrites of history, each with 200 KB of new incompressible data.
    for (const seed of [2, 3]) {
      await git(src, 'checkout', '-q', '--orphan', `tmp${seed}`);
      await git(src, 'rm', '-q', '-rf', '.');
      await commitFile(src, 'big.bin', pseudoRandom(200_000, seed), `history ${seed}`);
      await git(src, 'branch', '-q', '-M', 'main');
      await git(src, 'tag', '-d', seed === 2 ? 'first' : 'second');
      await git(src, 'tag', seed === 2 ? 'second' : 'third');
      await paquete(['publish', 'git:proj=src', '--to', 'remote', '--key', 'pub.key'], dir);
      const s = JSON.parse((await paquete(['sync', '--json'], work)).stdout);
      const refs = decodeGitRefs(readFileSync(join(work, 'proj/refs'), 'utf8'), 'refs');
      if (seed === 2) {
        // 400 KB of chain against a 200 KB full bundle: not yet past 2x.
        assert.deepEqual(refs.bundles.map((b) => b.file), ['000001.bundle', '000002.bundle']);
      } else {
        assert.deepEqual(refs.bundles.map((b) => b.file), ['000003.bundle']);
        assert.ok(refs.fullSize < 250_000);
        assert.deepEqual(s.removed.sort(), ['proj/bundles/000001.bundle', 'proj/bundles/000002.bundle']);
        assert.deepEqual(readdirSync(join(work, 'proj/bundles')), ['000003.bundle']);
        const heads = await git(dir, 'bundle', 'list-heads', join(work, 'proj/bundles/000003.bundle'));
        assert.match(heads, /refs\/heads\/main/);
      }
      await paquete(['git-export', 'proj', '../exported'], work);
      assert.deepEqual(await refsOf(join(dir, 'exported')), await refsOf(src));
      await git(join(dir, 'c1'), 'fetch', '-q', '--prune', '--prune-tags', '--tags', 'origin');
      assert.equal((await git(join(dir, 'c1'), 'rev-parse', 'origin/main')).trim(), (await git(src, 'rev-parse', 'main')).trim());
    }
    const served = gitRepoDir(work, 'proj');
    assert.deepEqual(await refsOf(served), await refsOf(src));
    await git(served, 'fsck', '--full', '--strict');
    assert.deepEqual(readdirSync(join(work, '.paquete/git')).sort(), ['proj.git', 'proj.json'], 'no leftovers of the rebuild');
  });
});

describe('git sources: the client side on its own', () => {
  let dir: string;
  let src: string;
  before(async () => {
    dir = await tmpDir('paquete-git-client-');
    src = join(dir, 'src');
    await git(dir, 'init', '-q', '-b', 'main', src);
    await commitFile(src, 'a.txt', 'a\n', 'a');
    await git(src, 'tag', 'v1');
  });

  /** Stages the source straight into WORK/proj as if synced. */
  async function stageInto(work: string, previous?: string) {
    const tmp = join(dir, `stage-${Math.random().toString(16).slice(2)}`);
    const stage = await stageGitSource({
      name: 'proj',
      repo: src,
      dir: tmp,
      previousRefs: previous ? readFileSync(join(previous, 'refs')) : undefined,
      previousBundles: previous ? bundlesIn(previous) : undefined,
    });
    mkdirSync(join(work, 'proj/bundles'), { recursive: true });
    mkdirSync(join(work, '.paquete'), { recursive: true });
    for (const f of readdirSync(join(tmp, 'bundles'))) writeFileSync(join(work, 'proj/bundles', f), readFileSync(join(tmp, 'bundles', f)));
    writeFileSync(join(work, 'proj/refs'), readFileSync(join(tmp, 'refs')));
    rmSync(tmp, { recursive: true });
    return stage;
  }

  function bundlesIn(d: string) {
    const refs = decodeGitRefs(readFileSync(join(d, 'refs'), 'utf8'), 'refs');
    return new Map(refs.bundles.map((b) => [b.file, { size: b.size, sha256: b.sha256 }]));
  }

  test('while a bundle is still missing, the last complete repository is served with a warning; with none, an error', async () => {
    const work = join(dir, 'w1');
    await stageInto(work);
    await gitServeDir(work, 'proj');
    await commitFile(src, 'b.txt', 'b\n', 'b');
    const stage = await stageInto(work, join(work, 'proj'));
    assert.equal(stage.newBundle?.file, '000002.bundle');
    const second = join(work, 'proj/bundles/000002.bundle');
    const saved = readFileSync(second);
    rmSync(second);
    const warnings: string[] = [];
    const served = await gitServeDir(work, 'proj', { onWarning: (m) => warnings.push(m) });
    assert.match(warnings.join('\n'), /not complete yet.*000002\.bundle/);
    assert.equal((await git(served, 'rev-parse', 'main')).trim(), (await git(src, 'rev-parse', 'main~1')).trim());

    writeFileSync(second, saved);
    await gitServeDir(work, 'proj');
    assert.equal((await git(served, 'rev-parse', 'main')).trim(), (await git(src, 'rev-parse', 'main')).trim());

    const fresh = join(dir, 'w2');
    mkdirSync(join(fresh, 'proj/bundles'), { recursive: true });
    writeFileSync(join(fresh, 'proj/refs'), readFileSync(join(work, 'proj/refs')));
    await assert.rejects(gitServeDir(fresh, 'proj'), (e: unknown) => e instanceof PaqueteError && /not complete yet/.test(e.message));
    await assert.rejects(gitServeDir(fresh, 'nothing'), (e: unknown) => e instanceof PaqueteError && /no git repository "nothing"/.test(e.message));
    await assert.rejects(gitServeDir(fresh, '..'), PaqueteError);
  });

  test('a bundle changed by hand is refused, not applied', async () => {
    const work = join(dir, 'w3');
    await stageInto(work);
    const b = join(work, 'proj/bundles/000001.bundle');
    const bytes = readFileSync(b);
    bytes[bytes.length - 30] ^= 0xff;
    writeFileSync(b, bytes);
    await assert.rejects(gitServeDir(work, 'proj'), (e: unknown) => e instanceof PaqueteError && /does not match the refs file/.test(e.message));
    assert.equal(existsSync(gitRepoDir(work, 'proj')), false);
  });

  test('staging is deterministic: the same repository and previous refs give the same bytes', async () => {
    const a = join(dir, 'det-a');
    const b = join(dir, 'det-b');
    const sa = await stageGitSource({ name: 'p', repo: src, dir: a });
    const sb = await stageGitSource({ name: 'p', repo: src, dir: b });
    assert.deepEqual(sa.refs, sb.refs);
    assert.deepEqual(readFileSync(join(a, 'refs')), readFileSync(join(b, 'refs')));
    assert.deepEqual(readFileSync(join(a, 'bundles/000001.bundle')), readFileSync(join(b, 'bundles/000001.bundle')));
    await commitFile(src, 'c.txt', 'c\n'.repeat(1000), 'c');
    const ia = await stageGitSource({ name: 'p', repo: src, dir: join(dir, 'det-c'), previousRefs: readFileSync(join(a, 'refs')), previousBundles: bundlesIn(a) });
    const ib = await stageGitSource({ name: 'p', repo: src, dir: join(dir, 'det-d'), previousRefs: readFileSync(join(a, 'refs')), previousBundles: bundlesIn(a) });
    assert.equal(ia.newBundle?.full, false);
    assert.deepEqual(ia.keep, ['bundles/000001.bundle']);
    assert.deepEqual(readFileSync(join(dir, 'det-c/bundles/000002.bundle')), readFileSync(join(dir, 'det-d/bundles/000002.bundle')));
    assert.deepEqual(ib.refs, ia.refs);
    // A previous chain whose bundles the snapshot no longer holds is not continued: a fresh full bundle.
    const lost = await stageGitSource({ name: 'p', repo: src, dir: join(dir, 'det-e'), previousRefs: readFileSync(join(a, 'refs')), previousBundles: new Map() });
    assert.equal(lost.newBundle?.full, true);
    assert.deepEqual(lost.keep, []);
  });

  test('publish refuses what is not a repository, a folder inside one, and a repository with nothing to publish', async () => {
    await paquete(['keygen', '--out', 'k'], dir);
    mkdirSync(join(dir, 'plain'));
    let r = await paquete(['publish', 'git:x=plain', '--to', 'r1', '--key', 'k'], dir, 2);
    assert.match(r.stderr, /not a git repository/);
    mkdirSync(join(src, 'sub'), { recursive: true });
    r = await paquete(['publish', 'git:x=src/sub', '--to', 'r2', '--key', 'k'], dir, 2);
    assert.match(r.stderr, /inside the git repository/);
    await git(dir, 'init', '-q', 'empty');
    r = await paquete(['publish', 'git:x=empty', '--to', 'r3', '--key', 'k'], dir, 2);
    assert.match(r.stderr, /no branches or tags/);
    assert.equal(existsSync(join(dir, 'r3/manifest.json')), false);
    await git(dir, 'clone', '-q', '--depth', '1', `file://${src}`, 'shallow');
    r = await paquete(['publish', 'git:x=shallow', '--to', 'r5', '--key', 'k'], dir, 2);
    assert.match(r.stderr, /shallow clone/);
    // A bare repository is a source too.
    await git(dir, 'clone', '-q', '--bare', 'src', 'bare.git');
    await paquete(['publish', 'git:x=bare.git', '--to', 'r4', '--key', 'k'], dir);
    assert.deepEqual(readdirSync(join(dir, 'r4')).sort(), ['frames', 'layers', 'manifest.json', 'packs', 'roots', 'shards', 'snapshots', 'updates'], 'no staging left in the remote');
  });
});

describe('git refs file format', () => {
  const sample: GitRefs = {
    objectFormat: 'sha1',
    head: 'refs/heads/main',
    fullSize: 1234,
    bundles: [
      { file: '000001.bundle', size: 1234, sha256: 'a'.repeat(64) },
      { file: '000002.bundle', size: 56, sha256: 'b'.repeat(64) },
    ],
    refs: [
      { name: 'refs/tags/v1.0', oid: '1'.repeat(40) },
      { name: 'refs/heads/main', oid: '2'.repeat(40) },
      { name: 'refs/heads/ñandú/feature', oid: '3'.repeat(40) },
    ],
  };

  test('round-trips, sorting refs by name bytes', () => {
    const text = encodeGitRefs(sample);
    assert.equal(
      text,
      'paquete-git 1\nobject-format sha1\nhead refs/heads/main\nfull-size 1234\n' +
        `bundle 000001.bundle 1234 ${'a'.repeat(64)}\nbundle 000002.bundle 56 ${'b'.repeat(64)}\n` +
        `${'2'.repeat(40)} refs/heads/main\n${'3'.repeat(40)} refs/heads/ñandú/feature\n${'1'.repeat(40)} refs/tags/v1.0\n`,
    );
    const back = decodeGitRefs(text, 't');
    assert.deepEqual(back, { ...sample, refs: [sample.refs[1], sample.refs[2], sample.refs[0]] });
    assert.equal(encodeGitRefs(back), text);
    const { head: _head, ...noHead } = sample;
    assert.deepEqual(decodeGitRefs(encodeGitRefs(noHead), 't'), { ...noHead, refs: back.refs });
  });

  test('refuses damaged or foreign input with a clear message', () => {
    const good = encodeGitRefs(sample);
    const bad = (text: string, re: RegExp) => assert.throws(() => decodeGitRefs(text, 't'), (e: unknown) => e instanceof PaqueteError && re.test(e.message));
    bad(good.slice(0, -1), /truncated/);
    bad(good.replace('paquete-git 1', 'paquete-git 2'), /upgrade paquete/);
    bad('hello\n', /not a paquete git refs file/);
    bad(good.replace(`${'2'.repeat(40)} refs/heads/main`, `${'2'.repeat(40)} refs/pull/1/head`), /not a branch or tag/);
    bad(good.replace(`${'2'.repeat(40)} refs/heads/main`, `${'2'.repeat(40)} refs/heads/a..b`), /not a branch or tag/);
    bad(good.replace(`${'2'.repeat(40)} refs/heads/main`, `${'2'.repeat(39)} refs/heads/main`), /not a sha1 id/);
    bad(good.replace('000002.bundle', '../x.bundle'), /cannot name a bundle/);
    bad(good.replace('000002.bundle', '000001.bundle'), /listed twice/);
    bad(good + `${'2'.repeat(40)} refs/heads/main\n`, /listed twice/);
    bad(good.replace('full-size 1234\n', ''), /full-size/);
    bad(good.replace('head refs/heads/main', 'head refs/tags/v1.0'), /not a branch/);
  });
});
