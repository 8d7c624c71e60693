import { ChunkEntry, FileEntry, recordLength, Snapshot } from '../snapshot/snapshot.js';
import { matcher } from '../util/glob.js';

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
}

export interface FetchRange {
  /** Pack name (hex). */
  pack: string;
  start: number;
  end: number;
  /** Indices into snapshot.chunks of the records in this range, in offset order. */
  chunks: number[];
}

export type FileOutcome = 'present' | 'complete' | 'partial' | 'waiting';

export interface PlannedFile {
  file: FileEntry;
  outcome: FileOutcome;
  /** Record bytes still missing for this file before the session (shared chunks counted once, at the first file that needs them). */
  missingBytes: number;
}

export interface Plan {
  files: PlannedFile[];
  ranges: FetchRange[];
  /** Wire bytes the ranges cost, headers included. */
  cost: number;
  /** Record bytes of every chunk the wanted files still lack, before this session. */
  neededBytes: number;
  /** Record bytes still lacking after this plan runs. */
  leftBytes: number;
}

export function planSession(input: PlanInput): Plan {
  const { snapshot, present, complete, budget, requestCost } = input;
  const which = input.wants.length ? matcher(input.wants) : () => 0;
  // Header bytes of the largest request: Content-Length and Content-Range grow with the range.
  const perRequest = requestCost(2 ** 32) - 2 ** 32;

  const wanted = snapshot.files
    .map((file) => ({ file, rank: which(file.path) }))
    .filter((f) => f.rank >= 0);

  const missingOf = (f: FileEntry, counted: Set<number>) => {
    let bytes = 0;
    for (const i of f.chunks) {
      if (counted.has(i) || present.has(snapshot.chunks[i].id)) continue;
      counted.add(i);
      bytes += recordLength(snapshot.chunks[i]);
    }
    return bytes;
  };

  // What each file alone still lacks: the ordering key.
  const scored = wanted.map(({ file, rank }) => ({ file, rank, bytes: missingOf(file, new Set()) }));
  scored.sort((a, b) => a.rank - b.rank || a.bytes - b.bytes || (a.file.path < b.file.path ? -1 : 1));

  const chosen = new Set<number>();
  const costs = input.rangesHonoured === false ? prefixCosts(snapshot, requestCost) : rangeCosts(snapshot.chunks, perRequest);
  const outcome = new Map<string, FileOutcome>();
  const files: PlannedFile[] = [];
  let neededBytes = 0;
  let left = budget;
  const deferred: typeof scored = [];
  const seenForNeed = new Set<number>();
  for (const s of scored) {
    if (complete.has(s.file.path)) {
      outcome.set(s.file.path, 'present');
      continue;
    }
    neededBytes += missingOf(s.file, seenForNeed);
    const add = s.file.chunks.filter((i) => !chosen.has(i) && !present.has(snapshot.chunks[i].id));
    const price = costs.price(add);
    if (price <= left) {
      add.forEach((i) => chosen.add(i));
      costs.commit(add);
      left -= price;
      outcome.set(s.file.path, 'complete');
    } else {
      deferred.push(s);
      outcome.set(s.file.path, 'waiting');
    }
  }
  // Advance files that did not fit, chunk by chunk in file order, while budget remains.
  for (const s of deferred) {
    if (left <= perRequest) break;
    let advanced = false;
    for (const i of s.file.chunks) {
      if (chosen.has(i) || present.has(snapshot.chunks[i].id)) continue;
      const price = costs.price([i]);
      if (price > left) break;
      chosen.add(i);
      costs.commit([i]);
      left -= price;
      advanced = true;
    }
    if (advanced) outcome.set(s.file.path, 'partial');
  }

  const ranges = input.rangesHonoured === false ? prefixRanges(snapshot, [...chosen]) : buildRanges(snapshot, [...chosen], perRequest);
  const total = ranges.reduce((n, r) => n + requestCost(r.end - r.start), 0);
  let fetched = 0;
  for (const i of chosen) fetched += recordLength(snapshot.chunks[i]);
  for (const s of scored) files.push({ file: s.file, outcome: outcome.get(s.file.path)!, missingBytes: s.bytes });
  return { files, ranges, cost: total, neededBytes, leftBytes: Math.max(0, neededBytes - fetched) };
}

/** Upper bound of the wire cost of fetching `chunks`: bytes plus one request per run of neighbours. */
function estimate(chunks: number[], table: ChunkEntry[], perRequest: number): number {
  if (chunks.length === 0) return 0;
  const sorted = [...chunks].sort((a, b) => a - b);
  let cost = 0;
  let prev: ChunkEntry | undefined;
  for (const i of sorted) {
    const c = table[i];
    const adjacent = prev && prev.pack === c.pack && prev.offset + recordLength(prev) === c.offset;
    cost += recordLength(c) + (adjacent ? 0 : perRequest);
    prev = c;
  }
  return cost;
}

/** Prices chunk sets in a plan being built; `commit` records what was chosen. */
interface CostModel {
  price(add: number[]): number;
  commit(add: number[]): void;
}

/** Range requests: bytes plus one request per run of neighbouring records (an upper bound). */
function rangeCosts(table: ChunkEntry[], perRequest: number): CostModel {
  return { price: (add) => estimate(add, table, perRequest), commit: () => {} };
}

/**
 * A server that ignores Range: each pack is fetched from byte 0 to the end of its last chosen
 * record, so adding a chunk costs whatever it moves that end, plus one request for a new pack.
 */
function prefixCosts(snapshot: Snapshot, requestCost: (n: number) => number): CostModel {
  const packEnd = new Map<number, number>();
  const grownEnds = (add: number[]) => {
    const grown = new Map<number, number>();
    for (const i of add) {
      const c = snapshot.chunks[i];
      const end = c.offset + recordLength(c);
      if (end > (grown.get(c.pack) ?? packEnd.get(c.pack) ?? 0)) grown.set(c.pack, end);
    }
    return grown;
  };
  return {
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
function prefixRanges(snapshot: Snapshot, chosen: number[]): FetchRange[] {
  const byPack = new Map<number, number[]>();
  for (const i of chosen) {
    const list = byPack.get(snapshot.chunks[i].pack) ?? [];
    list.push(i);
    byPack.set(snapshot.chunks[i].pack, list);
  }
  return [...byPack].map(([pack, list]) => {
    list.sort((a, b) => snapshot.chunks[a].offset - snapshot.chunks[b].offset);
    const last = snapshot.chunks[list[list.length - 1]];
    return { pack: snapshot.packs[pack], start: 0, end: last.offset + recordLength(last), chunks: list };
  });
}

/**
 * Joins chunks that lie next to each other in a pack into one range. A gap between two wanted
 * records is fetched too when it is smaller than a request's headers: cheaper on the wire. Those
 * gap records are not in this snapshot's table and are discarded on arrival.
 */
export function buildRanges(snapshot: Snapshot, chunkIndices: number[], maxGap: number): FetchRange[] {
  const sorted = [...chunkIndices].sort((a, b) => {
    const x = snapshot.chunks[a];
    const y = snapshot.chunks[b];
    return x.pack - y.pack || x.offset - y.offset;
  });
  const ranges: FetchRange[] = [];
  let cur: (FetchRange & { packIndex: number }) | undefined;
  for (const i of sorted) {
    const c = snapshot.chunks[i];
    const end = c.offset + recordLength(c);
    if (cur && cur.packIndex === c.pack && c.offset >= cur.end && c.offset - cur.end <= maxGap) {
      cur.end = end;
      cur.chunks.push(i);
      continue;
    }
    cur = { pack: snapshot.packs[c.pack], packIndex: c.pack, start: c.offset, end, chunks: [i] };
    ranges.push(cur);
  }
  return ranges.map(({ pack, start, end, chunks }) => ({ pack, start, end, chunks }));
}
