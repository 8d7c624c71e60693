/**
 * Stale clients (issue 14): consecutive real npm releases of one package published one after the
 * other to one remote served by nginx, and clients 1, 2, 4, 8, 11, 16 … releases behind syncing once
 * to the newest, every byte counted from nginx's access log, beside the floor
 * `zstd -19 --long=27 --patch-from=THEIR.tar NEWEST.tar`. Also: a client that syncs after every
 * release against its twin that syncs once at the end; a newcomer against `zstd -19 --long=27` of
 * the newest tar; and per publish its CPU and the remote's disk.
 *
 *   node dist/bench/stale.js [--package vite] [--versions 8.1.6,8.1.7,…] [--behind 1,2,4,8,11,16] [--json FILE]
 *
 * Releases come from the npm registry through `npm pack` (bench/corpus.ts, cached in bench/.cache).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx } from '../test/helpers/nginx.js';
import { CACHE_DIR, fetchNpmPackage, tarOf } from './corpus.js';
import { counted, fmtBytes, ratio, sameTree, timedRun, treeBytes, wireOf } from './measure.js';

const PAQUETE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const paquete = (args: string[]) => timedRun(process.execPath, [PAQUETE, ...args]);

/** vite 8.1.6 … 8.4.0: seventeen consecutive releases (docs/DESIGN-REMOTE-V3.md measured the last twelve). */
const VITE = ['8.1.6', '8.1.7', '8.2.0', '8.2.1', '8.2.2', '8.2.4', '8.2.6', '8.3.0', '8.3.1', '8.3.2', '8.3.3', '8.3.4', '8.3.5', '8.3.6', '8.3.7', '8.3.8', '8.4.0'];

const T0 = Date.now();
const log = (msg: string) => process.stderr.write(`[stale ${((Date.now() - T0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const dirBytes = (dir: string) => (fs.existsSync(dir) ? treeBytes(dir).bytes : 0);

async function zstdSize(args: string[], input: string): Promise<number> {
  const out = path.join(os.tmpdir(), `stale-${process.pid}.zst`);
  await timedRun('zstd', ['-q', '-f', ...args, input, '-o', out]);
  const n = fs.statSync(out).size;
  fs.rmSync(out, { force: true });
  return n;
}

interface PublishRow {
  version: string;
  cpu: number;
  wall: number;
  offer?: { frames: number; waypointFrames: number; contents: number; reused: number; dropped: number; bytes: number; rungs: number[] };
  solid: number;
  /** The stream's segments, and those kept from the previous stream by name. */
  segments: number;
  reusedSegments: number;
  /** One compressed copy: zstd -19 --long=27 of this release's tar. */
  copy: number;
  /** The client that syncs after every release: this sync's bytes by nginx's count (none after the first release). */
  sync?: number;
  updatesDisk: number;
  remoteDisk: number;
  pruned: number;
}

interface StaleRow {
  behind: number;
  from: string;
  bytes: number;
  requests: number;
  floor: number;
  ok: boolean;
  kinds: string;
}

async function main(): Promise<void> {
  const pkg = argValue('--package') ?? 'vite';
  const versions = (argValue('--versions') ?? (pkg === 'vite' ? VITE.join(',') : '')).split(',').filter(Boolean);
  if (versions.length < 2) throw new Error('give --versions a,b,c (two or more, oldest first)');
  const last = versions.length - 1;
  const behinds = (argValue('--behind') ?? '1,2,4,8,11,16').split(',').map(Number).filter((b) => b >= 1 && b <= last);

  log(`fetching ${pkg} ${versions.join(', ')}`);
  const dirs: string[] = [];
  const tars: string[] = [];
  for (const v of versions) {
    dirs.push(await fetchNpmPackage(pkg, v));
    tars.push(await tarOf(dirs[dirs.length - 1], `${pkg}@${v}`));
  }

  const work = path.join(CACHE_DIR, 'stale-run');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const remote = path.join(work, 'remote');
  const key = path.join(work, 'pub.key');
  await paquete(['keygen', '--out', key]);
  fs.mkdirSync(remote);
  const ng = await startNginx(remote);
  const client = (name: string) => path.join(work, name);
  const sync = (w: string) => paquete(['sync', '-C', w, '--json', '--quiet']);
  const init = (w: string) => paquete(['init', ng.url, w, '--trust', `${key}.pub`, '--json', '--quiet']);
  const pkgDir = (w: string) => path.join(w, pkg);

  const publishes: PublishRow[] = [];
  let everyBytes = 0;
  let everyOk = true;
  try {
    for (let i = 0; i <= last; i++) {
      log(`publish ${pkg}@${versions[i]}`);
      const r = await paquete(['publish', `${pkg}=${dirs[i]}`, '--to', remote, '--key', key, '--prune-after', '0', '--json', '--quiet']);
      const out = JSON.parse(r.stdout) as {
        updates: { from: string; framesBytes: number; segments?: number; reusedSegments?: number }[];
        offer?: { frames: number; waypointFrames: number; contents: number; reused: number; dropped: number; framesBytes: number; size: number; rungs: number[] };
        pruned: number;
      };
      publishes.push({
        version: versions[i],
        cpu: r.cpu,
        wall: r.wall,
        offer: out.offer && {
          frames: out.offer.frames,
          waypointFrames: out.offer.waypointFrames,
          contents: out.offer.contents,
          reused: out.offer.reused,
          dropped: out.offer.dropped,
          bytes: out.offer.framesBytes + out.offer.size,
          rungs: out.offer.rungs,
        },
        solid: out.updates.find((u) => u.from === '')?.framesBytes ?? 0,
        segments: out.updates.find((u) => u.from === '')?.segments ?? 0,
        reusedSegments: out.updates.find((u) => u.from === '')?.reusedSegments ?? 0,
        copy: await zstdSize(['-19', '--long=27'], tars[i]),
        updatesDisk: dirBytes(path.join(remote, 'updates')) + dirBytes(path.join(remote, 'frames')),
        remoteDisk: dirBytes(remote),
        pruned: out.pruned,
      });
      // Clients that start here: each synced to this release, not counted.
      for (const b of behinds) {
        if (last - b !== i) continue;
        log(`client ${b} behind starts at ${versions[i]}`);
        await init(client(`behind-${b}`));
        await sync(client(`behind-${b}`));
      }
      // The twin of the client furthest behind, syncing after every release (counted from the second).
      if (i === 0) {
        await init(client('every'));
        await sync(client('every'));
      } else {
        const c = await counted(ng, () => sync(client('every')));
        everyBytes += wireOf(c.entries).bytes;
        publishes[i].sync = wireOf(c.entries).bytes;
        everyOk &&= sameTree(dirs[i], pkgDir(client('every')));
      }
    }

    const rows: StaleRow[] = [];
    for (const b of behinds) {
      log(`client ${b} behind syncs to ${versions[last]}`);
      const c = await counted(ng, () => sync(client(`behind-${b}`)));
      const w = wireOf(c.entries);
      const floor = await zstdSize(['-19', '--long=27', `--patch-from=${tars[last - b]}`], tars[last]);
      const kinds = new Map<string, number>();
      for (const e of c.entries) {
        const k = e.uri.split('/')[1].replace(/\.json$/, '');
        kinds.set(k, (kinds.get(k) ?? 0) + e.bytesSent + e.requestLength);
      }
      rows.push({
        behind: b,
        from: versions[last - b],
        bytes: w.bytes,
        requests: w.requests,
        floor,
        ok: sameTree(dirs[last], pkgDir(client(`behind-${b}`))),
        kinds: [...kinds].map(([k, n]) => `${k} ${fmtBytes(n)}`).join(', '),
      });
    }
    log('newcomer');
    const n = await counted(ng, async () => {
      await init(client('newcomer'));
      return sync(client('newcomer'));
    });
    const newcomer = { bytes: wireOf(n.entries).bytes, floor: await zstdSize(['-19', '--long=27'], tars[last]), ok: sameTree(dirs[last], pkgDir(client('newcomer'))) };

    const kib16 = 16 * 1024;
    console.log(`## Stale clients: ${pkg} ${versions[0]} … ${versions[last]} (${versions.length} releases), ${new Date().toISOString().slice(0, 10)}\n`);
    console.log(`${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cpus, node ${process.version}. Bytes: nginx's access log ($request_length + $bytes_sent), every request of the sync.\n`);
    console.log('| behind | from | paquete (nginx) | requests | floor: zstd -19 --long=27 --patch-from (tars) | ratio | bound 1.5x + 16 KiB | tree | by kind |');
    console.log('|---|---|---:|---:|---:|---:|---|---|---|');
    for (const r of rows) {
      const bound = 1.5 * r.floor + kib16;
      console.log(`| ${r.behind} | ${r.from} | ${fmtBytes(r.bytes)} | ${r.requests} | ${fmtBytes(r.floor)} | ${ratio(r.bytes, r.floor)} | ${r.bytes <= bound ? 'met' : 'MISSED'} (${fmtBytes(bound)}) | ${r.ok ? 'identical' : 'DIFFERS'} | ${r.kinds} |`);
    }
    console.log(`| newcomer | — | ${fmtBytes(newcomer.bytes)} | | ${fmtBytes(newcomer.floor)} (zstd -19 --long=27) | ${ratio(newcomer.bytes, newcomer.floor)} | | ${newcomer.ok ? 'identical' : 'DIFFERS'} | |`);
    const once = rows.find((r) => r.behind === last);
    console.log(
      `\nFrom ${versions[0]}: syncing after every release ${fmtBytes(everyBytes)} (${last} syncs, trees ${everyOk ? 'identical' : 'DIFFER'}); ` +
        `once at the end ${once ? fmtBytes(once.bytes) : 'n/a (give --behind ' + last + ')'}.\n`,
    );
    console.log(
      '| publish | sync after it (nginx) | CPU s | wall s | rungs | offer: frames (waypoint) / old contents / reused / left out | offer bytes | stream from nothing: segments kept / all | one compressed copy (zstd -19 --long=27) | updates + frames on disk | ÷ stream | ÷ one copy | remote total | pruned |',
    );
    console.log('|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const p of publishes) {
      const o = p.offer ? `${p.offer.frames} (${p.offer.waypointFrames}) / ${p.offer.contents} / ${p.offer.reused} / ${p.offer.dropped}` : '—';
      console.log(
        `| ${p.version} | ${p.sync === undefined ? '—' : fmtBytes(p.sync)} | ${p.cpu.toFixed(1)} | ${p.wall.toFixed(1)} | ${p.offer?.rungs?.join(' ') ?? '—'} | ${o} | ${p.offer ? fmtBytes(p.offer.bytes) : '—'} | ${fmtBytes(p.solid)}: ${p.reusedSegments} / ${p.segments} | ${fmtBytes(p.copy)} | ${fmtBytes(p.updatesDisk)} | ${ratio(p.updatesDisk, p.solid)} | ${ratio(p.updatesDisk, p.copy)} | ${fmtBytes(p.remoteDisk)} | ${p.pruned} |`,
      );
    }
    const jsonOut = argValue('--json');
    if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ pkg, versions, rows, newcomer, everyBytes, publishes }, null, 1));
  } finally {
    await ng.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
