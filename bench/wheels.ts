/**
 * Wheels as contents + a recipe, on real pairs of this machine's wheelhouse (issue 16):
 *
 *   node dist/bench/wheels.js                               the newest pair of numpy, scipy, transformers, botocore
 *   node dist/bench/wheels.js --projects numpy --all        every consecutive pair of numpy (same build kind)
 *   node dist/bench/wheels.js --projects scipy --all --last 3   the 3 newest pairs
 *   node dist/bench/wheels.js --pairs numpy:2.4.0:2.4.1,scipy:1.17.0:1.17.1   these pairs
 *   node dist/bench/wheels.js --json out.json               also every measurement as JSON (written after each pair)
 *
 * Per pair OLD → NEW (wheels found through `pip config list`, bench/corpus.ts wheelhouses):
 *   wheels       the two wheel sizes
 *   floors       `zstd -19 --long=27 --patch-from=OLD NEW` over the wheel files, and over tars of
 *                their unpacked contents (`python3 -m zipfile -e`, bench/corpus.ts tarOf); and
 *                `zstd -19 --long=27` of NEW's contents tar (a first download's floor); cached by
 *                file name in bench/.cache/wheels-floors.json (minutes of zstd -19 per pair)
 *   paquete      publish a pypi source holding OLD, a client syncs it over nginx; publish NEW (the
 *                source now holds NEW), the client syncs (the update); a fresh client syncs NEW
 *                (the first download). Bytes from nginx's access log (request + response, every
 *                request); the placed wheel is checked against NEW's SHA-256
 *   members      deflated members of NEW, how many zlib reproduced (publish --json)
 *   rebuild      NEW rebuilt from its stream in this process (src/rebuild/recipe.ts Rebuilder):
 *                CPU seconds and MB/s of wheel output, one thread
 * Targets: update ≤ 1.5 × patch-from over contents + 16 KiB; first ≤ 1.05 × zstd of contents.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CACHE_DIR, listWheels, tarOf, wheelhouses } from './corpus.js';
import { compareVersions, parseVersion } from '../src/sources/pep440.js';
import { parseDistFileName } from '../src/sources/pypi.js';
import { buildStoredForm } from '../src/rebuild/form.js';
import { Rebuilder } from '../src/rebuild/recipe.js';
import { LogEntry, NginxServer, startNginx } from '../test/helpers/nginx.js';

const run = promisify(execFile);
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'paquete.js');
const args = process.argv.slice(2);
const argValue = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const projects = (argValue('--projects') ?? 'numpy,scipy,transformers,botocore').split(',');
const allPairs = args.includes('--all');
/** --last N: only the N newest pairs of each project (with --all). */
const lastPairs = Number(argValue('--last') ?? 0);

interface Row {
  pair: string;
  oldWheel: number;
  newWheel: number;
  patchWheels: number;
  patchContents: number;
  zstdContents: number;
  update?: number;
  first?: number;
  deflated?: number;
  reproduced?: number;
  rebuildCpu?: number;
  publishCpu?: number;
  ok?: boolean;
  error?: string;
}

const log = (m: string) => console.error(`[wheels ${new Date().toISOString().slice(11, 19)}] ${m}`);
const fmt = (n: number | undefined) => (n === undefined ? '—' : n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

/** --pairs numpy:2.4.0:2.4.1,scipy:1.17.0:1.17.1: these pairs, in this order, instead of --projects. */
const namedPairs = argValue('--pairs')?.split(',').map((p) => p.split(':'));

function pairNamed(project: string, oldV: string, newV: string): [string, string] {
  const find = (v: string) => {
    const p = wheelhouses()
      .flatMap((h) => listWheels(h))
      .find((w) => parseDistFileName(path.basename(w))?.normalized === project && parseDistFileName(path.basename(w))?.version === v);
    if (!p) throw new Error(`no ${project} ${v} wheel in the wheelhouse`);
    return p;
  };
  return [find(oldV), find(newV)];
}

/** Consecutive versions of one project with the same build (pure, or the same Python tag). */
function pairsOf(project: string): [string, string][] {
  const groups = new Map<string, { path: string; v: NonNullable<ReturnType<typeof parseVersion>> }[]>();
  for (const p of wheelhouses().flatMap((h) => listWheels(h))) {
    const d = parseDistFileName(path.basename(p));
    const v = d && parseVersion(d.version);
    if (!d || !v || !d.tags || d.normalized !== project) continue;
    const build = d.tags.platform.includes('any') ? 'pure' : d.tags.python.join('.');
    const list = groups.get(build) ?? [];
    if (!list.some((x) => compareVersions(x.v, v) === 0)) list.push({ path: p, v });
    groups.set(build, list);
  }
  const out: [string, string][] = [];
  for (const list of groups.values()) {
    list.sort((a, b) => compareVersions(a.v, b.v));
    for (let i = 1; i < list.length; i++) out.push([list[i - 1].path, list[i].path]);
  }
  out.sort((a, b) => compareVersions(parseVersion(parseDistFileName(path.basename(a[1]))!.version)!, parseVersion(parseDistFileName(path.basename(b[1]))!.version)!));
  return allPairs ? out.slice(-lastPairs) : out.slice(-1);
}

/** zstd's sizes by command line (file names only: wheels never change under their name), in bench/.cache. */
const FLOORS = path.join(CACHE_DIR, 'wheels-floors.json');
const floors: Record<string, number> = fs.existsSync(FLOORS) ? JSON.parse(fs.readFileSync(FLOORS, 'utf8')) : {};

async function zstdSize(zargs: string[]): Promise<number> {
  const key = zargs.map((a) => a.replace(/^(--patch-from=)?.*\//, '$1')).join(' ');
  if (floors[key] === undefined) {
    floors[key] = await zstdRun(zargs);
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    fs.writeFileSync(FLOORS, JSON.stringify(floors, null, 1));
  }
  return floors[key];
}

async function zstdRun(zargs: string[]): Promise<number> {
  const { stdout } = await run('bash', ['-c', `zstd -q -c ${zargs.map((a) => `'${a}'`).join(' ')} | wc -c`], { maxBuffer: 1 << 20 });
  return Number(stdout.trim());
}

async function unpackTar(wheel: string, work: string): Promise<string> {
  const dir = path.join(work, 'unpacked', path.basename(wheel));
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true });
    await run('python3', ['-m', 'zipfile', '-e', wheel, dir], { maxBuffer: 1 << 24 });
  }
  return tarOf(dir, path.basename(wheel));
}

/** paquete's CLI; returns stdout and its CPU seconds (user + system of the child). */
async function paquete(cliArgs: string[]): Promise<{ stdout: string; cpu: number }> {
  // A file of this process's own: two runs side by side must not read each other's output.
  const outFile = path.join(os.tmpdir(), `.pq-bench-out-${process.pid}`);
  const { stdout } = await run('bash', ['-c', `TIMEFORMAT='%U %S'; { time node '${BIN}' "$@" > '${outFile}'; } 2>&1; cat '${outFile}' >&2`, 'x', ...cliArgs], { maxBuffer: 1 << 26 }).catch((e) => {
    throw new Error(`paquete ${cliArgs.join(' ')}: ${e.stderr || e.message}`);
  });
  const [u, s] = stdout.trim().split('\n').pop()!.split(' ').map(Number);
  const out = fs.readFileSync(outFile, 'utf8');
  fs.rmSync(outFile, { force: true });
  return { stdout: out, cpu: u + s };
}

async function settled(ng: NginxServer): Promise<LogEntry[]> {
  let prev = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 150));
    const e = await ng.accessLog();
    if (e.length === prev) return e;
    prev = e.length;
  }
}

async function counted(ng: NginxServer, fn: () => Promise<unknown>): Promise<number> {
  await settled(ng);
  await ng.clearLog();
  await fn();
  return (await settled(ng)).reduce((n, e) => n + e.bytesSent + e.requestLength, 0);
}

function rebuildCpu(wheel: string, work: string): { cpu: number; ok: boolean } {
  const contents = path.join(work, 'bench.contents');
  const form = buildStoredForm(wheel, contents)!;
  const h = createHash('sha256');
  const started = process.cpuUsage();
  const r = new Rebuilder((b) => h.update(b));
  r.push(form.recipe);
  const fd = fs.openSync(contents, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) r.push(buf.subarray(0, n));
  fs.closeSync(fd);
  r.end();
  const used = process.cpuUsage(started);
  fs.rmSync(contents, { force: true });
  return { cpu: (used.user + used.system) / 1e6, ok: h.digest('hex') === Buffer.from(form.sha256).toString('hex') };
}

async function measure(oldW: string, newW: string, work: string, ng: NginxServer, key: string): Promise<Row> {
  const name = (p: string) => parseDistFileName(path.basename(p))!;
  const row: Row = {
    pair: `${name(newW).normalized} ${name(oldW).version} → ${name(newW).version}`,
    oldWheel: fs.statSync(oldW).size,
    newWheel: fs.statSync(newW).size,
    patchWheels: 0,
    patchContents: 0,
    zstdContents: 0,
  };
  log(`${row.pair}: floors`);
  const [oldTar, newTar] = [await unpackTar(oldW, work), await unpackTar(newW, work)];
  row.patchWheels = await zstdSize(['-19', '--long=27', `--patch-from=${oldW}`, newW]);
  row.patchContents = await zstdSize(['-19', '--long=27', `--patch-from=${oldTar}`, newTar]);
  row.zstdContents = await zstdSize(['-19', '--long=27', newTar]);
  const slug = row.pair.replace(/[^a-z0-9.]+/gi, '-');
  const remote = path.join(ng.rootDir, slug);
  const src = path.join(work, `${slug}-src`);
  const [c1, c2] = [path.join(work, `${slug}-c1`), path.join(work, `${slug}-c2`)];
  for (const d of [remote, src, c1, c2]) fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(src, { recursive: true });
  const url = `${ng.url}${slug}/`;
  try {
    log(`${row.pair}: publish OLD, sync`);
    fs.copyFileSync(oldW, path.join(src, path.basename(oldW)));
    await paquete(['publish', `pypi:p=${src}`, '--to', remote, '--key', key, '--json', '--quiet']);
    await paquete(['init', url, c1, '--trust', `${key}.pub`, '--quiet']);
    await paquete(['sync', '-C', c1, '--quiet']);
    log(`${row.pair}: publish NEW, update, first download`);
    fs.rmSync(path.join(src, path.basename(oldW)));
    fs.copyFileSync(newW, path.join(src, path.basename(newW)));
    const pub = await paquete(['publish', `pypi:p=${src}`, '--to', remote, '--key', key, '--json', '--quiet']);
    const rebuilt = (JSON.parse(pub.stdout) as { rebuilt: { deflated: number; reproduced: number } }).rebuilt;
    row.deflated = rebuilt.deflated;
    row.reproduced = rebuilt.reproduced;
    row.publishCpu = pub.cpu;
    row.update = await counted(ng, () => paquete(['sync', '-C', c1, '--quiet']));
    row.first = await counted(ng, async () => {
      await paquete(['init', url, c2, '--trust', `${key}.pub`, '--quiet']);
      await paquete(['sync', '-C', c2, '--quiet']);
    });
    const want = sha(newW);
    row.ok = [c1, c2].every((c) => sha(path.join(c, 'p', path.basename(newW))) === want);
    log(`${row.pair}: rebuild time`);
    const rb = rebuildCpu(newW, work);
    row.rebuildCpu = rb.cpu;
    row.ok &&= rb.ok;
  } catch (e) {
    row.error = (e as Error).message.slice(0, 300);
  } finally {
    for (const d of [remote, src, c1, c2]) fs.rmSync(d, { recursive: true, force: true });
  }
  return row;
}

function table(rows: Row[]): string {
  const head = ['pair', 'old / new wheel', 'patch-from wheels', 'patch-from contents', 'paquete update', 'update / target', 'zstd contents', 'paquete first', 'first / target', 'members reproduced', 'rebuild (1 thread)', 'ok'];
  const lines = rows.map((r) => {
    const updTarget = 1.5 * r.patchContents + 16384;
    const firstTarget = 1.05 * r.zstdContents;
    return [
      r.pair,
      `${fmt(r.oldWheel)} / ${fmt(r.newWheel)}`,
      fmt(r.patchWheels),
      fmt(r.patchContents),
      fmt(r.update),
      r.update === undefined ? '—' : `${(r.update / updTarget).toFixed(2)}`,
      fmt(r.zstdContents),
      fmt(r.first),
      r.first === undefined ? '—' : `${(r.first / firstTarget).toFixed(2)}`,
      r.deflated === undefined ? '—' : `${r.reproduced} / ${r.deflated}`,
      r.rebuildCpu === undefined ? '—' : `${r.rebuildCpu.toFixed(1)} s CPU, ${(r.newWheel / 1e6 / r.rebuildCpu).toFixed(1)} MB/s`,
      r.error ? `error: ${r.error}` : r.ok ? 'yes' : 'NO',
    ];
  });
  const md = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [md(head), md(head.map(() => '---')), ...lines.map(md)].join('\n');
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'paquete-bench-wheels-'));
  const www = path.join(work, 'www');
  fs.mkdirSync(www);
  const ng = await startNginx(www);
  const key = path.join(work, 'k.key');
  await paquete(['keygen', '--out', key]);
  const rows: Row[] = [];
  const json = argValue('--json');
  const started = Date.now();
  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(', ');
  const loadAtStart = load();
  try {
    for (const project of namedPairs ? [''] : projects) {
      const pairs = namedPairs ? namedPairs.map(([p, a, b]) => pairNamed(p, a, b)) : pairsOf(project);
      if (!pairs.length) log(`${project}: no pair of wheels in the wheelhouse`);
      for (const [a, b] of pairs) {
        rows.push(await measure(a, b, work, ng, key));
        // Each row as it is measured: a long run that is stopped keeps what it measured.
        log(`row ${JSON.stringify(rows[rows.length - 1])}`);
        if (json) fs.writeFileSync(json, JSON.stringify(rows, null, 1));
      }
    }
  } finally {
    await ng.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(table(rows));
  console.log(
    `\nBytes of paquete from nginx's access log (request + response, every request); targets: update ≤ 1.5 × patch-from over ` +
      `contents + 16 KiB, first ≤ 1.05 × zstd -19 --long=27 of the contents (ratios ≤ 1.00 meet them). Rebuild: NEW rebuilt from ` +
      `its stream in one thread, CPU seconds and wheel MB per CPU second. ${((Date.now() - started) / 1000).toFixed(0)} s; load ${loadAtStart} → ${load()}.`,
  );
  if (json) fs.writeFileSync(json, JSON.stringify(rows, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
