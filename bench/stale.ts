/**
 * Stale clients (issue 14): consecutive real npm releases of one package published one after the
 * other to one remote served by nginx, and clients 1, 2, 4, 8, 11, 16 … releases behind syncing once
 * to the newest, every byte counted from nginx's access log, beside the floor
 * `zstd -19 --long=27 --patch-from=THEIR.tar NEWEST.tar`. Also: a client that syncs after every
 * release against its twin that syncs once at the end; a newcomer against `zstd -19 --long=27` of
 * the newest tar; and per publish its CPU and the remote's disk.
 *
 *   node dist/bench/stale.js [--package vite] [--versions 8.1.6,8.1.7,…] [--behind 1,2,4,8,11,16] [--json FILE]
 *   node dist/bench/stale.js --kind git [--repo DIR] [--commits 53]     the last N first-parent commits of a real repository
 *   node dist/bench/stale.js --kind pypi [--project numpy] [--versions 2.0.0,…]   wheels of this machine's wheelhouse
 *
 * npm releases come from the registry through `npm pack` (bench/corpus.ts, cached in bench/.cache),
 * and the floor is between tars of the unpacked trees. git: snapshot i is the repository with its
 * one branch at the i-th commit (a clone of --repo, by default a nanoid mirror fetched beside the
 * bench), the floor between full bundles of the branch (`git bundle create f main`), and git's own
 * `git bundle create f ^OLD main` beside it. pypi: snapshot i is a wheelhouse holding the i-th
 * version's wheel only, the floor between tars of the wheels' unpacked contents (bench/wheels.ts).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gitServeDir } from '../src/sources/git.js';
import { compareVersions, parseVersion } from '../src/sources/pep440.js';
import { parseDistFileName } from '../src/sources/pypi.js';
import { startNginx } from '../test/helpers/nginx.js';
import { CACHE_DIR, fetchNpmPackage, listWheels, tarOf, wheelhouses } from './corpus.js';
import { counted, fmtBytes, ratio, sameTree, sha256File, timedRun, treeBytes, wireOf } from './measure.js';

const exec = promisify(execFile);

const PAQUETE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const paquete = (args: string[]) => timedRun(process.execPath, [PAQUETE, ...args]);

/** vite 8.1.6 … 8.4.0: seventeen consecutive releases (docs/DESIGN-REMOTE-V3.md measured the last twelve). */
const VITE = ['8.1.6', '8.1.7', '8.2.0', '8.2.1', '8.2.2', '8.2.4', '8.2.6', '8.3.0', '8.3.1', '8.3.2', '8.3.3', '8.3.4', '8.3.5', '8.3.6', '8.3.7', '8.3.8', '8.4.0'];

const T0 = Date.now();
const log = (msg: string) => process.stderr.write(`[stale ${((Date.now() - T0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const dirBytes = (dir: string) => (fs.existsSync(dir) ? treeBytes(dir).bytes : 0);

async function zstdSize(args: string[], input: string): Promise<number> {
  const out = path.join(os.tmpdir(), `stale-${process.pid}.zst`);
  await timedRun('zstd', ['-q', '-f', ...args, input, '-o', out]);
  const n = fs.statSync(out).size;
  fs.rmSync(out, { force: true });
  return n;
}

interface PublishRow {
  version: string;
  cpu: number;
  wall: number;
  offer?: { frames: number; waypointFrames: number; contents: number; reused: number; dropped: number; bytes: number; rungs: number[] };
  solid: number;
  /** The stream's segments, and those kept from the previous stream by name. */
  segments: number;
  reusedSegments: number;
  /** One compressed copy: zstd -19 --long=27 of this release's tar (a full bundle for git; undefined: not measured). */
  copy?: number;
  /** The client that syncs after every release: this sync's bytes by nginx's count (none after the first release). */
  sync?: number;
  updatesDisk: number;
  remoteDisk: number;
  pruned: number;
}

interface StaleRow {
  behind: number;
  from: string;
  bytes: number;
  requests: number;
  floor: number;
  /** The source's own incremental form (git bundle ^OLD), when it has one. */
  native?: number;
  ok: boolean;
  kinds: string;
}

/**
 * One source's consecutive snapshots: what to publish for snapshot i, whether a client holds
 * snapshot i, the patch-from floor between two snapshots and one compressed copy of one.
 */
interface Series {
  title: string;
  names: string[];
  /** Gets snapshot i ready (in order, oldest first) and returns the SOURCE argument of `paquete publish`. */
  prepare(i: number): Promise<string>;
  holds(i: number, client: string): Promise<boolean>;
  floor(from: number, to: number): Promise<number>;
  /** zstd -19 --long=27 of snapshot i as the floor's files (undefined: not measured for this kind). */
  copy(i: number): Promise<number | undefined>;
  /** Beside the floor: what the source's own tool would send (git's incremental bundle). */
  native?(from: number, to: number): Promise<number>;
}

async function npmSeries(pkg: string, versions: string[]): Promise<Series> {
  log(`fetching ${pkg} ${versions[0]} … ${versions[versions.length - 1]} (${versions.length})`);
  const dirs: string[] = [];
  const tars: string[] = [];
  for (const v of versions) {
    dirs.push(await fetchNpmPackage(pkg, v));
    tars.push(await tarOf(dirs[dirs.length - 1], `${pkg}@${v}`));
  }
  return {
    title: `${pkg} ${versions[0]} … ${versions[versions.length - 1]} (${versions.length} npm releases; floor between tars of the trees)`,
    names: versions,
    prepare: async (i) => `${pkg}=${dirs[i]}`,
    holds: async (i, client) => sameTree(dirs[i], path.join(client, pkg)),
    floor: (from, to) => zstdSize(['-19', '--long=27', `--patch-from=${tars[from]}`], tars[to]),
    copy: (i) => zstdSize(['-19', '--long=27'], tars[i]),
  };
}

const GIT_ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', LC_ALL: 'C' };
const git = async (cwd: string, ...args: string[]) => (await exec('git', args, { cwd, env: GIT_ENV, maxBuffer: 64 << 20 })).stdout.trim();

async function gitSeries(repo: string, count: number, work: string): Promise<Series> {
  const name = path.basename(repo.replace(/\/?(repo|\.git)?\/?$/, '')).replace(/[^A-Za-z0-9._-]/g, '-') || 'repo';
  const src = path.join(work, `${name}.git`);
  await exec('git', ['clone', '-q', '--bare', '--no-tags', '--single-branch', repo, src], { env: GIT_ENV });
  const branch = (await git(src, 'symbolic-ref', '--short', 'HEAD')) || 'main';
  const commits = (await git(src, 'rev-list', '--first-parent', `--max-count=${count}`, branch)).split('\n').reverse();
  const bundles: string[] = [];
  const bundleAt = async (i: number) => {
    if (bundles[i]) return bundles[i];
    const out = path.join(work, `${name}-${i}.bundle`);
    await git(src, 'branch', '-f', 'stale-floor', commits[i]);
    await git(src, 'bundle', 'create', '-q', out, 'stale-floor');
    return (bundles[i] = out);
  };
  return {
    title: `git ${name}: ${commits.length} consecutive first-parent commits of ${branch} (${commits[0].slice(0, 7)} … ${commits[commits.length - 1].slice(0, 7)}; floor between full bundles of the branch)`,
    names: commits.map((c) => c.slice(0, 7)),
    prepare: async (i) => {
      await git(src, 'update-ref', `refs/heads/${branch}`, commits[i]);
      await git(src, 'branch', '-D', 'stale-floor').catch(() => '');
      return `git:${name}=${src}`;
    },
    holds: async (i, client) => {
      const served = await gitServeDir(client, name);
      return (await git(served, 'rev-parse', `refs/heads/${branch}`)) === commits[i];
    },
    floor: async (from, to) => zstdSize(['-19', '--long=27', `--patch-from=${await bundleAt(from)}`], await bundleAt(to)),
    copy: async (i) => fs.statSync(await bundleAt(i)).size,
    native: async (from, to) => {
      const out = path.join(work, `${name}-${from}-${to}.bundle`);
      await git(src, 'branch', '-f', 'stale-floor', commits[to]);
      await git(src, 'bundle', 'create', '-q', out, 'stale-floor', `^${commits[from]}`);
      const n = fs.statSync(out).size;
      fs.rmSync(out);
      return n;
    },
  };
}

async function pypiSeries(project: string, versions: string[] | undefined, work: string): Promise<Series> {
  const byVersion = new Map<string, string>();
  for (const root of wheelhouses()) {
    for (const w of listWheels(root)) {
      const d = parseDistFileName(path.basename(w));
      if (d && d.normalized === project && /-(cp311-cp311-manylinux[^/]*x86_64|py3-none-any)\.whl$/.test(w) && !byVersion.has(d.version)) byVersion.set(d.version, w);
    }
  }
  const chosen = (versions ?? [...byVersion.keys()].sort((a, b) => compareVersions(parseVersion(a)!, parseVersion(b)!))).filter((v) => byVersion.has(v));
  if (chosen.length < 2) throw new Error(`${project}: fewer than two cp311 manylinux or py3-none-any wheels in ${wheelhouses().join(', ')}`);
  const wheels = chosen.map((v) => byVersion.get(v)!);
  const src = path.join(work, `${project}-wheels`);
  fs.mkdirSync(src, { recursive: true });
  const tars: string[] = [];
  const contentsTar = async (i: number) => {
    if (tars[i]) return tars[i];
    const dir = path.join(CACHE_DIR, 'wheel-contents', path.basename(wheels[i]));
    if (!fs.existsSync(path.join(dir, '.complete'))) {
      fs.rmSync(dir, { recursive: true, force: true });
      await exec('python3', ['-m', 'zipfile', '-e', wheels[i], dir]);
      fs.writeFileSync(path.join(dir, '.complete'), '');
    }
    return (tars[i] = await tarOf(dir, `wheel-${path.basename(wheels[i])}`));
  };
  return {
    title: `pypi ${project} ${chosen[0]} … ${chosen[chosen.length - 1]} (${chosen.length} wheels, one at a time in the wheelhouse; floor between tars of the unpacked contents)`,
    names: chosen,
    prepare: async (i) => {
      for (const f of fs.readdirSync(src)) fs.rmSync(path.join(src, f));
      fs.copyFileSync(wheels[i], path.join(src, path.basename(wheels[i])));
      return `pypi:p=${src}`;
    },
    holds: async (i, client) => {
      const placed = path.join(client, 'p', path.basename(wheels[i]));
      // Beside the wheel only its metadata sidecar (FILE.metadata): the older wheel removed.
      return fs.existsSync(placed) && sha256File(placed) === sha256File(wheels[i]) && fs.readdirSync(path.join(client, 'p')).filter((f) => f.endsWith('.whl')).length === 1;
    },
    floor: async (from, to) => zstdSize(['-19', '--long=27', `--patch-from=${await contentsTar(from)}`], await contentsTar(to)),
    copy: async (i) => (i === wheels.length - 1 ? zstdSize(['-19', '--long=27'], await contentsTar(i)) : undefined),
  };
}

async function main(): Promise<void> {
  const kind = argValue('--kind') ?? 'npm';
  const work = path.join(CACHE_DIR, kind === 'npm' ? 'stale-run' : `stale-run-${kind}`);
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const versionsArg = argValue('--versions')?.split(',').filter(Boolean);
  let series: Series;
  if (kind === 'git') {
    const repo = argValue('--repo');
    if (!repo) throw new Error('give --repo DIR (a git repository; a mirror of a real one, e.g. ai/nanoid)');
    series = await gitSeries(repo, Number(argValue('--commits') ?? 53), work);
  } else if (kind === 'pypi') {
    series = await pypiSeries((argValue('--project') ?? 'numpy').toLowerCase(), versionsArg, work);
  } else {
    const pkg = argValue('--package') ?? 'vite';
    const versions = versionsArg ?? (pkg === 'vite' ? VITE : []);
    if (versions.length < 2) throw new Error('give --versions a,b,c (two or more, oldest first)');
    series = await npmSeries(pkg, versions);
  }
  const versions = series.names;
  const last = versions.length - 1;
  const behinds = (argValue('--behind') ?? '1,2,4,8,11,16').split(',').map(Number).filter((b) => b >= 1 && b <= last);

  const remote = path.join(work, 'remote');
  const key = path.join(work, 'pub.key');
  await paquete(['keygen', '--out', key]);
  fs.mkdirSync(remote);
  const ng = await startNginx(remote);
  const client = (name: string) => path.join(work, name);
  const sync = (w: string) => paquete(['sync', '-C', w, '--json', '--quiet']);
  const init = (w: string) => paquete(['init', ng.url, w, '--trust', `${key}.pub`, '--json', '--quiet']);

  const publishes: PublishRow[] = [];
  let everyBytes = 0;
  let everyOk = true;
  try {
    for (let i = 0; i <= last; i++) {
      log(`publish ${versions[i]}`);
      const r = await paquete(['publish', await series.prepare(i), '--to', remote, '--key', key, '--prune-after', '0', '--json', '--quiet']);
      const out = JSON.parse(r.stdout) as {
        updates: { from: string; framesBytes: number; segments?: number; reusedSegments?: number }[];
        offer?: { frames: number; waypointFrames: number; contents: number; reused: number; dropped: number; framesBytes: number; size: number; rungs: number[] };
        pruned: number;
      };
      publishes.push({
        version: versions[i],
        cpu: r.cpu,
        wall: r.wall,
        offer: out.offer && {
          frames: out.offer.frames,
          waypointFrames: out.offer.waypointFrames,
          contents: out.offer.contents,
          reused: out.offer.reused,
          dropped: out.offer.dropped,
          bytes: out.offer.framesBytes + out.offer.size,
          rungs: out.offer.rungs,
        },
        solid: out.updates.find((u) => u.from === '')?.framesBytes ?? 0,
        segments: out.updates.find((u) => u.from === '')?.segments ?? 0,
        reusedSegments: out.updates.find((u) => u.from === '')?.reusedSegments ?? 0,
        copy: await series.copy(i),
        updatesDisk: dirBytes(path.join(remote, 'updates')) + dirBytes(path.join(remote, 'frames')),
        remoteDisk: dirBytes(remote),
        pruned: out.pruned,
      });
      // Clients that start here: each synced to this release, not counted.
      for (const b of behinds) {
        if (last - b !== i) continue;
        log(`client ${b} behind starts at ${versions[i]}`);
        await init(client(`behind-${b}`));
        await sync(client(`behind-${b}`));
      }
      // The twin of the client furthest behind, syncing after every release (counted from the second).
      if (i === 0) {
        await init(client('every'));
        await sync(client('every'));
      } else {
        const c = await counted(ng, () => sync(client('every')));
        everyBytes += wireOf(c.entries).bytes;
        publishes[i].sync = wireOf(c.entries).bytes;
        everyOk &&= await series.holds(i, client('every'));
      }
    }

    const rows: StaleRow[] = [];
    for (const b of behinds) {
      log(`client ${b} behind syncs to ${versions[last]}`);
      const c = await counted(ng, () => sync(client(`behind-${b}`)));
      const w = wireOf(c.entries);
      const floor = await series.floor(last - b, last);
      const native = await series.native?.(last - b, last);
      const kinds = new Map<string, number>();
      for (const e of c.entries) {
        const k = e.uri.split('/')[1].replace(/\.json$/, '');
        kinds.set(k, (kinds.get(k) ?? 0) + e.bytesSent + e.requestLength);
      }
      rows.push({
        behind: b,
        from: versions[last - b],
        bytes: w.bytes,
        requests: w.requests,
        floor,
        native,
        ok: await series.holds(last, client(`behind-${b}`)),
        kinds: [...kinds].map(([k, n]) => `${k} ${fmtBytes(n)}`).join(', '),
      });
    }
    log('newcomer');
    const n = await counted(ng, async () => {
      await init(client('newcomer'));
      return sync(client('newcomer'));
    });
    const newcomer = { bytes: wireOf(n.entries).bytes, floor: (await series.copy(last)) ?? 0, ok: await series.holds(last, client('newcomer')) };

    const kib16 = 16 * 1024;
    console.log(`## Stale clients: ${series.title}, ${new Date().toISOString().slice(0, 10)}\n`);
    console.log(`${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cpus, node ${process.version}. Bytes: nginx's access log ($request_length + $bytes_sent), every request of the sync.\n`);
    console.log(`| behind | from | paquete (nginx) | requests | floor: zstd -19 --long=27 --patch-from | ratio | bound 1.5x + 16 KiB |${series.native ? ' git bundle ^OLD |' : ''} tree | by kind |`);
    console.log(`|---|---|---:|---:|---:|---:|---|${series.native ? '---:|' : ''}---|---|`);
    for (const r of rows) {
      const bound = 1.5 * r.floor + kib16;
      console.log(`| ${r.behind} | ${r.from} | ${fmtBytes(r.bytes)} | ${r.requests} | ${fmtBytes(r.floor)} | ${ratio(r.bytes, r.floor)} | ${r.bytes <= bound ? 'met' : 'MISSED'} (${fmtBytes(bound)}) |${series.native ? ` ${fmtBytes(r.native)} |` : ''} ${r.ok ? 'identical' : 'DIFFERS'} | ${r.kinds} |`);
    }
    console.log(`| newcomer | — | ${fmtBytes(newcomer.bytes)} | | ${fmtBytes(newcomer.floor)} (zstd -19 --long=27) | ${ratio(newcomer.bytes, newcomer.floor)} | |${series.native ? ' |' : ''} ${newcomer.ok ? 'identical' : 'DIFFERS'} | |`);
    const once = rows.find((r) => r.behind === last);
    console.log(
      `\nFrom ${versions[0]}: syncing after every release ${fmtBytes(everyBytes)} (${last} syncs, trees ${everyOk ? 'identical' : 'DIFFER'}); ` +
        `once at the end ${once ? fmtBytes(once.bytes) : 'n/a (give --behind ' + last + ')'}.\n`,
    );
    console.log(
      '| publish | sync after it (nginx) | CPU s | wall s | rungs | offer: frames (waypoint) / old contents / reused / left out | offer bytes | stream from nothing: segments kept / all | one compressed copy (zstd -19 --long=27) | updates + frames on disk | ÷ stream | ÷ one copy | remote total | pruned |',
    );
    console.log('|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const p of publishes) {
      const o = p.offer ? `${p.offer.frames} (${p.offer.waypointFrames}) / ${p.offer.contents} / ${p.offer.reused} / ${p.offer.dropped}` : '—';
      console.log(
        `| ${p.version} | ${p.sync === undefined ? '—' : fmtBytes(p.sync)} | ${p.cpu.toFixed(1)} | ${p.wall.toFixed(1)} | ${p.offer?.rungs?.join(' ') ?? '—'} | ${o} | ${p.offer ? fmtBytes(p.offer.bytes) : '—'} | ${fmtBytes(p.solid)}: ${p.reusedSegments} / ${p.segments} | ${fmtBytes(p.copy)} | ${fmtBytes(p.updatesDisk)} | ${ratio(p.updatesDisk, p.solid)} | ${ratio(p.updatesDisk, p.copy)} | ${fmtBytes(p.remoteDisk)} | ${p.pruned} |`,
      );
    }
    const jsonOut = argValue('--json');
    if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ title: series.title, versions, rows, newcomer, everyBytes, publishes }, null, 1));
  } finally {
    await ng.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
