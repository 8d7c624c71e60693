/**
 * Cards in the park (issue 12): what a sequence of budgeted sessions costs on the wire, beside one
 * clean session and the zstd floors, on real npm releases.
 *
 *   node dist/bench/park.js                  every scenario (a few minutes)
 *   node dist/bench/park.js --only cards     scenarios whose name contains "cards" (a comma-separated list)
 *   node dist/bench/park.js --pkg date-fns   one package
 *
 * Packages (`npm pack` into bench/.cache/, never committed; bench/corpus.ts):
 *   typescript 5.8.3 → 5.9.3   a few large files (130 files, 23.6 MB)
 *   date-fns 4.0.0 → 4.1.0     many small files (5,326 files, 39 MB)
 * Each is published (the build's defaults: updates and frames) to a remote served by nginx on
 * loopback; every byte is counted from nginx's access log (request line + headers + body received,
 * status line + headers + body sent). Scenarios:
 *   clean      one session with no budget: the reference
 *   cards N    a newcomer buying equal cards of N bytes until the tree is complete (at most 40)
 *   40% card   a card of 40% of one clean session, then one unbudgeted card; how many files the
 *              first completed
 *   release    a card of 40% of OLD's session, then NEW is published, then one unbudgeted card;
 *              against a newcomer's clean session of NEW
 *   kill loop  syncs through the fault proxy at 700 kB/s, each killed (kill -9) once the proxy
 *              carried a drawn 230 kB-1.63 MB to it (test/helpers/kill-loop.ts, the same points
 *              every run), until one completes: the proxy's count both ways per sync, and the
 *              extra requests' heads (nginx's log) beside the clean session's
 * Every finished tree is checked byte for byte against the package. Floors: `zstd -19 --long=27`
 * of the package as one tar (first download) and `--patch-from` OLD's tar (update).
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startNginx, type NginxServer } from '../test/helpers/nginx.js';
import { startFaultProxy } from '../test/helpers/faultproxy.js';
import { killLoop } from '../test/helpers/kill-loop.js';
import { run as spawnRun } from '../test/helpers/tmp.js';
import { CACHE_DIR, fetchNpmPackage, have, tarOf } from './corpus.js';

const run = promisify(execFile);
const PAQUETE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

const PACKAGES = [
  { name: 'typescript', from: '5.8.3', to: '5.9.3' },
  { name: 'date-fns', from: '4.0.0', to: '4.1.0' },
];

interface Row {
  pkg: string;
  scenario: string;
  /** Wire bytes of each card, by nginx's count. */
  cards: number[];
  /** One clean session to the same end state. */
  reference: number;
  /** Files complete after the first card, of all. */
  firstFiles?: [number, number];
  ok: boolean;
  floor: number;
}

async function paquete(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node', [PAQUETE, ...args], { cwd, maxBuffer: 256 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    if (typeof err.code !== 'number') throw e;
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

function digest(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === '.paquete') continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p, rel + e.name + '/');
      else out.set(rel + e.name, crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk(root, '');
  return out;
}

const same = (a: Map<string, string>, b: Map<string, string>) => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/** zstd -19 of the given inputs, cached in bench/.cache/floors.json (each takes a while at -19). */
async function zstdSize(args: string[]): Promise<number> {
  const cacheFile = path.join(CACHE_DIR, 'floors.json');
  const cache = fs.existsSync(cacheFile) ? (JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as Record<string, number>) : {};
  const key = args.join(' ');
  if (cache[key] === undefined) {
    cache[key] = await zstdOnce(args);
    fs.writeFileSync(cacheFile, JSON.stringify(cache, null, 1));
  }
  return cache[key];
}

async function zstdOnce(args: string[]): Promise<number> {
  const out = path.join(os.tmpdir(), `park-floor-${process.pid}.zst`);
  await run('zstd', ['-q', '-f', '-19', '--long=27', ...args, '-o', out], { maxBuffer: 1 << 20 });
  const n = fs.statSync(out).size;
  fs.rmSync(out);
  return n;
}

class Bench {
  private n = 0;
  constructor(
    private readonly root: string,
    private readonly nginx: NginxServer,
    private readonly key: string,
  ) {}

  /** A fresh client directory. */
  async client(): Promise<string> {
    const dir = path.join(this.root, `c${this.n++}`);
    const r = await paquete(['init', this.nginx.url, dir, '--trust', this.key + '.pub'], this.root);
    if (r.code !== 0) throw new Error(r.stderr);
    return dir;
  }

  /** One card: its wire bytes by nginx, its exit code, files complete after it. */
  async card(dir: string, budget?: number): Promise<{ wire: number; code: number; complete: number; wanted: number }> {
    await this.nginx.clearLog();
    const r = await paquete(['sync', '-C', dir, '--json', ...(budget ? ['--budget', String(budget)] : [])], this.root);
    const wire = await this.nginx.wireBytes();
    if (r.code !== 0 && r.code !== 3) throw new Error(`sync exited ${r.code}: ${r.stderr}`);
    const report = JSON.parse(r.stdout) as { completeFiles: number; wantedFiles: number };
    return { wire, code: r.code, complete: report.completeFiles, wanted: report.wantedFiles };
  }
}

async function benchPackage(p: (typeof PACKAGES)[number], only: string | undefined): Promise<Row[]> {
  const oldDir = await fetchNpmPackage(p.name, p.from);
  const newDir = await fetchNpmPackage(p.name, p.to);
  const root = fs.mkdtempSync(path.join(CACHE_DIR, `park-${p.name}-`));
  fs.chmodSync(root, 0o755);
  const rows: Row[] = [];
  const remote = path.join(root, 'remote');
  const key = path.join(root, 'pub.key');
  await paquete(['keygen', '--out', key], root);
  const publish = async (dir: string) => {
    const r = await paquete(['publish', `${p.name}=${dir}`, '--to', remote, '--key', key], root);
    if (r.code !== 0) throw new Error(r.stderr);
  };
  await publish(oldDir);
  const nginx = await startNginx(remote);
  try {
    const b = new Bench(root, nginx, key);
    const want = (dir: string) => new Map([...digest(dir)].map(([k, v]) => [`${p.name}/${k}`, v]));
    const oldTree = want(oldDir);
    const newTree = want(newDir);
    const oldTar = await tarOf(oldDir);
    const newTar = await tarOf(newDir);
    const firstFloor = (await have('zstd')) ? await zstdSize([oldTar]) : 0;
    const updateFloor = (await have('zstd')) ? await zstdSize([`--patch-from=${oldTar}`, newTar]) : 0;
    const firstFloorNew = (await have('zstd')) ? await zstdSize([newTar]) : 0;
    const wanted = (s: string) => !only || only.split(',').some((o) => s.includes(o));

    const cleanDir = await b.client();
    const clean = (await b.card(cleanDir)).wire;
    rows.push({ pkg: `${p.name} ${p.from}`, scenario: 'clean', cards: [clean], reference: clean, ok: same(digest(cleanDir), oldTree), floor: firstFloor });

    for (const share of [0.15, 0.45]) {
      const name = `cards of ${Math.round(share * 100)}%`;
      if (!wanted(name)) continue;
      const budget = Math.round(clean * share);
      const dir = await b.client();
      const cards: number[] = [];
      let first: [number, number] | undefined;
      for (let i = 0; i < 40; i++) {
        const c = await b.card(dir, budget);
        cards.push(c.wire);
        first ??= [c.complete, c.wanted];
        if (c.code === 0) break;
      }
      rows.push({ pkg: `${p.name} ${p.from}`, scenario: `${name} (${fmt(budget)})`, cards, reference: clean, firstFiles: first, ok: same(digest(dir), oldTree), floor: firstFloor });
    }

    if (wanted('40% card')) {
      const dir = await b.client();
      const c1 = await b.card(dir, Math.round(clean * 0.4));
      const c2 = await b.card(dir);
      rows.push({ pkg: `${p.name} ${p.from}`, scenario: '40% card, then the rest', cards: [c1.wire, c2.wire], reference: clean, firstFiles: [c1.complete, c1.wanted], ok: same(digest(dir), oldTree), floor: firstFloor });
    }

    if (wanted('release')) {
      // Two clients cut by a card on OLD, then NEW is published: one gets a second card of NEW.
      const cut = await b.client();
      const held = await b.client();
      const c1 = await b.card(cut, Math.round(clean * 0.4));
      await b.card(held);
      await publish(newDir);
      const c2 = await b.card(cut);
      const u = await b.card(held);
      const newcomer = await b.client();
      const fresh = (await b.card(newcomer)).wire;
      rows.push({ pkg: `${p.name} ${p.from} → ${p.to}`, scenario: 'clean update (OLD held)', cards: [u.wire], reference: u.wire, ok: same(digest(held), newTree), floor: updateFloor });
      rows.push({ pkg: `${p.name} ${p.to}`, scenario: 'clean (newcomer)', cards: [fresh], reference: fresh, ok: same(digest(newcomer), newTree), floor: firstFloorNew });
      rows.push({ pkg: `${p.name} ${p.from} → ${p.to}`, scenario: '40% card of OLD, release, card', cards: [c1.wire, c2.wire], reference: fresh, firstFiles: [c1.complete, c1.wanted], ok: same(digest(cut), newTree), floor: firstFloorNew });
    }
    if (wanted('kill')) {
      const proxy = await startFaultProxy(nginx.url);
      try {
        const dir = path.join(root, 'killed');
        const r = await paquete(['init', proxy.url, dir, '--trust', key + '.pub'], root);
        if (r.code !== 0) throw new Error(r.stderr);
        proxy.throttle(700_000);
        const heads = async () => (await nginx.accessLog()).reduce((n, e) => n + e.bytesSent - e.bodyBytesSent + e.requestLength, 0);
        await nginx.clearLog();
        const cleanDir = await b.client();
        await b.card(cleanDir);
        const cleanHeads = await heads();
        await nginx.clearLog();
        const syncs = await killLoop(proxy, () => spawnRun(process.execPath, [PAQUETE, 'sync', '-C', dir], { cwd: root }));
        const cards = syncs.map((s) => s.wire);
        const extra = (await heads()) - cleanHeads;
        rows.push({ pkg: `${p.name} ${p.from}`, scenario: `kill -9 loop at 700 kB/s (${cards.length - 1} kills; ${fmt(extra)} of extra heads)`, cards, reference: clean + extra, ok: same(digest(dir), oldTree), floor: firstFloor });
      } finally {
        await proxy.close();
      }
    }
  } finally {
    await nginx.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
  const pkgs = args.includes('--pkg') ? PACKAGES.filter((p) => p.name === args[args.indexOf('--pkg') + 1]) : PACKAGES;
  const rows: Row[] = [];
  for (const p of pkgs) rows.push(...(await benchPackage(p, only)));
  console.log('| package | scenario | cards (nginx bytes each) | total | one clean session | total / clean | files after card 1 | zstd floor | identical |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const total = r.cards.reduce((a, b) => a + b, 0);
    const shown = r.cards.length > 6 ? `${r.cards.slice(0, 5).map(fmt).join(' + ')} + … (${r.cards.length} cards)` : r.cards.map(fmt).join(' + ');
    const files = r.firstFiles ? `${r.firstFiles[0]} / ${r.firstFiles[1]}` : '';
    console.log(`| ${r.pkg} | ${r.scenario} | ${shown} | ${fmt(total)} | ${fmt(r.reference)} | ${(total / r.reference).toFixed(3)}x | ${files} | ${fmt(r.floor)} | ${r.ok ? 'yes' : 'NO'} |`);
  }
}

await main();
