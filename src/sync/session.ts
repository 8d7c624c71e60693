import { PaqueteError } from '../errors.js';
import type { ChunkStore } from '../store/store.js';
import { openRemote } from '../remote/open.js';
import { Remote } from '../remote/remote.js';
import { WireBudget } from '../remote/budget.js';
import { FileEntry, placedSize, Snapshot } from '../snapshot/snapshot.js';
import { isFreeRemote, WorkDir } from '../workdir/workdir.js';
import { Restorer, StillComplete, stillComplete, TreeReport } from './restorer.js';
import type { PlacedFiles } from '../workdir/tree-state.js';
import { coverageOf } from './shard-cache.js';
import { completeFromIndex, Derived, derivedLogger, finishDerived } from './derived.js';
import { acceptLatest, cachedLatest, CheckedManifest, fetchManifest, fetchSnapshot, Latest, linkFactsOf, loadSnapshot, manifestCheckCost, rememberLinkFacts } from './catalog.js';
import { KillRisk } from './kill-risk.js';
import { absorbLandedRanges, fetchRanges } from './fetcher.js';
import { BaseStream, cachedBaseStream, keptBaseStream } from './base-stream.js';
import { fetchFrames, foreignParts, framesPath, keptPrefixes, LoadedUpdate, removeStaleParts, UpdateInUse, usableFrames } from './frames.js';
import { deltaChoices, hasCachedHead, HeadsOffline, headPath, loadUpdateHead, pruneUpdateHeads, solidUpdate, uncachedHead } from './updates.js';
import { describedContents, loadOfferHead, offerContents, offerPath, OfferSeen, resolveOffer, waypointStream } from './offer.js';
import type { UpdateRef } from '../snapshot/manifest.js';
import { buildRanges, Plan, PlannedFile, planFrameStream, planSession } from './planner.js';
import { keepToFetch, ToFetch, toFetchOf } from './forecast.js';
import { expandWants, PypiTargetOptions } from './wants.js';
import { refusalMessage, refusedNames, withoutRefused } from './tree-names.js';
import type { NameProblem } from '../snapshot/paths.js';
import { matcher } from '../util/glob.js';

/**
 * Files being placed at once: each is only a list of store locations on this thread, and a temp
 * file waiting for its group's fsync on the place worker (src/sync/tree-writer.ts). The more wait
 * together, the fewer journal commits: at 32, typescript's 132 files went in rounds of 32, each
 * waiting for the last one's fsync.
 */
const PLACE_CONCURRENCY = 256;

/** How often the tree state is saved while files are being placed. */
const STATE_SAVE_MS = 250;

/** A remote and whether reading it costs nothing (a LAN peer, a stick, a local directory). */
export interface Source {
  remote: Remote;
  free: boolean;
}

export interface SyncOptions {
  /** Wire bytes this session may spend, headers included. */
  budget?: number;
  /** The slowest link worth paying for, body bytes per second (0: any). Default MIN_RATE (src/remote/http.ts). */
  minRate?: number;
  wants?: string[];
  dryRun?: boolean;
  signal?: AbortSignal;
  events?: SyncEvents;
  /** The Python that `--want pypi:…` resolves for (default: this machine's python3). */
  pypi?: PypiTargetOptions;
  /** Sync to a manifest past its expiry (with a warning) instead of refusing. */
  allowExpired?: boolean;
  /** Globs of paths where the user consents to the snapshot's file replacing theirs. */
  overwrite?: string[];
  /**
   * Plan only, with no network and no writes (status, the catalog): the snapshot last synced,
   * update heads only from .paquete's cache. Implies dryRun. A head the sync would fetch to price
   * a route and that is not here makes the forecast an estimate (toFetch.estimate says why).
   */
  offline?: boolean;
  /** Offline: the snapshot last synced as the caller already read it (status): not read and decoded again. */
  synced?: Latest;
}

export interface SyncEvents {
  planned?: (plan: Plan, spent: number) => void;
  /** Wire bytes spent so far in this session. */
  progress?: (spent: number) => void;
  fileDone?: (path: string, size: number) => void;
  /** A file did not place: `reason` says why when it is more than its checksum (a rebuild that failed). */
  fileFailed?: (path: string, reason?: string) => void;
  /** The link failed and the request will be tried again. */
  retrying?: (message: string, delayMs: number) => void;
  /** Something the user should know about their wants (a package not in the mirror, …). */
  note?: (message: string) => void;
}

export interface SyncResult {
  snapshot: string;
  serial: number;
  plan: Plan;
  /** Paid wire bytes spent, headers included: what the budget counts. */
  spent: number;
  /** Bytes read from every remote, free ones included. */
  read: number;
  /** Wanted files now in place, and how many are wanted in all. */
  completeFiles: number;
  wantedFiles: number;
  /** Files that completed during this session. */
  placed: string[];
  /** Files whose assembled bytes failed their checksum; their chunks are fetched again next time. */
  failed: string[];
  removed: string[];
  /** What the session did to the tree and what it left alone: the user's files, failures. */
  tree: TreeReport;
  /** Wanted files not fetched because the publisher's data for them is inconsistent (found earlier). */
  withheld: string[];
  /** Wanted files this disk cannot hold by their names (a colliding pair, CON, a:b, too long): not fetched, not placed. */
  refused: NameProblem[];
  /** Record bytes the wanted files still lack. */
  leftBytes: number;
  /** Dry run: what the real sync pays before it plans (its manifest check); the card is this plus plan.cost. 0 otherwise. */
  checkCost: number;
  /** What a sync with no budget would spend from the state this command leaves, and complete (the one figure for what is left). */
  toFetch: ToFetch;
  stoppedByBudget: boolean;
  dryRun: boolean;
}

/**
 * One sync session: fetch and check the manifest and snapshot, plan within the budget, fetch,
 * and place each file as soon as its last chunk is durable, so an interruption at any byte
 * leaves every finished file usable and every received chunk kept for the next session.
 */
export async function runSync(work: WorkDir, opts: SyncOptions = {}): Promise<SyncResult> {
  // The one owner of --budget: every remote reserves from it before each exchange (src/remote/budget.ts).
  const wire = new WireBudget(opts.budget ?? Infinity);
  const budget = wire.limit;
  // After a sync that died, requests are kept small so that a kill loses little (a dry run prices them so).
  const risk = new KillRisk(work);
  const spends = !opts.offline && !opts.dryRun;
  const sources = await Promise.all(
    work.config.remotes.map(async (r) => {
      const free = isFreeRemote(r);
      const remote = await openRemote(r.location, {
        onRetry: (info) => opts.events?.retrying?.(info.error.message, info.delayMs),
        // A free peer that stops answering is left for the paid remote, not waited on.
        retries: free ? 1 : undefined,
        budget: wire,
        free,
        minRate: opts.minRate,
        facts: linkFactsOf(work, r.location),
        outstanding: risk.outstanding,
      });
      return { remote, free };
    }),
  );
  // Only paid bytes count against the budget (a free remote's hops to a paid host are paid).
  const spent = () => wire.spent;
  const read = () => sources.reduce((n, s) => n + s.remote.meter.total, 0);
  let nextSession: Remote | undefined;
  let store: ChunkStore | undefined;
  if (spends) risk.running();
  try {
    // Offline (status): the last synced snapshot, no remote asked.
    const offline = !!opts.offline;
    const newest = offline ? undefined : await newestOf(work, sources, opts);
    if (newest && !opts.overwrite?.length) {
      // Nothing new: the tree is complete at the manifest's snapshot and nobody touched it.
      const here = stillComplete(work.root, work.scanTreeState(), newest.checked.entry.name, opts.wants ?? []);
      if (here) {
        acceptLatest(work, newest.from.remote, newest.checked, { note: opts.events?.note });
        // A sync killed between its last save and its switch left readers on the snapshot before.
        if (!opts.dryRun) await work.switchIfBehind();
        const main = sources.find((s) => !s.free) ?? sources[0];
        return nothingNew(newest.checked, here, opts, spent(), read(), opts.dryRun ? manifestCheckCost(work, main.remote) : 0);
      }
    }
    store = await work.openStore();
    // Soft commits already cover a killed process; this bounds what a power cut can take.
    store.flushEvery = { bytes: 4 << 20, ms: 1000 };
    const { latest, from } = newest ? { latest: await indexOf(work, newest, sources, opts, wire), from: newest.from } : lastSynced(work, sources, opts.synced);
    const { snapshot } = latest;
    if (!offline) pruneUpdateHeads(work, latest.manifest.body);
    // Names this disk cannot hold are found before anything is written, and left out.
    const refused = refusedNames(work, snapshot);
    const plannable = withoutRefused(snapshot, refused);
    // `pypi:NAME` and `docs:NAME` wants become path globs (pypi metadata may be fetched first).
    const wants = await expandWants(opts.wants ?? [], { work, remote: from.remote, snapshot, budget: wire.left, signal: opts.signal, pypi: opts.pypi, onNote: opts.events?.note });
    // Read after the wants: placing pypi metadata saves the tree state.
    const state = work.treeState();
    const restorer = new Restorer(work, snapshot, state, latest.entry.name, { overwrite: opts.overwrite, covers: coverageOf(latest.partial) });
    // The user's files at the snapshot's paths are kept, so their chunks are not fetched either.
    const { complete, blocked, yours, inconsistent } = restorer.survey();
    for (const p of wantedOf([...refused.values()], wants)) restorer.refuse(p.path, p.code, refusalMessage(p));
    // What a killed session landed but had not stored yet is stored first, so it is not planned again.
    // (Not offline: status only reads; it prices those chunks as missing until the next sync.)
    if (!offline) await absorbLandedRanges(work.tmpDir, work.store);
    const present = snapshot.chunks.idsOf(await work.store.heldIn(snapshot.chunks.idWords));
    const paid = sources.filter((s) => !s.free);
    // The plan shown and budgeted is the paid remote's (or, with none, the first free one's),
    // counting nothing on what free remotes may still give.
    const main = paid[0] ?? sources[0];
    // Frames of an update come from the paid remote only: free peers serve records.
    let update: LoadedUpdate | undefined;
    let baseHeld = new Set<bigint>();
    const useUpdate = async (u: LoadedUpdate | undefined, held?: Set<bigint>) => {
      update = u;
      baseHeld = held ?? (u?.base ? await work.store.hasMany(u.base.chunks.ids()) : new Set());
    };
    // Once the card is over, what is left is priced as the next sync will price it: by a remote
    // that knows only what link.json keeps, not this session's file sizes and ETags (their digits
    // made the summary 30 bytes off what status and the next dry run said).
    const pricing = (source: Source) => (source === main && nextSession) || source.remote;
    const planFor = (source: Source, limit: number, route: Route = { update, baseHeld }, held = present) => {
      const remote = pricing(source);
      const rangesHonoured = remote.rangeSupport !== 'no';
      const packPath = `packs/${snapshot.packs[0] ?? ''}.pack`;
      const withFrames = source === main && route.update && rangesHonoured ? route.update : undefined;
      return planSession({
        snapshot: plannable,
        present: held,
        complete: new Set([...complete, ...blocked]),
        wants,
        // From a server that ignores Range, requestCost includes what it pushes past our hang-up.
        budget: limit,
        requestCost: (n) => remote.requestCost(packPath, n),
        rangesHonoured,
        frames: withFrames ? usableFrames(withFrames, snapshot, held, route.baseHeld, keptPrefixes(work.tmpDir, withFrames.head)) : undefined,
        frameRequestCost: withFrames ? (n) => remote.requestCost(framesPath(withFrames.head), n) : undefined,
      });
    };
    const mainLimit = () => (main.free ? Infinity : wire.left);
    // A dry run plans the card the real sync would run: that sync finds the index and the heads
    // fetched here in .paquete and pays only its manifest check before planning (the demo's dry
    // run planned 1.14 MB of a 1.2 MB card, the index's share taken off, for a real 1.20 MB).
    const checkCost = opts.dryRun ? manifestCheckCost(work, main.remote) : 0;
    const cardLimit = () => (main.free ? Infinity : opts.dryRun ? Math.max(0, budget - checkCost) : wire.left);
    const loaded = from === main ? latest.update : undefined;
    // An older snapshot's stream a card was cut inside, finished before the delta from it.
    let baseStream: BaseStream | undefined;
    const baseStreamPlan = (bs: BaseStream, limit: number) =>
      planFrameStream(usableFrames(bs.stream, bs.base, bs.held ?? present, bs.streamHeld ?? new Set(), keptPrefixes(work.tmpDir, bs.stream.head)), limit, (n) =>
        pricing(main).requestCost(framesPath(bs.stream.head), n),
      );
    // What the delta after a base stream is priced with: every chunk of the old snapshot held.
    const heldAfter = (bs: BaseStream) => bs.afterHeld ?? new Set(bs.base.chunks.ids());
    // Why the forecast is an estimate: a head it would price a route with is not here (offline).
    let estimate: string | null = null;
    // The plan of the route chosen with no limit, as cheapestRoute made it: a card with no limit
    // is that very plan (planned a third time, it was a tenth of a 10k-file first sync's CPU).
    let routePlan: Plan | undefined;
    /** The cheapest way to what is wanted from what the store holds now; `headsOffline`: only heads kept in .paquete. */
    const chooseRoute = async (headsOffline: boolean) => {
      baseStream = undefined;
      estimate = null;
      routePlan = undefined;
      const remote = pricing(main);
      // A partial index numbers chunks its own way; update frames name them by the whole index's.
      if (remote.rangeSupport === 'no' || latest.partial) return useUpdate(undefined);
      // A skeleton index has the stream from nothing's frames alone (records need the ids).
      if (latest.derived) return useUpdate(latest.derived.update);
      const packPath = `packs/${snapshot.packs[0] ?? ''}.pack`;
      const recordsCost = (p: Plan) => p.ranges.reduce((n, r) => n + remote.requestCost(packPath, r.end - r.start), 0);
      const routeOpts = { ...opts, offline: headsOffline, uncached: (why: string) => (estimate ??= why) };
      const best = await cheapestRoute(work, remote, latest, loaded, present, (r) => planFor(main, Infinity, r), recordsCost, mainLimit, routeOpts);
      await useUpdate(best.route.update, best.route.baseHeld);
      routePlan = best.plan;
      // Priced whole like the other routes: the old stream (or waypoint frames), then the delta
      // with what they bring held.
      const cheaper = (bs: BaseStream, extra = 0) => {
        const allOld = heldAfter(bs);
        const after = planFor(main, Infinity, { update: bs.delta, baseHeld: allOld }, new Set([...present, ...allOld]));
        return baseStreamPlan(bs, Infinity).cost + after.cost + extra < best.cost;
      };
      if (!wants.length && (foreignParts(work.tmpDir, [update?.head]) || cachedBaseStream(work, latest))) {
        const bs = await keptBaseStream(work, remote, latest, loaded, mainLimit(), { signal: opts.signal, note: opts.events?.note, offline: headsOffline, uncached: routeOpts.uncached });
        if (bs && cheaper(bs)) {
          baseStream = bs;
          await useUpdate(bs.delta);
        }
      }
      if (!wants.length && !baseStream && best.offer) {
        // Two hops for old contents the offer has no direct delta from (src/delta/offer-plan.ts);
        // offline, only with the waypoint's index here already.
        const worth = (path: string, size: number) =>
          !headsOffline && remote.requestCost(path, size) * HEAD_WORTH <= best.cost && remote.requestCost(path, size) <= mainLimit();
        const bs = await waypointStream(work, remote, latest.manifest.body, latest.snapshot, best.offer, present, worth, { signal: opts.signal }).catch((e) => {
          if (opts.signal?.aborted) throw e;
          opts.events?.note?.(`the offer's waypoint: ${(e as Error).message}; not used`);
          return undefined;
        });
        if (bs && cheaper(bs)) {
          baseStream = bs;
          await useUpdate(bs.delta, bs.afterHeld);
        }
      }
    };
    /** What a card of `limit` wire bytes would do on the route chosen. */
    const planCard = (limit: number): Plan => {
      if (!baseStream) return limit === Infinity && routePlan ? routePlan : planFor(main, limit);
      // The old stream first, then the new snapshot with what is left.
      const first = baseStreamPlan(baseStream, limit);
      const allOld = heldAfter(baseStream);
      const finished = first.prefix === undefined && first.cost === baseStreamPlan(baseStream, Infinity).cost;
      const p = finished ? planFor(main, limit - first.cost, { update, baseHeld: allOld }, new Set([...present, ...allOld])) : planFor(main, 0);
      p.cost += first.cost;
      return p;
    };
    /** The one figure for what is left: a sync with no budget, from the store as it is now. */
    const forecast = (card: Plan, limit: number): ToFetch => toFetchOf(limit === Infinity ? card : planCard(Infinity), manifestCheckCost(work, pricing(main)), estimate);
    await chooseRoute(offline);
    let plan = planCard(cardLimit());
    // Records (or a server without Range) need the chunk layer: the whole index, priced and fetched.
    const wholeIndex = async () => {
      await completeFromIndex(work, latest.entry, snapshot, () => loadSnapshot(work, main.remote, latest.entry, { signal: opts.signal }));
      latest.derived = undefined;
      present.clear();
      for (const id of snapshot.chunks.idsOf(await work.store.heldIn(snapshot.chunks.idWords))) present.add(id);
    };
    if (needsIndex(latest, plan)) {
      if (!spends) plan.cost += pricing(main).requestCost(`snapshots/${latest.entry.name}.snap`, latest.entry.size);
      else {
        await wholeIndex();
        await chooseRoute(offline);
        plan = planCard(cardLimit());
      }
    }
    const inUse = (): UpdateInUse[] => [
      ...(update ? [{ head: update.head, snapshot }] : []),
      ...(baseStream ? [{ head: baseStream.stream.head, snapshot: baseStream.base }] : []),
    ];
    if (!offline) removeStaleParts(work.tmpDir, inUse(), present);
    opts.events?.planned?.(plan, spent());
    const wantedFiles = plan.files.length;
    // Asked only of the user's files and the publisher's faults found: made only then (a Set of
    // 1M paths was half a second of a 1M-file dry run).
    let wantedPaths: Set<string> | undefined;
    const wantedSet = () => (wantedPaths ??= new Set(plan.files.map((f) => f.path)));
    const wanted = (path: string) => wantedSet().has(path);
    restorer.report.kept.push(...yours.filter((k) => wanted(k.path)));
    const result: SyncResult = {
      snapshot: latest.entry.name,
      serial: latest.manifest.body.serial,
      plan,
      spent: 0,
      read: 0,
      completeFiles: plan.files.filter((f) => complete.has(f.path)).length,
      wantedFiles,
      placed: restorer.report.placed,
      failed: restorer.report.mismatched,
      removed: restorer.report.removed,
      tree: restorer.report,
      withheld: inconsistent.filter((p) => wanted(p)),
      refused: wantedOf([...refused.values()], wants),
      leftBytes: plan.leftBytes,
      checkCost,
      // A real sync's is made once the card is over (below).
      toFetch: opts.dryRun || offline ? forecast(plan, cardLimit()) : toFetchOf(undefined, 0, null),
      stoppedByBudget: false,
      dryRun: !!opts.dryRun || offline,
    };
    if (opts.dryRun || offline) {
      // With wants it is the figure of those only: not the one status and serve show.
      if (!wants.length) keepToFetch(work, latest.entry.name, result.toFetch);
      result.spent = spent();
      result.read = read();
      return result;
    }
    // The files wanted are those of this first plan, whatever plans the sync makes below.
    wantedSet();

    // Track, per wanted file, how many of its distinct chunks are still missing.
    const waitingOn = new Map<number, FileEntry[]>();
    const missingCount = new Map<FileEntry, number>();
    const ready: FileEntry[] = [];
    for (const pf of plan.files) {
      if (pf.outcome === 'present') continue;
      const distinct = new Set(pf.file.chunks.filter((i) => !present.has(snapshot.chunks.id(i))));
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
    // Chunks the publisher's own remote sent this session: a file made only of those that fails
    // its SHA-256 is the publisher's fault, not a peer's.
    const fromMain = new Set<number>();
    const placeOne = async (f: FileEntry) => {
      // f.sha256 is a view into the snapshot's file table (PlanLine: FileTable.entry), the one a
      // stream derivation writes each file's hash into: derived after the plan, it is read here.
      try {
        const placed = await restorer.place(f, f.chunks.every((i) => fromMain.has(i)));
        if (placed === 'placed') {
          complete.add(f.path);
          opts.events?.fileDone?.(f.path, placedSize(f));
        } else if (placed === 'mismatched') opts.events?.fileFailed?.(f.path, restorer.details.get(f.path));
        else if (placed === 'inconsistent' && restorer.details.has(f.path)) opts.events?.note?.(`${f.path}: ${restorer.details.get(f.path)}; not placed`);
      } catch (e) {
        // Only what stops every file (a full disk, a broken store): one file's trouble is an outcome.
        placeError ??= e;
      }
    };
    const placeReady = async () => {
      // Many files at once, so their fsyncs share journal commits and overlap decompression.
      const worker = async () => {
        while (ready.length && placeError === undefined) await placeOne(ready.shift()!);
      };
      await Promise.all(Array.from({ length: PLACE_CONCURRENCY }, worker));
      // The tree state says which files are paquete's: a file placed but not in it when a kill comes
      // is the user's to the next sync, which then never updates it (a kill -9 between two cards
      // and a release did that). Saved at most every 250 ms, and once more after the last round.
      clearTimeout(stateTimer);
      const wait = lastStateSave + STATE_SAVE_MS - Date.now();
      if (wait <= 0) saveState();
      else stateTimer = setTimeout(saveState, wait);
    };
    let stateTimer: NodeJS.Timeout | undefined;
    const saveState = () => {
      // On a timer: a throw here (a full disk) would end the process with a stack trace; it ends
      // the session instead, as a placement that cannot be written does.
      try {
        work.saveTreeState(state);
      } catch (e) {
        placeError ??= e;
      }
      lastStateSave = Date.now();
    };
    let placing = placeReady();
    const schedule = () => {
      placing = placing.then(placeReady);
    };
    const onChunks = (indices: number[]) => {
      if (placeError !== undefined) throw placeError;
      for (const i of indices) {
        present.add(snapshot.chunks.id(i));
        for (const f of waitingOn.get(i) ?? []) {
          const n = missingCount.get(f)! - 1;
          missingCount.set(f, n);
          if (n === 0) ready.push(f);
        }
        waitingOn.delete(i);
      }
      opts.events?.progress?.(spent());
      if (ready.length) schedule();
    };
    const fetchOpts = { signal: opts.signal, onChunks, partDir: work.tmpDir };
    const mainOpts = {
      ...fetchOpts,
      onChunks: (indices: number[]) => {
        for (const i of indices) fromMain.add(i);
        onChunks(indices);
      },
    };
    try {
      // Free remotes first, everything wanted, whatever each one holds.
      for (const source of sources.filter((s) => s.free && s !== main)) {
        await takeWhatIsThere(source, planFor(source, Infinity), snapshot, work, fetchOpts, opts.events);
      }
      if (sources.some((s) => s.free && s !== main)) {
        plan = planFor(main, mainLimit());
        result.plan = plan;
      }
      if (baseStream) {
        const bs = baseStream;
        const indexOf = new Map(snapshot.chunks.ids().map((id, i) => [id, i]));
        // The old snapshot's chunks, and those of them the new one has too, as they arrive.
        const viaIds = (old: number[]) => {
          const mine: number[] = [];
          for (const k of old) {
            const id = bs.base.chunks.id(k);
            present.add(id);
            const i = indexOf.get(id);
            if (i !== undefined) mine.push(i);
          }
          onChunks(mine);
        };
        try {
          const ranges = baseStreamPlan(bs, mainLimit()).ranges;
          await fetchFrames(main.remote, bs.base, bs.stream, ranges, work.store, { signal: opts.signal, onChunks: viaIds, partDir: work.tmpDir, present });
        } catch (e) {
          // REMOTE_CHANGED: a stream the manifest names no more, pruned since (src/sync/updates.ts retiredStream).
          const code = (e as PaqueteError).code;
          if ((code !== 'DAMAGED_PACK' && code !== 'REMOTE_CHANGED') || opts.signal?.aborted) throw e;
          opts.events?.note?.(`${(e as Error).message}; the new snapshot comes without it`);
        }
        baseHeld = await work.store.hasMany([...bs.base.chunks, ...(update?.base?.chunks ?? [])].map((c) => c.id));
        plan = planFor(main, mainLimit());
        result.plan = plan;
      }
      if (update && plan.frameRanges.length) {
        const derive = latest.derived && update === latest.derived.update ? derivedLogger(work, snapshot, latest.entry.name, latest.derived.derivation) : undefined;
        try {
          await fetchFrames(main.remote, snapshot, update, plan.frameRanges, work.store, {
            ...mainOpts,
            partDir: work.tmpDir,
            present,
            ...(derive ? { derive: { derivation: latest.derived!.derivation, onDerived: derive.onDerived } } : {}),
          });
        } catch (e) {
          const code = (e as PaqueteError).code;
          if ((code !== 'DAMAGED_PACK' && code !== 'REMOTE_CHANGED') || opts.signal?.aborted) throw e;
          // A frame that does not decode costs its bytes, not the session, and a mirror or peer
          // without frames/ is no dead end: the chunks come as records.
          opts.events?.note?.(`${(e as Error).message}; fetching its chunks one by one instead`);
          if (latest.derived) await wholeIndex();
          await useUpdate(undefined);
          plan = planFor(main, mainLimit());
          result.plan = plan;
        } finally {
          derive?.close();
        }
      }
      await fetchRanges(main.remote, snapshot, plan.ranges, work.store, mainOpts);
    } catch (e) {
      // The budget ran out mid-plan (retries and cuts took their share): the session ends as
      // planned sessions that the budget stops do, with its report, not as an error.
      if ((e as PaqueteError).code !== 'BUDGET' || budget === Infinity) throw e;
    } finally {
      // Whatever completed before an interruption is still placed.
      schedule();
      await placing;
      clearTimeout(stateTimer);
      work.saveTreeState(state);
      // A frame fetched only up to its last missing chunk keeps a prefix no session will resume.
      removeStaleParts(work.tmpDir, inUse(), present);
    }
    if (placeError !== undefined) throw placeError;
    // Every id and hash derived: the skeleton is the whole index, checked by the signed body hash.
    if (latest.derived && finishDerived(work, latest.entry, snapshot, latest.derived)) latest.derived = undefined;

    // Files of older snapshots that this one no longer has go, if the user left them untouched.
    restorer.removeStale();
    restorer.finish({ asked: opts.wants ?? [], wants, wanted: wantedSet(), inPlace: complete });
    work.saveTreeState(state);
    // The one moment readers (serve) move to what this session placed: one rename.
    await work.switchGeneration(state);

    result.spent = spent();
    result.read = read();
    // Wanted files only: files outside --want that happen to be complete are not this session's.
    result.completeFiles = plan.files.filter((f) => complete.has(f.path)).length;
    // Files kept as the user's or withheld as the publisher's fault are not the budget's doing.
    const notFetched = new Set([...blocked, ...restorer.report.inconsistent]);
    const stillMissing = await missingBytes(work, snapshot, plan, notFetched, complete, latest.derived);
    result.leftBytes = stillMissing;
    result.stoppedByBudget = budget !== Infinity && stillMissing > 0;
    // Planned again from what the card left, heads from the cache only: what the next sync spends.
    if (stillMissing > 0) {
      nextSession = await openRemote(main.remote.location, { free: main.free, facts: main.remote.linkFacts?.() });
      await chooseRoute(true);
      result.toFetch = forecast(planCard(Infinity), Infinity);
    } else result.toFetch = toFetchOf(undefined, 0, null);
    if (!wants.length) keepToFetch(work, latest.entry.name, result.toFetch);
    return result;
  } finally {
    await store?.flush();
    if (!opts.offline) for (const s of sources) rememberLinkFacts(work, s.remote);
    for (const s of sources) await s.remote.close();
    await nextSession?.close();
    if (spends) risk.ended();
  }
}

/**
 * What a sync with no budget would spend now and complete, planned here with no network (status,
 * and import or seed after they filled the store): runSync's own plan, offline.
 */
export async function toFetchNow(work: WorkDir, synced?: Latest): Promise<ToFetch | null> {
  try {
    return (await runSync(work, { offline: true, synced })).toFetch;
  } catch (e) {
    // No index cached for the trusted manifest (a bundle's manifest without its index): no figure.
    if ((e as PaqueteError).code === 'NO_SNAPSHOT') return null;
    throw e;
  }
}

/** The refused names the user wants (all of them with no --want). */
function wantedOf(refused: NameProblem[], wants: string[]): NameProblem[] {
  if (!wants.length) return refused;
  const which = matcher(wants);
  return refused.filter((p) => which(p.path) >= 0);
}

/**
 * The newest manifest's index, from the remote that gave the manifest; from a free peer that
 * cannot give it (a LAN peer whose own index is partial: sync --want), from the paid remote.
 */
async function indexOf(work: WorkDir, newest: { checked: CheckedManifest; from: Source }, sources: Source[], opts: SyncOptions, wire: WireBudget): Promise<Latest> {
  const fetchOpts = { signal: opts.signal, note: opts.events?.note, wants: opts.wants };
  try {
    // A budget takes the derived index only when the layers and the whole stream fit in what it has left.
    const derive = !sources.some((s) => s.free);
    return await fetchSnapshot(work, newest.from.remote, newest.checked, { ...fetchOpts, derive, budget: wire });
  } catch (e) {
    const paid = sources.find((s) => !s.free);
    if (!newest.from.free || !paid || opts.signal?.aborted || (e as PaqueteError).code === 'BUDGET') throw e;
    opts.events?.note?.(`${newest.from.remote.location}: ${(e as Error).message}; reading the index from ${paid.remote.location}`);
    return fetchSnapshot(work, newest.from.remote, newest.checked, { ...fetchOpts, indexFrom: paid.remote, budget: wire });
  }
}

/**
 * The snapshot last synced, as status and serve plan with it: the paid remote (or the first)
 * prices the plan, as it would in a sync.
 */
function lastSynced(work: WorkDir, sources: Source[], read?: Latest): { latest: Latest; from: Source } {
  const latest = read ?? cachedLatest(work);
  if (!latest) throw new PaqueteError('NO_SNAPSHOT', `${work.root}: nothing synced yet`, 'run paquete sync');
  return { latest, from: sources.find((s) => !s.free) ?? sources[0] };
}

/** An update head is fetched only when the records it could replace cost several times what it does. */
const HEAD_WORTH = 4;

/** An update to take frames from (none: records only), with which of its base's chunks the store holds. */
interface Route {
  update: LoadedUpdate | undefined;
  baseHeld: Set<bigint>;
}

/**
 * The way to the snapshot that costs least in total from what the store holds now: records only,
 * the update whose head came with the index (a delta), a delta from the newest base most of whose
 * chunks are here, the offer (deltas keyed by the old contents this client holds, whatever
 * snapshot they came from: src/sync/offer.ts), or the update from nothing (one long stream). Each is priced by planning the
 * whole of what is wanted with its frames (kept frame prefixes at what remains), not this card
 * alone: what a card buys must be worth its price in the cards after it. A head not yet here is
 * fetched only when the records of the cheapest route so far cost several times the head and
 * the budget pays for it. A client cut on the last snapshot's stream and then given a new one
 * paid 6.3x a newcomer through a delta whose frames it could not decode; the stream from nothing
 * was never priced.
 */
async function cheapestRoute(
  work: WorkDir,
  remote: Remote,
  latest: Latest,
  loaded: LoadedUpdate | undefined,
  present: Set<bigint>,
  fullPlan: (r: Route) => Plan,
  recordsCost: (p: Plan) => number,
  limit: () => number,
  opts: SyncOptions & HeadsOffline,
): Promise<{ route: Route; cost: number; plan: Plan; offer?: OfferSeen }> {
  let best: Route = { update: undefined, baseHeld: new Set() };
  let seen: OfferSeen | undefined;
  let bestPlan = fullPlan(best);
  const consider = (route: Route) => {
    const p = fullPlan(route);
    if (p.cost < bestPlan.cost) [best, bestPlan] = [route, p];
  };
  // Each base asked once, from the store's held-id set (the update's base is the newest
  // choice's too): a 1% update of 10k files asked LevelDB for every chunk of the old snapshot twice.
  const heldSets = new Map<Snapshot, Set<bigint>>();
  const heldOf = async (base: Snapshot | null) => {
    if (!base) return new Set<bigint>();
    let held = heldSets.get(base);
    if (!held) heldSets.set(base, (held = base.chunks.idsOf(await work.store.heldIn(base.chunks.idWords))));
    return held;
  };
  if (loaded) consider({ update: loaded, baseHeld: await heldOf(loaded.base) });

  const candidates: { ref: UpdateRef; base: Snapshot | null; held: Set<bigint> }[] = [];
  for (const d of deltaChoices(work, latest.manifest.body, latest.entry)) {
    const held = await heldOf(d.base);
    if (held.size * 2 >= d.base.chunks.length) {
      candidates.push({ ref: d.ref, base: d.base, held });
      break;
    }
  }
  const solid = solidUpdate(latest.entry);
  const offer = latest.entry.offer;
  // A head is worth fetching when the records of the cheapest route so far cost several times
  // it; one an earlier dry run or sync kept costs nothing and is always priced.
  const worth = (path: string, ref: { name: string; size: number }) => {
    if (hasCachedHead(work, ref)) return true;
    const headCost = remote.requestCost(path, ref.size);
    if (recordsCost(bestPlan) < HEAD_WORTH * headCost || headCost > limit()) return false;
    // Planning with no network: a head not kept here makes the forecast an estimate.
    if (opts.offline) opts.uncached?.(uncachedHead(ref));
    return !opts.offline;
  };
  const tryHead = async (name: string, route: () => Promise<Route>) => {
    try {
      consider(await route());
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      opts.events?.note?.(`update ${name.slice(0, 12)}: ${(e as Error).message}; fetching chunks one by one`);
    }
  };
  for (const c of candidates) {
    // The update that came with the index is priced above already.
    if (loaded && (loaded.head.base ?? '') === c.ref.from) continue;
    if (!worth(headPath(c.ref), c.ref)) continue;
    await tryHead(c.ref.name, async () => ({ update: { head: await loadUpdateHead(work, remote, c.ref, latest.entry, c.base, opts), base: c.base }, baseHeld: c.held }));
  }
  // Before the stream from nothing: a client holding old contents seldom needs that head then.
  if (offer && worth(offerPath(offer), offer)) {
    await tryHead(offer.name, async () => {
      const head = await loadOfferHead(work, remote, offer, latest.entry, opts);
      const described = describedContents(work, latest.manifest.body, offerContents(head));
      const held = await work.store.hasMany([...described.values()].flatMap((d) => d.file.chunks.map((i) => d.snapshot.chunks.id(i))));
      seen = { head, described, held };
      return resolveOffer(head, latest.snapshot, described, held, present);
    });
  }
  if (solid && !(loaded && loaded.head.base === null) && worth(headPath(solid), solid)) {
    await tryHead(solid.name, async () => ({ update: { head: await loadUpdateHead(work, remote, solid, latest.entry, null, opts), base: null }, baseHeld: new Set<bigint>() }));
  }
  return { route: best, cost: bestPlan.cost, plan: bestPlan, offer: seen };
}

/**
 * The newest manifest any remote offers, checked against the trusted key and serial. A remote
 * that fails or is behind is skipped while another answers; with none answering, the first
 * error stands. A bad signature or another publisher's key stops the sync when it is the paid
 * remote's; a free one (a friend's box, a stick) is only skipped, with a warning.
 */
async function newestOf(work: WorkDir, sources: Source[], opts: SyncOptions): Promise<{ checked: CheckedManifest; from: Source }> {
  let best: { checked: CheckedManifest; from: Source } | undefined;
  let firstError: unknown;
  for (const source of sources) {
    try {
      const checked = await fetchManifest(work, source.remote, { signal: opts.signal, allowExpired: opts.allowExpired, note: opts.events?.note });
      if (!best || checked.manifest.body.serial > best.checked.manifest.body.serial) best = { checked, from: source };
    } catch (e) {
      const code = (e as PaqueteError).code;
      const untrusted = code === 'BAD_SIGNATURE' || code === 'UNTRUSTED_KEY';
      if (opts.signal?.aborted || (untrusted && !source.free)) throw e;
      firstError ??= e;
      if (sources.length > 1) opts.events?.note?.(`${source.remote.location}: ${(e as Error).message}; ${untrusted ? 'skipping this free remote' : 'trying the next remote'}`);
    }
  }
  if (!best) throw firstError;
  return best;
}

/**
 * A file in place, as the tree state records it, standing for its snapshot entry in a plan with
 * nothing to do: its size as placed, its SHA-256 when asked, and no chunk, as it needs none.
 */
/** A file in place needs no chunk: one empty list for all of them. */
const NO_CHUNKS: number[] = Object.freeze([]) as unknown as number[];

/** A file of a tree still complete: its entry and its plan line in one object (100k of each were collected at once). */
class PlacedEntry implements FileEntry, PlannedFile {
  readonly mode = 0;
  readonly chunks = NO_CHUNKS;
  readonly outcome = 'present';
  readonly missingBytes = 0;
  readonly path: string;
  readonly size: number;
  constructor(
    private readonly files: PlacedFiles,
    private readonly i: number,
  ) {
    this.path = files.paths[i];
    this.size = files.size[i];
  }

  get file(): FileEntry {
    return this;
  }

  get placedSize(): number {
    return this.size;
  }

  get sha256(): Uint8Array {
    return Buffer.from(this.files.sha256(this.i), 'hex');
  }
}

/**
 * The result of a sync that found the tree complete at the manifest's snapshot (stillComplete):
 * every wanted file present, nothing planned, nothing written. The plan's files are the tree
 * state's records: a file already in place needs no chunk, so none is named.
 */
function nothingNew(checked: CheckedManifest, here: StillComplete, opts: SyncOptions, spent: number, read: number, checkCost: number): SyncResult {
  const files: PlannedFile[] = here.wanted.map((i) => new PlacedEntry(here.files, i));
  const plan: Plan = { files, ranges: [], frameRanges: [], cost: 0, neededBytes: 0, leftBytes: 0 };
  opts.events?.planned?.(plan, spent);
  const tree: TreeReport = { placed: [], removed: [], kept: [], failed: [], mismatched: [], inconsistent: [] };
  return {
    snapshot: checked.entry.name,
    serial: checked.manifest.body.serial,
    plan,
    spent,
    read,
    completeFiles: files.length,
    wantedFiles: files.length,
    placed: tree.placed,
    failed: tree.mismatched,
    removed: tree.removed,
    tree,
    withheld: [],
    refused: [],
    leftBytes: 0,
    checkCost,
    toFetch: toFetchOf(undefined, 0, null),
    stoppedByBudget: false,
    dryRun: !!opts.dryRun,
  };
}

/**
 * Fetches from a free remote (a LAN peer serving its own store) what it has. A range it cannot
 * serve whole is split in two and tried again, down to single chunks; a peer that stops
 * answering is left for the next remote.
 */
async function takeWhatIsThere(
  source: Source,
  plan: Plan,
  snapshot: Snapshot,
  work: WorkDir,
  fetchOpts: Parameters<typeof fetchRanges>[4] & object,
  events?: SyncEvents,
): Promise<void> {
  const queue = [...plan.ranges];
  const arrived = new Set<number>();
  const onChunks = (indices: number[]) => {
    indices.forEach((i) => arrived.add(i));
    return fetchOpts.onChunks?.(indices);
  };
  while (queue.length) {
    const range = queue.shift()!;
    try {
      await fetchRanges(source.remote, snapshot, [range], work.store, { ...fetchOpts, onChunks });
    } catch (e) {
      const code = (e as PaqueteError).code;
      if (fetchOpts.signal?.aborted || code === 'DISK_FULL') throw e;
      if (code !== 'REMOTE_CHANGED' && code !== 'DAMAGED_PACK') {
        events?.note?.(`${source.remote.location}: ${(e as Error).message}; taking the rest from the next remote`);
        return;
      }
      const left = range.chunks.filter((i) => !arrived.has(i));
      if (left.length > 1) {
        const half = Math.ceil(left.length / 2);
        queue.unshift(...buildRanges(snapshot, left.slice(0, half), 0), ...buildRanges(snapshot, left.slice(half), 0));
      }
    }
  }
}

/**
 * Record bytes the wanted files still lack, from the store as it is now (chunks not derived yet
 * lack). A file in place (`inPlace`) lacks nothing, whatever the store holds: its chunks are not
 * asked (every chunk of the tree was asked of LevelDB after each sync, 10k lookups after a 1%
 * update of 10k files that changed 100).
 */
async function missingBytes(work: WorkDir, snapshot: Snapshot, plan: Plan, skip: Set<string>, inPlace: Set<string>, derived?: Derived): Promise<number> {
  const ids = new Map<bigint, number>();
  const underived = new Set<number>();
  for (const pf of plan.files) {
    if (skip.has(pf.path) || inPlace.has(pf.path)) continue;
    for (const i of pf.file.chunks) {
      if (derived && !derived.derivation.knows(i)) underived.add(i);
      else ids.set(snapshot.chunks.id(i), i);
    }
  }
  const have = await work.store.hasMany([...ids.keys()]);
  let n = 0;
  for (const [id, i] of ids) if (!have.has(id)) n += snapshot.chunks.recordLength(i);
  for (const i of underived) n += snapshot.chunks.recordLength(i);
  return n;
}

/** A plan on a skeleton index that takes records of chunks not derived: it needs the whole index first. */
const needsIndex = (latest: Latest, plan: Plan): boolean =>
  !!latest.derived && plan.ranges.some((r) => r.chunks.some((i) => !latest.derived!.derivation.knows(i)));
