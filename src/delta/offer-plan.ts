import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { baseFileChooser, cut, DELTA_FRAME_RAW, DELTA_FRAME_SPAN, Place, pool, sourceOf, windowMapper } from './build.js';

/**
 * Which frames the offer to N holds (format in src/delta/offer.ts), pure: snapshots in, plan out.
 *
 * Direct deltas from every old content of every changed file do not fit one compressed copy of
 * N: vite 8.2.4 … 8.4.0 rewrites its 1.4 MB bundle in every release, and direct per-file deltas
 * from all its old versions took 688 kB, 1.42x the stream (docs/DESIGN-REMOTE-V3.md). Cut at the
 * budget, the oldest clients fell to the stream (11 behind: 5.18x the floor). But the deltas
 * between neighbouring releases are small (the bundle: 0.1-15 kB each, against 29-63 kB direct
 * into the newest), so the offer is a *ladder*: direct deltas into N from the contents of a few
 * earlier snapshots (the *rungs*, always the newest earlier one), and for the snapshots between
 * two rungs, waypoint deltas into the next newer rung's version of each file. A client between
 * rungs takes two hops: its contents to the rung's, then the rung's to N.
 *
 * The rungs are chosen by a dynamic program over what each pair of snapshots changes (each
 * changed file's versions compressed against each other at a fast level, by the publisher):
 * fewest bytes on the remote such that every client's two hops cost at most HOP_SLACK times its
 * direct delta. On vite (16 earlier releases, tar
 * floors) that picks rungs 1, 2, 5, 10: 0.85x one compressed copy for clients 1-16 behind, each
 * within 1.21-1.49x its floor, against 1.86x for direct deltas from all.
 *
 * Per file F of N and each earlier snapshot S, the file of S that F is compressed against is
 * chosen as a delta from S would choose it (same path, else most shared chunks, else the same
 * last path component). Each distinct old content gives one *unit*; a unit's *origins* are the
 * snapshots (1 = the newest before N) whose clients use it. Units with the same origins (and
 * waypoint) are pooled as a delta pools small frames, since every client that can use one can
 * use all. Frames come out ordered by their newest origin, then oldest: the writer keeps them
 * while the offer fits its budget, so what a too-small budget drops is the oldest.
 */

/** How many earlier snapshots an offer reaches back over (issue 14: "from any of the last 52"). */
export const OFFER_REACH = 52;

/**
 * A client between rungs may move this many times the bytes of its direct change over its two
 * hops (by the raw-bytes proxy): the rest of the 1.5x bound is for the waypoint's index and the
 * compression lost between hops.
 */
export const HOP_SLACK = 1.2;

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
  /** Positions back from N (1 = newest earlier snapshot) whose clients use the frame, ascending. */
  origins: number[];
  /** Set for a waypoint frame: the earlier snapshot (a rung) whose chunks `yields` indexes (its version of the file). */
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

/** One old (or the new) content of a file of N: where the publisher reads it. */
export interface Version {
  sha256: string;
  snapshot: Snapshot;
  file: number;
}

/**
 * Per file of N (its index), its distinct versions over [N, ...earlier] and which one each
 * snapshot holds (`at[p]`: an index into `versions`, -1 when snapshot p has no such file), each
 * found as a delta from that snapshot would find it (src/delta/build.ts baseFileChooser).
 * Unchanged files (every snapshot at N's version) are left out: they cost nothing anywhere.
 */
export function fileVersions(target: Snapshot, earlier: Snapshot[]): { file: number; versions: Version[]; at: number[] }[] {
  const S = earlier.slice(0, OFFER_REACH);
  const choosers = S.map((s) => baseFileChooser(target, s));
  const out: { file: number; versions: Version[]; at: number[] }[] = [];
  target.files.forEach((F, fi) => {
    if (F.size === 0) return;
    const versions: Version[] = [{ sha256: hex(F.sha256), snapshot: target, file: fi }];
    const index = new Map([[versions[0].sha256, 0]]);
    const at = [0];
    S.forEach((s, k) => {
      const gi = choosers[k](F);
      if (gi === undefined) return at.push(-1);
      const sha = hex(s.files[gi].sha256);
      let v = index.get(sha);
      if (v === undefined) index.set(sha, (v = versions.push({ sha256: sha, snapshot: s, file: gi }) - 1));
      at.push(v);
    });
    if (at.some((v) => v !== 0)) out.push({ file: fi, versions, at });
  });
  return out;
}

/**
 * change[a][b] over snapshots [N, ...earlier]: what moving a client from snapshot a to snapshot
 * b costs, summed over N's changed files, by `cost(file, from, to)`: the bytes of version `to`
 * compressed against version `from` (undefined: the file is new since a). The publisher measures
 * it with a fast zstd level (src/publish/updates.ts); raw bytes of the chunks that differ were no
 * guide: 25 scattered edits a release rewrite most 4 KiB chunks of a file, so every two-hop route
 * looked twice its direct one when its compressed deltas add up to about the direct one.
 */
export function changeMatrix(files: { file: number; versions: Version[]; at: number[] }[], n: number, cost: (file: number, from: Version | undefined, to: Version) => number): number[][] {
  const change = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (const { file, versions, at } of files) {
    const memo = new Map<string, number>();
    for (let b = 0; b < n; b++) {
      if (at[b] < 0) continue;
      for (let a = b + 1; a < n; a++) {
        if (at[a] === at[b]) continue;
        const key = `${at[a]}>${at[b]}`;
        let c = memo.get(key);
        if (c === undefined) memo.set(key, (c = cost(file, at[a] < 0 ? undefined : versions[at[a]], versions[at[b]])));
        change[a][b] += c;
      }
    }
  }
  return change;
}

/**
 * The rungs (positions 1 … m back from N, ascending, 1 always among them) that keep the fewest
 * bytes by `change` (changeMatrix over [N, ...earlier]) while every client k between rungs moves
 * at most `slack` times its direct change over its two hops: k to the nearest newer rung w (the
 * largest rung below k), then w to N. Rungs kept cost change[w][0]; a client between, change[k][w].
 */
export function chooseRungs(change: number[][], slack = HOP_SLACK): number[] {
  const m = change.length - 1;
  if (m < 1) return [];
  const ok = (k: number, w: number) => change[k][w] + change[w][0] <= slack * change[k][0];
  // Bytes of the waypoint deltas from positions w+1 … end-1 into rung w (Infinity: one breaks the bound).
  const between = (w: number, end: number) => {
    let sum = 0;
    for (let k = w + 1; k < end; k++) {
      if (!ok(k, w)) return Infinity;
      sum += change[k][w];
    }
    return sum;
  };
  // best[l]: fewest bytes for rungs ending at l (positions 1 … l-1 served), and the rung before l.
  const best = new Array<number>(m + 1).fill(Infinity);
  const before = new Array<number>(m + 1).fill(0);
  best[1] = change[1][0];
  for (let l = 2; l <= m; l++) {
    for (let w = 1; w < l; w++) {
      if (best[w] === Infinity) continue;
      const c = best[w] + between(w, l) + change[l][0];
      if (c < best[l]) [best[l], before[l]] = [c, w];
    }
  }
  let last = 1;
  let total = Infinity;
  for (let l = 1; l <= m; l++) {
    const c = best[l] + between(l, m + 1);
    if (c < total) [total, last] = [c, l];
  }
  const rungs: number[] = [];
  for (let l = last; l >= 1; l = before[l]) {
    rungs.unshift(l);
    if (l === 1) break;
  }
  return rungs;
}

interface Unit {
  /** Index into N's files (a direct unit) or into the waypoint's files. */
  file: number;
  /** Undefined: against nothing. */
  base?: { snapshot: Snapshot; file: number };
  origins: number[];
  /** A waypoint unit: the rung position and the file of its snapshot that the unit rebuilds. */
  waypoint?: { position: number; file: number };
}

/**
 * `earlier`: the snapshots before N, newest first (at most OFFER_REACH are looked at); `rungs`:
 * positions back from N with direct deltas (chooseRungs), every earlier snapshot by default.
 */
export function planOffer(target: Snapshot, earlier: Snapshot[], rungs?: number[]): PlannedOfferFrame[] {
  const S = earlier.slice(0, OFFER_REACH);
  const ladder = new Set(rungs ?? S.map((_, k) => k + 1));
  const rungOf = (k: number) => {
    for (let w = k - 1; w >= 1; w--) if (ladder.has(w)) return w;
    return 0;
  };
  const choosers = S.map((s) => baseFileChooser(target, s));
  const units = new Map<string, Unit>();
  const add = (key: string, make: () => Unit, k: number) => {
    let u = units.get(key);
    if (!u) units.set(key, (u = make()));
    u.origins.push(k);
  };
  // Rungs first, so a content a rung holds is a direct unit for every client holding it.
  const order = [...S.keys()].map((i) => i + 1).sort((a, b) => Number(ladder.has(b)) - Number(ladder.has(a)) || a - b);
  for (const k of order) {
    const s = S[k - 1];
    const w = ladder.has(k) ? 0 : rungOf(k);
    const chooseInRung = w ? baseFileChooser(target, S[w - 1]) : undefined;
    target.files.forEach((F, fi) => {
      if (F.size === 0) return;
      const gi = choosers[k - 1](F);
      const G = gi === undefined ? undefined : s.files[gi];
      if (G && Buffer.compare(G.sha256, F.sha256) === 0) return;
      if (!G) return add(`${fi}:`, () => ({ file: fi, origins: [] }), k);
      const direct = `${fi}:${hex(G.sha256)}`;
      const yi = chooseInRung?.(F);
      const Y = yi === undefined ? undefined : S[w - 1].files[yi];
      if (units.has(direct) || !Y) return add(direct, () => ({ file: fi, base: { snapshot: s, file: gi! }, origins: [] }), k);
      // Held by the rung already: the rung's direct delta serves it.
      if (Buffer.compare(Y.sha256, G.sha256) === 0) return;
      add(`${fi}:${hex(G.sha256)}>${w}`, () => ({ file: yi!, base: { snapshot: s, file: gi! }, origins: [], waypoint: { position: w, file: yi! } }), k);
      // After its hop this client holds the rung's version: it is an origin of the rung's direct
      // unit too, so that unit is pooled only with units this client can also decode. Pooled by
      // the rung alone, vite 8.3.7's index.d.ts and module-runner.js shared a frame with its
      // lib.js, which a client from 8.3.5 never reaches: those two files came as 63 kB of records
      // (bench/stale, 4 behind: 168.6 kB against a 67.5 kB floor).
      units.get(`${fi}:${hex(Y.sha256)}`)?.origins.push(k);
    });
  }
  for (const u of units.values()) u.origins.sort((a, b) => a - b);

  // Units with the same origins and waypoint, in file order.
  const groups = new Map<string, Unit[]>();
  for (const u of units.values()) {
    const key = `${u.waypoint?.position ?? 0}:${u.origins.join(',')}`;
    const list = groups.get(key) ?? [];
    list.push(u);
    groups.set(key, list);
  }
  const ordered = [...groups.values()].sort((a, b) => {
    const x = a[0].origins;
    const y = b[0].origins;
    return x[0] - y[0] || x[x.length - 1] - y[y.length - 1] || x.length - y.length || (a[0].waypoint?.position ?? 0) - (b[0].waypoint?.position ?? 0);
  });

  const out: PlannedOfferFrame[] = [];
  for (const group of ordered) {
    group.sort((a, b) => a.file - b.file);
    const origins = group[0].origins;
    const position = group[0].waypoint?.position;
    const into = position ? S[position - 1] : target;
    const waypoint = position ? into : undefined;
    const deltas: { yields: number[]; bases: OfferBase[]; group: string }[] = [];
    const alone: Place[] = [];
    const aloneSeen = new Set<bigint>();
    for (const u of group) {
      const F = into.files[u.file];
      if (!u.base) {
        for (const p of placesOf(into, F, aloneSeen)) {
          aloneSeen.add(into.chunks.id(p.index));
          alone.push(p);
        }
        continue;
      }
      for (const d of deltaPieces(into, F, u.base.snapshot, u.base.file)) deltas.push({ ...d, group: sourceOf(F.path) });
    }
    for (const f of pool(deltas, (i) => into.chunks.rawLength[i])) out.push({ yields: f.yields, bases: f.bases, origins, waypoint });
    for (const piece of cut(alone, DELTA_FRAME_RAW)) out.push({ yields: piece.map((p) => p.index), bases: [], origins });
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
