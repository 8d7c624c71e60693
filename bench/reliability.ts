/**
 * The long reliability suite (issue 7): kill -9 at random instants during sync, publish, import,
 * export and gc, by the hundred, and what each kill left behind.
 *
 *   node dist/bench/reliability.js                 40 trials per operation
 *   node dist/bench/reliability.js --trials 100    more
 *   node dist/bench/reliability.js --ops sync,gc --seed 7 --jobs 2
 *
 * Every trial: run the command, SIGKILL it after a random delay in [0, 1.1 × an uninterrupted
 * run's duration], then check
 *   verify ok    `paquete verify` passes in the directory (for publish: a fresh init + sync from
 *                the remote works, i.e. the remote still verifies)
 *   files ok     every file in the tree is exactly a published one (nothing wrong or half-written);
 *                for publish: the fresh directory holds exactly the last complete snapshot
 *   next ok      the same command, run again, completes (exit 0) and leaves the full tree
 *   lost         files in place before the kill that are gone or changed after it, plus trials
 *                whose final tree differs from the source (must be 0)
 * "faults" counts the kills that landed while the command was still running (the others found it
 * finished). The CI-sized version of these trials is test/gauntlet.test.ts.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanupAll, runPaquete, tmpDir } from '../test/helpers/tmp.js';
import { pseudoRandom, seededRandom as rng, treeDigest, writeTree } from '../test/helpers/trees.js';

type Op = 'sync' | 'publish' | 'import' | 'export' | 'gc';
const ALL_OPS: Op[] = ['sync', 'publish', 'import', 'export', 'gc'];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const TRIALS = Number(arg('trials') ?? 40);
const OPS = (arg('ops')?.split(',') ?? ALL_OPS) as Op[];
const SEED = Number(arg('seed') ?? Date.now() % 2 ** 31);
const JOBS = Number(arg('jobs') ?? Math.max(1, Math.min(OPS.length, os.availableParallelism())));

interface Row {
  op: Op;
  trials: number;
  faults: number;
  verifyOk: number;
  filesOk: number;
  nextOk: number;
  lost: number;
  seconds: number;
  failures: string[];
}

class Failed extends Error {}

async function pq(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const r = await runPaquete(args, { cwd, timeoutMs: 120_000 }).done;
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, ms: r.durationMs };
}
async function must(args: string[], cwd: string): Promise<number> {
  const r = await pq(args, cwd);
  if (r.code !== 0) throw new Failed(`paquete ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().split('\n')[0]}`);
  return r.ms;
}
async function killAfter(args: string[], cwd: string, ms: number): Promise<boolean> {
  const p = runPaquete(args, { cwd, timeoutMs: 120_000 });
  const timer = setTimeout(() => p.kill('SIGKILL'), ms);
  const r = await p.done;
  clearTimeout(timer);
  if (r.signal !== 'SIGKILL' && r.code !== 0) throw new Failed(`paquete ${args.join(' ')} failed before the kill (${r.code}): ${r.stderr.trim().split('\n')[0]}`);
  return r.signal === 'SIGKILL';
}

const prefixed = (d: Record<string, string>, p: string) => Object.fromEntries(Object.entries(d).map(([k, v]) => [`${p}/${k}`, v]));
/** Files in `work` that are not exactly the published ones. */
function wrongFiles(work: string, want: Record<string, string>): string[] {
  const got = existsSync(work) ? treeDigest(work) : {};
  return Object.entries(got).filter(([p, d]) => want[p] !== d).map(([p]) => p);
}
/** Files of `before` that are no longer there, unchanged, in `work`. */
function lostFiles(work: string, before: Record<string, string>): number {
  const got = existsSync(work) ? treeDigest(work) : {};
  return Object.entries(before).filter(([p, d]) => got[p] !== d).length;
}
const same = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
const serialOf = (remote: string): number => (JSON.parse(readFileSync(path.join(remote, 'manifest.json'), 'utf8')) as { signed: { serial: number } }).signed.serial;

/** One source tree of ~5 MB in 9 files, incompressible (so transfers take time), plus a small text file. */
function makeSource(dir: string, seed: number): Record<string, string> {
  const files: Record<string, Uint8Array | string> = { 'note.txt': `seed ${seed}\n` };
  for (let i = 0; i < 8; i++) files[`f${i}.bin`] = pseudoRandom(250_000 + i * 100_000, seed * 100 + i);
  files['big/huge.bin'] = pseudoRandom(1_200_000, seed * 100 + 99);
  rmSync(dir, { recursive: true, force: true });
  writeTree(dir, files);
  return treeDigest(dir);
}

async function runOp(op: Op, root: string, rand: () => number): Promise<Row> {
  const row: Row = { op, trials: 0, faults: 0, verifyOk: 0, filesOk: 0, nextOk: 0, lost: 0, seconds: 0, failures: [] };
  const t0 = performance.now();
  const dir = path.join(root, op);
  mkdirSync(dir, { recursive: true });
  await must(['keygen', '--out', 'pub.key'], dir);
  const src = path.join(dir, 'site');
  let source = prefixed(makeSource(src, 1), 'site');
  await must(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);

  // Per operation: set-up, the command to kill, how to check, the command that must complete.
  let full = 0;
  let prepare: (k: number) => Promise<{ work: string; before: Record<string, string> }>;
  let command: (k: number) => string[];
  let verifyAndFiles: (k: number, work: string) => Promise<[boolean, boolean]>;
  let finish: (k: number, work: string) => Promise<boolean>;
  let lastVerify = '';
  const verifyIn = async (work: string) => {
    const r = await pq(['verify', '-C', work], dir);
    lastVerify = `exit ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' / ')}`;
    return r.code === 0;
  };

  if (op === 'sync') {
    prepare = async (k) => {
      const w = path.join(dir, `w${k}`);
      await must(['init', 'remote', w, '--trust', 'pub.key.pub'], dir);
      return { work: w, before: {} };
    };
    command = (k) => ['sync', '-C', `w${k}`];
    verifyAndFiles = async (_k, w) => [await verifyIn(w), wrongFiles(w, source).length === 0];
    finish = async (k, w) => {
      await must(['sync', '-C', `w${k}`], dir);
      return same(treeDigest(w), source);
    };
    const w = (await prepare(0)).work;
    full = await must(command(0), dir);
    rmSync(w, { recursive: true, force: true });
  } else if (op === 'publish') {
    const digests = new Map<number, Record<string, string>>([[1, source]]);
    let expectNext = source;
    prepare = async (k) => {
      expectNext = prefixed(makeSource(src, 1 + (k % 5) + 1), 'site');
      digests.set(serialOf(path.join(dir, 'remote')) + 1, expectNext);
      return { work: path.join(dir, 'remote'), before: {} };
    };
    command = () => ['publish', 'site', '--to', 'remote', '--key', 'pub.key'];
    verifyAndFiles = async (k, remote) => {
      const w = path.join(dir, `check${k}`);
      const ok = (await pq(['init', remote, w, '--trust', 'pub.key.pub'], dir)).code === 0 && (await pq(['sync', '-C', w], dir)).code === 0;
      const files = ok && same(treeDigest(w), digests.get(serialOf(remote)) ?? {});
      rmSync(w, { recursive: true, force: true });
      return [ok, files];
    };
    finish = async () => {
      await must(command(0), dir);
      digests.set(serialOf(path.join(dir, 'remote')), expectNext);
      source = expectNext;
      return true;
    };
    full = await must(command(0), dir);
    digests.set(serialOf(path.join(dir, 'remote')), source);
  } else if (op === 'import' || op === 'export') {
    await must(['init', 'remote', 'A', '--trust', 'pub.key.pub'], dir);
    await must(['sync', '-C', 'A'], dir);
    const exportArgs = (to: string) => ['export', '-C', 'A', '--to', to, '--max-size', '2MB'];
    full = await must(exportArgs(path.join(dir, 'stick')), dir);
    const sizes = new Map(readdirSync(path.join(dir, 'stick')).map((n) => [n.replace(/^.*-(\d+of\d+)\.pqb$/, '$1'), statSync(path.join(dir, 'stick', n)).size]));
    if (op === 'import') {
      prepare = async (k) => {
        const w = path.join(dir, `B${k}`);
        await must(['init', 'remote', w, '--trust', 'pub.key.pub'], dir);
        return { work: w, before: {} };
      };
      command = (k) => ['import', '-C', `B${k}`, path.join(dir, 'stick')];
      verifyAndFiles = async (_k, w) => [await verifyIn(w), wrongFiles(w, source).length === 0];
      finish = async (k, w) => {
        await must(command(k), dir);
        return same(treeDigest(w), source);
      };
      const w = (await prepare(0)).work;
      full = await must(command(0), dir);
      rmSync(w, { recursive: true, force: true });
    } else {
      const a = path.join(dir, 'A');
      prepare = async () => ({ work: a, before: treeDigest(a) });
      command = (k) => exportArgs(path.join(dir, `stick${k}`));
      verifyAndFiles = async (k, w) => {
        const out = path.join(dir, `stick${k}`);
        const whole = (existsSync(out) ? readdirSync(out) : [])
          .filter((n) => !n.startsWith('.'))
          .every((n) => statSync(path.join(out, n)).size === sizes.get(n.replace(/^.*-(\d+of\d+)\.pqb$/, '$1')));
        return [await verifyIn(w), whole && wrongFiles(w, source).length === 0];
      };
      finish = async (k, w) => {
        await must(command(k), dir);
        rmSync(path.join(dir, `stick${k}`), { recursive: true, force: true });
        return same(treeDigest(w), source);
      };
    }
  } else {
    // gc: every trial first makes garbage (a new snapshot replacing most files, synced), then gc.
    await must(['init', 'remote', 'W', '--trust', 'pub.key.pub'], dir);
    await must(['sync', '-C', 'W'], dir);
    const w = path.join(dir, 'W');
    prepare = async (k) => {
      source = prefixed(makeSource(src, 2 + (k % 7)), 'site');
      await must(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
      await must(['sync', '-C', 'W'], dir);
      return { work: w, before: treeDigest(w) };
    };
    command = () => ['gc', '-C', 'W'];
    verifyAndFiles = async (_k, work) => [await verifyIn(work), wrongFiles(work, source).length === 0];
    finish = async (_k, work) => {
      await must(['gc', '-C', 'W'], dir);
      const st = JSON.parse((await pq(['status', '-C', 'W', '--json'], dir)).stdout) as { total: { missingBytes: number } };
      return st.total.missingBytes === 0 && same(treeDigest(work), source);
    };
    await prepare(0);
    full = await must(command(0), dir);
  }

  for (let k = 1; k <= TRIALS; k++) {
    row.trials++;
    try {
      const { work, before } = await prepare(k);
      if (await killAfter(command(k), dir, rand() * full * 1.1)) row.faults++;
      const [v, f] = await verifyAndFiles(k, work);
      if (v) row.verifyOk++;
      else row.failures.push(`trial ${k}: verify failed (${lastVerify})`);
      if (f) row.filesOk++;
      else row.failures.push(`trial ${k}: a wrong file`);
      row.lost += lostFiles(work, before);
      const finished = await finish(k, work);
      row.nextOk++;
      if (!finished) {
        row.lost++;
        row.failures.push(`trial ${k}: the tree after the next command differs from the source`);
      }
      if (op === 'sync' || op === 'import') rmSync(work, { recursive: true, force: true });
    } catch (e) {
      if (!(e instanceof Failed)) throw e;
      row.failures.push(`trial ${k}: ${e.message}`);
    }
  }
  row.seconds = (performance.now() - t0) / 1000;
  return row;
}

async function main(): Promise<void> {
  const root = await tmpDir('paquete-reliability-');
  const started = performance.now();
  process.stderr.write(`reliability: ${TRIALS} trials × ${OPS.join(', ')}; seed ${SEED}; ${JOBS} at a time; in ${root}\n`);
  const queue = [...OPS];
  const rows: Row[] = [];
  await Promise.all(
    Array.from({ length: JOBS }, async () => {
      for (let op = queue.shift(); op; op = queue.shift()) {
        const row = await runOp(op, root, rng(SEED + ALL_OPS.indexOf(op)));
        process.stderr.write(`  ${op}: done in ${row.seconds.toFixed(0)} s\n`);
        rows.push(row);
      }
    }),
  );
  rows.sort((a, b) => ALL_OPS.indexOf(a.op) - ALL_OPS.indexOf(b.op));
  const head = ['operation', 'trials', 'faults injected (kill -9 mid-command)', 'verify ok', 'files ok', 'next command ok', 'lost', 'time'];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.op} | ${r.trials} | ${r.faults} | ${r.verifyOk}/${r.trials} | ${r.filesOk}/${r.trials} | ${r.nextOk}/${r.trials} | ${r.lost} | ${r.seconds.toFixed(0)} s |`),
  ];
  const t = rows.reduce((a, r) => ({ trials: a.trials + r.trials, faults: a.faults + r.faults, lost: a.lost + r.lost }), { trials: 0, faults: 0, lost: 0 });
  lines.push(`| **all** | ${t.trials} | ${t.faults} | ${rows.reduce((a, r) => a + r.verifyOk, 0)}/${t.trials} | ${rows.reduce((a, r) => a + r.filesOk, 0)}/${t.trials} | ${rows.reduce((a, r) => a + r.nextOk, 0)}/${t.trials} | ${t.lost} | ${((performance.now() - started) / 1000).toFixed(0)} s |`);
  process.stdout.write(`${lines.join('\n')}\n\nseed ${SEED}, node ${process.version}, ${os.cpus().length} CPUs\n`);
  for (const r of rows) for (const f of r.failures) process.stdout.write(`${r.op}: ${f}\n`);
  if (process.argv.includes('--json')) writeFileSync(arg('json')!, JSON.stringify(rows, null, 1));
  await cleanupAll();
  process.exitCode = rows.some((r) => r.failures.length || r.lost) ? 1 : 0;
}

await main();
