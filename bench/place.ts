/**
 * How fast a card's worth of wheels is placed (issue 16: 300 MB in under a minute on this kind of
 * machine). Wheels are stored as contents + a recipe (src/rebuild/), so placing one deflates its
 * members again: the client's heaviest CPU work.
 *
 *   node dist/bench/place.js                 ~300 MB of numpy, scipy, transformers, botocore wheels
 *   node dist/bench/place.js --mb 100        a smaller card
 *   node dist/bench/place.js --keep DIR      publish into DIR once (DIR/remote, DIR/k.key) and
 *                                            reuse it on later runs: the sync alone, again
 *
 * Publishes the wheels (a pypi source, updates at zstd -3: the level changes what a client
 * downloads, not what placing costs) to a local remote, then times `paquete init` + `paquete
 * sync` of a fresh client from it as one CLI process: wall time and the process's CPU (every
 * thread: the main one decoding, the place workers rebuilding, checking and writing). A local
 * remote, so the time is the client's own: on a park's link the download takes far longer and
 * placement runs beside it. The sync's threads are sampled from /proc every 100 ms (CPU of each:
 * the main thread, the decode worker, the place workers, libuv's and V8's helpers), so a run on a
 * shared machine still tells what two idle cores would take: at least the busiest thread's CPU,
 * and at least half the total. Then the same streams rebuilt in this process on one thread
 * (Rebuilder into SHA-256, no disk): the deflate's own rate. Every placed file is checked against
 * the original's SHA-256.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { listWheels, wheelhouses } from './corpus.js';
import { compareVersions, parseVersion } from '../src/sources/pep440.js';
import { parseDistFileName } from '../src/sources/pypi.js';
import { buildStoredForm } from '../src/rebuild/form.js';
import { Rebuilder } from '../src/rebuild/recipe.js';

const run = promisify(execFile);
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'paquete.js');
const args = process.argv.slice(2);
const argValue = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const cardBytes = Number(argValue('--mb') ?? 300) * 1e6;
const keep = argValue('--keep');
const PROJECTS = ['numpy', 'scipy', 'transformers', 'botocore'];

const log = (m: string) => console.error(`[place ${new Date().toISOString().slice(11, 19)}] ${m}`);
const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

/** The newest wheels of PROJECTS, one version of each in turn, until the card is full. */
function card(): string[] {
  const by = new Map<string, { path: string; v: NonNullable<ReturnType<typeof parseVersion>> }[]>();
  for (const p of wheelhouses().flatMap((h) => listWheels(h))) {
    const d = parseDistFileName(path.basename(p));
    const v = d && parseVersion(d.version);
    if (!d || !v || !PROJECTS.includes(d.normalized)) continue;
    const list = by.get(d.normalized) ?? [];
    if (!list.some((x) => compareVersions(x.v, v) === 0)) list.push({ path: p, v });
    by.set(d.normalized, list);
  }
  for (const list of by.values()) list.sort((a, b) => compareVersions(b.v, a.v));
  const out: string[] = [];
  let total = 0;
  for (let round = 0; total < cardBytes; round++) {
    const before = out.length;
    for (const project of PROJECTS) {
      const w = by.get(project)?.[round];
      if (!w || total >= cardBytes) continue;
      out.push(w.path);
      total += fs.statSync(w.path).size;
    }
    if (out.length === before) break;
  }
  return out;
}

/** A paquete command: its wall and CPU seconds (user + system, every thread). */
async function timed(cliArgs: string[]): Promise<{ wall: number; cpu: number; stdout: string }> {
  const out = path.join(os.tmpdir(), `.pq-place-${process.pid}`);
  const { stdout } = await run('bash', ['-c', `TIMEFORMAT='%R %U %S'; { time node '${BIN}' "$@" > '${out}'; } 2>&1`, 'x', ...cliArgs], { maxBuffer: 1 << 26 }).catch((e) => {
    throw new Error(`paquete ${cliArgs.join(' ')}: ${e.stdout || ''}${e.stderr || e.message}`);
  });
  const [wall, u, s] = stdout.trim().split('\n').pop()!.split(' ').map(Number);
  const text = fs.readFileSync(out, 'utf8');
  fs.rmSync(out, { force: true });
  return { wall, cpu: u + s, stdout: text };
}

const TICK = 100; // clock ticks per second of /proc/*/stat (USER_HZ)

/** User + system CPU seconds of each thread of process `pid` now (tid → seconds); empty once it is gone. */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      // Fields after the command name (which may hold spaces): state is the 3rd, utime the 14th.
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(f[11]) + Number(f[12])) / TICK);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/**
 * A paquete command run as its own node process: wall seconds, and CPU seconds per thread
 * (sampled; a thread's last 100 ms before it ends may be missed), the main thread's first.
 */
async function timedThreads(cliArgs: string[]): Promise<{ wall: number; cpu: number; main: number; threads: number[] }> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [BIN, ...cliArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  const seen = new Map<string, number>();
  const sample = () => {
    for (const [tid, cpu] of threadCpu(child.pid!)) seen.set(tid, cpu);
  };
  const timer = setInterval(sample, 100);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearInterval(timer);
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`paquete ${cliArgs.join(' ')}: exit ${code}: ${stderr}`);
  const main = seen.get(String(child.pid)) ?? 0;
  const threads = [...seen].filter(([tid]) => tid !== String(child.pid)).map(([, c]) => c).sort((a, b) => b - a);
  return { wall, cpu: main + threads.reduce((n, c) => n + c, 0), main, threads };
}

/** Rebuilds each wheel's stream on this thread into SHA-256: CPU seconds and whether every one matched. */
function rebuildOneThread(wheels: string[], work: string): { cpu: number; ok: boolean; deflated: number; reproduced: number } {
  let cpu = 0;
  let ok = true;
  let deflated = 0;
  let reproduced = 0;
  const contents = path.join(work, 'one.contents');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const w of wheels) {
    const form = buildStoredForm(w, contents);
    if (!form) continue;
    deflated += form.deflated;
    reproduced += form.reproduced;
    const h = createHash('sha256');
    const started = process.cpuUsage();
    const r = new Rebuilder((b) => h.update(b));
    r.push(form.recipe);
    const fd = fs.openSync(contents, 'r');
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) r.push(buf.subarray(0, n));
    fs.closeSync(fd);
    r.end();
    const used = process.cpuUsage(started);
    cpu += (used.user + used.system) / 1e6;
    ok &&= h.digest().equals(form.sha256);
  }
  fs.rmSync(contents, { force: true });
  return { cpu, ok, deflated, reproduced };
}

async function main(): Promise<void> {
  const work = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'paquete-bench-place-'));
  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(', ');
  try {
    const wheels = card();
    const total = wheels.reduce((n, w) => n + fs.statSync(w).size, 0);
    const key = path.join(work, 'k.key');
    const remote = path.join(work, 'remote');
    let pub: { wall: number; cpu: number } | undefined;
    if (!fs.existsSync(path.join(remote, 'manifest.json'))) {
      const src = path.join(work, 'w');
      fs.mkdirSync(src, { recursive: true });
      for (const w of wheels) fs.copyFileSync(w, path.join(src, path.basename(w)));
      log(`${wheels.length} wheels, ${(total / 1e6).toFixed(1)} MB: publish`);
      await timed(['keygen', '--out', key]);
      pub = await timed(['publish', `pypi:w=${src}`, '--to', remote, '--key', key, '--level', '3', '--quiet']);
      log(`published in ${pub.wall.toFixed(1)} s (${pub.cpu.toFixed(1)} s CPU)`);
    } else log(`${wheels.length} wheels, ${(total / 1e6).toFixed(1)} MB: published before in ${remote}`);
    const client = path.join(work, 'client');
    fs.rmSync(client, { recursive: true, force: true });
    await timed(['init', remote, client, '--trust', `${key}.pub`, '--quiet']);
    const loadAtStart = load();
    log(`init + sync (load ${loadAtStart})`);
    const sync = await timedThreads(['sync', '-C', client, '--quiet']);
    const loadAtEnd = load();
    const placedOk = wheels.every((w) => sha(path.join(client, 'w', path.basename(w))) === sha(w));
    fs.rmSync(client, { recursive: true, force: true });
    log(`synced in ${sync.wall.toFixed(1)} s (${sync.cpu.toFixed(1)} s CPU); rebuilding on one thread`);
    const one = rebuildOneThread(wheels, work);
    const mb = total / 1e6;
    const busiest = Math.max(sync.main, sync.threads[0] ?? 0);
    console.log('| wheels | MB | publish (wall / CPU) | sync, local remote (wall / CPU) | CPU by thread (main; others, busiest first) | on 2 idle cores, at least | rebuild, one thread (CPU) | MB per CPU second | members reproduced | identical |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    console.log(
      `| ${wheels.length} | ${mb.toFixed(1)} | ${pub ? `${pub.wall.toFixed(1)} s / ${pub.cpu.toFixed(1)} s` : 'earlier'} | ${sync.wall.toFixed(1)} s / ${sync.cpu.toFixed(1)} s | ` +
        `${sync.main.toFixed(1)}; ${sync.threads.filter((c) => c >= 0.5).map((c) => c.toFixed(1)).join(', ')} | ${Math.max(busiest, sync.cpu / 2).toFixed(1)} s | ` +
        `${one.cpu.toFixed(1)} s | ${(mb / one.cpu).toFixed(1)} | ${one.reproduced} / ${one.deflated} | ${placedOk && one.ok ? 'yes' : 'NO'} |`,
    );
    console.log(
      `\n${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}); load during the sync ${loadAtStart} → ${loadAtEnd}. Threads under 0.5 s of CPU not listed. ` +
        `Wheels: ${wheels.map((w) => path.basename(w).split('-').slice(0, 2).join(' ')).join(', ')}.`,
    );
  } finally {
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
