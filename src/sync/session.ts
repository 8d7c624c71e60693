import { PaqueteError } from '../errors.js';
import { openRemote } from '../remote/open.js';
import { Remote } from '../remote/remote.js';
import { FileEntry, recordLength, Snapshot } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { Assembler } from './assembler.js';
import { ChunkCache } from './cache.js';
import { fetchLatest } from './catalog.js';
import { fetchRanges } from './fetcher.js';
import { Plan, planSession } from './planner.js';
import { expandWants, PypiTargetOptions } from './wants.js';

/** Bytes a server that ignores Range may push past what we read before our hang-up reaches it. */
const IGNORED_RANGE_MARGIN = 256 << 10;

export interface SyncOptions {
  /** Wire bytes this session may spend, headers included. */
  budget?: number;
  wants?: string[];
  dryRun?: boolean;
  signal?: AbortSignal;
  events?: SyncEvents;
  /** For tests: a remote to use instead of the configured one. */
  remote?: Remote;
  /** The Python that `--want pypi:…` resolves for (default: this machine's python3). */
  pypi?: PypiTargetOptions;
}

export interface SyncEvents {
  planned?: (plan: Plan, spent: number) => void;
  /** Wire bytes spent so far in this session. */
  progress?: (spent: number) => void;
  fileDone?: (path: string, size: number) => void;
  fileFailed?: (path: string) => void;
  /** The link failed and the request will be tried again. */
  retrying?: (message: string, delayMs: number) => void;
  /** Something the user should know about their wants (a package not in the mirror, …). */
  note?: (message: string) => void;
}

export interface SyncResult {
  snapshot: string;
  serial: number;
  plan: Plan;
  /** Wire bytes spent, headers included. */
  spent: number;
  /** Wanted files now in place, and how many are wanted in all. */
  completeFiles: number;
  wantedFiles: number;
  /** Files that completed during this session. */
  placed: string[];
  /** Files whose assembled bytes failed their checksum; their chunks are fetched again next time. */
  failed: string[];
  removed: string[];
  /** Record bytes the wanted files still lack. */
  leftBytes: number;
  stoppedByBudget: boolean;
  dryRun: boolean;
}

/**
 * One sync session: fetch and check the manifest and snapshot, plan within the budget, fetch,
 * and place each file as soon as its last chunk is durable, so an interruption at any byte
 * leaves every finished file usable and every received chunk kept for the next session.
 */
export async function runSync(work: WorkDir, opts: SyncOptions = {}): Promise<SyncResult> {
  const remote =
    opts.remote ??
    openRemote(work.config.remotes[0].location, {
      onRetry: (info) => opts.events?.retrying?.(info.error.message, info.delayMs),
    });
  const budget = opts.budget ?? Infinity;
  const spent = () => remote.meter.total;
  try {
    // Soft commits already cover a killed process; this bounds what a power cut can take.
    work.store.flushEvery = { bytes: 4 << 20, ms: 1000 };
    const latest = await fetchLatest(work, remote, { signal: opts.signal });
    if (spent() > budget) {
      throw new PaqueteError('BUDGET', `the budget (${budget} bytes) does not even cover the index (${spent()} bytes)`, 'give a larger --budget');
    }
    const { snapshot } = latest;
    // `pypi:NAME` and `docs:NAME` wants become path globs (pypi metadata may be fetched first).
    const wants = await expandWants(opts.wants ?? [], { work, remote, snapshot, budget, signal: opts.signal, pypi: opts.pypi, onNote: opts.events?.note });
    const state = work.treeState();
    const cache = new ChunkCache();
    const assembler = new Assembler(work.root, work.tmpDir, work.store, snapshot, state, cache);

    const complete = new Set<string>();
    for (const f of snapshot.files) if (assembler.isInPlace(f)) complete.add(f.path);
    const present = await work.store.hasMany(snapshot.chunks.map((c) => c.id));
    const rangesHonoured = remote.rangeSupport !== 'no';
    const packPath = `packs/${snapshot.packs[0] ?? ''}.pack`;
    const plan = planSession({
      snapshot,
      present,
      complete,
      wants,
      // A server that ignores Range keeps sending after we hang up; keep a margin for that.
      budget: budget - spent() - (rangesHonoured ? 0 : IGNORED_RANGE_MARGIN),
      requestCost: (n) => remote.requestCost(packPath, n),
      rangesHonoured,
    });
    opts.events?.planned?.(plan, spent());
    const wantedFiles = plan.files.length;
    const result: SyncResult = {
      snapshot: latest.entry.name,
      serial: latest.manifest.body.serial,
      plan,
      spent: 0,
      completeFiles: plan.files.filter((f) => complete.has(f.file.path)).length,
      wantedFiles,
      placed: [],
      failed: [],
      removed: [],
      leftBytes: plan.leftBytes,
      stoppedByBudget: false,
      dryRun: !!opts.dryRun,
    };
    if (opts.dryRun) {
      result.spent = spent();
      return result;
    }

    // Track, per wanted file, how many of its distinct chunks are still missing.
    const waitingOn = new Map<number, FileEntry[]>();
    const missingCount = new Map<FileEntry, number>();
    const ready: FileEntry[] = [];
    for (const pf of plan.files) {
      if (pf.outcome === 'present') continue;
      const distinct = new Set(pf.file.chunks.filter((i) => !present.has(snapshot.chunks[i].id)));
      missingCount.set(pf.file, distinct.size);
      if (distinct.size === 0) ready.push(pf.file);
      for (const i of distinct) {
        const list = waitingOn.get(i) ?? [];
        list.push(pf.file);
        waitingOn.set(i, list);
      }
    }
    // Files are placed by a worker beside the download, not inside it: a file's fsync must not
    // stall reading the socket (a stalled reader leaves data in flight that a kill would waste).
    let placeError: unknown;
    let lastStateSave = Date.now();
    const placeReady = async () => {
      while (ready.length && placeError === undefined) {
        const f = ready.shift()!;
        try {
          if (await assembler.place(f)) {
            result.placed.push(f.path);
            complete.add(f.path);
            opts.events?.fileDone?.(f.path, f.size);
          } else {
            result.failed.push(f.path);
            opts.events?.fileFailed?.(f.path);
          }
        } catch (e) {
          placeError = e;
        }
      }
      // tree.json is a cache of what we placed (a lost entry costs one re-hash), so it is saved
      // now and then rather than after every file.
      if (Date.now() - lastStateSave > 2000) {
        work.saveTreeState(state);
        lastStateSave = Date.now();
      }
    };
    let placing = placeReady();
    const schedule = () => {
      placing = placing.then(placeReady);
    };
    try {
      await fetchRanges(remote, snapshot, plan.ranges, work.store, {
        signal: opts.signal,
        wireLimit: budget,
        cache,
        onChunks: (indices) => {
          if (placeError !== undefined) throw placeError;
          for (const i of indices) {
            for (const f of waitingOn.get(i) ?? []) {
              const n = missingCount.get(f)! - 1;
              missingCount.set(f, n);
              if (n === 0) ready.push(f);
            }
            waitingOn.delete(i);
          }
          opts.events?.progress?.(spent());
          if (ready.length) schedule();
        },
      });
    } finally {
      // Whatever completed before an interruption is still placed.
      schedule();
      await placing;
      work.saveTreeState(state);
    }
    if (placeError !== undefined) throw placeError;

    // Files of older snapshots that this one no longer has go, if the user left them untouched.
    const inSnapshot = new Set(snapshot.files.map((f) => f.path));
    for (const path of Object.keys(state.files)) {
      if (!inSnapshot.has(path) && assembler.removeStale(path)) result.removed.push(path);
    }
    state.snapshot = latest.entry.name;
    work.saveTreeState(state);

    result.spent = spent();
    // Wanted files only: files outside --want that happen to be complete are not this session's.
    result.completeFiles = plan.files.filter((f) => complete.has(f.file.path)).length;
    const stillMissing = await missingBytes(work, snapshot, plan);
    result.leftBytes = stillMissing;
    result.stoppedByBudget = budget !== Infinity && result.completeFiles < wantedFiles;
    return result;
  } finally {
    await work.store.flush();
    if (!opts.remote) await remote.close();
  }
}

/** Record bytes the wanted files still lack, from the store as it is now. */
async function missingBytes(work: WorkDir, snapshot: Snapshot, plan: Plan): Promise<number> {
  const ids = new Map<bigint, number>();
  for (const pf of plan.files) for (const i of pf.file.chunks) ids.set(snapshot.chunks[i].id, i);
  const have = await work.store.hasMany([...ids.keys()]);
  let n = 0;
  for (const [id, i] of ids) if (!have.has(id)) n += recordLength(snapshot.chunks[i]);
  return n;
}
