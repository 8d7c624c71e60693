import { PaqueteError } from '../errors.js';
import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { BaseRange, FrameEntry, FRAMES_HEADER_SIZE } from './update.js';
import { CompressOptions, FrameCompressor, MAX_WINDOW_LOG } from './zstd.js';

/**
 * Building an update's frames (format in src/delta/update.ts): which of N's chunks go in which
 * frame, against which bytes of the base snapshot's files. Planning is pure (snapshots in, plan
 * out); encoding takes a function that returns raw chunk bytes, so the publisher reads its packs
 * and a test or a client can read anything else.
 *
 * Sizes below come from a prototype on typescript 5.8.3→5.9.3 (one tar, 4 KiB chunks, zstd -19):
 * delta frames of ≤ 1 MiB with a window of the old file ±512 KiB around where the frame maps came
 * to 255 KB for 10.7 MB of changed chunks (zstd --patch-from of the whole tar: 190 KB), in 19 s.
 */

/** Raw content of one delta frame. 4 MiB frames gave 418 KB instead of 255: over a longer frame the content drifts from where its window was mapped. */
export const DELTA_FRAME_RAW = 1 << 20;
/** Old-file bytes either side of where a frame maps: room for the drift of a 1 MiB frame. */
export const WINDOW_MARGIN = 512 << 10;
/** A base file this small is the dictionary whole: a window would save little and could miss. */
export const WHOLE_BASE_FILE = 2 << 20;
/**
 * A delta frame also ends where its chunks would spread over more than this much of the new file
 * (changes scattered through a large file): its window grows with that span, and a dictionary of
 * many MiB costs level-19 time for matches that a frame of its own, mapped afresh, finds anyway.
 */
export const DELTA_FRAME_SPAN = 4 << 20;
/**
 * Raw content of one frame of an update from nothing: the largest window every reader accepts
 * (2^MAX_WINDOW_LOG, 128 MiB, since the first update format), so the frame reaches back over
 * all of it. Long streams repeat themselves from afar: transformers 5.18.0 (one wheel, a 50.8 MB
 * stream of Python source) came to 3.87 MB in 32 MiB frames and 3.66 MB in one frame (3.58 MB
 * with long-distance matching, src/delta/zstd.ts LONG_MATCH_MIN), against 3.62 MB for `zstd -19
 * --long=27` of its unpacked contents; typescript 2.10 MB in one 32 MiB frame against 2.50 MB
 * in 8 MiB frames. The price is the reader's memory (zstd's window: up to the frame's content,
 * so ~128 MiB) and a card cut inside a frame decoding its kept prefix again when resumed.
 */
export const SOLID_FRAME_RAW = 2 ** MAX_WINDOW_LOG;
/** Largest dictionary a reader assembles: the window a frame may reach back over. */
export const MAX_DICTIONARY = 2 ** MAX_WINDOW_LOG;
/** A chunk in this many base files or more (zeros, licence headers) says nothing about which file is similar. */
const COMMON_CHUNK_FILES = 64;

export interface PlannedFrame {
  /** Indices into N's chunks, in content order. */
  yields: number[];
  /** The dictionary; empty for a frame against nothing. */
  bases: BaseRange[];
}

/** One occurrence of a chunk in a file, at `offset` bytes from the file's start. */
export interface Place {
  index: number;
  offset: number;
  length: number;
}

/**
 * Each chunk of `s` at its first appearance, walking the files in order and each file's chunks
 * in order, grouped by that file. The one order both kinds of update lay content in: related bytes
 * (one file, neighbouring files) end up near each other, where zstd finds them.
 */
export function firstPlaces(s: Snapshot, skip: (id: bigint) => boolean = () => false, files: FileEntry[] = s.files): { file: FileEntry; places: Place[] }[] {
  const seen = new Set<bigint>();
  const out: { file: FileEntry; places: Place[] }[] = [];
  for (const file of files) {
    const places: Place[] = [];
    let offset = 0;
    for (const index of file.chunks) {
      const c = s.chunks.entry(index);
      if (!seen.has(c.id) && !skip(c.id)) {
        seen.add(c.id);
        places.push({ index, offset, length: c.rawLength });
      }
      offset += c.rawLength;
    }
    if (places.length) out.push({ file, places });
  }
  return out;
}

/** Cuts places into frames of at most `maxRaw` bytes (a larger chunk alone), and where `fits` says so. */
export function cut(places: Place[], maxRaw: number, fits: (first: Place, next: Place) => boolean = () => true): Place[][] {
  const frames: Place[][] = [];
  let frame: Place[] = [];
  let raw = 0;
  for (const p of places) {
    if (frame.length && (raw + p.length > maxRaw || !fits(frame[0], p))) {
      frames.push(frame);
      frame = [];
      raw = 0;
    }
    frame.push(p);
    raw += p.length;
  }
  if (frame.length) frames.push(frame);
  return frames;
}

/**
 * A segment of the update from nothing ends, once it holds SEGMENT_MIN of its source's content,
 * before the next file whose path hash says so (one in SEGMENT_CUT_ONE_IN): its bounds depend on
 * paths, not on where a change fell, so a file changed, added or removed changes its own segment
 * only (and, rarely, where that one ends). Segments are compressed alone, so what one file shares
 * with a file in another segment is paid twice: lucide-react 1.80.0 (36 MB, whose CommonJS bundle
 * repeats its 4,862 ESM icon files) took 1.82 MB in 8 segments of a sixteenth of the source each,
 * against 0.92 MB as one (zstd -19 --long=27 of the tar: 0.92 MB); date-fns 4.4.0 1.50x. So a
 * source up to 64 MiB is one segment, and only mirrors larger than that (wheelhouses, big trees)
 * keep unchanged segments by name.
 */
export const SEGMENT_MIN = 64 << 20;
/** A segment always ends before a file that would take it past this much (a larger file is a segment alone): the window every reader accepts. */
export const SEGMENT_MAX = SOLID_FRAME_RAW;
const SEGMENT_CUT_ONE_IN = 4;

/** FNV-1a of a path: where segments may end, the same in every snapshot holding that path. */
function pathHash(path: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < path.length; k++) h = Math.imul(h ^ path.charCodeAt(k), 0x01000193) >>> 0;
  return h;
}

/** The source a path belongs to (its first component): segments never span two. */
export const sourceOf = (path: string) => path.slice(0, path.indexOf('/') + 1);

export interface PlannedSegment {
  /** Indices into N's files, in the order their content lies in the segment's frames. */
  files: number[];
  frames: PlannedFrame[];
}

/**
 * The update from nothing in segments (docs/DESIGN-REMOTE-V3.md decision 5): N's files in index
 * order (source, then path) cut into runs of SEGMENT_MIN to SEGMENT_MAX of content at path-hashed
 * bounds; each run's chunks once (a chunk in two segments is in both, so a segment's bytes depend
 * on its own files only), smallest files first within it, in frames of ≤ 128 MiB (SOLID_FRAME_RAW,
 * so a 60 MB file lies in one frame); segments ordered by their mean file size, smallest first.
 * A card that pays for a prefix of the stream then completes files the way a planner would
 * choose them, cheapest to finish first: in path order, a card of 40% of date-fns 4.1.0 (5,326
 * files) went into big source maps and completed 2 files. Inside a segment the window spans the
 * whole frame, so the order costs little: date-fns 1.106 → 1.115 MB, typescript 2.072 → 2.068 MB
 * (zstd -19 --long=27 of the files laid end to end).
 */
export function planSegments(target: Snapshot): PlannedSegment[] {
  const runs: number[][] = [];
  let run: number[] = [];
  let raw = 0;
  target.files.forEach((f, k) => {
    const first = run.length ? target.files[run[0]] : undefined;
    const ends = first && (sourceOf(first.path) !== sourceOf(f.path) || raw + f.size > SEGMENT_MAX || (raw >= SEGMENT_MIN && pathHash(f.path) % SEGMENT_CUT_ONE_IN === 0));
    if (ends) {
      runs.push(run);
      run = [];
      raw = 0;
    }
    run.push(k);
    raw += f.size;
  });
  if (run.length) runs.push(run);
  const segments: (PlannedSegment & { mean: number })[] = [];
  for (const r of runs) {
    const files = [...r].sort((a, b) => target.files[a].size - target.files[b].size || a - b);
    const places = firstPlaces(target, undefined, files.map((k) => target.files[k])).flatMap((g) => g.places);
    if (!places.length) continue;
    const frames = cut(places, SOLID_FRAME_RAW).map((f) => ({ yields: f.map((p) => p.index), bases: [] }));
    segments.push({ files, frames, mean: files.reduce((n, k) => n + target.files[k].size, 0) / files.length });
  }
  return segments.sort((a, b) => a.mean - b.mean || a.files[0] - b.files[0]).map(({ files, frames }) => ({ files, frames }));
}

/** The update from nothing's frames, segment after segment (planSegments). */
export function planSolidFrames(target: Snapshot): PlannedFrame[] {
  return planSegments(target).flatMap((s) => s.frames);
}

/**
 * The delta update from `base`: every chunk of N that `base` lacks (by id), once. A file's new
 * chunks are compressed against a window of the base file most like it, in pools (see pool).
 */
export function planDeltaFrames(target: Snapshot, base: Snapshot): PlannedFrame[] {
  const pools = pool(planFileFrames(target, base), (i) => target.chunks.rawLength[i]);
  const lend = smallSourceLender(base, (i) => target.chunks.rawLength[i]);
  return pools.map((p) => ({ yields: p.yields, bases: lend(p) }));
}

/**
 * A source whose old files come to at most this much lends all of them to each of its pools'
 * dictionaries (whole, before the pool's own windows, as far as POOL_DICTIONARY allows): a
 * change in one file often repeats code that another, unchanged, file holds, and what one file
 * was split into or merged from has no base file of its own. npm 10.9.2 → 10.9.3 (11.6 MB, 2,274
 * files, 454 changed): 56.6 → 53.6 KB of frames for 2.5 → 8.2 s of CPU (the dictionary 4.2 →
 * 11.8 MB). Larger sources keep their pools' windows alone: level 19 loads a dictionary at
 * about 1.3 MB/s of CPU, and the chain table reaches back 32 MiB (src/delta/zstd.ts).
 */
export const SMALL_SOURCE = 16 << 20;

/** A pool's bases with its small source's other old files before them (see SMALL_SOURCE). */
function smallSourceLender(base: Snapshot, rawLength: (i: number) => number): (p: { yields: number[]; bases: BaseRange[]; group?: string }) => BaseRange[] {
  const bySource = new Map<string, number[]>();
  base.files.forEach((g, gi) => {
    if (g.size === 0) return;
    const list = bySource.get(sourceOf(g.path));
    if (list) list.push(gi);
    else bySource.set(sourceOf(g.path), [gi]);
  });
  const sizeOf = (files: number[]) => files.reduce((n, gi) => n + base.files[gi].size, 0);
  return (p) => {
    const own = p.group === undefined ? undefined : bySource.get(p.group);
    if (!own || sizeOf(own) > SMALL_SOURCE) return p.bases;
    const have = new Set(p.bases.map((b) => b.file));
    const extra = own.filter((gi) => !have.has(gi));
    const room = POOL_DICTIONARY + POOL_RAW - p.bases.reduce((n, b) => n + b.length, 0) - p.yields.reduce((n, i) => n + rawLength(i), 0);
    if (!extra.length || sizeOf(extra) > room) return p.bases;
    return [...extra.map((gi) => ({ file: gi, start: 0, length: base.files[gi].size })), ...p.bases];
  };
}

/**
 * The delta's frames file by file, before they are pooled: each against a window of its file's
 * base; a file like no base file (new, or rewritten past recognition) has frames of no bases of
 * its own, and takes its pool's dictionary, the windows of the files around it in N's order.
 * three 0.170.0 → 0.171.0 added build/three.core.min.js (366 KB, split out of three.module.min.js,
 * whose whole file the pool holds): its frame against nothing was most of the 71 KB that
 * pooling it saved (184.3 → 113.2 KB of frames).
 */
export function planFileFrames(target: Snapshot, base: Snapshot): (PlannedFrame & { group: string })[] {
  const inBase = new Set(base.chunks.ids());
  const chooseBase = baseFileChooser(target, base);
  const frames: (PlannedFrame & { group: string })[] = [];
  for (const { file, places } of firstPlaces(target, (id) => inBase.has(id))) {
    const group = sourceOf(file.path);
    const g = chooseBase(file);
    if (g === undefined) {
      for (const piece of cut(places, DELTA_FRAME_RAW)) frames.push({ yields: piece.map((p) => p.index), bases: [], group });
      continue;
    }
    const window = windowMapper(target, file, base, g);
    const pieces = cut(places, DELTA_FRAME_RAW, (first, next) => next.offset + next.length - first.offset <= DELTA_FRAME_SPAN);
    for (const piece of pieces) {
      const last = piece[piece.length - 1];
      frames.push({ yields: piece.map((p) => p.index), bases: [window(piece[0].offset, last.offset + last.length - piece[0].offset)], group });
    }
  }
  return frames;
}

/**
 * Delta frames are pooled up to this much content: one zstd frame for many changed files. A
 * release often makes the same change in many files (date-fns 4.3.0 → 4.4.0 put one polyfill in
 * the CDN bundle of each of its 96 locales; three 0.186.0 → 0.187.0 changed its build bundles
 * alike), and zstd finds the repeat only inside one frame: a pool pays for it once. Pooled at
 * 256 KiB of content with 8 MiB of dictionary, the updates took 1.69x (date-fns) and 2.15x
 * (three) `zstd -19 --long=27 --patch-from` by nginx's count; at 4 MiB / 64 MiB 1.24x and
 * 1.35x; at 16 MiB / 112 MiB 1.28x for three (issue 14 item 2: 1.3x + 8 KiB).
 */
export const POOL_RAW = 16 << 20;
/**
 * ... and up to this much dictionary (their base windows laid end to end): with the content, at
 * most the 128 MiB window every reader accepts, so the frame reaches back over all of it. The
 * price is a reader's memory (as for a frame of the stream from nothing) and level 19's time to
 * load the dictionary (three's publish 23.4 → 30.6 s of CPU).
 */
export const POOL_DICTIONARY = MAX_DICTIONARY - POOL_RAW;

/**
 * Joins consecutive small frames (in N's file order) into one, their dictionaries laid end to
 * end; never frames of two `group`s (sources: what one source's files share with another's is
 * little, and a pool cut across two lost what each shares within itself: five packages moved
 * forward in one snapshot took 1.43x the sum of their floors pooled across sources). A tree of small files changes file by file: one frame per file pays a zstd frame header
 * and a head entry each and compresses every file alone. caniuse-lite's daily release (565 of
 * 841 ~2 KB files) took 23.8 KB of frames as a tree against 9.9 KB as one tar. The price: a
 * client lacking one file's base cannot use the pooled frame (it then takes records).
 */
export function pool<B extends { length: number }, T = never>(
  frames: { yields: number[]; bases: B[]; tags?: T[]; group?: string }[],
  rawLength: (i: number) => number,
): { yields: number[]; bases: B[]; tags: T[]; group?: string }[] {
  const out: { yields: number[]; bases: B[]; tags: T[]; group?: string }[] = [];
  let cur: { yields: number[]; bases: B[]; tags: T[]; group?: string } | undefined;
  let group: string | undefined;
  let raw = 0;
  let dict = 0;
  for (const f of frames) {
    const fRaw = f.yields.reduce((n, i) => n + rawLength(i), 0);
    const fDict = f.bases.reduce((n, b) => n + b.length, 0);
    if (cur && f.group === group && raw + fRaw <= POOL_RAW && dict + fDict <= POOL_DICTIONARY) {
      cur.yields.push(...f.yields);
      cur.bases.push(...f.bases);
      cur.tags.push(...(f.tags ?? []));
      raw += fRaw;
      dict += fDict;
      continue;
    }
    cur = { yields: [...f.yields], bases: [...f.bases], tags: [...(f.tags ?? [])], group: f.group };
    group = f.group;
    raw = fRaw;
    dict = fDict;
    out.push(cur);
  }
  return out;
}

/**
 * Which base file a new file is compressed against: the same path; else the base file sharing
 * most chunks with it (a renamed or moved file); else one with the same last path component
 * (versions in directory names: pkg-1.2/setup.py → pkg-1.3/setup.py); else none. Empty base
 * files are never chosen: they hold nothing to match.
 */
export function baseFileChooser(target: Snapshot, base: Snapshot): (f: FileEntry) => number | undefined {
  const byPath = new Map<string, number>();
  const byName = new Map<string, number>();
  const filesWith = new Map<bigint, number[]>();
  base.files.forEach((g, gi) => {
    if (g.size === 0) return;
    byPath.set(g.path, gi);
    const name = lastPart(g.path);
    if (!byName.has(name)) byName.set(name, gi);
    for (const i of new Set(g.chunks)) {
      const id = base.chunks.id(i);
      const list = filesWith.get(id);
      if (list) list.push(gi);
      else filesWith.set(id, [gi]);
    }
  });
  return (f) => {
    const same = byPath.get(f.path);
    if (same !== undefined) return same;
    const shared = new Map<number, number>();
    for (const id of new Set(f.chunks.map((i) => target.chunks.id(i)))) {
      const gs = filesWith.get(id);
      if (!gs || gs.length >= COMMON_CHUNK_FILES) continue;
      for (const gi of gs) shared.set(gi, (shared.get(gi) ?? 0) + 1);
    }
    let best: number | undefined;
    for (const [gi, n] of shared) {
      const b = best === undefined ? 0 : shared.get(best)!;
      if (n > b || (n === b && gi < best!)) best = gi;
    }
    return best ?? byName.get(lastPart(f.path));
  };
}

const lastPart = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/**
 * For new file F and base file G: the window of G to compress a stretch of F against (start =
 * offset in F of the frame's first chunk, span = bytes of F from there to its last chunk's end).
 * Chunks present in both files are anchors: the frame maps to where it sits relative to the
 * nearest anchor before it (or, with none before, the nearest after); with no anchor at all, to
 * the same proportion of G. The window is that place ± WINDOW_MARGIN.
 */
export function windowMapper(target: Snapshot, F: FileEntry, base: Snapshot, gi: number): (start: number, span: number) => BaseRange {
  const G = base.files[gi];
  if (G.size <= WHOLE_BASE_FILE) return () => ({ file: gi, start: 0, length: G.size });
  const inG = new Map<bigint, number>();
  let offset = 0;
  for (const i of G.chunks) {
    const c = base.chunks.entry(i);
    if (!inG.has(c.id)) inG.set(c.id, offset);
    offset += c.rawLength;
  }
  // Anchors in F order: [offset in F, offset in G].
  const anchors: [number, number][] = [];
  offset = 0;
  for (const i of F.chunks) {
    const c = target.chunks.entry(i);
    const at = inG.get(c.id);
    if (at !== undefined) anchors.push([offset, at]);
    offset += c.rawLength;
  }
  return (start, span) => {
    let mapped: number;
    if (anchors.length === 0) mapped = Math.floor((start / Math.max(1, F.size)) * G.size);
    else {
      const k = lastBefore(anchors, start);
      const [f, g] = anchors[k < 0 ? 0 : k];
      mapped = g + (start - f);
    }
    let lo = Math.max(0, mapped - WINDOW_MARGIN);
    let hi = Math.min(G.size, mapped + span + WINDOW_MARGIN);
    if (hi <= lo) {
      // Mapped wholly past an end of G (content appended far beyond it): the nearest end instead.
      const want = Math.min(G.size, span + 2 * WINDOW_MARGIN);
      lo = mapped <= 0 ? 0 : G.size - want;
      hi = lo + want;
    }
    return { file: gi, start: lo, length: hi - lo };
  };
}

/** Index of the last anchor whose offset in F is below `start`; -1 when none is. */
function lastBefore(anchors: [number, number][], start: number): number {
  let lo = 0;
  let hi = anchors.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (anchors[mid][0] < start) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The raw bytes of a range of one of a snapshot's files. */
export type ReadFileRange = (file: FileEntry, start: number, length: number) => Uint8Array;

/**
 * A frame's dictionary: its base ranges' bytes, concatenated in order. For the publisher and for
 * a client alike; checks each range against `base` (a head is input, and a bad range must fail
 * here, not read past a file) and bounds the total, as a hostile head could ask for gigabytes.
 */
export function baseBytes(base: Snapshot, ranges: BaseRange[], readFileRange: ReadFileRange): Uint8Array {
  let total = 0;
  for (const r of ranges) {
    const f = base.files[r.file];
    if (!f || r.start + r.length > f.size) {
      throw new PaqueteError('BAD_FORMAT', `an update names bytes ${r.start}+${r.length} of base file ${r.file}, which the base snapshot does not have`);
    }
    total += r.length;
  }
  if (total > MAX_DICTIONARY) throw new PaqueteError('BAD_FORMAT', `an update frame asks for a ${total}-byte dictionary (at most ${MAX_DICTIONARY})`);
  const parts = ranges.map((r) => readFileRange(base.files[r.file], r.start, r.length));
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/**
 * A ReadFileRange over chunk reads: reads only the chunks the range touches. `readChunk` returns
 * the raw bytes of one of the snapshot's chunks (from packs, a store, anything).
 */
export function fileRangeFromChunks(s: Snapshot, readChunk: (index: number) => Uint8Array): ReadFileRange {
  const starts = new Map<FileEntry, number[]>();
  return (file, start, length) => {
    let at = starts.get(file);
    if (!at) {
      at = [];
      let offset = 0;
      for (const i of file.chunks) {
        at.push(offset);
        offset += s.chunks.rawLength[i];
      }
      starts.set(file, at);
    }
    const out = Buffer.allocUnsafe(length);
    let k = Math.max(0, lastAtOrBefore(at, start));
    for (let done = 0; done < length; k++) {
      const bytes = readChunk(file.chunks[k]);
      const from = start + done - at[k];
      const n = Math.min(bytes.length - from, length - done);
      out.set(bytes.subarray(from, from + n), done);
      done += n;
    }
    return out;
  };
}

function lastAtOrBefore(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** zstd reads a dictionary that starts with these bytes as a trained dictionary, not as raw content. */
const ZSTD_DICT_MAGIC = Buffer.from([0x37, 0xa4, 0x30, 0xec]);

/**
 * zstd-napi loads dictionaries in "auto" mode: a dictionary starting with zstd's dictionary magic
 * would make compressor and decoder parse the base bytes as a trained dictionary (and fail).
 * Starting one byte later costs nothing, and the client, which rebuilds the dictionary from the
 * ranges, agrees. Returns the dictionary and its ranges, the first one shortened when it must be.
 */
export function withoutDictMagic<R extends { start: number; length: number }>(dictionary: Uint8Array, bases: R[]): { dictionary: Uint8Array; bases: R[] } {
  if (!ZSTD_DICT_MAGIC.equals(dictionary.subarray(0, 4))) return { dictionary, bases };
  return { dictionary: dictionary.subarray(1), bases: [{ ...bases[0], start: bases[0].start + 1, length: bases[0].length - 1 }, ...bases.slice(1)] };
}

export interface EncodeFramesOptions {
  target: Snapshot;
  /** The base snapshot of a delta; undefined for an update from nothing. */
  base?: Snapshot;
  /** Raw bytes of chunk `index` of snapshot `s` (the target or the base). */
  readChunk: (s: Snapshot, index: number) => Uint8Array;
  /** zstd level. */
  level: number;
  /** Receives each compressed frame in order; frames lie back to back after the frames header. */
  write: (frame: Uint8Array) => void;
  /** Compresses one frame: a worker pool's (src/delta/compress-pool.ts); one FrameCompressor in this thread by default. */
  compress?: (content: Uint8Array, opts: CompressOptions) => Promise<Uint8Array>;
  /** Frames compressed at once (the pool's size): each holds its content and dictionary meanwhile, in both threads. */
  inFlight?: number;
}

/**
 * Compresses the planned frames, a few at a time (a solid frame is up to 128 MiB; a whole update may be
 * GBs), and writes them in plan order; returns their table.
 */
export async function encodeFrames(plan: PlannedFrame[], opts: EncodeFramesOptions): Promise<FrameEntry[]> {
  const { target, base } = opts;
  const readBase = base ? fileRangeFromChunks(base, (i) => opts.readChunk(base, i)) : undefined;
  const entries: FrameEntry[] = [];
  const inline = new FrameCompressor();
  const compress = opts.compress ?? (async (content: Uint8Array, o: CompressOptions) => inline.compress(content, o));
  const pending: { frame: Promise<Uint8Array>; planned: PlannedFrame; bases: BaseRange[] }[] = [];
  let offset = FRAMES_HEADER_SIZE;
  const settle = async () => {
    const { frame: framePromise, planned, bases } = pending.shift()!;
    const frame = await framePromise;
    opts.write(frame);
    const marked = bases.filter((b) => b.length > 0).map((b) => ({ ...b, toEnd: b.start + b.length === base!.files[b.file].size }));
    entries.push({ offset, length: frame.length, yields: planned.yields, bases: marked });
    offset += frame.length;
  };
  try {
    for (const planned of plan) {
      const content = Buffer.concat(planned.yields.map((i) => opts.readChunk(target, i)));
      let bases = planned.bases;
      let dictionary: Uint8Array | undefined;
      if (bases.length) {
        if (!base || !readBase) throw new Error('a frame with base ranges needs a base snapshot');
        ({ dictionary, bases } = withoutDictMagic(baseBytes(base, bases, readBase), bases));
      }
      const frame = compress(content, { level: opts.level, dictionary });
      // Not awaited yet: a rejection is taken when its turn to be written comes.
      frame.catch(() => undefined);
      pending.push({ frame, planned, bases });
      if (pending.length >= (opts.inFlight ?? 1)) await settle();
    }
    while (pending.length) await settle();
  } finally {
    // What was still compressing when one failed: its result goes nowhere.
    pending.length = 0;
  }
  return entries;
}
