/**
 * Issue 15's table: how paquete's commands grow with the number of files, beside `rsync -a` and
 * casync on the same trees, in one run. Each step is a separate process timed by GNU time
 * (/usr/bin/time: wall seconds, user + system CPU seconds, peak RSS), so start-up is counted as a
 * user pays it.
 *
 *   node dist/bench/scale.js [--files 10000,100000] [--level 9] [--publish-only] [--json FILE] [--before OTHER/bin/paquete.js]
 *
 * Trees are generated (deterministic text files of 200 B to 8 KB, 100 per folder, ~2 KB on
 * average) into bench/.cache/scale/, never committed. The remote is a local directory, so the
 * rows measure CPU, memory and disk work, not the link (bench/wire measures bytes). `--level`
 * sets the publisher's zstd level (default 9 here: level 19 spends minutes on the newcomers'
 * stream of a 200 MB tree, which is not what this table is about). `--publish-only` runs the
 * publisher's rows alone (first publish, 1% changed, and their ratio: issue 15 item 5 bounds it at
 * a quarter), so 300k files fit in a few minutes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CACHE_DIR } from './corpus.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : dflt;
};
const SIZES = flag('files', '10000,100000').split(',').map(Number);
const LEVEL = flag('level', '9');
const JSON_OUT = args.includes('--json') ? flag('json', '') : '';
const PUBLISH_ONLY = args.includes('--publish-only');
const BIN = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'bin', 'paquete.js');
/**
 * `--before BIN`: another build's bin/paquete.js (a checkout of an earlier commit, built): its
 * client rows are measured in the same run, each right after this build's, on a mirror of its
 * own, so a busy machine's load falls on both columns alike.
 */
const BEFORE = flag('before', '') && path.resolve(flag('before', ''));

interface Row {
  files: number;
  step: string;
  wall: number;
  cpu: number;
  rssMb: number;
  ok: boolean;
  note?: string;
}
const rows: Row[] = [];

/** Runs a command under GNU time; returns its measurements. */
function timed(files: number, step: string, cmd: string, argv: string[], cwd: string): Row {
  const tfile = path.join(CACHE_DIR, 'scale', 'time.out');
  const r = spawnSync('/usr/bin/time', ['-o', tfile, '-f', '%e %U %S %M', cmd, ...argv], { cwd, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  const [e, u, s, m] = fs.readFileSync(tfile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  // paquete's exit 3 (budget) never happens here: any non-zero is a failure worth showing.
  const ok = r.status === 0;
  const row: Row = { files, step, wall: e, cpu: u + s, rssMb: m / 1024, ok, note: ok ? undefined : String(r.stderr).trim().split('\n').pop() };
  rows.push(row);
  console.error(`  ${step.padEnd(28)} ${e.toFixed(2)} s wall, ${(u + s).toFixed(2)} s CPU, ${(m / 1024).toFixed(0)} MB${ok ? '' : `  FAILED: ${row.note}`}`);
  return row;
}

/** A deterministic tree of `n` text files. Cached. */
function generate(n: number): string {
  const dir = path.join(CACHE_DIR, 'scale', `tree-${n}`);
  if (fs.existsSync(path.join(dir, '.complete'))) return path.join(dir, 'src');
  fs.rmSync(dir, { recursive: true, force: true });
  let seed = n;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const words = 'const let function return import export class value index length push map filter reduce async await'.split(' ');
  for (let i = 0; i < n; i++) {
    const folder = path.join(dir, 'src', `d${Math.floor(i / 10000)}`, `e${Math.floor(i / 100) % 100}`);
    if (i % 100 === 0) fs.mkdirSync(folder, { recursive: true });
    const size = Math.floor(200 + rnd() * rnd() * 8000);
    let text = `// file ${i}\n`;
    while (text.length < size) text += words[Math.floor(rnd() * words.length)] + (rnd() < 0.1 ? '\n' : ' ');
    fs.writeFileSync(path.join(folder, `f${i}.js`), text);
  }
  fs.writeFileSync(path.join(dir, '.complete'), '');
  return path.join(dir, 'src');
}

/** Changes 1% of the files (an append each), for the update rows. */
function touchOnePercent(src: string, n: number): void {
  for (let i = 0; i < n; i += 100) {
    const f = path.join(src, `d${Math.floor(i / 10000)}`, `e${Math.floor(i / 100) % 100}`, `f${i}.js`);
    fs.appendFileSync(f, `\n// changed\n`);
  }
}

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

for (const n of SIZES) {
  console.error(`\n${n} files`);
  const src0 = generate(n);
  const work = path.join(CACHE_DIR, 'scale', `run-${n}`);
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  // The publisher's state (src/publish/publisher-cache.ts) of this run's remote, removed with it, not left in ~/.local/state.
  process.env.XDG_STATE_HOME = path.join(work, 'state');
  // A copy to change for the update rows, so the cached tree stays as generated.
  execFileSync('cp', ['-a', src0, path.join(work, 'src')]);
  const pq = (step: string, ...argv: string[]) => timed(n, step, process.execPath, [BIN, ...argv], work);
  execFileSync(process.execPath, [BIN, 'keygen', '--out', 'k'], { cwd: work, stdio: 'ignore' });
  const first = pq('publish (first)', 'publish', 't=src', '--to', 'remote', '--key', 'k', '--level', LEVEL);
  if (PUBLISH_ONLY) {
    touchOnePercent(path.join(work, 'src'), n);
    const update = pq('publish (1% changed)', 'publish', 't=src', '--to', 'remote', '--key', 'k', '--level', LEVEL);
    rows.push({ files: n, step: 'publish 1% / first (CPU; bound 0.25)', wall: 0, cpu: update.cpu / first.cpu, rssMb: 0, ok: true });
    // Wall too: compression runs on one worker per core, so wall is below CPU on an idle machine (not on a loaded one).
    rows.push({ files: n, step: 'publish 1% / first (wall)', wall: 0, cpu: update.wall / first.wall, rssMb: 0, ok: true });
    rows.push({ files: n, step: 'publish peak RSS per file (KB, first / 1%)', wall: 0, cpu: 0, rssMb: 0, ok: true, note: `${((first.rssMb * 1024) / n).toFixed(1)} / ${((update.rssMb * 1024) / n).toFixed(1)}` });
    fs.rmSync(work, { recursive: true, force: true });
    continue;
  }
  const before = (step: string, ...argv: string[]) => BEFORE && timed(n, `${step} [before]`, process.execPath, [BEFORE, ...argv], work);
  pq('init', 'init', 'remote', 'mirror', '--trust', 'k.pub');
  if (BEFORE) execFileSync(process.execPath, [BEFORE, 'init', 'remote', 'mirror-before', '--trust', 'k.pub'], { cwd: work, stdio: 'ignore' });
  pq('sync (first)', 'sync', '-C', 'mirror', '-q');
  before('sync (first)', 'sync', '-C', 'mirror-before', '-q');
  pq('sync (nothing new)', 'sync', '-C', 'mirror', '-q');
  before('sync (nothing new)', 'sync', '-C', 'mirror-before', '-q');
  pq('sync --dry-run (nothing new)', 'sync', '-C', 'mirror', '--dry-run', '-q');
  pq('status', 'status', '-C', 'mirror');
  pq('verify', 'verify', '-C', 'mirror');
  touchOnePercent(path.join(work, 'src'), n);
  pq('publish (1% changed)', 'publish', 't=src', '--to', 'remote', '--key', 'k', '--level', LEVEL);
  pq('sync (1% changed)', 'sync', '-C', 'mirror', '-q');
  before('sync (1% changed)', 'sync', '-C', 'mirror-before', '-q');
  if (have('rsync')) {
    timed(n, 'rsync -a (first)', 'rsync', ['-a', `${src0}/`, 'rsync-dst/'], work);
    timed(n, 'rsync -a (nothing changed)', 'rsync', ['-a', `${src0}/`, 'rsync-dst/'], work);
  } else rows.push({ files: n, step: 'rsync -a', wall: 0, cpu: 0, rssMb: 0, ok: false, note: 'rsync not installed (apt-get install rsync)' });
  if (have('casync')) {
    timed(n, 'casync make', 'casync', ['make', '--store=castr', 'tree.caidx', src0], work);
    timed(n, 'casync extract', 'casync', ['extract', '--store=castr', 'tree.caidx', 'ca-dst'], work);
  } else rows.push({ files: n, step: 'casync', wall: 0, cpu: 0, rssMb: 0, ok: false, note: 'casync not installed (apt-get install casync)' });
  fs.rmSync(work, { recursive: true, force: true });
}

const steps = [...new Set(rows.map((r) => r.step))];
console.log(`\n| step | ${SIZES.map((n) => `${n.toLocaleString('en')} files: wall s / CPU s / peak MB`).join(' | ')} |`);
console.log(`|---|${SIZES.map(() => '---').join('|')}|`);
for (const step of steps) {
  const cells = SIZES.map((n) => {
    const r = rows.find((x) => x.files === n && x.step === step);
    if (!r) return '';
    if (r.step.includes(' / first')) return r.cpu.toFixed(2);
    if (r.step.includes('per file')) return r.note!;
    return r.ok ? `${r.wall.toFixed(2)} / ${r.cpu.toFixed(2)} / ${r.rssMb.toFixed(0)}` : `n/a (${r.note})`;
  });
  console.log(`| ${step} | ${cells.join(' | ')} |`);
}
if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify(rows, null, 2));
