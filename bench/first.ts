/**
 * First downloads of trees of many small files (issue 14 item 3): each npm release published
 * alone to a remote served by nginx, a newcomer's `init` + `sync` counted from nginx's access log
 * (every request, heads included), beside `zstd -19 --long=27` of the release as one tar
 * (bench/corpus.ts tarOf). The bytes are split by kind (manifest, index layers, `.snap`, update
 * heads, frames, packs). With `--baseline DIR/src/cli/main.js`, that build's client (one that
 * reads the whole index) syncs from the same remote too, for the figures before.
 *
 *   node dist/bench/first.js [--packages lucide-react@1.80.0,date-fns@4.4.0] [--baseline PATH] [--json FILE]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx, type LogEntry } from '../test/helpers/nginx.js';
import { CACHE_DIR, fetchNpmPackage, tarOf } from './corpus.js';
import { counted, fmtBytes, ratio, sameTree, timedRun, wireOf } from './measure.js';

const PAQUETE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const argValue = (flag: string) => {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const log = (msg: string) => process.stderr.write(`[first] ${msg}\n`);

async function zstdSize(input: string): Promise<number> {
  const out = path.join(os.tmpdir(), `first-${process.pid}.zst`);
  await timedRun('zstd', ['-q', '-f', '-19', '--long=27', input, '-o', out]);
  const n = fs.statSync(out).size;
  fs.rmSync(out, { force: true });
  return n;
}

function byKind(entries: LogEntry[]): string {
  const kinds = new Map<string, number>();
  for (const e of entries) {
    const k = e.uri.split('/')[1].replace(/\.json$/, '');
    kinds.set(k, (kinds.get(k) ?? 0) + e.bytesSent + e.requestLength);
  }
  return [...kinds].map(([k, n]) => `${k} ${fmtBytes(n)}`).join(', ');
}

interface Row {
  pkg: string;
  files: number;
  floor: number;
  bytes: number;
  requests: number;
  kinds: string;
  ok: boolean;
  cpu: number;
  baseline?: { bytes: number; kinds: string; ok: boolean };
}

async function main(): Promise<void> {
  const pkgs = (argValue('--packages') ?? 'lucide-react@1.80.0,date-fns@4.4.0').split(',');
  const baseline = argValue('--baseline');
  const work = path.join(CACHE_DIR, 'first-run');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const run = async (cli: string, args: string[]) => {
    const r = await timedRun(process.execPath, [cli, ...args]);
    return r;
  };
  await run(PAQUETE, ['keygen', '--out', path.join(work, 'k')]);
  const rows: Row[] = [];
  for (const spec of pkgs) {
    const at = spec.lastIndexOf('@');
    const [name, version] = [spec.slice(0, at), spec.slice(at + 1)];
    log(`fetching ${spec}`);
    const dir = await fetchNpmPackage(name, version);
    const tar = await tarOf(dir);
    const floor = await zstdSize(tar);
    const remote = path.join(work, `${name.replace('/', '+')}-remote`);
    log(`publishing ${spec}`);
    await run(PAQUETE, ['publish', `pkg=${dir}`, '--to', remote, '--key', path.join(work, 'k')]);
    const ng = await startNginx(remote);
    try {
      const newcomer = async (cli: string, label: string) => {
        const w = path.join(work, `${name.replace('/', '+')}-${label}`);
        const c = await counted(ng, async () => {
          await run(cli, ['init', ng.url, w, '--trust', path.join(work, 'k.pub'), '--quiet']);
          return run(cli, ['sync', '-C', w, '--quiet']);
        });
        return { ...wireOf(c.entries), kinds: byKind(c.entries), ok: sameTree(dir, path.join(w, 'pkg')), cpu: c.value.cpu };
      };
      log(`newcomer syncs ${spec}`);
      const n = await newcomer(PAQUETE, 'newcomer');
      const files = fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
      const row: Row = { pkg: spec, files, floor, bytes: n.bytes, requests: n.requests, kinds: n.kinds, ok: n.ok, cpu: n.cpu };
      if (baseline) {
        log(`baseline newcomer syncs ${spec}`);
        const b = await newcomer(baseline, 'baseline');
        row.baseline = { bytes: b.bytes, kinds: b.kinds, ok: b.ok };
      }
      rows.push(row);
    } finally {
      await ng.stop();
    }
  }
  console.log(`## First downloads of many small files, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(`${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cpus, node ${process.version}, load ${os.loadavg()[0].toFixed(1)}. Bytes: nginx's access log ($request_length + $bytes_sent), init + sync.\n`);
  console.log('| release | files | zstd -19 --long=27 of the tar | paquete (nginx) | ratio | requests | by kind | tree | client CPU | whole index (before) | ratio |');
  console.log('|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|');
  for (const r of rows) {
    const b = r.baseline;
    console.log(
      `| ${r.pkg} | ${r.files} | ${fmtBytes(r.floor)} | ${fmtBytes(r.bytes)} | ${ratio(r.bytes, r.floor)} | ${r.requests} | ${r.kinds} | ${r.ok ? 'identical' : 'DIFFERS'} | ${r.cpu.toFixed(1)} s | ${b ? `${fmtBytes(b.bytes)} (${b.kinds})${b.ok ? '' : ' DIFFERS'}` : ''} | ${b ? ratio(b.bytes, r.floor) : ''} |`,
    );
  }
  const json = argValue('--json');
  if (json) fs.writeFileSync(json, JSON.stringify(rows, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
