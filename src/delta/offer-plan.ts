import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { baseFileChooser, cut, DELTA_FRAME_RAW, DELTA_FRAME_SPAN, Place, pool, windowMapper } from './build.js';

/**
 * Which frames the offer to N holds (format in src/delta/offer.ts), pure: snapshots in, plan out.
 *
 * For each file F of N and each earlier snapshot S (the last 52, newest first), the file of S that
 * F is compressed against is chosen as a delta from S would choose it (same path, else most
 * shared chunks, else the same last path component). Each distinct old content X so found gives
 * one *unit*: F's chunks that X lacks, compressed against X (a window of it when X is large), the
 * measured 1.06-1.10x of the patch-from floor for clients any number of releases behind (vite
 * 8.2.4 … 8.4.0, docs/DESIGN-REMOTE-V3.md). A file's old versions are few even over many
 * releases, so the offer stays near one compressed copy of N. Files S lacks altogether are units
 * against nothing.
 *
 * A unit's *origins* are the snapshots (1 = the newest before N) whose clients hold its bases:
 * units with the same origins are pooled as a delta pools small frames (one zstd frame for many
 * small changed files, the same trade as src/delta/build.ts), since every client that can use one
 * can use all. Frames come out ordered by their newest origin, then oldest, then N's file order:
 * the writer keeps them while the offer fits its budget, so the contents dropped are the oldest.
 */

/** How many earlier snapshots an offer reaches back over (issue 14: "from any of the last 52"). */
export const OFFER_REACH = 52;

/** A dictionary piece: bytes of one old content, and where the publisher reads them. */
export interface OfferBase {
  sha256: string;
  size: number;
  start: number;
  length: number;
  /** The snapshot and file the publisher reads the content from. */
  snapshot: Snapshot;
  file: number;
}

export interface PlannedOfferFrame {
  /** Indices into the chunks of N (or of `waypoint`), in content order. */
  yields: number[];
  bases: OfferBase[];
  /** Positions back from N (1 = newest earlier snapshot) whose clients hold every base, ascending. */
  origins: number[];
  /** The units pooled into this frame. */
  units: OfferUnit[];
  /** Set for a waypoint frame: the earlier snapshot whose chunks `yields` indexes (its version of the file). */
  waypoint?: Snapshot;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Each chunk of F once, in file order, with its offset; without those `skip` says the client holds. */
function placesOf(target: Snapshot, F: FileEntry, skip: Set<bigint>): Place[] {
  const seen = new Set<bigint>();
  const out: Place[] = [];
  let offset = 0;
  for (const index of F.chunks) {
    const c = target.chunks.entry(index);
    if (!seen.has(c.id) && !skip.has(c.id)) {
      seen.add(c.id);
      out.push({ index, offset, length: c.rawLength });
    }
    offset += c.rawLength;
  }
  return out;
}

/** One file of N from one old content (or from nothing), usable by the clients at `origins`. */
export interface OfferUnit {
  /** Index into N's files. */
  file: number;
  /** Undefined: against nothing. */
  base?: { snapshot: Snapshot; file: number };
  origins: number[];
}
type Unit = OfferUnit;

/** `earlier`: the snapshots before N, newest first (at most OFFER_REACH are looked at). */
export function planOffer(target: Snapshot, earlier: Snapshot[]): PlannedOfferFrame[] {
  const units = new Map<string, Unit>();
  earlier.slice(0, OFFER_REACH).forEach((S, k) => {
    const choose = baseFileChooser(target, S);
    target.files.forEach((F, fi) => {
      if (F.size === 0) return;
      const gi = choose(F);
      const G = gi === undefined ? undefined : S.files[gi];
      if (G && Buffer.compare(G.sha256, F.sha256) === 0) return;
      const key = G ? `${fi}:${hex(G.sha256)}` : `${fi}:`;
      let unit = units.get(key);
      if (!unit) units.set(key, (unit = { file: fi, base: G ? { snapshot: S, file: gi! } : undefined, origins: [] }));
      unit.origins.push(k + 1);
    });
  });

  // Units with the same origins, in N's file order.
  const groups = new Map<string, Unit[]>();
  for (const u of units.values()) {
    const key = u.origins.join(',');
    const list = groups.get(key) ?? [];
    list.push(u);
    groups.set(key, list);
  }
  const ordered = [...groups.values()].sort((a, b) => {
    const x = a[0].origins;
    const y = b[0].origins;
    return x[0] - y[0] || x[x.length - 1] - y[y.length - 1] || x.length - y.length;
  });

  const rawLength = (i: number) => target.chunks.rawLength[i];
  const out: PlannedOfferFrame[] = [];
  for (const group of ordered) {
    group.sort((a, b) => a.file - b.file);
    const origins = group[0].origins;
    const deltas: { yields: number[]; bases: OfferBase[]; tags: Unit[] }[] = [];
    const aloneUnits: Unit[] = [];
    const alone: Place[] = [];
    const aloneSeen = new Set<bigint>();
    for (const u of group) {
      const F = target.files[u.file];
      if (!u.base) {
        aloneUnits.push(u);
        for (const p of placesOf(target, F, aloneSeen)) {
          aloneSeen.add(target.chunks.id(p.index));
          alone.push(p);
        }
        continue;
      }
      for (const f of deltaPieces(target, F, u.base.snapshot, u.base.file)) deltas.push({ ...f, tags: [u] });
    }
    for (const f of pool(deltas, rawLength)) out.push({ yields: f.yields, bases: f.bases, origins, units: f.tags });
    for (const piece of cut(alone, DELTA_FRAME_RAW)) out.push({ yields: piece.map((p) => p.index), bases: [], origins, units: aloneUnits });
  }
  return out;
}

/**
 * File F of snapshot T as frames against old file `gi` of S: F's chunks that file lacks, each at
 * most DELTA_FRAME_RAW, against the whole old file or the window of it where the frame maps.
 */
function deltaPieces(T: Snapshot, F: FileEntry, S: Snapshot, gi: number): { yields: number[]; bases: OfferBase[] }[] {
  const G = S.files[gi];
  const places = placesOf(T, F, new Set(G.chunks.map((i) => S.chunks.id(i))));
  if (!places.length) return [];
  const window = windowMapper(T, F, S, gi);
  return cut(places, DELTA_FRAME_RAW, (first, next) => next.offset + next.length - first.offset <= DELTA_FRAME_SPAN).map((piece) => {
    const last = piece[piece.length - 1];
    const w = window(piece[0].offset, last.offset + last.length - piece[0].offset);
    return { yields: piece.map((p) => p.index), bases: [{ sha256: hex(G.sha256), size: G.size, start: w.start, length: w.length, snapshot: S, file: gi }] };
  });
}

/**
 * Waypoints (docs/DESIGN-REMOTE-V3.md decision 4) for the old contents the budget left without a
 * direct delta: each such content X of file F gets a delta into the oldest content of F that kept
 * one (the *waypoint*: that snapshot's version of F), so a client holding X takes two hops, X to
 * the waypoint and the waypoint to N, instead of the stream from nothing. A chain of one-release
 * deltas grows to 1.48x the floor at 11 vite releases; two hops, the second direct, stay near the
 * sum of two floors. Frames yield chunks of the waypoint snapshot, pooled by waypoint and origins,
 * newest origins first.
 */
export function planWaypoints(kept: OfferUnit[], dropped: OfferUnit[]): PlannedOfferFrame[] {
  // Per file of N: the kept unit whose content is oldest (its last origin furthest back).
  const waypointOf = new Map<number, OfferUnit>();
  for (const u of kept) {
    if (!u.base) continue;
    const w = waypointOf.get(u.file);
    if (!w || u.origins[u.origins.length - 1] > w.origins[w.origins.length - 1]) waypointOf.set(u.file, u);
  }
  const groups = new Map<string, { waypoint: Snapshot; origins: number[]; pieces: { yields: number[]; bases: OfferBase[]; tags: OfferUnit[] }[] }>();
  const seen = new Set<OfferUnit>();
  for (const d of [...dropped].sort((a, b) => a.origins[0] - b.origins[0] || a.file - b.file)) {
    const w = waypointOf.get(d.file);
    if (!d.base || !w?.base || seen.has(d)) continue;
    seen.add(d);
    const S = w.base.snapshot;
    const key = `${w.origins[w.origins.length - 1]}:${d.origins.join(',')}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { waypoint: S, origins: d.origins, pieces: [] }));
    for (const f of deltaPieces(S, S.files[w.base.file], d.base.snapshot, d.base.file)) g.pieces.push({ ...f, tags: [d] });
  }
  const out: PlannedOfferFrame[] = [];
  for (const g of groups.values()) {
    for (const f of pool(g.pieces, (i) => g.waypoint.chunks.rawLength[i])) out.push({ yields: f.yields, bases: f.bases, origins: g.origins, units: f.tags, waypoint: g.waypoint });
  }
  return out;
}
