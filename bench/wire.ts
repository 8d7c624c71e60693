/**
 * Bytes on the wire, beside casync, zsync, rsync and the zstd floors (issue 4):
 *
 *   node dist/bench/wire.js                          all pairs, tar and tree (about 10 minutes)
 *   node dist/bench/wire.js --pairs typescript,caniuse-lite --modes tar      a quick run
 *   WIRE_PAIRS=caniuse-lite node dist/bench/wire.js  the same through the environment
 *   node dist/bench/wire.js --json out.json          also write every measurement as JSON
 *   node dist/bench/wire.js --paquete-avg default,8KiB   paquete also with --avg-chunk 8KiB
 *   node dist/bench/wire.js --keep                   keep the work directory (bench/.cache/wire/)
 *
 * For each pair of successive versions of an npm package (OLD → NEW, fetched with `npm pack` into
 * bench/.cache/ and unpacked; see bench/corpus.ts), in two modes:
 *   tar   one tar per version (bench/corpus.ts tarOf: sorted names, fixed owners and times)
 *   tree  the unpacked directory as it is
 * it measures the bytes on the wire of a FIRST DOWNLOAD of NEW (nothing held locally) and of the
 * UPDATE (OLD held locally, bring NEW), for:
 *   paquete  publish OLD, init + sync (over nginx), publish NEW, sync again (the update); then a
 *            fresh client syncs NEW from the remote that holds both (the first download). Two rows:
 *            "paquete" publishes with the build's defaults (updates: index deltas and zstd frames,
 *            docs/FORMATS.md §Updates), "paquete (records only)" to a remote of its own with
 *            `--no-solid --updates-from 0` (no updates: the index and records, as before them)
 *   casync   `casync make` per version into a store; `casync extract` over HTTP, --seed=OLD for
 *            the update (tar: .caibx; tree: .caidx)
 *   zsync    `zsyncmake` of NEW; `zsync` without seed, then `zsync -i OLD` (tar only)
 *   rsync -z against a loopback rsync daemon (its own --stats: it does not go through nginx)
 *   floors   `zstd -19 --long=27` of NEW.tar (first) and `zstd -19 --long=27 --patch-from=OLD.tar`
 *            (update): the same floors serve both modes, the tar holding exactly the tree's bytes
 * HTTP tools are served by one nginx (test/helpers/nginx.ts) and counted from its access log:
 * request line + headers + body received, status line + headers + body sent, every request.
 * Every result is checked byte for byte against NEW; a tool whose output differs is marked.
 *
 * CPU is user + system time of the command and the children it waited for (bash `times`), so
 * paquete's worker threads and casync's HTTP helper count; MB/s is NEW's size over that time.
 * Servers (nginx, the rsync daemon) are not counted.
 *
 * Then "where the bytes go": paquete's update (and first download) split into manifest, index,
 * update heads (and the index delta inside them), frames, record headers, chunk payloads, gap
 * records, other paths and HTTP headers, from the access log and the remote's own files (chunks
 * brought by frames: the yields of every frame wholly inside the fetched ranges, per the heads),
 * with what the same missing chunks would cost compressed together or as one delta against OLD
 * (the zstd -19 estimates for the tar mode and the main row only: they cost as much as the floors).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { decodeUpdateHead, type UpdateHead } from '../src/delta/update.js';
import { decodeSnapshot, type Snapshot } from '../src/snapshot/snapshot.js';
import { decodePayload, decodeRecordHeader, RECORD_HEADER_SIZE } from '../src/store/pack.js';
import { freePort, startNginx, type LogEntry, type NginxServer } from '../test/helpers/nginx.js';
import { CACHE_DIR, fetchNpmPackage, have, tarOf } from './corpus.js';
import { counted, fmtBytes, ratio, sameTree, sha256File, sleep, sumRan, timedRun, treeBytes, wireOf } from './measure.js';

const run = promisify(execFile);
/**
 * The CLI of the same build as this file (dist/src/cli/main.js, what bin/paquete.js loads), so a
 * copy of dist/ benchmarks the code it was built from even while dist/ is rebuilt.
 */
const PAQUETE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

/** Successive real versions of different character; the first is the issue's reference pair. */
export const WIRE_PAIRS: Array<{ name: string; from: string; to: string; character: string }> = [
  {
    name: 'typescript', from: '5.8.3', to: '5.9.3',
    character: "the issue's reference: a few large bundled .js files, lib .d.ts, diagnostics JSON (130 files, 23.6 MB)",
  },
  {
    name: 'three', from: '0.170.0', to: '0.171.0',
    character: 'mostly JS: ~1,080 ES modules (src/, examples/jsm/) plus big build/ bundles (26 MB, 4 MB of it unchanged .wasm decoders)',
  },
  {
    name: '@types/node', from: '24.10.0', to: '24.10.1',
    character: "docs-heavy: 75 .d.ts files that are mostly prose (Node's API documentation as JSDoc), 2.5 MB; a small docs fix",
  },
  {
    name: 'npm', from: '10.9.2', to: '10.9.3',
    character: 'docs and many files: the npm CLI ships its manual (.md, .html, man pages, 2.3 MB) and ~2,300 bundled small files (11.6 MB)',
  },
  {
    name: '@swc/core-linux-x64-gnu', from: '1.16.21', to: '1.16.22',
    character: 'binary-heavy: one 10.7 MB native Node addon (.node, Rust), rebuilt between versions',
  },
  {
    name: 'esbuild-wasm', from: '0.25.11', to: '0.25.12',
    character: 'binary-heavy: a 12.3 MB .wasm (Go) plus a little JS',
  },
  {
    name: 'caniuse-lite', from: '1.0.30001822', to: '1.0.30001823',
    character: 'many small files: 841 data modules averaging 2 KB (1.6 MB), a daily data release',
  },
];

type Mode = 'tar' | 'tree';

interface Measure {
  /** Wire bytes, both directions. */
  bytes?: number;
  requests?: number;
  /** user + system CPU seconds of the client command(s). */
  cpu?: number;
  wall?: number;
  /** Output identical to NEW? undefined when not checked. */
  ok?: boolean;
  note?: string;
}

interface ToolResult {
  /** 'paquete', 'paquete avg 8K', 'casync', 'zsync', 'rsync -z'. */
  tool: string;
  mode: Mode;
  /** How bytes were counted. */
  counted: 'nginx' | 'rsync --stats';
  /** Publisher-side work on NEW: paquete publish, casync make, zsyncmake. */
  make?: Measure;
  first?: Measure;
  update?: Measure;
  error?: string;
  /** paquete: the chunking parameters of its remote. */
  params?: string;
}

interface Breakdown {
  phase: 'update' | 'first';
  tool: string;
  mode: Mode;
  chunksInNew: number;
  chunksFetched: number;
  requests: number;
  manifestBody: number;
  indexBody: number;
  /** Bodies of updates/<sha>.upd (update heads: index delta + frame table). */
  updateHeads: number;
  /** Of those, the index deltas the heads carry (zstd frames, before the head's brotli). */
  headIndexDelta: number;
  /** Bodies of frames/<sha>.frames ranges. */
  frames: number;
  /** Chunks counted in chunksFetched that came in frames (the rest came as records). */
  chunksByFrames: number;
  /** Frame bytes fetched that belong to no frame wholly fetched (the file header, a cut frame). */
  framesPartial?: number;
  /** Chunks a wholly fetched frame yields that records brought too (a frame that failed, say). */
  chunksTwice?: number;
  recordHeaders: number;
  payloads: number;
  gapRecords: number;
  /** Bodies of requests to any other path (should be 0). */
  other: number;
  httpHeaders: number;
  total: number;
  /** Raw bytes of the chunks fetched, and what they would cost compressed otherwise. */
  fetchedRaw: number;
  deflatedTogether: number;
  /** zstd -19 --long=27 of the fetched chunks concatenated (update of the first paquete variant, tar mode). */
  zstdTogether?: number;
  /** zstd -19 --long=27 --patch-from=OLD.tar of the same: every new chunk as one delta against OLD. */
  zstdDeltaAgainstOld?: number;
}

interface PairResult {
  name: string;
  from: string;
  to: string;
  character: string;
  oldTarBytes: number;
  newTarBytes: number;
  newTreeBytes: number;
  newFiles: number;
  chunkParams?: string;
  floors: { first?: number; update?: number; firstCpu?: number; updateCpu?: number; error?: string };
  tools: ToolResult[];
  breakdowns: Breakdown[];
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const T0 = Date.now();
function log(msg: string): void {
  process.stderr.write(`[wire ${((Date.now() - T0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

function errorText(e: unknown): string {
  const err = e as { stderr?: string; stdout?: string; message?: string };
  const lines = `${err.stderr ?? ''}\n${err.message ?? ''}`.split('\n').map((l) => l.trim());
  const useful = lines.filter((l) => l && !/^\d+m[\d.]+s \d+m[\d.]+s$/.test(l) && !/^Command failed/.test(l) && !/^Node\.js v\d/.test(l));
  // A stack trace: the line naming the error says more than the last one.
  const named = useful.find((l) => /^(\w*Error\b|error:|paquete: )/i.test(l));
  return (named ?? useful[useful.length - 1] ?? String(e)).slice(0, 240);
}

const paquete = (args: string[], cwd?: string) => timedRun(process.execPath, [PAQUETE, ...args], { cwd });

function mkdirp(p: string): string {
  fs.mkdirSync(p, { recursive: true });
  return p;
}

function fresh(p: string): string {
  fs.rmSync(p, { recursive: true, force: true });
  return mkdirp(p);
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

const DEBIAN_PACKAGE: Record<string, string> = { casync: 'casync', zsync: 'zsync', zsyncmake: 'zsync', rsync: 'rsync', zstd: 'zstd' };

/** Installs the Debian package of a missing command when we are root; returns why not otherwise. */
async function ensureCommand(cmd: string): Promise<string | undefined> {
  if (await have(cmd)) return undefined;
  const pkg = DEBIAN_PACKAGE[cmd] ?? cmd;
  if (process.getuid?.() === 0 && (await have('apt-get'))) {
    log(`installing ${pkg} (apt-get)`);
    try {
      await run('apt-get', ['install', '-y', pkg], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 });
    } catch {
      try {
        await run('apt-get', ['update'], { maxBuffer: 64 << 20 });
        await run('apt-get', ['install', '-y', pkg], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 });
      } catch (e) {
        return `apt-get install ${pkg} failed: ${errorText(e)}`;
      }
    }
    if (await have(cmd)) return undefined;
  }
  return `${cmd} is not installed (Debian: apt-get install ${pkg})`;
}

interface PairFiles {
  oldDir: string;
  newDir: string;
  oldTar: string;
  newTar: string;
  /** Directories holding the tar as pkg.tar, for tools that sync a directory. */
  oldTarDir: string;
  newTarDir: string;
}

interface Ctx {
  work: string;
  www: string;
  ng: NginxServer;
  key: string;
  files: PairFiles;
  pair: PairResult;
  /** Slow zstd work (floors, estimates), run beside the measurements on the second core. */
  background: Background;
  /** This pair's background jobs. */
  jobs: Promise<unknown>[];
}

/** A queue of jobs run one at a time, beside the caller. */
class Background {
  private tail: Promise<unknown> = Promise.resolve();
  private pending: Promise<unknown>[] = [];
  add<T>(job: () => Promise<T>): Promise<T> {
    const p = this.tail.then(job);
    this.tail = p.catch(() => undefined);
    this.pending.push(this.tail);
    return p;
  }
  async idle(): Promise<void> {
    await Promise.all(this.pending);
  }
}

/** Publisher options of the "records only" rows: no updates at all, what paquete did before them. */
export const RECORDS_ONLY_ARGS = ['--no-solid', '--updates-from', '0'];

/**
 * paquete through its CLI, served by nginx; `avg` (e.g. '8K') publishes with --avg-chunk, else
 * the build's default chunk size; `recordsOnly` publishes with RECORDS_ONLY_ARGS (no update heads,
 * no frames: clients fetch the index and records, as before updates) to a remote of its own.
 * Adds the byte breakdowns to the pair.
 */
async function measurePaquete(ctx: Ctx, mode: Mode, avg: string | undefined, recordsOnly: boolean, estimates: boolean): Promise<ToolResult> {
  const tool = (avg ? `paquete avg ${avg}` : 'paquete') + (recordsOnly ? ' (records only)' : '');
  const result: ToolResult = { tool, mode, counted: 'nginx' };
  const remoteName = `pq-${mode}${avg ? `-${avg}` : ''}${recordsOnly ? '-records' : ''}`;
  const remote = fresh(path.join(ctx.www, remoteName));
  const url = `${ctx.ng.url}${remoteName}/`;
  const src = (which: 'old' | 'new') =>
    mode === 'tar' ? (which === 'old' ? ctx.files.oldTarDir : ctx.files.newTarDir) : which === 'old' ? ctx.files.oldDir : ctx.files.newDir;
  const expected = mode === 'tar' ? ctx.files.newTarDir : ctx.files.newDir;
  const w1 = path.join(ctx.work, `${remoteName}-client1`);
  const w2 = path.join(ctx.work, `${remoteName}-client2`);
  const avgArgs = avg ? ['--avg-chunk', avg] : [];
  const pubArgs = recordsOnly ? RECORDS_ONLY_ARGS : [];
  fs.rmSync(w1, { recursive: true, force: true });
  fs.rmSync(w2, { recursive: true, force: true });
  try {
    log(`${ctx.pair.name} ${mode}: ${tool} publish OLD, sync OLD`);
    await paquete(['publish', `pkg=${src('old')}`, '--to', remote, '--key', ctx.key, ...avgArgs, ...pubArgs, '--json', '--quiet']);
    const firstOld = await counted(ctx.ng, async () => {
      await paquete(['init', url, w1, '--trust', `${ctx.key}.pub`, '--json', '--quiet']);
      return paquete(['sync', '-C', w1, '--json', '--quiet']);
    });
    const oldWire = wireOf(firstOld.entries);

    log(`${ctx.pair.name} ${mode}: ${tool} publish NEW, sync (update)`);
    const pub = await paquete(['publish', `pkg=${src('new')}`, '--to', remote, '--key', ctx.key, ...pubArgs, '--json', '--quiet']);
    result.make = { cpu: pub.cpu, wall: pub.wall };
    const upd = await counted(ctx.ng, () => paquete(['sync', '-C', w1, '--json', '--quiet']));
    const updWire = wireOf(upd.entries);
    const spent = (JSON.parse(upd.value.stdout) as { spent: number }).spent;
    result.update = {
      ...updWire,
      cpu: upd.value.cpu,
      wall: upd.value.wall,
      ok: sameTree(expected, path.join(w1, 'pkg')),
      note:
        `paquete's own meter said ${spent} B, nginx counted ${updWire.bytes} B${spent === updWire.bytes ? '' : ' (METERS DISAGREE)'}; ` +
        `first download of OLD (remote holding only OLD): ${fmtBytes(oldWire.bytes)} in ${oldWire.requests} requests`,
    };

    log(`${ctx.pair.name} ${mode}: ${tool} init + sync NEW on a fresh client`);
    // init and sync counted apart, so the sync's own meter can be checked against nginx.
    const firstInit = await counted(ctx.ng, () => paquete(['init', url, w2, '--trust', `${ctx.key}.pub`, '--json', '--quiet']));
    const firstSync = await counted(ctx.ng, () => paquete(['sync', '-C', w2, '--json', '--quiet']));
    const first = { value: sumRan([firstInit.value, firstSync.value]), entries: [...firstInit.entries, ...firstSync.entries] };
    const firstSpent = (JSON.parse(firstSync.value.stdout) as { spent: number }).spent;
    const firstSyncWire = wireOf(firstSync.entries).bytes;
    result.first = {
      ...wireOf(first.entries),
      ...first.value,
      ok: sameTree(expected, path.join(w2, 'pkg')),
      note: `sync: paquete's own meter said ${firstSpent} B, nginx counted ${firstSyncWire} B${firstSpent === firstSyncWire ? '' : ' (METERS DISAGREE)'} (+ init ${wireOf(firstInit.entries).bytes} B)`,
    };

    const snaps = readRemoteSnapshots(remote);
    const params = `min ${snaps.new.params.minSize}, avg ${snaps.new.params.avgSize}, max ${snaps.new.params.maxSize}`;
    if (!avg && !recordsOnly) ctx.pair.chunkParams = params;
    result.params = params;
    ctx.pair.breakdowns.push(
      // zstd -19 estimates on the tar only: they cost as much CPU as the floors, and the tree's are alike.
      breakdown(ctx, tool, mode, 'update', remote, remoteName, snaps, upd.entries, estimates && mode === 'tar'),
      breakdown(ctx, tool, mode, 'first', remote, remoteName, snaps, first.entries, false),
    );
  } catch (e) {
    result.error = errorText(e);
  } finally {
    fs.rmSync(w1, { recursive: true, force: true });
    fs.rmSync(w2, { recursive: true, force: true });
  }
  return result;
}

function readRemoteSnapshots(remote: string): { old: Snapshot; new: Snapshot } {
  const manifest = JSON.parse(fs.readFileSync(path.join(remote, 'manifest.json'), 'utf8')) as {
    signed: { snapshots: Array<{ name: string }> };
  };
  const list = manifest.signed.snapshots;
  const read = (name: string) => decodeSnapshot(fs.readFileSync(path.join(remote, 'snapshots', `${name}.snap`)));
  return { old: read(list[0].name), new: read(list[list.length - 1].name) };
}

/**
 * Splits the bytes of one paquete sync by what they carried: the access log says which file and
 * range each request fetched and how many header bytes it cost; the remote's own files say what
 * lay in each range: records in packs (walked header by header), frames in frames files (from the
 * update heads: a frame wholly fetched brings the chunks of the head's target snapshot it yields).
 */
function breakdown(
  ctx: Ctx,
  tool: string,
  mode: Mode,
  phase: 'update' | 'first',
  remote: string,
  remoteName: string,
  snaps: { old: Snapshot; new: Snapshot },
  entries: LogEntry[],
  estimates: boolean,
): Breakdown {
  const held = new Set<bigint>(phase === 'update' ? snaps.old.chunks.ids() : []);
  const inNew = new Set<bigint>(snaps.new.chunks.ids());
  const b: Breakdown = {
    phase, tool, mode, chunksInNew: snaps.new.chunks.length, chunksFetched: 0, chunksByFrames: 0, requests: entries.length,
    manifestBody: 0, indexBody: 0, updateHeads: 0, headIndexDelta: 0, frames: 0, recordHeaders: 0, payloads: 0, gapRecords: 0,
    other: 0, httpHeaders: 0, total: 0, fetchedRaw: 0, deflatedTogether: 0,
  };
  const raws: Uint8Array[] = [];
  const seen = new Set<bigint>();
  const packs = new Map<string, Buffer>();
  const packFile = (rel: string) => {
    let p = packs.get(rel);
    if (!p) packs.set(rel, (p = fs.readFileSync(path.join(remote, rel))));
    return p;
  };
  /** Bytes [start, end) a request's body covered, from its Range header and what was sent. */
  const span = (e: LogEntry) => {
    const m = e.range ? /^bytes=(\d+)-(\d*)$/.exec(e.range) : null;
    const start = m && e.status === 206 ? Number(m[1]) : 0;
    return { start, end: start + e.bodyBytesSent };
  };
  // Heads the client fetched (by file name), and the byte ranges of each frames file it fetched.
  const headsFetched = new Map<string, UpdateHead>();
  const framesFetched = new Map<string, Array<{ start: number; end: number }>>();
  for (const e of entries) {
    b.httpHeaders += e.bytesSent - e.bodyBytesSent + e.requestLength;
    b.total += e.bytesSent + e.requestLength;
    const rel = e.uri.replace(`/${remoteName}/`, '');
    const ok = e.status === 200 || e.status === 206;
    if (rel === 'manifest.json') b.manifestBody += e.bodyBytesSent;
    else if (rel.startsWith('snapshots/')) b.indexBody += e.bodyBytesSent;
    else if (ok && /^updates\/[0-9a-f]{64}\.upd$/.test(rel)) {
      b.updateHeads += e.bodyBytesSent;
      const head = decodeUpdateHead(fs.readFileSync(path.join(remote, rel)));
      if (span(e).end >= fs.statSync(path.join(remote, rel)).size) b.headIndexDelta += head.indexDelta.length;
      headsFetched.set(rel, head);
    } else if (ok && /^frames\/[0-9a-f]{64}\.frames$/.test(rel)) {
      b.frames += e.bodyBytesSent;
      const list = framesFetched.get(rel) ?? [];
      list.push(span(e));
      framesFetched.set(rel, list);
    } else if (ok && rel.startsWith('packs/')) {
      const pack = packFile(rel);
      let { start: at, end } = span(e);
      end = Math.min(pack.length, end);
      if (at === 0) at = 8; // pack header (a server that ignored Range)
      while (at + RECORD_HEADER_SIZE <= end) {
        const h = decodeRecordHeader(pack, at);
        const recEnd = at + RECORD_HEADER_SIZE + h.storedLength;
        const wanted = inNew.has(h.id) && !held.has(h.id) && !seen.has(h.id);
        if (wanted) {
          seen.add(h.id);
          b.chunksFetched++;
          b.recordHeaders += RECORD_HEADER_SIZE;
          b.payloads += h.storedLength;
          const raw = decodePayload(h, pack.subarray(at + RECORD_HEADER_SIZE, recEnd));
          raws.push(raw);
          b.fetchedRaw += raw.length;
        } else b.gapRecords += recEnd - at;
        at = recEnd;
      }
    } else {
      // Anything else (an unknown path, an error page): counted somewhere visible.
      b.other += e.bodyBytesSent;
      log(`${ctx.pair.name} ${mode} ${tool} ${phase}: request to ${e.uri} (${e.status}, ${e.bodyBytesSent} B body) counted as "other"`);
    }
  }

  // Frames: which frames lie wholly inside the fetched ranges, and the chunks they yield.
  if (framesFetched.size) {
    const snapshotCache = new Map<string, Snapshot>();
    const snapshotNamed = (name: string) => {
      let s = snapshotCache.get(name);
      if (!s) snapshotCache.set(name, (s = decodeSnapshot(fs.readFileSync(path.join(remote, 'snapshots', `${name}.snap`)))));
      return s;
    };
    // The head of a frames file: among those fetched in this phase, else any on the remote (a
    // head fetched by an earlier, interrupted session).
    const headOf = (framesRel: string): UpdateHead | undefined => {
      const sha = framesRel.slice('frames/'.length, -'.frames'.length);
      for (const h of headsFetched.values()) if (h.framesFile === sha) return h;
      const dir = path.join(remote, 'updates');
      for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
        if (!f.endsWith('.upd')) continue;
        const h = decodeUpdateHead(fs.readFileSync(path.join(dir, f)));
        if (h.framesFile === sha) return h;
      }
      return undefined;
    };
    let partial = 0;
    let twice = 0;
    for (const [rel, ranges] of framesFetched) {
      const head = headOf(rel);
      const fetchedBytes = ranges.reduce((n, r) => n + r.end - r.start, 0);
      if (!head) {
        log(`${ctx.pair.name} ${mode} ${tool} ${phase}: no update head names ${rel}: its ${fetchedBytes} B bring no chunk counted`);
        partial += fetchedBytes;
        continue;
      }
      const target = snapshotNamed(head.target);
      // Union of the fetched ranges (a resumed frame comes in two requests).
      const merged: Array<{ start: number; end: number }> = [];
      for (const r of [...ranges].sort((x, y) => x.start - y.start)) {
        const last = merged[merged.length - 1];
        if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
        else merged.push({ ...r });
      }
      const covered = (start: number, end: number) => merged.some((r) => r.start <= start && end <= r.end);
      let inWholeFrames = 0;
      for (const fr of head.frames) {
        if (!covered(fr.offset, fr.offset + fr.length)) continue;
        inWholeFrames += fr.length;
        for (const i of fr.yields) {
          const c = target.chunks.entry(i);
          if (!inNew.has(c.id) || held.has(c.id)) continue;
          if (seen.has(c.id)) {
            twice++;
            continue;
          }
          seen.add(c.id);
          b.chunksFetched++;
          b.chunksByFrames++;
          b.fetchedRaw += c.rawLength;
          const pack = packFile(`packs/${target.packs[c.pack]}.pack`);
          const h = decodeRecordHeader(pack, c.offset);
          raws.push(decodePayload(h, pack.subarray(c.offset + RECORD_HEADER_SIZE, c.offset + RECORD_HEADER_SIZE + h.storedLength)));
        }
      }
      // What the merged ranges hold beyond whole frames (the 8-byte file header, a cut frame);
      // bytes fetched twice count in `frames` but not here.
      partial += merged.reduce((n, r) => n + r.end - r.start, 0) - inWholeFrames;
    }
    if (partial) b.framesPartial = partial;
    if (twice) {
      b.chunksTwice = twice;
      log(`${ctx.pair.name} ${mode} ${tool} ${phase}: ${twice} chunks came both in frames and as records`);
    }
  }

  if (raws.length) {
    const all = Buffer.concat(raws);
    b.deflatedTogether = zlib.deflateRawSync(all, { level: 9 }).length;
    if (estimates) {
      // zstd -19 is slow (~1 MB/s): on a copy, in the background, while the next tool is measured.
      const blob = path.join(ctx.work, `fetched-${ctx.pair.name.replace(/\W+/g, '-')}-${remoteName}-${phase}.bin`);
      fs.writeFileSync(blob, all);
      ctx.jobs.push(ctx.background.add(async () => {
        try {
          b.zstdTogether = await zstdSize(['-19', '--long=27'], blob);
          b.zstdDeltaAgainstOld = await zstdSize(['-19', '--long=27', `--patch-from=${ctx.files.oldTar}`], blob);
        } catch (e) {
          log(`${ctx.pair.name} ${mode}: zstd estimate failed: ${errorText(e)}`);
        } finally {
          fs.rmSync(blob, { force: true });
        }
      }));
    }
  }
  return b;
}

async function zstdSize(args: string[], input: string): Promise<number> {
  const out = `${input}.zst`;
  await run('zstd', ['-q', '-f', ...args, input, '-o', out], { maxBuffer: 16 << 20 });
  const n = fs.statSync(out).size;
  fs.rmSync(out, { force: true });
  return n;
}

async function measureCasync(ctx: Ctx, mode: Mode): Promise<ToolResult> {
  const result: ToolResult = { tool: 'casync', mode, counted: 'nginx' };
  const missing = await ensureCommand('casync');
  if (missing) return { ...result, error: missing };
  const ext = mode === 'tar' ? 'caibx' : 'caidx';
  const dirName = `ca-${mode}`;
  const dir = fresh(path.join(ctx.www, dirName));
  const store = path.join(dir, 'store');
  const input = (which: 'old' | 'new') => (mode === 'tar' ? (which === 'old' ? ctx.files.oldTar : ctx.files.newTar) : which === 'old' ? ctx.files.oldDir : ctx.files.newDir);
  const out = fresh(path.join(ctx.work, `ca-${mode}-out`));
  try {
    log(`${ctx.pair.name} ${mode}: casync make`);
    await timedRun('casync', ['make', `--store=${store}`, path.join(dir, `old.${ext}`), input('old')]);
    const mk = await timedRun('casync', ['make', `--store=${store}`, path.join(dir, `new.${ext}`), input('new')]);
    result.make = { cpu: mk.cpu, wall: mk.wall };
    const storeUrl = `${ctx.ng.url}${dirName}/store/`;
    const indexUrl = `${ctx.ng.url}${dirName}/new.${ext}`;
    const check = (target: string) => (mode === 'tar' ? sha256File(target) === sha256File(ctx.files.newTar) : sameTree(ctx.files.newDir, target));

    log(`${ctx.pair.name} ${mode}: casync extract (first, no seed)`);
    const t1 = path.join(out, mode === 'tar' ? 'first.tar' : 'first');
    const first = await counted(ctx.ng, () => timedRun('casync', ['extract', `--store=${storeUrl}`, indexUrl, t1]));
    result.first = { ...wireOf(first.entries), cpu: first.value.cpu, wall: first.value.wall, ok: check(t1) };

    log(`${ctx.pair.name} ${mode}: casync extract --seed=OLD (update)`);
    const t2 = path.join(out, mode === 'tar' ? 'update.tar' : 'update');
    const upd = await counted(ctx.ng, () => timedRun('casync', ['extract', `--store=${storeUrl}`, `--seed=${input('old')}`, indexUrl, t2]));
    result.update = { ...wireOf(upd.entries), cpu: upd.value.cpu, wall: upd.value.wall, ok: check(t2) };
  } catch (e) {
    result.error = errorText(e);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  return result;
}

async function measureZsync(ctx: Ctx): Promise<ToolResult> {
  const result: ToolResult = { tool: 'zsync', mode: 'tar', counted: 'nginx' };
  const missing = (await ensureCommand('zsyncmake')) ?? (await ensureCommand('zsync'));
  if (missing) return { ...result, error: missing };
  const dir = fresh(path.join(ctx.www, 'zs'));
  const out = fresh(path.join(ctx.work, 'zs-out'));
  try {
    log(`${ctx.pair.name} tar: zsyncmake, zsync`);
    fs.copyFileSync(ctx.files.newTar, path.join(dir, 'new.tar'));
    const mk = await timedRun('zsyncmake', ['-u', 'new.tar', '-o', 'new.tar.zsync', 'new.tar'], { cwd: dir });
    result.make = { cpu: mk.cpu, wall: mk.wall };
    const url = `${ctx.ng.url}zs/new.tar.zsync`;
    const d1 = mkdirp(path.join(out, 'first'));
    const first = await counted(ctx.ng, () => timedRun('zsync', ['-q', '-o', 'new.tar', url], { cwd: d1 }));
    result.first = { ...wireOf(first.entries), cpu: first.value.cpu, wall: first.value.wall, ok: sha256File(path.join(d1, 'new.tar')) === sha256File(ctx.files.newTar) };
    const d2 = mkdirp(path.join(out, 'update'));
    const upd = await counted(ctx.ng, () => timedRun('zsync', ['-q', '-i', ctx.files.oldTar, '-o', 'new.tar', url], { cwd: d2 }));
    result.update = { ...wireOf(upd.entries), cpu: upd.value.cpu, wall: upd.value.wall, ok: sha256File(path.join(d2, 'new.tar')) === sha256File(ctx.files.newTar) };
  } catch (e) {
    result.error = errorText(e);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  return result;
}

/** A loopback rsync daemon with modules `tar` (NEW as pkg.tar) and `tree` (NEW unpacked). */
class RsyncDaemon {
  private constructor(readonly port: number, private readonly child: ChildProcess, private readonly dir: string) {}

  static async start(work: string, files: PairFiles): Promise<RsyncDaemon> {
    const dir = fresh(path.join(work, 'rsyncd'));
    const port = await freePort();
    const root = process.getuid?.() === 0;
    const conf = [
      'use chroot = no',
      `pid file = ${path.join(dir, 'rsyncd.pid')}`,
      `log file = ${path.join(dir, 'rsyncd.log')}`,
      'read only = yes',
      ...(root ? ['uid = root', 'gid = root'] : []),
      '[tar]',
      `path = ${files.newTarDir}`,
      '[tree]',
      `path = ${files.newDir}`,
      '',
    ].join('\n');
    const confPath = path.join(dir, 'rsyncd.conf');
    fs.writeFileSync(confPath, conf);
    const child = spawn('rsync', ['--daemon', '--no-detach', `--config=${confPath}`, `--port=${port}`, '--address=127.0.0.1'], {
      stdio: 'ignore',
    });
    const d = new RsyncDaemon(port, child, dir);
    for (let i = 0; i < 100; i++) {
      try {
        await run('rsync', [`rsync://127.0.0.1:${port}/`]);
        return d;
      } catch {
        await sleep(50);
      }
    }
    await d.stop();
    throw new Error('the rsync daemon did not start');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.pid !== undefined) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function rsyncStats(stdout: string): number {
  const num = (label: string) => {
    const m = new RegExp(`${label}: ([\\d,.]+)`).exec(stdout);
    if (!m) throw new Error(`rsync --stats: no "${label}" in its output`);
    return Number(m[1].replace(/[,.]/g, ''));
  };
  return num('Total bytes sent') + num('Total bytes received');
}

async function measureRsync(ctx: Ctx, mode: Mode, daemon: RsyncDaemon): Promise<ToolResult> {
  const result: ToolResult = { tool: 'rsync -z', mode, counted: 'rsync --stats' };
  const out = fresh(path.join(ctx.work, `rs-${mode}-out`));
  const base = `rsync://127.0.0.1:${daemon.port}`;
  try {
    log(`${ctx.pair.name} ${mode}: rsync -z`);
    if (mode === 'tar') {
      const d1 = mkdirp(path.join(out, 'first'));
      const first = await timedRun('rsync', ['-z', '--stats', `${base}/tar/pkg.tar`, path.join(d1, 'pkg.tar')]);
      result.first = { bytes: rsyncStats(first.stdout), cpu: first.cpu, wall: first.wall, ok: sha256File(path.join(d1, 'pkg.tar')) === sha256File(ctx.files.newTar) };
      const d2 = mkdirp(path.join(out, 'update'));
      fs.copyFileSync(ctx.files.oldTar, path.join(d2, 'pkg.tar'));
      const upd = await timedRun('rsync', ['-z', '--stats', `${base}/tar/pkg.tar`, path.join(d2, 'pkg.tar')]);
      result.update = { bytes: rsyncStats(upd.stdout), cpu: upd.cpu, wall: upd.wall, ok: sha256File(path.join(d2, 'pkg.tar')) === sha256File(ctx.files.newTar) };
    } else {
      const d1 = mkdirp(path.join(out, 'first'));
      const first = await timedRun('rsync', ['-rz', '--stats', `${base}/tree/`, `${d1}/`]);
      result.first = { bytes: rsyncStats(first.stdout), cpu: first.cpu, wall: first.wall, ok: sameTree(ctx.files.newDir, d1) };
      const d2 = path.join(out, 'update');
      await run('cp', ['-r', ctx.files.oldDir, d2]);
      // npm tarballs give every file the same mtime (1985), so rsync's size+mtime quick check
      // would skip changed files of equal size: compare whole-file checksums instead.
      const upd = await timedRun('rsync', ['-rz', '--checksum', '--delete', '--stats', `${base}/tree/`, `${d2}/`]);
      result.update = {
        bytes: rsyncStats(upd.stdout), cpu: upd.cpu, wall: upd.wall, ok: sameTree(ctx.files.newDir, d2),
        note: '--checksum (npm gives all files one mtime)',
      };
    }
  } catch (e) {
    result.error = errorText(e);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  return result;
}

async function measureFloors(ctx: Ctx): Promise<void> {
  const f = ctx.pair.floors;
  const missing = await ensureCommand('zstd');
  if (missing) {
    f.error = missing;
    return;
  }
  const out = path.join(ctx.work, `floor-${ctx.pair.name.replace(/\W+/g, '-')}.zst`);
  try {
    log(`${ctx.pair.name}: zstd floors (background)`);
    const a = await timedRun('zstd', ['-q', '-f', '-19', '--long=27', ctx.files.newTar, '-o', out]);
    f.first = fs.statSync(out).size;
    f.firstCpu = a.cpu;
    const b = await timedRun('zstd', ['-q', '-f', '-19', '--long=27', `--patch-from=${ctx.files.oldTar}`, ctx.files.newTar, '-o', out]);
    f.update = fs.statSync(out).size;
    f.updateCpu = b.cpu;
  } catch (e) {
    f.error = errorText(e);
  } finally {
    fs.rmSync(out, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// One pair
// ---------------------------------------------------------------------------------------------

async function preparePair(work: string, name: string, from: string, to: string): Promise<PairFiles> {
  const oldDir = await fetchNpmPackage(name, from);
  const newDir = await fetchNpmPackage(name, to);
  const oldTar = await tarOf(oldDir, `${name}@${from}`);
  const newTar = await tarOf(newDir, `${name}@${to}`);
  const tarDir = (tar: string, which: string) => {
    const d = fresh(path.join(work, `src-${which}`));
    fs.copyFileSync(tar, path.join(d, 'pkg.tar'));
    return d;
  };
  return { oldDir, newDir, oldTar, newTar, oldTarDir: tarDir(oldTar, 'old'), newTarDir: tarDir(newTar, 'new') };
}

interface Options {
  modes: Mode[];
  /** paquete variants: undefined = the build's default chunk size, else an --avg-chunk value. */
  paquete: Array<string | undefined>;
}

/**
 * Measures one pair. Returns when the measurements are done; `background` resolves when the zstd
 * floors and estimates for it are done too.
 */
async function measurePair(
  spec: (typeof WIRE_PAIRS)[number],
  opts: Options,
  base: { work: string; www: string; ng: NginxServer; key: string; background: Background },
): Promise<{ pair: PairResult; background: Promise<unknown> }> {
  const { modes } = opts;
  const t0 = Date.now();
  log(`${spec.name} ${spec.from} → ${spec.to}: fetching`);
  const files = await preparePair(base.work, spec.name, spec.from, spec.to);
  const newTree = treeBytes(files.newDir);
  const pair: PairResult = {
    ...spec,
    oldTarBytes: fs.statSync(files.oldTar).size,
    newTarBytes: fs.statSync(files.newTar).size,
    newTreeBytes: newTree.bytes,
    newFiles: newTree.files,
    floors: {},
    tools: [],
    breakdowns: [],
    seconds: 0,
  };
  const ctx: Ctx = { ...base, files, pair, jobs: [] };
  ctx.jobs.push(base.background.add(() => measureFloors(ctx)));
  for (const [i, avg] of opts.paquete.entries()) {
    for (const mode of modes) {
      // zstd -19 estimates of the fetched chunks once per mode: the records-only row fetches the same chunks.
      pair.tools.push(await measurePaquete(ctx, mode, avg, false, i === 0));
      pair.tools.push(await measurePaquete(ctx, mode, avg, true, false));
    }
  }
  for (const mode of modes) pair.tools.push(await measureCasync(ctx, mode));
  if (modes.includes('tar')) pair.tools.push(await measureZsync(ctx));
  const missing = await ensureCommand('rsync');
  if (missing) {
    for (const mode of modes) pair.tools.push({ tool: 'rsync -z', mode, counted: 'rsync --stats', error: missing });
  } else {
    const daemon = await RsyncDaemon.start(base.work, files);
    try {
      for (const mode of modes) pair.tools.push(await measureRsync(ctx, mode, daemon));
    } finally {
      await daemon.stop();
    }
  }
  const background = Promise.all(ctx.jobs).then(() => {
    pair.seconds = (Date.now() - t0) / 1000;
  });
  return { pair, background };
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

function speed(bytes: number, cpu: number | undefined): string {
  if (cpu === undefined || Number.isNaN(cpu)) return 'n/a';
  if (cpu < 0.005) return `>${(bytes / 0.005 / 1e6).toFixed(0)}`;
  return (bytes / cpu / 1e6).toFixed(bytes / cpu / 1e6 >= 10 ? 0 : 1);
}

function markdownTable(head: string[], rows: string[][], rightAlign: boolean[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    '| ' + cells.map((c, i) => (rightAlign[i] ? (c ?? '').padStart(widths[i]) : (c ?? '').padEnd(widths[i]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (rightAlign[i] ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|';
  return [fmt(head), sep, ...rows.map(fmt)].join('\n');
}

const okMark = (m: Measure | undefined) => (m?.ok === undefined ? '' : m.ok ? '' : ' (WRONG OUTPUT)');

function pairTable(p: PairResult): string {
  const head = ['tool', 'mode', 'first download', 'x floor', 'reqs', 'CPU MB/s', 'update', 'x floor', 'reqs', 'CPU MB/s', 'publish/make CPU MB/s'];
  const right = [false, false, true, true, true, true, true, true, true, true, true];
  const rows: string[][] = [];
  const f = p.floors;
  rows.push([
    'floor: zstd -19 --long=27', 'tar', fmtBytes(f.first), '1.00x', '', speed(p.newTarBytes, f.firstCpu),
    fmtBytes(f.update), '1.00x', '', speed(p.newTarBytes, f.updateCpu), '',
  ]);
  for (const t of p.tools) {
    const size = t.mode === 'tar' ? p.newTarBytes : p.newTreeBytes;
    const name = t.counted === 'nginx' ? t.tool : `${t.tool} (its --stats)`;
    if (t.error) {
      rows.push([name, t.mode, 'error (below)', '', '', '', 'error (below)', '', '', '', '']);
      continue;
    }
    rows.push([
      name,
      t.mode === 'tar' ? 'tar' : 'tree',
      fmtBytes(t.first?.bytes) + okMark(t.first),
      ratio(t.first?.bytes, f.first),
      t.first?.requests !== undefined ? String(t.first.requests) : '',
      speed(size, t.first?.cpu),
      fmtBytes(t.update?.bytes) + okMark(t.update),
      ratio(t.update?.bytes, f.update),
      t.update?.requests !== undefined ? String(t.update.requests) : '',
      speed(size, t.update?.cpu),
      t.make ? speed(size, t.make.cpu) : '',
    ]);
  }
  const title =
    `### ${p.name} ${p.from} → ${p.to}\n\n${p.character}. NEW: ${p.newFiles} files, ${fmtBytes(p.newTreeBytes)}; ` +
    `as a tar ${fmtBytes(p.newTarBytes)}` + (p.chunkParams ? `; paquete chunks: ${p.chunkParams}` : '') + '.\n';
  const notes = [
    ...(p.floors.error ? [`- floors: error: ${p.floors.error}`] : []),
    ...p.tools.filter((t) => t.error).map((t) => `- ${t.tool} ${t.mode}: error: ${t.error}`),
    ...p.tools.filter((t) => t.update?.note && !t.error).map((t) => `- ${t.tool} ${t.mode}, update: ${t.update!.note}`),
    ...p.tools.filter((t) => t.first?.note && !t.error).map((t) => `- ${t.tool} ${t.mode}, first download: ${t.first!.note}`),
    ...p.tools.filter((t) => t.params && !t.error && t.params !== p.chunkParams).map((t) => `- ${t.tool} ${t.mode}: chunks ${t.params}`),
  ];
  return `${title}\n${markdownTable(head, rows, right)}\n${notes.length ? '\n' + notes.join('\n') + '\n' : ''}`;
}

function targetsMet(p: PairResult, tool: string, mode: Mode): string {
  const pq = p.tools.find((t) => t.tool === tool && t.mode === mode);
  const ca = p.tools.find((t) => t.tool === 'casync' && t.mode === mode);
  if (!pq || pq.error || !p.floors.update || !p.floors.first) return 'n/a';
  const u = pq.update?.bytes ?? Infinity;
  const fd = pq.first?.bytes ?? Infinity;
  const marks = [
    u <= 2 * p.floors.update + 16384 ? 'U✓' : 'U✗',
    fd <= 1.15 * p.floors.first ? 'F✓' : 'F✗',
    ca && !ca.error && ca.update?.bytes !== undefined && ca.first?.bytes !== undefined
      ? u <= ca.update.bytes && fd <= ca.first.bytes ? 'C✓' : 'C✗'
      : 'C?',
  ];
  return marks.join(' ');
}

/** One table per phase and mode: pairs down, tools across, bytes and the ratio to the floor. */
function summaryTables(pairs: PairResult[], modes: Mode[]): string {
  const out: string[] = [];
  for (const phase of ['update', 'first'] as const) {
    for (const mode of modes) {
      const tools: string[] = [];
      for (const p of pairs) for (const t of p.tools) if (t.mode === mode && !tools.includes(t.tool)) tools.push(t.tool);
      // Targets for the main paquete row(s) only: records-only rows are there for comparison.
      const paquetes = tools.filter((t) => t.startsWith('paquete') && !t.endsWith('(records only)'));
      const floorOf = (p: PairResult) => (phase === 'update' ? p.floors.update : p.floors.first);
      const head = ['pair', phase === 'update' ? 'floor: patch-from' : 'floor: zstd -19', ...tools];
      if (phase === 'update') head.push(...paquetes.map((t) => `${t}: targets`));
      const rows = pairs.map((p) => {
        const r = [`${p.name} ${p.from}→${p.to}`, fmtBytes(floorOf(p))];
        for (const tool of tools) {
          const t = p.tools.find((x) => x.tool === tool && x.mode === mode);
          const m = t?.[phase];
          r.push(!t ? '' : t.error ? 'error' : `${fmtBytes(m?.bytes)} (${ratio(m?.bytes, floorOf(p))})${okMark(m)}`);
        }
        if (phase === 'update') r.push(...paquetes.map((t) => targetsMet(p, t, mode)));
        return r;
      });
      if (pairs.length > 1) {
        const totalFloor = pairs.reduce((n, p) => n + (floorOf(p) ?? 0), 0);
        const totals = ['all pairs', fmtBytes(totalFloor)];
        for (const tool of tools) {
          const xs = pairs.map((p) => p.tools.find((y) => y.tool === tool && y.mode === mode)?.[phase]?.bytes);
          const sum = xs.reduce<number>((n, x) => n + (x ?? 0), 0);
          totals.push(xs.every((x) => x !== undefined) ? `${fmtBytes(sum)} (${ratio(sum, totalFloor)})` : 'n/a');
        }
        if (phase === 'update') totals.push(...paquetes.map(() => ''));
        rows.push(totals);
      }
      const what = phase === 'update' ? 'update OLD → NEW' : 'first download of NEW';
      out.push(`### Summary: ${what}, ${mode === 'tar' ? 'one tar per version' : 'directory trees'} (bytes on the wire, x floor)\n\n` +
        markdownTable(head, rows, head.map((_, i) => i > 0)));
    }
  }
  out.push(
    'Targets (issue 4): U = update ≤ 2 × patch-from floor + 16 KiB; F = first download ≤ 1.15 × zstd floor; ' +
      'C = update and first download both ≤ casync in the same mode. rsync -z is counted by its own --stats (no HTTP).',
  );
  return out.join('\n\n') + '\n';
}

function breakdownTable(pairs: PairResult[], phase: 'update' | 'first'): string {
  const head = [
    'pair', 'tool', 'mode', 'total', 'HTTP headers', 'reqs', 'manifest', 'index', 'update head (its index delta)', 'frames',
    'chunks fetched (by frames) / in NEW', 'record headers', 'payloads (deflated alone)', 'gap records', 'other', 'fetched raw',
    'same, deflate -9 together',
  ];
  if (phase === 'update') head.push('same, zstd -19 together', 'same, zstd -19 --patch-from=OLD');
  const rows: string[][] = [];
  for (const p of pairs) {
    for (const b of p.breakdowns.filter((x) => x.phase === phase)) {
      const pct = (n: number) => `${fmtBytes(n)} (${((100 * n) / b.total).toFixed(0)}%)`;
      const r = [
        `${p.name} ${p.from}→${p.to}`, b.tool, b.mode, fmtBytes(b.total), pct(b.httpHeaders), String(b.requests), pct(b.manifestBody), pct(b.indexBody),
        b.updateHeads ? `${pct(b.updateHeads)} (${fmtBytes(b.headIndexDelta)})` : pct(0), pct(b.frames),
        `${b.chunksFetched} (${b.chunksByFrames}) / ${b.chunksInNew}`, pct(b.recordHeaders), pct(b.payloads), pct(b.gapRecords),
        b.other ? `${pct(b.other)} (!)` : pct(0), fmtBytes(b.fetchedRaw), fmtBytes(b.deflatedTogether),
      ];
      if (phase === 'update') r.push(fmtBytes(b.zstdTogether), fmtBytes(b.zstdDeltaAgainstOld));
      rows.push(r);
    }
  }
  const notes: string[] = [];
  for (const p of pairs) {
    for (const b of p.breakdowns.filter((x) => x.phase === phase)) {
      const what = `${p.name} ${b.tool} ${b.mode}`;
      if (b.framesPartial) notes.push(`- ${what}: ${fmtBytes(b.framesPartial)} of frames file bytes outside whole frames (file header, cut frames)`);
      if (b.chunksTwice) notes.push(`- ${what}: ${b.chunksTwice} chunks came in a frame and as a record (counted once, as the record)`);
      if (b.other) notes.push(`- ${what}: ${fmtBytes(b.other)} of bodies from unexpected paths ("other"; see stderr)`);
    }
  }
  return (
    `### Where paquete's bytes go: ${phase === 'update' ? 'update' : 'first download'}\n\n` +
    markdownTable(head, rows, head.map((_, i) => i > 2)) +
    '\n' +
    (notes.length ? '\n' + notes.join('\n') + '\n' : '')
  );
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`${flag}=`));
  return eq?.slice(flag.length + 1);
}

/** user + system seconds of this process and of the children it waited for (Linux /proc). */
function runCpu(): number {
  try {
    const f = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number);
    // After the command name: state is field 3, so utime..cstime (14..17) are at 11..14 here.
    const tick = 100; // USER_HZ on Linux
    return (fields[11] + fields[12] + fields[13] + fields[14]) / tick;
  } catch {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
}

function machine(): string {
  let cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  try {
    cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    // not Linux
  }
  return `${cpu}, ${os.cpus().length} cpus, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}`;
}

async function versions(): Promise<string> {
  const v = async (cmd: string, args: string[], re: RegExp) => {
    try {
      const { stdout, stderr } = await run(cmd, args);
      return re.exec(stdout + stderr)?.[0] ?? '?';
    } catch {
      return 'missing';
    }
  };
  return [
    `casync ${await v('casync', ['--version'], /\d+(\.\d+)*/)}`,
    `zsync ${await v('zsync', ['-V'], /\d+\.\d+\.\d+/)}`,
    `rsync ${await v('rsync', ['--version'], /\d+\.\d+\.\d+/)}`,
    `zstd ${await v('zstd', ['--version'], /\d+\.\d+\.\d+/)}`,
    `nginx ${await v('/usr/sbin/nginx', ['-v'], /\d+\.\d+\.\d+/)}`,
  ].join(', ');
}

async function main(): Promise<void> {
  const wantPairs = (argValue('--pairs') ?? process.env.WIRE_PAIRS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const modes = (argValue('--modes') ?? process.env.WIRE_MODES ?? 'tar,tree').split(',').map((s) => s.trim()) as Mode[];
  if (modes.some((m) => m !== 'tar' && m !== 'tree')) throw new Error('--modes takes tar, tree or tar,tree');
  // e.g. --paquete-avg default,8KiB: the build's default chunk size, then --avg-chunk 8KiB.
  const variants = (argValue('--paquete-avg') ?? process.env.WIRE_PAQUETE_AVG ?? 'default')
    .split(',')
    .map((s) => s.trim())
    .map((s) => (s === 'default' || s === '' ? undefined : s));
  const pairs = wantPairs.length ? WIRE_PAIRS.filter((p) => wantPairs.includes(p.name)) : WIRE_PAIRS;
  if (pairs.length === 0) throw new Error(`no pair matches ${wantPairs.join(',')}; pairs: ${WIRE_PAIRS.map((p) => p.name).join(', ')}`);
  if (!fs.existsSync(PAQUETE)) throw new Error(`${PAQUETE} missing`);

  const started = new Date();
  console.log(`paquete bench/wire — ${started.toISOString()}\n`);
  console.log(`machine: ${machine()}`);
  console.log(`tools: ${await versions()}\n`);

  const work = fresh(path.join(CACHE_DIR, 'wire', `run-${process.pid}`));
  const www = mkdirp(path.join(work, 'www'));
  const ng = await startNginx(www);
  const results: PairResult[] = [];
  const background = new Background();
  const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');
  const loadAtStart = load();
  try {
    const key = path.join(work, 'publisher.key');
    await paquete(['keygen', '--out', key, '--quiet']);
    const startups = [];
    for (let i = 0; i < 3; i++) startups.push((await paquete(['--help'])).cpu);
    console.log(
      `paquete process start-up (node + imports, \`paquete --help\`): ${startups.sort()[1].toFixed(2)} s CPU, ` +
        'inside every paquete CPU figure below (init + sync count it twice)\n',
    );
    // Each pair's table is printed once its background zstd work is done too, in order.
    const pending: Array<{ pair: PairResult; done: boolean }> = [];
    const flush = () => {
      while (pending.length && pending[0].done) {
        const { pair } = pending.shift()!;
        console.log(pairTable(pair));
        log(`${pair.name}: ${pair.seconds.toFixed(0)} s`);
      }
    };
    for (const spec of pairs) {
      const r = await measurePair(spec, { modes, paquete: variants }, { work, www, ng, key, background });
      results.push(r.pair);
      const entry = { pair: r.pair, done: false };
      pending.push(entry);
      void r.background.then(() => {
        entry.done = true;
      });
      await sleep(0);
      flush();
    }
    log('waiting for background zstd work');
    await background.idle();
    for (const p of pending) p.done = true;
    flush();
  } finally {
    await background.idle();
    await ng.stop();
    if (!process.argv.includes('--keep')) fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(summaryTables(results, modes));
  console.log(breakdownTable(results, 'update'));
  console.log(breakdownTable(results, 'first'));
  const seconds = (Date.now() - started.getTime()) / 1000;
  console.log(
    `Bytes: HTTP tools counted from nginx's access log ($request_length + $bytes_sent, every request); rsync from its own --stats ` +
      `(protocol bytes, its daemon on loopback, no HTTP). CPU MB/s: NEW's size (tar or tree) over the client command's user+system ` +
      `CPU seconds (servers not counted); "publish/make" is the publisher side on NEW. Floors are of the tar in both modes.\n`,
  );
  console.log(
    `total time ${seconds.toFixed(0)} s, CPU ${runCpu().toFixed(0)} s (this process and every child it waited for); ` +
      `load average (1, 5, 15 min) at start ${loadAtStart}, at end ${load()}`,
  );
  const jsonOut = argValue('--json');
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ started, machine: machine(), tools: await versions(), results }, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
