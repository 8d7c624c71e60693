/**
 * Issue 15.1's figures: what a client spends on a snapshot index of 1M files and 10M chunks, the
 * size of a user group's mirror. The index is built directly (no tree of 45 GB is chunked for
 * it): its body written field by field as docs/FORMATS.md §Snapshot index lays it out, stored
 * uncompressed in bench/.cache/index-scale/ (never committed). Each step then runs in a process
 * of its own under GNU time (user + system CPU seconds, peak RSS), start-up included:
 *
 *   decode    read and check the index (decodeSnapshot)
 *   dry run   decode, then plan a newcomer's 300 MB card (planSession) with every chunk missing
 *   held      decode, then plan a client that holds a tenth of the chunks (the held set is the
 *             store's answer to "which of these ids do you hold")
 *
 *   cli       `paquete sync --dry-run --budget 300MB` end to end, through nginx, against a remote
 *             whose signed manifest names this index (a tiny real publish, its snapshot swapped
 *             for the generated index: pack files are never read by a dry run). Run twice: the
 *             first fetches the index (220 MB on loopback), the second finds it in .paquete.
 *
 *   node dist/bench/index-scale.js [--files 1000000] [--chunks 10000000] [--compare OTHER_DIST] [--cli]
 *
 * `--compare DIR` runs the same steps with another build's dist/ (a checkout of main before a
 * change, built) and prints both, so before/after come from one run on one machine.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CACHE_DIR } from './corpus.js';
import { ByteWriter } from '../src/util/bytes.js';
import { decodeSnapshot, fileTableOf, snapshotFileOfBody, SNAPSHOT_VERSION } from '../src/snapshot/snapshot.js';
import { planSession } from '../src/sync/planner.js';
import { decodeManifest, encodeManifest, sha256Hex } from '../src/snapshot/manifest.js';
import { parseSecretKey } from '../src/snapshot/keys.js';
import { startNginx } from '../test/helpers/nginx.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : dflt;
};
const FILES = Number(flag('files', '1000000'));
const CHUNKS = Number(flag('chunks', String(FILES * 10)));
const COMPARE = flag('compare', '');
const STEP = flag('step', '');
const SELF = fileURLToPath(import.meta.url);
const BUDGET = 300e6;
/** What one range request's headers cost on the wire (as bench/wire measures against nginx). */
const PER_REQUEST = 400;

/** Deterministic 32-bit values (xorshift). */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

/**
 * Writes the index body: one source `src`, files of 1 to 19 chunks (10 on average) in folders of
 * 100, chunks of 1-8 KB stored at half their size in packs of up to 1 GiB, each chunk used once.
 */
function generate(files: number, chunks: number, out: string): void {
  const next = rng(files ^ chunks);
  const w = new ByteWriter(1 << 28);
  w.varint(2048).varint(8192).varint(65536).varint(1_765_000_000);
  w.varint(1).string('tree').string('src');
  const packLimit = 2 ** 30;
  const raw = new Uint32Array(chunks);
  const packOf = new Uint32Array(chunks);
  let pack = 0;
  let offset = 8;
  for (let i = 0; i < chunks; i++) {
    raw[i] = 1000 + (next() % 7000);
    const record = 17 + (raw[i] >>> 1);
    if (offset + record > packLimit) {
      pack++;
      offset = 8;
    }
    packOf[i] = pack;
    offset += record;
  }
  const packs = pack + 1;
  w.varint(packs);
  for (let p = 0; p < packs; p++) w.bytes(Buffer.alloc(32, p + 1));
  w.varint(chunks);
  const id = Buffer.alloc(8);
  for (let i = 0; i < chunks; i++) {
    id.writeUInt32BE(next(), 0);
    id.writeUInt32BE(next(), 4);
    // Offsets are gaps from the end of the pack's previous record: records back to back, gap 0.
    w.bytes(id).varint(packOf[i]).zigzag(0).u8(2).varint(raw[i]).varint(raw[i] >>> 1);
  }
  w.varint(files);
  const sha = Buffer.alloc(32);
  let at = 0;
  for (let f = 0; f < files; f++) {
    const left = files - f - 1;
    let n = 1 + (next() % 19);
    // Each file keeps at least one chunk and the last takes what remains.
    n = left === 0 ? chunks - at : Math.max(1, Math.min(n, chunks - at - left));
    let size = 0;
    for (let j = 0; j < n; j++) size += raw[at + j];
    for (let k = 0; k < 32; k += 4) sha.writeUInt32BE(next(), k);
    w.string(`src/d${Math.floor(f / 10000)}/e${Math.floor(f / 100) % 100}/f${f}.js`).varint(0o644).varint(size).bytes(sha).varint(n);
    // Chunk indices as gaps from the previous file's last: 0 for chunks laid out in file order.
    for (let j = 0; j < n; j++) w.zigzag(0);
    at += n;
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.tmp`, snapshotFileOfBody(w.finish(), SNAPSHOT_VERSION));
  fs.renameSync(`${out}.tmp`, out);
}

/** One step, in this process: what the parent times. */
function runStep(step: string, file: string): void {
  const snapshot = decodeSnapshot(fs.readFileSync(file));
  if (step === 'decode') {
    console.log(JSON.stringify({ files: fileTableOf(snapshot).length, chunks: snapshot.chunks.length }));
    return;
  }
  const present = new Set<bigint>();
  if (step === 'held') for (let i = 0; i < snapshot.chunks.length; i += 10) present.add(snapshot.chunks.id(i));
  const plan = planSession({ snapshot, present, complete: new Set(), wants: [], budget: BUDGET, requestCost: (n) => n + PER_REQUEST });
  const complete = plan.files.filter((f) => f.outcome === 'complete').length;
  console.log(JSON.stringify({ cost: plan.cost, complete, ranges: plan.ranges.length, neededBytes: plan.neededBytes }));
}

interface Row {
  build: string;
  step: string;
  cpu: number;
  rssMb: number;
  out: string;
}

/** Runs a step of `script` (this bench in some build) in a process of its own under GNU time. */
function timed(build: string, script: string, step: string, file: string): Row {
  const tfile = path.join(CACHE_DIR, 'index-scale', 'time.out');
  const r = spawnSync('/usr/bin/time', ['-o', tfile, '-f', '%U %S %M', process.execPath, '--max-old-space-size=16384', script, '--step', step, '--index', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
  const [u, s, m] = fs.readFileSync(tfile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  const out = r.status === 0 ? String(r.stdout).trim() : `FAILED: ${String(r.stderr).trim().split('\n').slice(-3).join(' ')}`;
  const row = { build, step, cpu: u + s, rssMb: m / 1024, out };
  console.error(`  ${build.padEnd(8)} ${step.padEnd(8)} ${row.cpu.toFixed(2)} s CPU, ${row.rssMb.toFixed(0)} MB  ${out}`);
  return row;
}

const CLI = path.join(path.dirname(SELF), '..', 'src', 'cli', 'main.js');

/**
 * A remote whose latest snapshot is the generated index: a real publish of a one-file tree
 * (keys, manifest), then a manifest signed with the same key naming the index instead.
 */
function remoteOf(index: string, dir: string): string {
  const remote = path.join(dir, 'remote');
  if (fs.existsSync(path.join(dir, 'ready'))) return remote;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'src', 'a.txt'), 'a\n');
  const run = (...a: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...a], { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`paquete ${a.join(' ')}: ${r.stderr}`);
  };
  run('keygen', '--out', 'k', '-q');
  run('publish', 'tree:src=src', '--to', 'remote', '--key', 'k', '-q');
  const bytes = fs.readFileSync(index);
  const name = sha256Hex(bytes);
  fs.linkSync(index, path.join(remote, 'snapshots', `${name}.snap`));
  const m = decodeManifest(fs.readFileSync(path.join(remote, 'manifest.json')), 'm').body;
  const snapshot = decodeSnapshot(bytes);
  const entry = {
    name,
    size: bytes.length,
    created: new Date().toISOString(),
    files: fileTableOf(snapshot).length,
    bytes: fileTableOf(snapshot).size.reduce((a, b) => a + b, 0),
    sources: snapshot.sources,
  };
  const { key } = parseSecretKey(fs.readFileSync(path.join(dir, 'k'), 'utf8'), 'k');
  fs.writeFileSync(path.join(remote, 'manifest.json'), encodeManifest({ ...m, serial: m.serial + 1, snapshots: [...m.snapshots, entry] }, key));
  fs.writeFileSync(path.join(dir, 'ready'), '');
  return remote;
}

/** `paquete sync --dry-run` end to end under GNU time, twice (index fetched, then cached). */
async function cliRows(index: string): Promise<Row[]> {
  const dir = path.join(CACHE_DIR, 'index-scale', `cli-${FILES}-${CHUNKS}`);
  const remote = remoteOf(index, dir);
  const ng = await startNginx(remote);
  const rows: Row[] = [];
  try {
    const work = path.join(dir, 'work');
    fs.rmSync(work, { recursive: true, force: true });
    const init = spawnSync(process.execPath, [CLI, 'init', ng.url, work, '--trust', path.join(dir, 'k.pub'), '-q'], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`init: ${init.stderr}`);
    for (const step of ['cli (index fetched)', 'cli (index cached)']) {
      const tfile = path.join(CACHE_DIR, 'index-scale', 'time.out');
      // --prof DIR: a CPU profile of each run (node --cpu-prof) there.
      const prof = flag('prof', '') ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(flag('prof', ''))}`] : [];
      const r = spawnSync('/usr/bin/time', ['-o', tfile, '-f', '%U %S %M', process.execPath, ...prof, CLI, 'sync', '-C', work, '--dry-run', '--budget', '300MB'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const [u, s, m] = fs.readFileSync(tfile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      const out = r.status === 0 ? r.stdout.trim().split('\n').slice(-2).join(' ') : `FAILED: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`;
      const row = { build: 'this', step, cpu: u + s, rssMb: m / 1024, out };
      console.error(`  this     ${step} ${row.cpu.toFixed(2)} s CPU, ${row.rssMb.toFixed(0)} MB  ${out}`);
      rows.push(row);
    }
  } finally {
    await ng.stop();
  }
  return rows;
}

async function main(): Promise<void> {
  if (STEP) return runStep(STEP, flag('index', ''));
  const file = path.join(CACHE_DIR, 'index-scale', `index-${FILES}-${CHUNKS}.snap`);
  if (!fs.existsSync(file)) {
    console.error(`building an index of ${FILES} files and ${CHUNKS} chunks…`);
    generate(FILES, CHUNKS, file);
  }
  console.error(`index: ${(fs.statSync(file).size / 1e6).toFixed(1)} MB uncompressed`);
  const builds: [string, string][] = [['this', SELF]];
  if (COMPARE) builds.unshift(['compare', path.join(path.resolve(COMPARE), 'bench', 'index-scale.js')]);
  const rows: Row[] = [];
  if (!args.includes('--cli-only')) for (const step of ['decode', 'dry-run', 'held']) for (const [name, script] of builds) rows.push(timed(name, script, step === 'dry-run' ? 'plan' : step, file));
  if (args.includes('--cli') || args.includes('--cli-only')) rows.push(...(await cliRows(file)));
  console.log(`\n${FILES} files, ${CHUNKS} chunks\n`);
  console.log('| step | build | CPU s | peak RSS MB |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.step} | ${r.build} | ${r.cpu.toFixed(2)} | ${r.rssMb.toFixed(0)} |`);
}

await main();
