/**
 * Several sources moved forward together in one snapshot (issue 14 item 2): each source's old
 * release published as one snapshot, a client synced to it, then every source's next release
 * published as the next snapshot and the client's update counted from nginx's access log, beside
 * the sum of each source's `zstd -19 --long=27 --patch-from=OLD.tar NEW.tar`.
 *
 *   node dist/bench/multi.js [--sources date-fns@4.3.0:4.4.0,three@0.186.0:0.187.0,…]
 *
 * Releases come from the npm registry through `npm pack` (bench/corpus.ts, cached in bench/.cache).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx } from '../test/helpers/nginx.js';
import { CACHE_DIR, fetchNpmPackage, tarOf } from './corpus.js';
import { counted, fmtBytes, ratio, sameTree, timedRun, wireOf } from './measure.js';

const PAQUETE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const paquete = (args: string[]) => timedRun(process.execPath, [PAQUETE, ...args]);
const DEFAULT = 'date-fns@4.3.0:4.4.0,three@0.186.0:0.187.0,prettier@3.5.3:3.6.2,caniuse-lite@1.0.30001700:1.0.30001701,axios@1.7.8:1.7.9';
const log = (msg: string) => process.stderr.write(`[multi] ${msg}\n`);

async function patchFrom(oldTar: string, newTar: string): Promise<number> {
  const out = path.join(os.tmpdir(), `paquete-multi-${process.pid}.zst`);
  await timedRun('zstd', ['-q', '-f', '-19', '--long=27', `--patch-from=${oldTar}`, newTar, '-o', out]);
  const n = fs.statSync(out).size;
  fs.rmSync(out);
  return n;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--sources');
  const spec = (i >= 0 ? process.argv[i + 1] : DEFAULT).split(',').map((s) => {
    const m = /^(.+)@([^@:]+):([^@:]+)$/.exec(s);
    if (!m) throw new Error(`--sources: ${s} is not NAME@OLD:NEW`);
    return { name: m[1], from: m[2], to: m[3] };
  });
  const sources: { name: string; from: string; to: string; old: string; new: string; floor: number }[] = [];
  for (const s of spec) {
    log(`fetching ${s.name} ${s.from}, ${s.to}`);
    const o = await fetchNpmPackage(s.name, s.from);
    const n = await fetchNpmPackage(s.name, s.to);
    const floor = await patchFrom(await tarOf(o, `${s.name}@${s.from}`), await tarOf(n, `${s.name}@${s.to}`));
    sources.push({ ...s, old: o, new: n, floor });
  }
  const work = path.join(CACHE_DIR, 'multi-run');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const remote = path.join(work, 'remote');
  const key = path.join(work, 'pub.key');
  await paquete(['keygen', '--out', key]);
  const srcName = (name: string) => name.replace(/^@/, '').replace(/\//g, '-');
  const publish = (which: 'old' | 'new') => paquete(['publish', ...sources.map((s) => `${srcName(s.name)}=${s[which]}`), '--to', remote, '--key', key, '--json', '--quiet']);
  log('publish the old releases');
  await publish('old');
  const ng = await startNginx(remote);
  try {
    const client = path.join(work, 'client');
    await paquete(['init', ng.url, client, '--trust', `${key}.pub`, '--json', '--quiet']);
    await paquete(['sync', '-C', client, '--json', '--quiet']);
    log('publish the new releases');
    const pub = await publish('new');
    log('sync');
    const c = await counted(ng, () => paquete(['sync', '-C', client, '--json', '--quiet']));
    const w = wireOf(c.entries);
    const kinds = new Map<string, number>();
    for (const e of c.entries) {
      const k = e.uri.split('/')[1].replace(/\.json$/, '');
      kinds.set(k, (kinds.get(k) ?? 0) + e.bytesSent + e.requestLength);
    }
    const floor = sources.reduce((n, s) => n + s.floor, 0);
    const same = sources.every((s) => sameTree(s.new, path.join(client, srcName(s.name))));
    console.log(`## ${sources.length} sources in one snapshot, one release each, ${new Date().toISOString().slice(0, 10)}\n`);
    console.log(`${os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ')}, ${os.cpus().length} cpus, node ${process.version}, load ${os.loadavg()[0].toFixed(1)}. Bytes: nginx's access log, every request of the update sync.\n`);
    console.log('| source | old → new | floor: zstd -19 --long=27 --patch-from (tars) |\n|---|---|---:|');
    for (const s of sources) console.log(`| ${s.name} | ${s.from} → ${s.to} | ${fmtBytes(s.floor)} |`);
    console.log(`\n| update (nginx) | requests | sum of floors | ratio | bound 1.3x + 8 KiB | trees | publish CPU s | by kind |\n|---:|---:|---:|---:|---|---|---:|---|`);
    const bound = 1.3 * floor + 8192;
    console.log(
      `| ${fmtBytes(w.bytes)} | ${w.requests} | ${fmtBytes(floor)} | ${ratio(w.bytes, floor)} | ${w.bytes <= bound ? 'met' : 'MISSED'} (${fmtBytes(bound)}) | ${same ? 'identical' : 'DIFFER'} | ${pub.cpu.toFixed(1)} | ${[...kinds].map(([k, n]) => `${k} ${fmtBytes(n)}`).join(', ')} |`,
    );
  } finally {
    await ng.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
