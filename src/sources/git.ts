import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PaqueteError, ErrorCode } from '../errors.js';
import { hashFile, writeFileAtomic } from '../util/fsx.js';
import { waitForLock } from '../workdir/lock.js';
import { META_DIR } from '../workdir/workdir.js';
import { isSafeSourceName } from '../snapshot/paths.js';
import { decodeGitRefs, encodeGitRefs, GitBundleEntry, GitRef, GitRefs, isMirroredRefName, ObjectFormat } from './git-refs.js';

/**
 * Git repositories as a source. A repository is published as a chain of git bundles, never as
 * chunked packfiles: two repacks of the same objects differ byte for byte, while
 * `git bundle create f ^old new` is 3-5x smaller than the chunks a repack changes. Layout:
 *
 *   NAME/refs                   which bundles, in order, and exactly which refs (git-refs.ts)
 *   NAME/bundles/000001.bundle  a full bundle of every branch and tag
 *   NAME/bundles/000002.bundle  the next snapshot's changes: a thin pack against 000001's tips
 *   …
 *
 * Earlier bundles stay in later snapshots, so a fresh client gets the whole chain while a client
 * that has the old bundles fetches only the new one. The client applies the chain to a bare
 * repository under WORK/.paquete/git/NAME.git that git's dumb HTTP protocol can serve as static
 * files. docs/FORMATS.md §Git repositories has the byte layout, docs/GUIDE.md the usage.
 */

/**
 * Bundles are cut into fixed pieces of this size, not content-defined chunks: a bundle shares no
 * run of bytes with any other file, so small chunks would only add index bytes to every sync
 * (~12 B per chunk). 256 KiB keeps a 500 MB repository's chain at ~2,000 index entries while a
 * dropped connection loses at most one piece.
 */
export const GIT_BUNDLE_CHUNK = 256 << 10;

/**
 * A new full bundle replaces the chain when the chain would grow past this many times the size
 * of a full bundle. Trade-off: a fresh client downloads the whole chain (so at most 2x a full
 * bundle), while every client that follows updates downloads the new full bundle once when the
 * chain is consolidated — after the updates added up to about one full bundle, so in the long run
 * consolidation at most doubles what followers pay, and each update is still only its own bundle.
 */
export const CONSOLIDATE_FACTOR = 2;

export const GIT_REFS_FILE = 'refs';
export const GIT_BUNDLE_DIR = 'bundles';

// ---------------------------------------------------------------------------------------------
// Running git

interface GitRun {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs git with a fixed locale (we read some of its messages) and no prompts. */
function runGit(args: string[], opts: { cwd?: string; input?: string } = {}): Promise<GitRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANGUAGE: 'C', GIT_TERMINAL_PROMPT: '0' };
  // A git hook or alias that runs paquete must not point our git at its own repository.
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_NAMESPACE']) delete env[k];
  return new Promise((resolvePromise, reject) => {
    const child = spawn('git', args, { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (err += s));
    child.stdin.on('error', () => {
      /* git may exit before reading its input; its exit code tells */
    });
    child.stdin.end(opts.input ?? '');
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new PaqueteError('USAGE', 'git is not installed (paquete runs the git command for git sources)', 'install git, e.g. apt-get install git'));
      else reject(e);
    });
    child.on('close', (code) => resolvePromise({ code: code ?? 128, stdout: Buffer.concat(out), stderr: err }));
  });
}

/** Runs git and returns its stdout; a failure becomes a PaqueteError with git's own last words. */
async function git(args: string[], opts: { cwd?: string; input?: string; code?: ErrorCode; what?: string } = {}): Promise<string> {
  const r = await runGit(args, opts);
  if (r.code !== 0) throw gitError(args, r, opts.code ?? 'IO', opts.what);
  return r.stdout.toString('utf8');
}

function gitError(args: string[], r: GitRun, code: ErrorCode, what?: string): PaqueteError {
  const said = r.stderr.trim().split('\n').filter(Boolean).slice(-2).join('; ') || `exit code ${r.code}`;
  return new PaqueteError(code, `${what ?? `git ${args.find((a) => !a.startsWith('-')) ?? ''}`} failed: ${said}`);
}

const lines = (s: string) => s.split('\n').filter((l) => l.length > 0);

/** `oid refname` lines, as for-each-ref and bundle list-heads print them. */
function parseRefLines(text: string): GitRef[] {
  return lines(text).map((l) => {
    const sp = l.indexOf(' ');
    return { oid: l.slice(0, sp), name: l.slice(sp + 1) };
  });
}


// ---------------------------------------------------------------------------------------------
// Publisher: staging a repository as files

export interface GitStageOptions {
  /** The source name: the files are published under NAME/. */
  name: string;
  /** The repository: the top of a work tree, or a bare repository. */
  repo: string;
  /** An empty directory to write the new files into (the publisher lists it as NAME/, then removes it). */
  dir: string;
  /** The refs file this source had in the previous snapshot, if it was a git source there. */
  previousRefs?: Uint8Array;
  /**
   * The bundle files the previous snapshot holds under NAME/bundles/ (file name → size and
   * SHA-256 hex). A chain is only continued when every bundle it names is there unchanged.
   */
  previousBundles?: Map<string, { size: number; sha256: string }>;
}

export interface GitStage {
  /** Paths under NAME/ of the previous snapshot to publish again unchanged (earlier bundles). */
  keep: string[];
  /** The refs file written to dir/refs. */
  refs: GitRefs;
  /** The bundle this publish adds, if any (none when no ref gained new objects). */
  newBundle?: GitBundleEntry & { full: boolean };
  /** True when a fresh full bundle replaced the previous chain. */
  consolidated: boolean;
  /** Refs left out because git would not accept their names in another repository. */
  skippedRefs: string[];
}

/**
 * Stages a repository for publishing: writes dir/refs and, when there is something new,
 * dir/bundles/NNNNNN.bundle — a full bundle of heads and tags for the first snapshot, else an
 * incremental one against every ref tip of the previous snapshot. Remote-tracking refs, pull
 * refs, notes and stashes are not published. Deterministic: the same repository and previous
 * refs give the same bytes (pack-objects runs on one thread, whose output is stable); with
 * nothing changed, no bundle is made and the refs file comes out identical.
 */
export async function stageGitSource(o: GitStageOptions): Promise<GitStage> {
  const repo = await checkRepository(o.repo);
  // A shallow clone lacks the parents of its oldest commits: its bundles would give clients a
  // repository git cannot clone from.
  if ((await git(['-C', repo, 'rev-parse', '--is-shallow-repository'], { code: 'BAD_SOURCE' })).trim() === 'true') {
    throw new PaqueteError('BAD_SOURCE', `the git repository ${o.repo} is a shallow clone: its history is incomplete`, `run git -C ${o.repo} fetch --unshallow first`);
  }
  const objectFormat = await repositoryObjectFormat(repo);
  const listed = parseRefLines(await git(['-C', repo, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags'], { code: 'BAD_SOURCE' }));
  const skippedRefs = listed.filter((r) => !isMirroredRefName(r.name)).map((r) => r.name);
  const current = listed.filter((r) => isMirroredRefName(r.name));
  if (current.length === 0) {
    throw new PaqueteError('BAD_SOURCE', `the git repository ${o.repo} has no branches or tags to publish`, 'commit something first');
  }
  const head = await defaultBranch(repo, current);

  let previous: GitRefs | undefined;
  if (o.previousRefs) {
    try {
      previous = decodeGitRefs(Buffer.from(o.previousRefs).toString('utf8'), `the previous refs file of ${o.name}`);
    } catch {
      previous = undefined; // unreadable: start a fresh chain, which is always correct
    }
  }
  // Continue the chain only if it is all there, unchanged, in the previous snapshot.
  if (previous && (previous.objectFormat !== objectFormat || previous.bundles.length === 0 || !previous.bundles.every((b) => {
    const p = o.previousBundles?.get(b.file);
    return p !== undefined && p.size === b.size && p.sha256 === b.sha256;
  }))) {
    previous = undefined;
  }

  mkdirSync(join(o.dir, GIT_BUNDLE_DIR), { recursive: true });
  const write = (refs: GitRefs, keep: GitBundleEntry[], extra: Omit<GitStage, 'refs' | 'keep' | 'skippedRefs'>): GitStage => {
    writeFileAtomic(join(o.dir, GIT_REFS_FILE), encodeGitRefs(refs));
    return { refs, keep: keep.map((b) => `${GIT_BUNDLE_DIR}/${b.file}`), skippedRefs, ...extra };
  };

  const sameRefs = (a: GitRef[], b: GitRef[]) => a.length === b.length && a.every((r, i) => r.name === b[i].name && r.oid === b[i].oid);
  const sorted = (refs: GitRef[]) => [...refs].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  if (previous && previous.head === head && sameRefs(sorted(previous.refs), sorted(current))) {
    return write(previous, previous.bundles, { consolidated: false });
  }

  const nextFile = bundleFileName(previous ? Math.max(...previous.bundles.map((b) => bundleNumber(b.file))) + 1 : 1);
  const refNames = current.map((r) => r.name);
  const finalRefs = (heads: GitRef[]): GitRef[] => {
    // The bundle says where the refs it carries really point (a ref may have moved since we
    // listed it); refs it left out point at objects the previous tips already reach.
    const byName = new Map(current.map((r) => [r.name, r.oid]));
    for (const h of heads) if (byName.has(h.name)) byName.set(h.name, h.oid);
    return sorted([...byName].map(([name, oid]) => ({ name, oid })));
  };

  if (!previous) {
    const full = await createBundle(repo, join(o.dir, GIT_BUNDLE_DIR, nextFile), [], refNames);
    if (full === 'empty') throw new PaqueteError('BAD_SOURCE', `git made no bundle of ${o.repo}`);
    const entry = { file: nextFile, size: full.size, sha256: full.sha256 };
    return write({ objectFormat, head, fullSize: full.size, bundles: [entry], refs: finalRefs(full.heads) }, [], { newBundle: { ...entry, full: true }, consolidated: false });
  }

  // Every tip the previous snapshot had is on every up-to-date client; the ones this repository
  // still has can be left out of the new bundle (git refuses to exclude an object it lacks).
  const tips = [...new Set(previous.refs.map((r) => r.oid))];
  const check = await git(['-C', repo, 'cat-file', '--batch-check=%(objectname) %(objecttype)'], { input: tips.map((t) => `${t}\n`).join(''), code: 'BAD_SOURCE' });
  const present = new Set(lines(check).filter((l) => !l.endsWith(' missing')).map((l) => l.split(' ')[0]));
  const exclude = tips.filter((t) => present.has(t)).map((t) => `^${t}`);
  const incrementalPath = join(o.dir, GIT_BUNDLE_DIR, nextFile);
  const incremental = await createBundle(repo, incrementalPath, exclude, refNames);
  let chain = previous.bundles;
  let fullSize = previous.fullSize;
  let heads: GitRef[] = [];
  let newBundle: GitStage['newBundle'];
  if (incremental !== 'empty') {
    const entry = { file: nextFile, size: incremental.size, sha256: incremental.sha256 };
    chain = [...chain, entry];
    heads = incremental.heads;
    newBundle = { ...entry, full: false };
  }
  const chainSize = chain.reduce((n, b) => n + b.size, 0);
  if (incremental !== 'empty' && chainSize > CONSOLIDATE_FACTOR * fullSize) {
    // The last measure of a full bundle may be old (the repository grew): measure again before
    // making every follower download a new full bundle.
    const fullPath = join(o.dir, GIT_BUNDLE_DIR, `.full-${nextFile}`);
    const full = await createBundle(repo, fullPath, [], refNames);
    if (full === 'empty') throw new PaqueteError('BAD_SOURCE', `git made no bundle of ${o.repo}`);
    fullSize = full.size;
    if (chainSize > CONSOLIDATE_FACTOR * full.size) {
      unlinkSync(incrementalPath);
      renameSync(fullPath, incrementalPath);
      const entry = { file: nextFile, size: full.size, sha256: full.sha256 };
      return write({ objectFormat, head, fullSize, bundles: [entry], refs: finalRefs(full.heads) }, [], { newBundle: { ...entry, full: true }, consolidated: true });
    }
    unlinkSync(fullPath);
  }
  return write({ objectFormat, head, fullSize, bundles: chain, refs: finalRefs(heads) }, previous.bundles, { newBundle, consolidated: false });
}

const bundleFileName = (n: number) => `${String(n).padStart(6, '0')}.bundle`;
function bundleNumber(file: string): number {
  const m = /^(\d+)\.bundle$/.exec(file);
  return m ? Number(m[1]) : 0;
}

/** The repository's own directory: the top of a work tree or a bare repository, nothing inside one. */
async function checkRepository(path: string): Promise<string> {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    throw new PaqueteError('BAD_SOURCE', `source ${path} does not exist`);
  }
  if (!statSync(real).isDirectory()) throw new PaqueteError('BAD_SOURCE', `source ${path} is not a directory`);
  const g = await runGit(['-C', real, 'rev-parse', '--absolute-git-dir']);
  if (g.code !== 0) throw new PaqueteError('BAD_SOURCE', `${path} is not a git repository`, 'give the top directory of a clone, or a bare repository');
  const gitDir = realpathSync(g.stdout.toString('utf8').trim());
  if (gitDir === real) return real;
  const t = await runGit(['-C', real, 'rev-parse', '--show-toplevel']);
  const top = t.code === 0 ? realpathSync(t.stdout.toString('utf8').trim()) : undefined;
  if (top !== real) {
    throw new PaqueteError('BAD_SOURCE', `${path} is inside the git repository ${top ?? gitDir}, not its top`, 'name the top directory of the repository');
  }
  return real;
}

async function repositoryObjectFormat(repo: string): Promise<ObjectFormat> {
  const r = await runGit(['-C', repo, 'rev-parse', '--show-object-format']);
  const f = r.stdout.toString('utf8').trim();
  return f === 'sha256' ? 'sha256' : 'sha1';
}

/** HEAD's branch when it is published; else main, master, or the first branch. */
async function defaultBranch(repo: string, refs: GitRef[]): Promise<string | undefined> {
  const heads = refs.filter((r) => r.name.startsWith('refs/heads/')).map((r) => r.name);
  const r = await runGit(['-C', repo, 'symbolic-ref', '-q', 'HEAD']);
  const target = r.stdout.toString('utf8').trim();
  if (r.code === 0 && heads.includes(target)) return target;
  return ['refs/heads/main', 'refs/heads/master'].find((h) => heads.includes(h)) ?? heads[0];
}

/**
 * `git bundle create OUT <revs>` with the revisions on stdin (a repository can have more tags than
 * a command line holds). 'empty' when git finds nothing to put in it (every ref already reached
 * from the excluded tips).
 */
async function createBundle(repo: string, out: string, exclude: string[], refNames: string[]): Promise<'empty' | { size: number; sha256: string; heads: GitRef[] }> {
  const input = [...exclude, ...refNames].map((l) => `${l}\n`).join('');
  const r = await runGit(['-C', repo, '-c', 'pack.threads=1', 'bundle', 'create', '-q', out, '--stdin'], { input });
  if (r.code !== 0) {
    if (/empty bundle/i.test(r.stderr)) {
      rmSync(out, { force: true });
      return 'empty';
    }
    throw gitError([], r, 'BAD_SOURCE', `git bundle create in ${repo}`);
  }
  const heads = parseRefLines(await git(['bundle', 'list-heads', out], { code: 'BAD_SOURCE' }));
  return { size: statSync(out).size, sha256: hashFile(out), heads };
}

// ---------------------------------------------------------------------------------------------
// Client: a bare repository built from the bundles in the working tree

/** Which bundles a served repository was built from, kept beside it in WORK/.paquete/git/NAME.json. */
interface ServedState {
  version: 1;
  /** SHA-256 of the refs file the repository matches exactly. */
  refsSha256: string;
  /** Bundles applied, in order. */
  bundles: Array<{ file: string; sha256: string }>;
}

export interface GitServeOptions {
  /** Told when the repository served is older than the refs file because bundles are still missing. */
  onWarning?: (message: string) => void;
  /**
   * Where the file at `rel` (a path of the working tree) is read from: serve reads the
   * generation it answers from (src/workdir/generation.ts), not the tree a sync is changing.
   * Default: the tree itself.
   */
  fileOf?: (rel: string) => string | undefined;
}

/** In-process queue per repository: serve may ask for one repository from many requests at once. */
const queues = new Map<string, Promise<unknown>>();

/** WORK/.paquete/git/NAME.git: the bare repository gitServeDir keeps. */
export function gitRepoDir(workRoot: string, name: string): string {
  return join(resolve(workRoot), META_DIR, 'git', `${name}.git`);
}

/**
 * Builds or updates the bare repository WORK/.paquete/git/NAME.git from the bundles synced into
 * WORK/NAME/ and returns its path, ready for git's dumb HTTP protocol as static files
 * (`info/refs`, `objects/info/packs` are kept current with `git update-server-info`).
 *
 * Incremental and idempotent: bundles already applied are not read again, and when nothing
 * changed this only hashes the small refs file. Refs are set exactly as the refs file says
 * (branches and tags the publisher deleted are deleted; HEAD names the publisher's default
 * branch). When the publisher started a new chain, the repository is rebuilt beside the old one
 * and swapped in. While a sync is incomplete (the refs file names a bundle not yet here), the
 * repository built last is served as it is, with a warning; with none built yet it is an error.
 * Objects are never deleted (no gc): a later bundle may need any earlier tip as its base.
 */
export async function gitServeDir(workRoot: string, name: string, opts: GitServeOptions = {}): Promise<string> {
  if (!isSafeSourceName(name)) {
    throw new PaqueteError('USAGE', `"${name}" cannot name a git repository`);
  }
  const root = resolve(workRoot);
  const repoDir = gitRepoDir(root, name);
  const fast = currentIfUpToDate(root, name, opts);
  if (fast) return repoDir;
  const prior = queues.get(repoDir) ?? Promise.resolve();
  const job = prior.catch(() => undefined).then(() => withGitLock(root, name, () => update(root, name, opts)));
  queues.set(repoDir, job);
  try {
    return await job;
  } finally {
    if (queues.get(repoDir) === job) queues.delete(repoDir);
  }
}

const statePath = (root: string, name: string) => join(root, META_DIR, 'git', `${name}.json`);

const fileIn = (root: string, rel: string, opts: GitServeOptions) => (opts.fileOf ? opts.fileOf(rel) : undefined) ?? join(root, ...rel.split('/'));

function readRefsFile(root: string, name: string, opts: GitServeOptions): Buffer {
  try {
    return readFileSync(fileIn(root, `${name}/${GIT_REFS_FILE}`, opts));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw new PaqueteError('BAD_SOURCE', `there is no git repository "${name}" in ${root}`, `sync it first (paquete sync --want "${name}/**"), or check the name with paquete status`);
  }
}

function readState(root: string, name: string): ServedState | undefined {
  try {
    const s = JSON.parse(readFileSync(statePath(root, name), 'utf8')) as ServedState;
    return s.version === 1 && Array.isArray(s.bundles) ? s : undefined;
  } catch {
    return undefined; // none yet, or damaged: rebuilding is always correct
  }
}

function currentIfUpToDate(root: string, name: string, opts: GitServeOptions): boolean {
  const refs = readRefsFile(root, name, opts);
  const state = readState(root, name);
  return !!state && state.refsSha256 === createHash('sha256').update(refs).digest('hex') && existsSync(join(gitRepoDir(root, name), 'HEAD'));
}

async function withGitLock<T>(root: string, name: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(root, META_DIR, 'git');
  mkdirSync(dir, { recursive: true });
  // Another process (serve, git-export) may be building the same repository: wait for it.
  const unlock = await waitForLock(join(dir, `${name}.lock`), `git ${name}`, { timeoutMs: 120_000 });
  try {
    return await fn();
  } finally {
    unlock();
  }
}

async function update(root: string, name: string, opts: GitServeOptions): Promise<string> {
  const repoDir = gitRepoDir(root, name);
  const refsBytes = readRefsFile(root, name, opts);
  const refsSha256 = createHash('sha256').update(refsBytes).digest('hex');
  const state = readState(root, name);
  const haveRepo = existsSync(join(repoDir, 'HEAD'));
  if (state && state.refsSha256 === refsSha256 && haveRepo) return repoDir;
  const refs = decodeGitRefs(refsBytes.toString('utf8'), join(name, GIT_REFS_FILE));

  // Continue from what was applied when it is a prefix of the chain; else build afresh.
  const applied = state && haveRepo ? state.bundles : [];
  const isPrefix = applied.length <= refs.bundles.length && applied.every((b, i) => b.file === refs.bundles[i].file && b.sha256 === refs.bundles[i].sha256);
  const rebuild = !haveRepo || !state || !isPrefix;
  const todo = rebuild ? refs.bundles : refs.bundles.slice(applied.length);

  const bundlePath = (b: GitBundleEntry) => fileIn(root, `${name}/${GIT_BUNDLE_DIR}/${b.file}`, opts);
  const missing = todo.filter((b) => {
    try {
      return statSync(bundlePath(b)).size !== b.size;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    const msg = `git repository ${name} is not complete yet: ${missing.length} of its bundles (${missing.map((b) => b.file).join(', ')}) are still to sync`;
    if (haveRepo && state) {
      opts.onWarning?.(`${msg}; serving the repository as of the last complete sync`);
      return repoDir;
    }
    throw new PaqueteError('BAD_SOURCE', msg, 'run paquete sync to bring the rest');
  }

  const gitDir = join(root, META_DIR, 'git');
  let target = repoDir;
  if (rebuild) {
    for (const leftover of readdirSync(gitDir)) {
      if (leftover.startsWith(`${name}.git.tmp-`) || leftover.startsWith(`${name}.git.old-`)) rmSync(join(gitDir, leftover), { recursive: true, force: true });
    }
    target = `${repoDir}.tmp-${randomBytes(4).toString('hex')}`;
    const init = ['init', '-q', '--bare', '--template='];
    if (refs.objectFormat === 'sha256') init.push('--object-format=sha256');
    await git([...init, target]);
    // Never collect garbage: a later bundle may need any earlier tip, even of a deleted branch.
    await git(['-C', target, 'config', 'gc.auto', '0']);
    await git(['-C', target, 'config', 'core.logAllRefUpdates', 'false']);
  }
  const progress: ServedState = { version: 1, refsSha256: '', bundles: rebuild ? [] : [...applied] };
  for (const b of todo) {
    const path = bundlePath(b);
    if (hashFile(path) !== b.sha256) {
      const msg = `${name}/${GIT_BUNDLE_DIR}/${b.file} does not match the refs file (changed by hand, or a sync under way)`;
      if (rebuild) rmSync(target, { recursive: true, force: true });
      if (haveRepo && state) {
        opts.onWarning?.(`${msg}; serving the repository as of the last complete sync`);
        return repoDir;
      }
      throw new PaqueteError('BAD_SOURCE', msg, 'run paquete sync, or paquete verify --repair');
    }
    const r = await runGit(['-C', target, 'bundle', 'unbundle', path]);
    if (r.code !== 0) {
      if (rebuild) rmSync(target, { recursive: true, force: true });
      throw gitError([], r, 'BAD_FORMAT', `applying ${name}/${GIT_BUNDLE_DIR}/${b.file}`);
    }
    progress.bundles.push({ file: b.file, sha256: b.sha256 });
    // Recorded as applied at once: after a crash the objects are there, and the refs are set
    // from the refs file at the end anyway.
    if (!rebuild) writeFileAtomic(statePath(root, name), JSON.stringify(progress));
  }

  await setRefs(target, refs, name);
  await git(['-C', target, 'update-server-info']);
  if (rebuild) {
    if (existsSync(repoDir)) {
      const old = `${repoDir}.old-${randomBytes(4).toString('hex')}`;
      renameSync(repoDir, old);
      renameSync(target, repoDir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(target, repoDir);
    }
  }
  progress.refsSha256 = refsSha256;
  writeFileAtomic(statePath(root, name), JSON.stringify(progress));
  return repoDir;
}

/** Makes the repository's refs exactly the refs file's, in one update-ref transaction. */
async function setRefs(repo: string, refs: GitRefs, name: string): Promise<void> {
  const check = await git(['-C', repo, 'cat-file', '--batch-check=%(objectname)'], { input: refs.refs.map((r) => `${r.oid}\n`).join('') });
  const lacking = lines(check).filter((l) => l.endsWith(' missing'));
  if (lacking.length) {
    throw new PaqueteError('BAD_FORMAT', `the refs file of ${name} names ${lacking.length} objects its bundles do not hold (${lacking[0].split(' ')[0]})`);
  }
  const have = parseRefLines(await git(['-C', repo, 'for-each-ref', '--format=%(objectname) %(refname)']));
  const want = new Map(refs.refs.map((r) => [r.name, r.oid]));
  const ops: string[] = [];
  for (const r of have) if (!want.has(r.name)) ops.push(`delete ${r.name}\n`);
  for (const [ref, oid] of want) ops.push(`update ${ref} ${oid}\n`);
  if (ops.length) await git(['-C', repo, 'update-ref', '--stdin'], { input: ops.join(''), code: 'BAD_FORMAT' });
  if (refs.head) await git(['-C', repo, 'symbolic-ref', 'HEAD', refs.head]);
}

// ---------------------------------------------------------------------------------------------
// Client: writing the repository to a folder

export interface GitExportResult {
  dir: string;
  branches: number;
  tags: number;
  head?: string;
}

/**
 * Writes (or updates) DIR as a bare repository equal to the mirrored one: same branches, tags
 * and HEAD; branches and tags the publisher deleted are deleted. `git clone DIR` works from it,
 * and it stays the user's: a later export only fetches what is new. DIR must be absent, empty,
 * or a bare repository.
 */
export async function gitExport(workRoot: string, name: string, dir: string, opts: GitServeOptions = {}): Promise<GitExportResult> {
  const src = await gitServeDir(workRoot, name, opts);
  const target = resolve(dir);
  const format = (await git(['-C', src, 'rev-parse', '--show-object-format'])).trim();
  if (!existsSync(target) || (statSync(target).isDirectory() && readdirSync(target).length === 0)) {
    const init = ['init', '-q', '--bare'];
    if (format === 'sha256') init.push('--object-format=sha256');
    await git([...init, target]);
  } else {
    const r = await runGit(['-C', target, 'rev-parse', '--is-bare-repository', '--absolute-git-dir']);
    const [bare, gitDir] = lines(r.stdout.toString('utf8'));
    if (r.code !== 0 || bare !== 'true' || realpathSync(gitDir) !== realpathSync(target)) {
      throw new PaqueteError('USAGE', `${dir} exists and is not a bare git repository`, 'name a new or empty folder, or one made by paquete git-export');
    }
  }
  await git(['-C', target, 'fetch', '-q', '--prune', '--no-tags', src, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'], { what: `git fetch into ${dir}` });
  const head = (await runGit(['-C', src, 'symbolic-ref', '-q', 'HEAD'])).stdout.toString('utf8').trim();
  const refs = parseRefLines(await git(['-C', target, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags']));
  if (head && refs.some((r) => r.name === head)) await git(['-C', target, 'symbolic-ref', 'HEAD', head]);
  await git(['-C', target, 'update-server-info']);
  return {
    dir: target,
    branches: refs.filter((r) => r.name.startsWith('refs/heads/')).length,
    tags: refs.filter((r) => r.name.startsWith('refs/tags/')).length,
    head: head || undefined,
  };
}
