/**
 * Benchmark corpora: real data fetched at bench time from the npm registry (with the ordinary
 * `npm` client), cached in bench/.cache/ (gitignored), never committed.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** bench/.cache at the repository root (this file runs from dist/bench/). */
export const CACHE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', '.cache');

/** Version pairs (old → new) used by the benchmarks: large packages that people update. */
export const NPM_PAIRS: Array<{ name: string; from: string; to: string }> = [
  { name: 'typescript', from: '5.8.3', to: '5.9.3' },
  { name: 'prettier', from: '3.5.3', to: '3.6.2' },
  { name: 'three', from: '0.170.0', to: '0.171.0' },
];

function safeName(s: string): string {
  return s.replace(/^@/, '').replace(/[^A-Za-z0-9._-]+/g, '-');
}

/**
 * `npm pack NAME@VERSION` into bench/.cache/npm/ and unpack it; returns the unpacked directory
 * (the tarball's `package/` folder). Cached: a second call does no network.
 */
export async function fetchNpmPackage(name: string, version: string): Promise<string> {
  const root = path.join(CACHE_DIR, 'npm', `${safeName(name)}@${version}`);
  const dir = path.join(root, 'package');
  const done = path.join(root, '.complete');
  if (fs.existsSync(done)) return dir;
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const { stdout } = await run('npm', ['pack', `${name}@${version}`, '--json', '--silent', '--pack-destination', root], {
    maxBuffer: 64 << 20,
  });
  const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string }>;
  const tgz = path.join(root, path.basename(packed[0].filename.replace(/^@/, '').replace(/\//g, '-')));
  const tarball = fs.existsSync(tgz) ? tgz : path.join(root, fs.readdirSync(root).find((f) => f.endsWith('.tgz'))!);
  await run('tar', ['xzf', tarball, '-C', root]);
  if (!fs.existsSync(dir)) {
    // A few packages use another top folder name than package/.
    const top = fs.readdirSync(root).find((f) => fs.statSync(path.join(root, f)).isDirectory());
    if (!top) throw new Error(`${name}@${version}: tarball has no folder`);
    fs.renameSync(path.join(root, top), dir);
  }
  fs.rmSync(tarball);
  fs.writeFileSync(done, '');
  return dir;
}

/**
 * One tar of a directory (`tar cf`, names sorted, owners and times fixed so the same tree gives
 * the same bytes), written next to it in bench/.cache/tar/. Returns the tar's path. Cached.
 */
export async function tarOf(dir: string, name = path.basename(path.dirname(dir)) || path.basename(dir)): Promise<string> {
  const out = path.join(CACHE_DIR, 'tar', `${safeName(name)}.tar`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.tmp`;
  await run('tar', [
    'cf', tmp, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=1985-10-26 08:15Z',
    '-C', dir, '.',
  ]);
  fs.renameSync(tmp, out);
  return out;
}

/** fetchNpmPackage then tarOf: the tar of one unpacked npm package version. */
export async function npmTar(name: string, version: string): Promise<string> {
  return tarOf(await fetchNpmPackage(name, version), `${name}@${version}`);
}

/** Is a command on PATH? */
export async function have(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

/** Reads a file once so later timings come from the page cache. */
export function warm(file: string): number {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let total = 0;
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) total += n;
  } finally {
    fs.closeSync(fd);
  }
  return total;
}

/**
 * The wheelhouses this machine's pip configuration points at (find-links and file:// index URLs
 * from `pip config list` and PIP_FIND_LINKS; PyPI itself is not reachable here), or `given`.
 */
export function wheelhouses(given: string[] = []): string[] {
  if (given.length) return given;
  const found = new Set<string>();
  const addUrl = (u: string) => {
    for (const part of u.split(/\s+/).filter(Boolean)) {
      const p = part.replace(/^file:\/\//, '');
      if (!p.startsWith('/')) continue;
      // A file:// simple index (…/simple): its files usually lie beside it.
      const root = p.replace(/\/simple\/?$/, '');
      if (fs.existsSync(root)) found.add(root);
    }
  };
  try {
    const out = execFileSync('python3', ['-m', 'pip', 'config', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const line of out.split('\n')) {
      const m = /^[^=]*\.(find-links|extra-index-url|index-url)='(.*)'$/.exec(line.trim());
      if (m) addUrl(m[2]);
    }
  } catch {
    /* no pip: only the environment */
  }
  if (process.env.PIP_FIND_LINKS) addUrl(process.env.PIP_FIND_LINKS);
  return [...found];
}

/** Every .whl under `root`, `depth` folders down. */
export function listWheels(root: string, depth = 2): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = path.join(root, n);
    if (n.endsWith('.whl')) out.push(p);
    else if (depth > 0 && fs.statSync(p).isDirectory()) out.push(...listWheels(p, depth - 1));
  }
  return out;
}
