import { ChunkTable, FileEntry, fileTableOf, FileTable, Snapshot } from '../snapshot/snapshot.js';
import { matcher } from '../util/glob.js';
import { IdSet } from '../store/id-set.js';
import { RECORD_HEADER_SIZE } from '../store/pack.js';

/**
 * The session planner: which files to bring, which byte ranges of which packs to fetch, and what
 * that costs on the wire. Pure: the same inputs always give the same plan, which is what lets
 * `--dry-run` show exactly what `sync` will do.
 *
 * Order: files matching the first `--want` pattern first, then the second, and so on; within a
 * pattern (or with no pattern, the whole snapshot) the files cheapest to finish come first, so a
 * budget completes as many files as it can. A file that does not fit is skipped in favour of
 * later ones that do; whatever budget is left then advances the skipped files in order, their
 * chunks kept for the next session.
 */
export interface PlanInput {
  snapshot: Snapshot;
  /** Chunk ids already in the store. */
  present: Set<bigint>;
  /**
   * The same as a bitmap by chunk index (1: held), when the caller has it (a store's answer for
   * a whole index): then `present` is not read, and no BigInt is made per chunk.
   */
  held?: Uint8Array;
  /** Paths already in place and verified. */
  complete: Set<string>;
  /** `--want` patterns; empty means everything. */
  wants: string[];
  /** Wire bytes this session may still spend; Infinity for no budget. */
  budget: number;
  /** Wire cost of one range request with this many body bytes, headers included. */
  requestCost: (bodyBytes: number) => number;
  /**
   * False for a server that ignores Range and sends every pack from its first byte: each pack is
   * then fetched once, from 0 to the end of the last wanted record, and costed that way.
   */
  rangesHonoured?: boolean;
  /**
   * Frames of an update this client can decode (their dictionaries are in the store): each
   * yields several chunks for one byte range of the frames file. Used where a frame costs less
   * than the records of the wanted chunks it yields.
   */
  frames?: FrameOption[];
  /** Wire cost of one request to the frames file with this many body bytes. */
  frameRequestCost?: (bodyBytes: number) => number;
}

export interface FrameOption {
  /** Index into the update head's frames. */
  frame: number;
  /** Byte range of the frame in the frames file. */
  start: number;
  end: number;
  /** Indices into snapshot.chunks. */
  yields: number[];
  /**
   * Compressed bytes of the frame an earlier session already received and kept (its `.part`):
   * the frame costs only what remains, and its request starts at `start + kept`.
   */
  kept?: number;
}

/** Consecutive frames fetched in one request. */
export interface FrameRange {
  /** The first byte fetched: the first frame's offset, plus what is kept of it (`resume`). */
  start: number;
  end: number;
  /** Indices into the update head's frames, in offset order. */
  frames: number[];
  /** Bytes of the first frame already kept from an earlier session (0: it starts afresh). */
  resume: number;
}

/** What a frame still costs in body bytes: what an earlier session did not already receive. */
const remainingOf = (f: FrameOption) => f.end - f.start - (f.kept ?? 0);
/** Where a request for this frame begins. */
const firstByteOf = (f: FrameOption) => f.start + (f.kept ?? 0);

/**
 * Appends a frame to a list of ranges being built: onto the last range when it ends where the
 * frame begins and nothing of the frame is kept, else as a range of its own starting past the
 * kept bytes. Returns whether it joined.
 */
function appendFrame(ranges: FrameRange[], f: FrameOption, end = f.end): boolean {
  const last = ranges[ranges.length - 1];
  if (last !== undefined && last.end === f.start && !f.kept) {
    last.end = end;
    last.frames.push(f.frame);
    return true;
  }
  ranges.push({ start: firstByteOf(f), end, frames: [f.frame], resume: f.kept ?? 0 });
  return false;
}

export interface FetchRange {
  /** Pack name (hex). */
  pack: string;
  start: number;
  end: number;
  /**
   * Indices into snapshot.chunks of the records in this range, in offset order: a view into one
   * array of the plan's chunks in pack order (no array per range: 10M chunk indices pushed onto
   * range lists were a tenth of a 10M-chunk dry run).
   */
  chunks: Uint32Array;
}

export type FileOutcome = 'present' | 'complete' | 'partial' | 'waiting';

export interface PlannedFile {
  /** The file's entry (made on first read for a decoded snapshot: code over every file reads `path`). */
  readonly file: FileEntry;
  readonly path: string;
  /** Its size as placed in the tree (placedSize of its entry). */
  readonly placedSize: number;
  outcome: FileOutcome;
  /** Record bytes still missing for this file before the session (shared chunks counted once, at the first file that needs them). */
  missingBytes: number;
}

export interface Plan {
  files: PlannedFile[];
  ranges: FetchRange[];
  /** Ranges of the update's frames file (empty without an update). */
  frameRanges: FrameRange[];
  /** Wire bytes the ranges cost, headers included. */
  cost: number;
  /** Record bytes of every chunk the wanted files still lack, before this session. */
  neededBytes: number;
  /** Record bytes still lacking after this plan runs. */
  leftBytes: number;
}

const OUTCOMES: FileOutcome[] = ['present', 'complete', 'partial', 'waiting'];
const enum Outcome {
  Present = 0,
  Complete = 1,
  Partial = 2,
  Waiting = 3,
}

/** A plan's line for file `index` of a table: its entry and path made when first asked, not for each of 1M files. */
class PlanLine implements PlannedFile {
  private entry: FileEntry | undefined;
  private name: string | undefined;
  constructor(
    private readonly table: FileTable,
    readonly index: number,
    private readonly code: Outcome,
    readonly missingBytes: number,
  ) {}
  get outcome(): FileOutcome {
    return OUTCOMES[this.code];
  }
  get file(): FileEntry {
    return (this.entry ??= this.table.entry(this.index));
  }
  get path(): string {
    return (this.name ??= this.entry?.path ?? this.table.path(this.index));
  }
  get placedSize(): number {
    return this.table.placedSize(this.index);
  }
}

/** Whether file i of the table is in `complete` (no path string is made when nothing is). */
const completeIn = (complete: Set<string>, files: FileTable) => (complete.size === 0 ? () => false : (i: number) => complete.has(files.path(i)));

/**
 * Which chunks of the snapshot the store holds, by index: looked up once per plan (a BigInt in a
 * Set costs ~0.3 µs a lookup, and the planner asks several times per chunk per pass).
 */
type Held = Uint8Array;

function heldOf(snapshot: Snapshot, present: Set<bigint>): Held {
  // The held ids as a typed-array set: a BigInt per held id, not one per chunk of the index.
  const set = new IdSet(present.size);
  for (const id of present) set.addId(id);
  return set.heldIn(snapshot.chunks.idWords);
}

/**
 * Chunk indices marked as a set: one byte per chunk of the snapshot, and the marked ones in the
 * order they were added. Sets of numbers took most of a 10M-chunk plan's time and memory.
 */
class Marks {
  readonly has: Uint8Array;
  // The marked indices in a typed array grown by doubling: pushing 10M numbers onto an array
  // was a tenth of a no-budget plan.
  private items = new Uint32Array(1024);
  size = 0;
  constructor(length: number) {
    this.has = new Uint8Array(length);
  }
  add(i: number): boolean {
    if (this.has[i]) return false;
    this.has[i] = 1;
    if (this.size === this.items.length) {
      const grown = new Uint32Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    this.items[this.size++] = i;
    return true;
  }
  /** The marked indices in the order they were marked (a view: valid until the next add). */
  get list(): Uint32Array {
    return this.items.subarray(0, this.size);
  }
}

export function planSession(input: PlanInput): Plan {
  const held = input.held ?? heldOf(input.snapshot, input.present);
  const planWith = (input: PlanInput, preferFrames: boolean) => planWithHeld(input, held, preferFrames);
  const planStream = (input: PlanInput) => planStreamHeld(input, held);
  if (!input.frames?.length) return planWith(input, false);
  // Frames worth having save bytes overall, but one frame may carry many files: taken for the
  // first file that needs it, it can cost more than that file's records. So: frames wherever
  // they fit, if that completes every wanted file; else file by file, whichever completes more.
  const greedy = planWith(input, true);
  if (greedy.files.every((f) => f.outcome === 'present' || f.outcome === 'complete')) return greedy;
  const stream = planStream(input);
  if (stream) return stream;
  const careful = planWith(input, false);
  const done = (p: Plan) => p.files.filter((f) => f.outcome === 'complete').length;
  return done(greedy) > done(careful) || (done(greedy) === done(careful) && greedy.cost <= careful.cost) ? greedy : careful;
}

/** The stream is planned only when its frames cost at most this share of the records. */
const STREAM_SAVING = 0.8;
/** A frame prefix shorter than this is mostly request headers: not worth a request. */
const MIN_PREFIX = 16 << 10;
/** Compressed bytes do not map evenly onto content: count on this share of a prefix's chunks only. */
const PREFIX_CONFIDENCE = 0.9;

/**
 * When frames bring everything the session wants for fewer bytes than records, but the budget
 * cannot pay for all of them: the frames in the order they lie, whole while they fit, and then
 * the first bytes of the next one. Its prefix is kept and resumed by the next session, so no byte
 * is paid twice; records now and the frames later would pay for much of it twice (a 2 MB card
 * then a bigger one: 4.0 MB against 2.2 MB for typescript + yargs). Which files the prefix
 * completes is an estimate (bytes of a zstd frame do not map evenly onto its content); the
 * budget is exact. Not with --want (the stream ignores its order) or a server ignoring Range.
 */
function planStreamHeld(input: PlanInput, held: Held): Plan | undefined {
  const { snapshot, complete, budget } = input;
  if (input.wants.length || input.rangesHonoured === false || !input.frames?.length) return undefined;
  const files = fileTableOf(snapshot);
  const isComplete = completeIn(complete, files);
  const missing = new Marks(snapshot.chunks.length);
  for (let f = 0; f < files.length; f++) {
    if (isComplete(f)) continue;
    for (const i of files.chunks(f)) if (!held[i]) missing.add(i);
  }
  const frameOf = new Map<number, FrameOption>();
  for (const fr of input.frames) for (const i of fr.yields) if (missing.has[i] && !frameOf.has(i)) frameOf.set(i, fr);
  if (missing.size === 0 || missing.list.some((i) => !frameOf.has(i))) return undefined;
  const frames = [...new Set(frameOf.values())].sort((a, b) => a.start - b.start);
  let recordBytes = 0;
  for (const i of missing.list) recordBytes += snapshot.chunks.recordLength(i);
  // The stream's order is the publisher's (smallest files first, src/delta/build.ts), not this
  // client's cheapest-to-finish: only for a real saving, not for the few header bytes frames
  // save on packed data.
  if (frames.reduce((n, f) => n + remainingOf(f), 0) > STREAM_SAVING * recordBytes) return undefined;

  const perRequest = input.requestCost(0);
  const requestCost = input.frameRequestCost ?? ((n: number) => n + perRequest);
  const { ranges, cost, prefix } = planFrameStream(frames, budget, requestCost);
  if (ranges.length === 0) return undefined;
  const arrived = new Set<number>();
  for (const fr of frames) {
    if (fr === prefix?.frame) {
      const share = ((prefix.end - fr.start) / (fr.end - fr.start)) * PREFIX_CONFIDENCE;
      const content = fr.yields.reduce((n, i) => n + snapshot.chunks.rawLength[i], 0);
      let at = 0;
      for (const i of fr.yields) {
        at += snapshot.chunks.rawLength[i];
        if (at > share * content) break;
        arrived.add(i);
      }
      break;
    }
    if (ranges[ranges.length - 1].end < fr.end) break;
    fr.yields.forEach((i) => arrived.add(i));
  }

  const lines: PlannedFile[] = [];
  let arrivedBytes = 0;
  for (const i of arrived) if (missing.has[i]) arrivedBytes += snapshot.chunks.recordLength(i);
  for (let f = 0; f < files.length; f++) {
    const own = [...new Set(files.chunks(f))].filter((i) => missing.has[i]);
    const missingBytes = own.reduce((n, i) => n + snapshot.chunks.recordLength(i), 0);
    const got = own.filter((i) => arrived.has(i)).length;
    const outcome = isComplete(f) ? Outcome.Present : got === own.length ? Outcome.Complete : got > 0 ? Outcome.Partial : Outcome.Waiting;
    lines.push(new PlanLine(files, f, outcome, missingBytes));
  }
  return { files: lines, ranges: [], frameRanges: ranges, cost, neededBytes: recordBytes, leftBytes: recordBytes - arrivedBytes };
}

/**
 * Frames in the order they lie, whole while the budget pays for them, then the first bytes of the
 * next one (at least MIN_PREFIX): the next session resumes it there. Kept prefixes are priced at
 * what remains. `prefix` names the frame cut short and where its range ends.
 */
export function planFrameStream(
  frames: FrameOption[],
  budget: number,
  requestCost: (bodyBytes: number) => number,
): { ranges: FrameRange[]; cost: number; prefix?: { frame: FrameOption; end: number } } {
  const ranges: FrameRange[] = [];
  const cost = () => ranges.reduce((n, r) => n + requestCost(r.end - r.start), 0);
  for (const fr of [...frames].sort((a, b) => a.start - b.start)) {
    const joined = appendFrame(ranges, fr);
    if (cost() <= budget) continue;
    // Only a prefix fits: what the budget leaves, less the header digits a longer range may add.
    const range = ranges[ranges.length - 1];
    range.end -= cost() - budget + 16;
    // What this session adds to the frame (a kept frame is resumed, not fetched again).
    if (range.end - firstByteOf(fr) >= MIN_PREFIX) return { ranges, cost: cost(), prefix: { frame: fr, end: range.end } };
    if (joined) {
      range.end = fr.start;
      range.frames.pop();
    } else ranges.pop();
    break;
  }
  return { ranges, cost: cost() };
}

/**
 * The wanted files in plan order, what each alone lacks, and the chunks the ones not in place
 * lack together (each once): one walk over the wanted files' chunks, whatever the budget.
 */
interface Wanted {
  order: number[];
  lacking: Float64Array;
  /** 1 for each chunk a wanted file not in place lacks. */
  needed: Uint8Array;
  neededCount: number;
  neededBytes: number;
}

function wantedOf(input: PlanInput, held: Held, files: FileTable, isComplete: (f: number) => boolean): Wanted {
  const table = input.snapshot.chunks;
  const which = input.wants.length ? matcher(input.wants) : () => 0;
  const { chunkList, chunkStart } = files;
  const { storedLength } = table;
  // A chunk's last file, so a chunk a file holds twice is counted once for it.
  const stamp = new Int32Array(table.length).fill(-1);
  const needed = new Uint8Array(table.length);
  let neededCount = 0;
  let neededBytes = 0;
  const rank = new Int32Array(files.length);
  const lacking = new Float64Array(files.length);
  const order: number[] = [];
  for (let f = 0; f < files.length; f++) {
    rank[f] = input.wants.length ? which(files.path(f)) : 0;
    if (rank[f] < 0) continue;
    const counts = !isComplete(f);
    let bytes = 0;
    for (let j = chunkStart[f]; j < chunkStart[f + 1]; j++) {
      const i = chunkList[j];
      if (held[i] || stamp[i] === f) continue;
      stamp[i] = f;
      const record = RECORD_HEADER_SIZE + storedLength[i];
      bytes += record;
      if (counts && !needed[i]) {
        needed[i] = 1;
        neededCount++;
        neededBytes += record;
      }
    }
    lacking[f] = bytes;
    order.push(f);
  }
  sortWanted(order, rank, lacking, pathOrder(files));
  return { order, lacking, needed, neededCount, neededBytes };
}

function planWithHeld(input: PlanInput, held: Held, preferFrames: boolean): Plan {
  const { snapshot, complete, budget, requestCost } = input;
  const table = snapshot.chunks;
  // Header bytes of one request at its largest (requestCost(0): see Remote.requestCost).
  const perRequest = requestCost(0);
  const files = fileTableOf(snapshot);
  const isComplete = completeIn(complete, files);
  const { order, lacking, needed, neededCount, neededBytes } = wantedOf(input, held, files, isComplete);
  const lineOf = (k: number, outcome: Outcome) => new PlanLine(files, order[k], outcome, lacking[order[k]]);
  const rangesHonoured = input.rangesHonoured !== false;
  const frames = frameCosts(input, held, files, order, perRequest);

  // With no limit and no frame to weigh, every file not in place is taken and every chunk lacking
  // fetched: nothing to price or choose (pricing sorted each file's chunks, a tenth of a 10M-chunk
  // no-budget plan; choosing walked every chunk a second time).
  if (budget === Infinity && !frames.offered && rangesHonoured) {
    const ranges = rangesOf(snapshot, markedInPackOrder(table, needed, neededCount), perRequest);
    const lines: PlannedFile[] = new Array(order.length);
    for (let k = 0; k < order.length; k++) lines[k] = lineOf(k, isComplete(order[k]) ? Outcome.Present : Outcome.Complete);
    const cost = ranges.reduce((n, r) => n + requestCost(r.end - r.start), 0);
    return { files: lines, ranges, frameRanges: [], cost, neededBytes, leftBytes: 0 };
  }

  const chosen = new Marks(table.length);
  const costs = rangesHonoured ? rangeCosts(table, perRequest) : prefixCosts(snapshot, requestCost);
  // Chunks that chosen frames bring: free for every file after the one that paid for the frame.
  const framed = new Marks(table.length);
  const take = (add: number[]): number | undefined => {
    const rest = framed.size ? add.filter((i) => !framed.has[i]) : add;
    // Most files of a big index do not fit once the card is spent: refused on their bytes alone.
    if (!frames.offered && costs.floor(rest) > left) return undefined;
    // With frames where they are worth it, else record by record, whichever fits.
    const viaFrames = frames.split(rest);
    const recordsOnly = costs.price(rest);
    const withFrames = viaFrames.frames.length ? frames.price(viaFrames.frames) + costs.price(viaFrames.rest) : undefined;
    if (withFrames !== undefined && withFrames <= left && (preferFrames || withFrames <= recordsOnly)) {
      frames.commit(viaFrames.frames, framed);
      viaFrames.rest.forEach((i) => chosen.add(i));
      costs.commit(viaFrames.rest);
      return withFrames;
    }
    if (recordsOnly <= left) {
      rest.forEach((i) => chosen.add(i));
      costs.commit(rest);
      return recordsOnly;
    }
    return undefined;
  };
  const outcome = new Uint8Array(order.length);
  let left = budget;
  const deferred: number[] = [];
  const { chunkList, chunkStart } = files;
  for (let k = 0; k < order.length; k++) {
    const f = order[k];
    if (isComplete(f)) {
      outcome[k] = Outcome.Present;
      continue;
    }
    // Once what is left cannot pay one request's headers, a file with any chunk to fetch is
    // refused by take() on its bytes alone: found at its first such chunk, with no list made
    // (most files of a big index).
    const spent = left <= perRequest && !frames.offered && rangesHonoured;
    const add: number[] = [];
    let lacks = false;
    for (let j = chunkStart[f]; j < chunkStart[f + 1]; j++) {
      const i = chunkList[j];
      if (held[i] || chosen.has[i]) continue;
      if (spent) {
        lacks = true;
        break;
      }
      add.push(i);
    }
    const price = lacks ? undefined : take(add);
    if (price !== undefined) {
      left -= price;
      outcome[k] = Outcome.Complete;
    } else {
      deferred.push(k);
      outcome[k] = Outcome.Waiting;
    }
  }
  // Advance files that did not fit, chunk by chunk in file order, while budget remains.
  for (const k of deferred) {
    if (left <= perRequest) break;
    let advanced = false;
    for (const i of files.chunks(order[k])) {
      if (held[i] || chosen.has[i] || framed.has[i]) continue;
      const price = costs.price([i]);
      if (price > left) break;
      chosen.add(i);
      costs.commit([i]);
      left -= price;
      advanced = true;
    }
    if (advanced) outcome[k] = Outcome.Partial;
  }

  const ranges = rangesHonoured ? buildRanges(snapshot, chosen.list, perRequest) : prefixRanges(snapshot, chosen.list);
  const frameRanges = frames.ranges();
  const total = ranges.reduce((n, r) => n + requestCost(r.end - r.start), 0) + frames.cost(frameRanges);
  let fetched = 0;
  for (const i of chosen.list) if (!held[i]) fetched += table.recordLength(i);
  for (const i of framed.list) if (!held[i] && !chosen.has[i]) fetched += table.recordLength(i);
  const lines: PlannedFile[] = new Array(order.length);
  for (let k = 0; k < order.length; k++) lines[k] = lineOf(k, outcome[k]);
  return { files: lines, ranges, frameRanges, cost: total, neededBytes, leftBytes: Math.max(0, neededBytes - fetched) };
}

/**
 * The wanted files in plan order: by --want rank, then bytes lacking, then path (bytewise; the
 * tie-break keeps plans the same wherever they are made). As one number per file sorted natively
 * when rank, bytes and place fit in 53 bits, as they do for any real index: a comparator sort
 * of 1M indices took a second of a 10M-chunk plan.
 */
function sortWanted(order: number[], rank: Int32Array, lacking: Float64Array, byPath: ArrayLike<number>): void {
  const n = byPath.length;
  let maxRank = 0;
  let maxLacking = 0;
  for (const f of order) {
    if (rank[f] > maxRank) maxRank = rank[f];
    if (lacking[f] > maxLacking) maxLacking = lacking[f];
  }
  if ((maxRank + 1) * (maxLacking + 1) * n >= Number.MAX_SAFE_INTEGER) {
    order.sort((a, b) => rank[a] - rank[b] || lacking[a] - lacking[b] || byPath[a] - byPath[b]);
    return;
  }
  const keys = new Float64Array(order.length);
  for (let k = 0; k < order.length; k++) {
    const f = order[k];
    keys[k] = (rank[f] * (maxLacking + 1) + lacking[f]) * n + byPath[f];
  }
  keys.sort();
  // Back from a file's place in path order to the file.
  const fileAt = new Uint32Array(n);
  for (let f = 0; f < n; f++) fileAt[byPath[f]] = f;
  for (let k = 0; k < keys.length; k++) order[k] = fileAt[keys[k] % n];
}

/**
 * Each file's place in bytewise path order: its index when the table is in that order already
 * (one pass to see), else by a sort of the paths.
 */
function pathOrder(files: FileTable): ArrayLike<number> {
  let place = pathPlaces.get(files);
  if (!place) pathPlaces.set(files, (place = placesByPath(files)));
  return place;
}

/** Each table's path order, found once (a table never changes; a dry run plans twice). */
const pathPlaces = new WeakMap<FileTable, Uint32Array>();

function placesByPath(files: FileTable): Uint32Array {
  const { pathBytes: b, pathStart: at } = files;
  const before = (x: number, y: number) => b.compare(b, at[y], at[y + 1], at[x], at[x + 1]);
  let sorted = true;
  for (let f = 1; f < files.length && sorted; f++) sorted = before(f - 1, f) < 0;
  const place = new Uint32Array(files.length);
  if (sorted) {
    for (let f = 0; f < files.length; f++) place[f] = f;
    return place;
  }
  const byPath = Array.from({ length: files.length }, (_, f) => f).sort((x, y) => before(x, y));
  byPath.forEach((f, k) => (place[f] = k));
  return place;
}

/**
 * Prices frames. A frame is considered only where it is worth it: it costs no more than the
 * records of the wanted, missing chunks it yields. A file that needs one of its chunks pays the
 * whole frame; the frame's other chunks then come free to the files after it.
 */
function frameCosts(input: PlanInput, held: Held, files: FileTable, wantedFiles: number[], perRequest: number) {
  const { snapshot } = input;
  const byChunk = new Map<number, FrameOption>();
  if (input.frames?.length && input.rangesHonoured !== false) {
    const wanted = new Uint8Array(snapshot.chunks.length);
    for (const f of wantedFiles) for (const i of files.chunks(f)) if (!held[i]) wanted[i] = 1;
    for (const fr of input.frames) {
      let records = 0;
      for (const i of fr.yields) if (wanted[i]) records += snapshot.chunks.recordLength(i);
      if (records > 0 && remainingOf(fr) <= records) for (const i of fr.yields) if (!byChunk.has(i)) byChunk.set(i, fr);
    }
  }
  const chosen = new Map<number, FrameOption>();
  const requestCost = input.frameRequestCost ?? ((n: number) => n + perRequest);
  const framePerRequest = requestCost(0);
  return {
    /** Whether any frame is worth considering. */
    offered: byChunk.size > 0,
    /** The frames that bring some of `add`, and the chunks no frame brings. */
    split(add: number[]): { frames: FrameOption[]; rest: number[] } {
      if (byChunk.size === 0) return { frames: NO_FRAMES, rest: add };
      const frames = new Set<FrameOption>();
      const rest: number[] = [];
      for (const i of add) {
        const fr = byChunk.get(i);
        if (fr) frames.add(fr);
        else rest.push(i);
      }
      return { frames: [...frames].filter((f) => !chosen.has(f.frame)), rest };
    },
    /**
     * What remains of frames not yet chosen, plus a request for each that does not join a chosen
     * one (a frame partly kept starts a request of its own, past its kept bytes).
     */
    price(frames: FrameOption[]): number {
      let cost = 0;
      const ends = new Set([...chosen.values()].map((f) => f.end));
      const starts = new Set([...chosen.values()].filter((f) => !f.kept).map((f) => f.start));
      for (const f of [...frames].sort((a, b) => a.start - b.start)) {
        cost += remainingOf(f) + ((ends.has(f.start) && !f.kept) || starts.has(f.end) ? 0 : framePerRequest);
        ends.add(f.end);
        if (!f.kept) starts.add(f.start);
      }
      return cost;
    },
    commit(frames: FrameOption[], framed: Marks): void {
      for (const f of frames) {
        chosen.set(f.frame, f);
        for (const i of f.yields) framed.add(i);
      }
    },
    /** Chosen frames joined into ranges where they lie back to back (and nothing of the later one is kept). */
    ranges(): FrameRange[] {
      const out: FrameRange[] = [];
      for (const f of [...chosen.values()].sort((a, b) => a.start - b.start)) appendFrame(out, f);
      return out;
    },
    cost(ranges: FrameRange[]): number {
      return ranges.reduce((n, r) => n + requestCost(r.end - r.start), 0);
    },
  };
}

const NO_FRAMES: FrameOption[] = [];

/** Upper bound of the wire cost of fetching `chunks`: bytes plus one request per run of neighbours. */
function estimate(chunks: number[], table: ChunkTable, perRequest: number): number {
  if (chunks.length === 0) return 0;
  const sorted = chunks.length === 1 ? chunks : [...chunks].sort((a, b) => a - b);
  let cost = 0;
  let prev = -1;
  for (const i of sorted) {
    const adjacent = prev >= 0 && table.pack[prev] === table.pack[i] && table.offset[prev] + table.recordLength(prev) === table.offset[i];
    cost += table.recordLength(i) + (adjacent ? 0 : perRequest);
    prev = i;
  }
  return cost;
}

/** Prices chunk sets in a plan being built; `commit` records what was chosen. */
interface CostModel {
  price(add: number[]): number;
  /** At most what price(add) says (cheaper to reckon). */
  floor(add: number[]): number;
  commit(add: number[]): void;
}

/** Range requests: bytes plus one request per run of neighbouring records (an upper bound). */
function rangeCosts(table: ChunkTable, perRequest: number): CostModel {
  const floor = (add: number[]) => {
    let bytes = add.length ? perRequest : 0;
    for (const i of add) bytes += table.recordLength(i);
    return bytes;
  };
  return { price: (add) => estimate(add, table, perRequest), floor, commit: () => {} };
}

/**
 * A server that ignores Range: each pack is fetched from byte 0 to the end of its last chosen
 * record, so adding a chunk costs whatever it moves that end, plus one request for a new pack.
 */
function prefixCosts(snapshot: Snapshot, requestCost: (n: number) => number): CostModel {
  const t = snapshot.chunks;
  const packEnd = new Map<number, number>();
  const grownEnds = (add: number[]) => {
    const grown = new Map<number, number>();
    for (const i of add) {
      const end = t.offset[i] + t.recordLength(i);
      if (end > (grown.get(t.pack[i]) ?? packEnd.get(t.pack[i]) ?? 0)) grown.set(t.pack[i], end);
    }
    return grown;
  };
  return {
    floor: () => 0,
    price(add) {
      let extra = 0;
      for (const [pack, end] of grownEnds(add)) {
        const before = packEnd.get(pack);
        extra += requestCost(end) - (before === undefined ? 0 : requestCost(before));
      }
      return extra;
    },
    commit(add) {
      for (const [pack, end] of grownEnds(add)) packEnd.set(pack, end);
    },
  };
}

/** One range per pack, from its first byte to the end of the last chosen record. */
function prefixRanges(snapshot: Snapshot, chosen: ArrayLike<number> & Iterable<number>): FetchRange[] {
  const t = snapshot.chunks;
  const byPack = new Map<number, number[]>();
  for (const i of chosen) {
    const list = byPack.get(t.pack[i]) ?? [];
    list.push(i);
    byPack.set(t.pack[i], list);
  }
  return [...byPack].map(([pack, list]) => {
    list.sort((a, b) => t.offset[a] - t.offset[b]);
    const last = list[list.length - 1];
    return { pack: snapshot.packs[pack], start: 0, end: t.offset[last] + t.recordLength(last), chunks: Uint32Array.from(list) };
  });
}

/**
 * Joins chunks that lie next to each other in a pack into one range. A gap between two wanted
 * records is fetched too when it is smaller than a request's headers: cheaper on the wire. Those
 * gap records are not in this snapshot's table and are discarded on arrival.
 */
export function buildRanges(snapshot: Snapshot, chunkIndices: ArrayLike<number> & Iterable<number>, maxGap: number): FetchRange[] {
  return rangesOf(snapshot, inPackOrder(snapshot.chunks, chunkIndices), maxGap);
}

/** buildRanges of chunks already in pack order: each range's chunks a view into `sorted`. */
function rangesOf(snapshot: Snapshot, sorted: Uint32Array, maxGap: number): FetchRange[] {
  const t = snapshot.chunks;
  const ranges: FetchRange[] = [];
  let first = 0;
  let start = 0;
  let end = 0;
  for (let k = 0; k <= sorted.length; k++) {
    const i = sorted[k];
    const offset = k < sorted.length ? t.offset[i] : 0;
    if (k > 0 && k < sorted.length && t.pack[i] === t.pack[sorted[first]] && offset >= end && offset - end <= maxGap) {
      end = offset + t.recordLength(i);
      continue;
    }
    if (k > 0) ranges.push({ pack: snapshot.packs[t.pack[sorted[first]]], start, end, chunks: sorted.subarray(first, k) });
    if (k < sorted.length) {
      first = k;
      start = offset;
      end = offset + t.recordLength(i);
    }
  }
  return ranges;
}

/** Whether a table's chunks lie in (pack, offset) order by index, as a publisher writes them: found once per table. */
const packOrdered = new WeakMap<ChunkTable, boolean>();

function isPackOrdered(t: ChunkTable): boolean {
  let ordered = packOrdered.get(t);
  if (ordered === undefined) {
    ordered = true;
    for (let i = 1; i < t.length && ordered; i++) ordered = t.pack[i - 1] < t.pack[i] || (t.pack[i - 1] === t.pack[i] && t.offset[i - 1] < t.offset[i]);
    packOrdered.set(t, ordered);
  }
  return ordered;
}

const byPlace = (t: ChunkTable) => (a: number, b: number) => t.pack[a] - t.pack[b] || t.offset[a] - t.offset[b];

/**
 * The chunks sorted by pack, then offset. For many chunks of a table already in that order, by
 * a pass over a mark per chunk instead of a sort: sorting the 10M chunks of a no-budget plan took
 * ~10 s of a 10M-chunk dry run.
 */
function inPackOrder(t: ChunkTable, chunkIndices: ArrayLike<number> & Iterable<number>): Uint32Array {
  const bySort = () => Uint32Array.from(chunkIndices).sort(byPlace(t));
  if (chunkIndices.length < 4096 || chunkIndices.length * 16 < t.length || !isPackOrdered(t)) return bySort();
  const marks = new Uint8Array(t.length);
  for (const i of chunkIndices) if (marks[i]++ === 255) return bySort();
  return marksInOrder(marks, chunkIndices.length);
}

/** The chunks marked 1 in `marks` (`count` of them), in pack order. */
function markedInPackOrder(t: ChunkTable, marks: Uint8Array, count: number): Uint32Array {
  if (isPackOrdered(t)) return marksInOrder(marks, count);
  const out = new Uint32Array(count);
  let n = 0;
  for (let i = 0; i < marks.length; i++) if (marks[i]) out[n++] = i;
  return out.sort(byPlace(t));
}

/** Each index as many times as it is marked, in index order. */
function marksInOrder(marks: Uint8Array, count: number): Uint32Array {
  const out = new Uint32Array(count);
  let n = 0;
  for (let i = 0; i < marks.length; i++) for (let k = marks[i]; k > 0; k--) out[n++] = i;
  return out;
}
