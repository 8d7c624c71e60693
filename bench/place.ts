/**
 * How fast a card's worth of wheels is placed (issue 16: 300 MB in under a minute on this kind of
 * machine). Wheels are stored as contents + a recipe (src/rebuild/), so placing one deflates its
 * members again: the client's heaviest CPU work.
 *
 *   node dist/bench/place.js                 ~300 MB of numpy, scipy, transformers, botocore wheels
 *   node dist/bench/place.js --mb 100        a smaller card
 *
 * Publishes the wheels (a pypi source, updates at zstd -3: the level changes what a client
 * downloads, not what placing costs) to a local remote, then times `paquete init` + `paquete
 * sync` of a fresh client from it as one CLI process: wall time and the process's CPU (every
 * thread: the main one decoding, the place workers rebuilding, checking and writing). A local
 * remote, so the time is the client's own: on a park's link the download takes far longer and
 * placement runs beside it. Then the same streams rebuilt in this process on one thread
 * (Rebuilder into SHA-256, no disk): the deflate's own rate. Every placed file is checked against
 * the original's SHA-256.
 */
import { execFile } from 'node:child_process';
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
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'paquete-bench-place-'));
  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(', ');
  const loadAtStart = load();
  try {
    const wheels = card();
    const total = wheels.reduce((n, w) => n + fs.statSync(w).size, 0);
    const src = path.join(work, 'w');
    fs.mkdirSync(src);
    for (const w of wheels) fs.copyFileSync(w, path.join(src, path.basename(w)));
    log(`${wheels.length} wheels, ${(total / 1e6).toFixed(1)} MB: publish`);
    const key = path.join(work, 'k.key');
    await timed(['keygen', '--out', key]);
    const pub = await timed(['publish', `pypi:w=${src}`, '--to', path.join(work, 'remote'), '--key', key, '--level', '3', '--quiet']);
    log(`published in ${pub.wall.toFixed(1)} s (${pub.cpu.toFixed(1)} s CPU); init + sync`);
    const client = path.join(work, 'client');
    await timed(['init', path.join(work, 'remote'), client, '--trust', `${key}.pub`, '--quiet']);
    const sync = await timed(['sync', '-C', client, '--quiet']);
    const placedOk = wheels.every((w) => sha(path.join(client, 'w', path.basename(w))) === sha(w));
    log(`synced in ${sync.wall.toFixed(1)} s (${sync.cpu.toFixed(1)} s CPU); rebuilding on one thread`);
    const one = rebuildOneThread(wheels, work);
    const mb = total / 1e6;
    console.log('| wheels | MB | publish (wall / CPU) | init + sync, local remote (wall / CPU) | placed MB/s (wall) | rebuild, one thread (CPU) | MB per CPU second | members reproduced | identical |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    console.log(
      `| ${wheels.length} | ${mb.toFixed(1)} | ${pub.wall.toFixed(1)} s / ${pub.cpu.toFixed(1)} s | ${sync.wall.toFixed(1)} s / ${sync.cpu.toFixed(1)} s | ${(mb / sync.wall).toFixed(1)} | ` +
        `${one.cpu.toFixed(1)} s | ${(mb / one.cpu).toFixed(1)} | ${one.reproduced} / ${one.deflated} | ${placedOk && one.ok ? 'yes' : 'NO'} |`,
    );
    console.log(`\n${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}); load ${loadAtStart} → ${load()}. Wheels: ${wheels.map((w) => path.basename(w).split('-').slice(0, 2).join(' ')).join(', ')}.`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
