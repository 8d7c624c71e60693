/**
 * Chunking speed on real data: `node dist/bench/chunk.js` (after `npx tsc -p tsconfig.json`).
 *
 * Corpus: tars of unpacked npm packages (bench/corpus.ts), fetched into bench/.cache/ on first
 * run. Every row is MB/s (10^6 bytes a second) of the whole corpus on one core, read from the page
 * cache, median of 3 runs. A second section runs the paquete CLI end to end, if it works yet.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  Chunker,
  DEFAULT_PARAMS,
  chunkFile,
  chunkFileWithIds,
  chunkId,
  createJsChunker,
  createWasmChunker,
  initHash,
} from '../src/chunk/index.js';
import { CACHE_DIR, NPM_PAIRS, fetchNpmPackage, have, npmTar, warm } from './corpus.js';
import { WorkDir } from '../src/workdir/workdir.js';
import { cachedLatest } from '../src/sync/catalog.js';
import { Restorer } from '../src/sync/restorer.js';
import { runSync } from '../src/sync/session.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS = 3;

interface Row {
  what: string;
  bytes?: number;
  seconds?: number[];
  note?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median-of-RUNS timing, after one untimed run (JIT tiers, page cache). */
async function timed(fn: () => unknown): Promise<number[]> {
  await fn();
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return out;
}

function mbps(row: Row): string {
  if (!row.seconds || !row.bytes) return 'n/a';
  return (row.bytes / median(row.seconds) / 1e6).toFixed(0);
}

function printTable(title: string, rows: Row[]): void {
  const lines = rows.map((r) => [
    r.what,
    r.bytes ? (r.bytes / 1e6).toFixed(1) : '',
    mbps(r),
    r.seconds ? r.seconds.map((s) => s.toFixed(3)).join(' ') : '',
    r.note ?? '',
  ]);
  const head = ['', 'MB', 'MB/s', `seconds (${RUNS} runs)`, 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) =>
    '| ' + cells.map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  console.log(`\n${title}\n`);
  console.log(fmt(head));
  console.log('|' + widths.map((w, i) => (i === 1 || i === 2 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|');
  for (const l of lines) console.log(fmt(l));
}

/** CPU time stolen by the hypervisor while fn ran, as a share of all CPU time (Linux only). */
function stealMeter(): () => string {
  const read = () => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      return { steal: f[7] ?? 0, total: f.reduce((a, b) => a + b, 0) };
    } catch {
      return undefined;
    }
  };
  const start = read();
  return () => {
    const end = read();
    if (!start || !end || end.total === start.total) return 'unknown';
    return `${((100 * (end.steal - start.steal)) / (end.total - start.total)).toFixed(1)}%`;
  };
}

function errorText(e: unknown): string {
  const err = e as { stderr?: string; message?: string };
  const text = (err.stderr && err.stderr.trim()) || err.message || String(e);
  return text.split('\n').filter(Boolean).slice(-1)[0]?.slice(0, 160) ?? 'failed';
}

async function chunkAll(files: string[], chunker: Chunker, onChunk: (c: Uint8Array) => void): Promise<void> {
  for (const f of files) await chunkFile(f, chunker, onChunk);
}

function readAll(files: string[], buffer: Uint8Array, each: (b: Uint8Array) => void): void {
  for (const f of files) {
    const fd = fs.openSync(f, 'r');
    try {
      for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; ) each(buffer.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
  }
}

async function speedSection(tars: string[]): Promise<void> {
  const bytes = tars.reduce((s, f) => s + fs.statSync(f).size, 0);
  for (const f of tars) warm(f);
  await initHash();
  const wasm = await createWasmChunker(DEFAULT_PARAMS);
  const js = createJsChunker(DEFAULT_PARAMS);
  const rows: Row[] = [];
  const steal = stealMeter();

  let sink = 0;
  rows.push({ what: 'read only (fs.readSync, page cache)', bytes, seconds: await timed(() => readAll(tars, wasm.buffer, (b) => (sink += b[0]))) });
  let chunks = 0;
  rows.push({ what: 'chunk, JS reference', bytes, seconds: await timed(() => chunkAll(tars, js, () => void chunks++)) });
  rows.push({ what: 'chunk, WebAssembly', bytes, seconds: await timed(() => chunkAll(tars, wasm, () => void chunks++)) });
  let ids = 0n;
  // The publisher's and seed's path: ids computed in the chunker's module with the cuts.
  rows.push({
    what: 'chunk, WebAssembly + xxh64 id',
    bytes,
    seconds: await timed(async () => {
      for (const f of tars) await chunkFileWithIds(f, wasm, (_c, id) => void (ids += id));
    }),
    note: 'ids in the same module, one call per buffer',
  });
  let idsToo = 0n;
  rows.push({
    what: 'chunk, WebAssembly + xxhash-wasm h64Raw per chunk',
    bytes,
    seconds: await timed(() => chunkAll(tars, wasm, (c) => void (idsToo += chunkId(c)))),
    note: 'chunkId: a copy and a call per chunk',
  });
  if (ids !== idsToo) throw new Error('in-module ids differ from xxhash-wasm ids');
  rows.push({
    what: 'SHA-256 alone (node:crypto)',
    bytes,
    seconds: await timed(() => {
      const h = crypto.createHash('sha256');
      readAll(tars, wasm.buffer, (b) => h.update(b));
      h.digest();
    }),
  });
  const perRun = chunks / (2 * (RUNS + 1));
  rows[1].note = `${Math.round(perRun)} chunks, avg ${(bytes / perRun / 1024).toFixed(1)} KiB`;
  rows.push(await casyncMakeRow(tars, bytes));
  printTable(`Chunking, ${tars.length} tars, ${(bytes / 1e6).toFixed(1)} MB, params ${JSON.stringify(DEFAULT_PARAMS)}; cpu steal during this section: ${steal()}`, rows);
  if (sink < 0 || ids < 0n) console.log(''); // keep the work observable
}

async function ensureCasync(): Promise<string | undefined> {
  if (await have('casync')) return undefined;
  if (process.getuid?.() === 0 && (await have('apt-get'))) {
    try {
      await run('apt-get', ['install', '-y', 'casync'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      if (await have('casync')) return undefined;
    } catch (e) {
      return `apt-get install casync failed: ${errorText(e)}`;
    }
  }
  return 'casync is not installed (Debian: apt-get install casync)';
}

async function casyncMakeRow(tars: string[], bytes: number): Promise<Row> {
  const what = 'casync make (chunk+compress+store; 64K avg)';
  const missing = await ensureCasync();
  if (missing) return { what, note: missing };
  const work = path.join(CACHE_DIR, 'casync-speed');
  try {
    const seconds: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      fs.rmSync(work, { recursive: true, force: true });
      fs.mkdirSync(work, { recursive: true });
      const t0 = process.hrtime.bigint();
      for (const [k, tar] of tars.entries()) {
        await run('casync', ['make', `--store=${path.join(work, 'store')}`, path.join(work, `${k}.caibx`), tar]);
      }
      seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return { what, bytes, seconds, note: 'its own store, emptied before each run' };
  } catch (e) {
    return { what, note: `failed: ${errorText(e)}` };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function treeBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += treeBytes(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// End to end: the paquete CLI (being written elsewhere; any failure is printed as a row).
// ---------------------------------------------------------------------------------------------

async function cliSection(): Promise<void> {
  const rows: Row[] = [];
  const bin = path.join(ROOT, 'bin', 'paquete.js');
  const { name, to } = NPM_PAIRS[0];
  const source = await fetchNpmPackage(name, to);
  const bytes = treeBytes(source);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'paquete-bench-'));
  const paquete = (...args: string[]) => run(process.execPath, [bin, ...args], { cwd: base, maxBuffer: 64 << 20 });
  const once = async (what: string, fn: (i: number) => Promise<unknown>, prepare?: (i: number) => Promise<unknown>) => {
    try {
      const seconds: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        if (prepare) await prepare(i);
        const t0 = process.hrtime.bigint();
        await fn(i);
        seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
      }
      rows.push({ what, bytes, seconds });
    } catch (e) {
      rows.push({ what, note: `error: ${errorText(e)}` });
    }
  };
  try {
    if (!fs.existsSync(bin)) {
      rows.push({ what: 'paquete CLI', note: `error: ${bin} missing` });
    } else {
      const key = path.join(base, 'K');
      try {
        await paquete('keygen', '--out', key);
      } catch (e) {
        rows.push({ what: 'paquete keygen', note: `error: ${errorText(e)}` });
      }
      await once(
        `paquete publish (${name}@${to} tree)`,
        (i) => paquete('publish', source, '--to', path.join(base, `remote${i}`), '--key', key),
      );
      await once(
        'paquete init + sync (local remote)',
        (i) => paquete('init', path.join(base, 'remote0'), path.join(base, `work${i}`), '--trust', `${key}.pub`).then(() =>
          paquete('sync', '-C', path.join(base, `work${i}`))),
      );
      // The whole client without process start-up: manifest, index, the update from nothing
      // (zstd frames decoded as they are read, each chunk checked against its id and stored),
      // then every file assembled, SHA-256 checked, fsynced and renamed.
      await once(
        'paquete sync in process: frames → store → files (decode + xxh64 + assemble + SHA-256 + fsync)',
        async (i) => {
          const work = await WorkDir.open(path.join(base, `fresh${i}`), 'bench');
          try {
            const r = await runSync(work);
            if (r.completeFiles !== r.wantedFiles) throw new Error(`only ${r.completeFiles} of ${r.wantedFiles} files`);
          } finally {
            await work.close();
          }
        },
        (i) => paquete('init', path.join(base, 'remote0'), path.join(base, `fresh${i}`), '--trust', `${key}.pub`),
      );
      // The client's own work once chunks are in the store: look each chunk up, and on the place
      // worker read it from the packs (raw when it came through frames), write the file, SHA-256
      // it, fsync in groups and rename; every file under way at once, as sync places them.
      await once('paquete client in process: read store + assemble + SHA-256 + fsync', async (i) => {
        const work = await WorkDir.open(path.join(base, 'work0'), 'bench');
        try {
          const latest = cachedLatest(work)!;
          const scratch = path.join(base, `assemble${i}`);
          fs.mkdirSync(path.join(scratch, 'tmp'), { recursive: true });
          const restorer = new Restorer({ root: scratch, tmpDir: path.join(scratch, 'tmp'), store: work.store }, latest.snapshot, { files: {} });
          const placed = await Promise.all(latest.snapshot.files.map((f) => restorer.place(f)));
          if (placed.some((p) => p !== 'placed')) throw new Error('a file was not placed');
        } finally {
          await work.close();
        }
      });
    }
    const missing = await ensureCasync();
    if (missing) {
      rows.push({ what: 'casync make (tree)', note: missing }, { what: 'casync extract (tree)', note: missing });
    } else {
      const store = path.join(base, 'castore');
      await once(
        'casync make (tree, 64K avg)',
        () => run('casync', ['make', `--store=${store}`, path.join(base, 'tree.caidx'), source]),
        async () => fs.rmSync(store, { recursive: true, force: true }),
      );
      await once(
        'casync extract (tree)',
        (i) => run('casync', ['extract', `--store=${store}`, path.join(base, 'tree.caidx'), path.join(base, `extract${i}`)]),
      );
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
  printTable(`End to end: ${name}@${to} unpacked (${(bytes / 1e6).toFixed(1)} MB of files), local directories`, rows);
}

async function main(): Promise<void> {
  console.log(`paquete bench/chunk — ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cpus, node ${process.version}`);
  const tars: string[] = [];
  for (const { name, from, to } of NPM_PAIRS) {
    tars.push(await npmTar(name, from), await npmTar(name, to));
  }
  await speedSection(tars);
  await cliSection();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
