/**
 * Wire cost of git repository updates through paquete, against git's own incremental bundle
 * (issue 5: "within 1.5x of `git bundle create f ^old new`").
 *
 *   node dist/bench/git.js                      axios 1.6.0 … 1.21.1, one commit and tag per release
 *   node dist/bench/git.js --package vue --versions 3.5.0,3.5.1,3.5.2,3.5.3 --updates 1,1
 *   node dist/bench/git.js --json out.json      also write every measurement as JSON
 *
 * The repository is real history built on this machine: successive releases of an npm package
 * (`npm pack`, cached in bench/.cache/, see bench/corpus.ts), each committed over the previous
 * one and tagged (annotated), with fixed dates so every run builds the same commits. The first
 * releases are published and synced by a client over nginx (test/helpers/nginx.ts); then each
 * update commits the next release(s), publishes, and syncs again. For every step:
 *
 *   git bundle   `git bundle create f ^<every tip of the previous snapshot> <every branch and tag>`
 *                run as a user would (default threads): what git itself would send
 *   paquete      every byte of the sync on the wire, both directions, headers included, from the
 *                nginx access log, split into manifest, snapshot index, chunk records, HTTP headers
 *
 * For the first download, and for a fresh client after all updates (which downloads the whole
 * chain of bundles), the comparison is a full bundle of every branch and tag. Each step also
 * checks that the repository the client builds (src/sources/git.ts gitServeDir) has exactly the
 * source's branches and tags.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gitServeDir } from '../src/sources/git.js';
import { startNginx, type LogEntry } from '../test/helpers/nginx.js';
import { fetchNpmPackage } from './corpus.js';

const run = promisify(execFile);
const PAQUETE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@paquete.invalid',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@paquete.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  LC_ALL: 'C',
};

/** Stable axios releases 1.6.0 … 1.21.1, in order (pre-releases left out). */
const AXIOS = [
  '1.6.0', '1.6.1', '1.6.2', '1.6.3', '1.6.4', '1.6.5', '1.6.6', '1.6.7', '1.6.8', '1.7.0', '1.7.1', '1.7.2', '1.7.3',
  '1.7.4', '1.7.5', '1.7.6', '1.7.7', '1.7.8', '1.7.9', '1.8.0', '1.8.1', '1.8.2', '1.8.3', '1.8.4', '1.9.0', '1.10.0',
  '1.11.0', '1.12.0', '1.12.1', '1.12.2', '1.13.0', '1.13.1', '1.13.2', '1.13.3', '1.13.4', '1.13.5', '1.13.6', '1.14.0',
  '1.15.0', '1.15.1', '1.15.2', '1.16.0', '1.16.1', '1.17.0', '1.18.0', '1.18.1', '1.19.0', '1.20.0', '1.21.0', '1.21.1',
];

interface Args {
  pkg: string;
  versions: string[];
  updates: number[];
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const get = (k: string) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const updates = (get('updates') ?? '1,1,1,1,3,1,5').split(',').map(Number);
  const pkg = get('package') ?? 'axios';
  const listed = get('versions');
  if (pkg !== 'axios' && !listed) throw new Error('--package needs --versions A,B,C… (its releases, oldest first)');
  const versions = listed ? listed.split(',') : AXIOS;
  return { pkg, versions, updates, json: get('json') };
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', args, { cwd, env: GIT_ENV, maxBuffer: 64 << 20 });
  return stdout;
}

async function paquete(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [PAQUETE, ...args], { cwd, env: GIT_ENV, maxBuffer: 64 << 20 });
  return stdout;
}

/** Replaces the work tree with one release and commits it with a fixed date, tagged vVERSION. */
async function commitRelease(repo: string, pkg: string, version: string, n: number): Promise<void> {
  const tree = await fetchNpmPackage(pkg, version);
  for (const e of fs.readdirSync(repo)) if (e !== '.git') fs.rmSync(path.join(repo, e), { recursive: true, force: true });
  fs.cpSync(tree, repo, { recursive: true });
  await git(repo, 'add', '-A');
  const date = `${1_700_000_000 + n * 86_400} +0000`;
  await run('git', ['commit', '-q', '--allow-empty', '-m', `${pkg} ${version}`], { cwd: repo, env: { ...GIT_ENV, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date } });
  await run('git', ['tag', '-a', `v${version}`, '-m', `${pkg} ${version}`], { cwd: repo, env: { ...GIT_ENV, GIT_COMMITTER_DATE: date } });
}

async function tips(repo: string): Promise<string[]> {
  return (await git(repo, 'for-each-ref', '--format=%(objectname)', 'refs/heads', 'refs/tags')).split('\n').filter(Boolean);
}

async function refList(repo: string): Promise<string> {
  return git(repo, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags');
}

/** `git bundle create` as a user would run it; returns its size in bytes. */
async function gitBundleSize(repo: string, out: string, exclude: string[]): Promise<number> {
  const input = exclude.map((t) => `^${t}\n`).join('');
  await new Promise<void>((resolve, reject) => {
    const child = execFile('git', ['bundle', 'create', '-q', out, '--branches', '--tags', '--stdin'], { cwd: repo, env: GIT_ENV }, (err) => (err ? reject(err) : resolve()));
    child.stdin!.end(input);
  });
  const size = fs.statSync(out).size;
  fs.rmSync(out);
  return size;
}

interface Split {
  manifest: number;
  index: number;
  records: number;
  headers: number;
  requests: number;
  total: number;
}

function split(log: LogEntry[]): Split {
  const s: Split = { manifest: 0, index: 0, records: 0, headers: 0, requests: log.length, total: 0 };
  for (const e of log) {
    s.headers += e.bytesSent - e.bodyBytesSent + e.requestLength;
    if (e.uri.endsWith('manifest.json')) s.manifest += e.bodyBytesSent;
    else if (e.uri.includes('/snapshots/')) s.index += e.bodyBytesSent;
    else s.records += e.bodyBytesSent;
    s.total += e.bytesSent + e.requestLength;
  }
  return s;
}

interface Row {
  step: string;
  commits: number;
  gitBundle: number;
  paquete: Split;
  ratio: number;
  chain: number;
  refsOk: boolean;
}

const kb = (n: number) => (n >= 10_000_000 ? `${(n / 1e6).toFixed(1)} MB` : n >= 10_000 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const totalUpdates = args.updates.reduce((a, b) => a + b, 0);
  if (args.versions.length <= totalUpdates) throw new Error(`need more than ${totalUpdates} versions`);
  const baseCount = args.versions.length - totalUpdates;
  process.stderr.write(`fetching ${args.versions.length} releases of ${args.pkg} (cached in bench/.cache/npm)…\n`);
  for (const v of args.versions) await fetchNpmPackage(args.pkg, v);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paquete-bench-git-'));
  const ng = await startNginx(path.join(dir, 'remote-root'));
  try {
    const src = path.join(dir, 'src');
    const remote = path.join(dir, 'remote-root');
    const work = path.join(dir, 'work');
    fs.mkdirSync(remote);
    await git(dir, 'init', '-q', '-b', 'main', src);
    let next = 0;
    for (; next < baseCount; next++) await commitRelease(src, args.pkg, args.versions[next], next);
    await paquete(dir, 'keygen', '--out', 'pub.key', '-q');
    const publish = () => paquete(dir, 'publish', `git:${args.pkg}=src`, '--to', remote, '--key', 'pub.key', '-q');
    await publish();
    await paquete(dir, 'init', ng.url, work, '--trust', 'pub.key.pub', '-q');

    const rows: Row[] = [];
    const step = async (label: string, commits: number, gitBundle: number, client = work) => {
      await ng.clearLog();
      await paquete(client, 'sync', '-q');
      const log = await ng.accessLog();
      const served = await gitServeDir(client, args.pkg);
      const refsOk = (await refList(served)) === (await refList(src));
      const chain = fs.readdirSync(path.join(client, args.pkg, 'bundles')).length;
      const p = split(log);
      rows.push({ step: label, commits, gitBundle, paquete: p, ratio: p.total / gitBundle, chain, refsOk });
      process.stderr.write(`${label}: git bundle ${gitBundle} B, paquete ${p.total} B\n`);
    };

    await step(`first download (${baseCount} releases, up to v${args.versions[baseCount - 1]})`, baseCount, await gitBundleSize(src, path.join(dir, 'f.bundle'), []));
    for (const n of args.updates) {
      const old = await tips(src);
      const from = args.versions[next - 1];
      for (let i = 0; i < n; i++, next++) await commitRelease(src, args.pkg, args.versions[next], next);
      const gitBundle = await gitBundleSize(src, path.join(dir, 'f.bundle'), old);
      await publish();
      await step(`update v${from} → v${args.versions[next - 1]}`, n, gitBundle);
    }

    const fullNow = await gitBundleSize(src, path.join(dir, 'f.bundle'), []);
    // A client starting now gets the whole chain: compare with one full bundle.
    const fresh = path.join(dir, 'fresh');
    await paquete(dir, 'init', ng.url, fresh, '--trust', 'pub.key.pub', '-q');
    await step(`fresh client after the updates (${next} releases)`, next, fullNow, fresh);
    const head = ['step', 'commits', 'git bundle', 'paquete wire', 'ratio', 'manifest', 'index', 'records', 'HTTP headers', 'requests', 'bundles in chain', 'refs equal'];
    const body = rows.map((r) => [
      r.step, String(r.commits), kb(r.gitBundle), kb(r.paquete.total), `${r.ratio.toFixed(2)}x`, kb(r.paquete.manifest), kb(r.paquete.index),
      kb(r.paquete.records), kb(r.paquete.headers), String(r.paquete.requests), String(r.chain), r.refsOk ? 'yes' : 'NO',
    ]);
    const updates = rows.slice(1, -1);
    const sum = (f: (r: Row) => number) => updates.reduce((a, r) => a + f(r), 0);
    body.push(['all updates', String(sum((r) => r.commits)), kb(sum((r) => r.gitBundle)), kb(sum((r) => r.paquete.total)), `${(sum((r) => r.paquete.total) / sum((r) => r.gitBundle)).toFixed(2)}x`, kb(sum((r) => r.paquete.manifest)), kb(sum((r) => r.paquete.index)), kb(sum((r) => r.paquete.records)), kb(sum((r) => r.paquete.headers)), String(sum((r) => r.paquete.requests)), '', '']);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
    console.log(`\ngit repository: ${args.pkg} releases as commits, ${next} commits, full bundle now ${kb(fullNow)}; bytes on the wire per sync (nginx access log, both directions, headers included)\n`);
    console.log(line(head));
    console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|`);
    for (const r of body) console.log(line(r));
    if (args.json) fs.writeFileSync(args.json, JSON.stringify({ package: args.pkg, versions: args.versions, fullBundle: fullNow, rows }, null, 2));
  } finally {
    await ng.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
