import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildRanges, FrameOption, planSession } from '../src/sync/planner.js';
import { ChunkTable, ChunkEntry, recordLength, Snapshot } from '../src/snapshot/snapshot.js';
import { Repr, PACK_HEADER_SIZE } from '../src/store/pack.js';

const HEADERS = 400;
const requestCost = (n: number) => n + HEADERS;

/** A snapshot whose files are given as lists of chunk sizes; chunks laid out in one pack in order. */
function snapshotOf(files: Record<string, number[]>, shared: Record<string, number[]> = {}): Snapshot {
  const chunks: ChunkEntry[] = [];
  let offset = PACK_HEADER_SIZE;
  const add = (size: number) => {
    const c = { id: BigInt(chunks.length + 1), pack: 0, offset, repr: Repr.Raw, rawLength: size, storedLength: size };
    chunks.push(c);
    offset += recordLength(c);
    return chunks.length - 1;
  };
  const list = Object.entries(files).map(([path, sizes]) => {
    const idx = sizes.map(add);
    return { path, mode: 0o644, size: sizes.reduce((a, b) => a + b, 0), sha256: new Uint8Array(32), chunks: idx };
  });
  for (const [path, from] of Object.entries(shared)) {
    const source = list.find((f) => f.path === path)!;
    list.push({ path: `${path}.copy`, mode: 0o644, size: from.reduce((a, i) => a + chunks[source.chunks[i]].rawLength, 0), sha256: new Uint8Array(32), chunks: from.map((i) => source.chunks[i]) });
  }
  return { params: { minSize: 64, avgSize: 256, maxSize: 2048 }, created: 0, sources: [{ kind: 'tree', name: 's' }], packs: ['00'.repeat(32)], chunks: ChunkTable.of(chunks), files: list };
}

const base = { present: new Set<bigint>(), complete: new Set<string>(), wants: [] as string[], requestCost };

test('with no budget everything is planned, adjacent chunks in one request', () => {
  const s = snapshotOf({ 's/a': [100, 100], 's/b': [300] });
  const plan = planSession({ ...base, snapshot: s, budget: Infinity });
  assert.deepEqual(plan.files.map((f) => f.outcome), ['complete', 'complete']);
  assert.equal(plan.ranges.length, 1);
  assert.equal(plan.cost, 3 * 17 + 500 + HEADERS);
  assert.equal(plan.leftBytes, 0);
});

test('a budget completes the cheapest files first, skips what does not fit, then advances it with what is left', () => {
  const s = snapshotOf({ 's/big': [1000, 1000, 1000], 's/small1': [100], 's/small2': [200] });
  const budget = 2 * (17 + 150) + 300 + 17 + 1000 + 3 * HEADERS;
  const plan = planSession({ ...base, snapshot: s, budget });
  const outcome = Object.fromEntries(plan.files.map((f) => [f.file.path, f.outcome]));
  assert.deepEqual(outcome, { 's/small1': 'complete', 's/small2': 'complete', 's/big': 'partial' });
  assert.ok(plan.cost <= budget, `${plan.cost} > ${budget}`);
  assert.equal(plan.leftBytes, 2 * (1000 + 17));
});

test('--want order wins over cost, and shared chunks are counted once', () => {
  const s = snapshotOf({ 's/docs/x': [500, 500], 's/lib/y': [10] }, { 's/docs/x': [0, 1] });
  const plan = planSession({ ...base, snapshot: s, wants: ['s/docs/**'], budget: 2 * 517 + HEADERS });
  assert.deepEqual(plan.files.map((f) => [f.file.path, f.outcome]), [['s/docs/x', 'complete'], ['s/docs/x.copy', 'complete']]);
  assert.equal(plan.cost, 2 * 517 + HEADERS);
});

test('chunks already in the store cost nothing and files already in place are left alone', () => {
  const s = snapshotOf({ 's/a': [100, 100], 's/b': [300] });
  const plan = planSession({ ...base, snapshot: s, present: new Set([1n, 2n]), complete: new Set(['s/b']), budget: 0 });
  assert.deepEqual(plan.files.map((f) => f.outcome).sort(), ['complete', 'present']);
  assert.equal(plan.cost, 0);
});

test('the plan never costs more than the budget (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 0, maxLength: 8 }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 60000 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (files, budget, presentPicks) => {
        const s = snapshotOf(Object.fromEntries(files.map((f, i) => [`s/f${i}`, f])));
        const present = new Set(presentPicks.filter(() => s.chunks.length > 0).map((p) => s.chunks.id(p % s.chunks.length)));
        const plan = planSession({ ...base, snapshot: s, present, budget });
        assert.ok(plan.cost <= budget, `cost ${plan.cost} > budget ${budget}`);
        for (const r of plan.ranges) for (const i of r.chunks) assert.ok(!present.has(s.chunks.id(i)));
      },
    ),
    { numRuns: 400 },
  );
});

/** What two plans must agree on to be the same plan. */
const shape = (p: ReturnType<typeof planSession>) => ({
  files: p.files.map((f) => [f.path, f.outcome, f.missingBytes]),
  ranges: p.ranges.map((r) => [r.pack, r.start, r.end, [...r.chunks]]),
  cost: p.cost,
  neededBytes: p.neededBytes,
  leftBytes: p.leftBytes,
});

test('a no-budget plan (taken unpriced) is the plan of a budget that covers it; a spent card refuses on bytes alone (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 0, maxLength: 8 }), { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.integer({ min: 0, max: HEADERS }),
      (files, presentPicks, small) => {
        const s = snapshotOf(Object.fromEntries(files.map((f, i) => [`s/f${i}`, f])));
        const present = new Set(presentPicks.filter(() => s.chunks.length > 0).map((p) => s.chunks.id(p % s.chunks.length)));
        const free = planSession({ ...base, snapshot: s, present, budget: Infinity });
        const covered = planSession({ ...base, snapshot: s, present, budget: Number.MAX_SAFE_INTEGER });
        assert.deepEqual(shape(free), shape(covered));
        // Less than one request's headers: only files lacking nothing complete; bytes lacking as before.
        const spent = planSession({ ...base, snapshot: s, present, budget: small });
        assert.equal(spent.cost, 0);
        assert.equal(spent.neededBytes, free.neededBytes);
        for (const f of spent.files) assert.equal(f.outcome, f.missingBytes === 0 ? 'complete' : 'waiting', f.path);
      },
    ),
    { numRuns: 300 },
  );
});

/** The same snapshot with its records laid out in the pack in another order (`place[k]`-th chunk k-th). */
function relaidOut(s: Snapshot, place: number[]): Snapshot {
  const entries = [...s.chunks];
  const order = entries.map((_, i) => i).sort((a, b) => (place[a % place.length] ?? 0) - (place[b % place.length] ?? 0) || a - b);
  let offset = PACK_HEADER_SIZE;
  for (const i of order) {
    entries[i] = { ...entries[i], offset };
    offset += recordLength(entries[i]);
  }
  return { ...s, chunks: ChunkTable.of(entries) };
}

test('with wants, files in place, shared chunks and any pack layout, the unpriced plan is the plan of a covering budget (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 0, maxLength: 6 }), { minLength: 1, maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.boolean(),
      (files, presentPicks, completePicks, wantPicks, place, copy) => {
        const names = files.map((_, i) => `s/f${i}`);
        const shared: Record<string, number[]> = copy && files[0].length ? { 's/f0': files[0].map((_, i) => i).reverse() } : {};
        const s = relaidOut(snapshotOf(Object.fromEntries(files.map((f, i) => [names[i], f])), shared), place);
        const present = new Set(presentPicks.filter(() => s.chunks.length > 0).map((p) => s.chunks.id(p % s.chunks.length)));
        const complete = new Set(completePicks.map((p) => names[p % names.length]));
        const wants = wantPicks.map((p) => `s/f${p % 12}*`);
        const input = { ...base, snapshot: s, present, complete, wants };
        const free = planSession({ ...input, budget: Infinity });
        const covered = planSession({ ...input, budget: Number.MAX_SAFE_INTEGER });
        assert.deepEqual(shape(free), shape(covered));
        // Every chunk a wanted file not in place lacks is fetched, once, and nothing else.
        const lacking = new Set<number>();
        for (const f of free.files) if (f.outcome !== 'present') for (const i of f.file.chunks) if (!present.has(s.chunks.id(i))) lacking.add(i);
        const fetched = free.ranges.flatMap((r) => [...r.chunks]);
        assert.deepEqual([...fetched].sort((a, b) => a - b), [...lacking].sort((a, b) => a - b));
        for (const r of free.ranges) for (const i of r.chunks) assert.ok(s.chunks.offset[i] >= r.start && s.chunks.offset[i] + s.chunks.recordLength(i) <= r.end);
      },
    ),
    { numRuns: 300 },
  );
});

test('ranges join neighbours and small gaps, but not large gaps', () => {
  const s = snapshotOf({ 's/a': [100, 100, 5000, 100] });
  const ranges = buildRanges(s, [0, 1, 3], HEADERS);
  assert.equal(ranges.length, 2);
  assert.deepEqual([...ranges[0].chunks], [0, 1]);
  const withSmallGap = buildRanges(snapshotOf({ 's/a': [100, 100, 50, 100] }), [0, 1, 3], HEADERS);
  assert.equal(withSmallGap.length, 1);
  assert.deepEqual([...withSmallGap[0].chunks], [0, 1, 3]);
});

/** Frames over consecutive chunk runs, each compressed to `ratio` of its records, back to back. */
function framesOf(s: Snapshot, runs: number[][], ratio: number): FrameOption[] {
  let at = 8;
  return runs.map((yields, frame) => {
    const size = Math.ceil(yields.reduce((n, i) => n + s.chunks.recordLength(i), 0) * ratio);
    const f = { frame, start: at, end: at + size, yields };
    at += size;
    return f;
  });
}

test('frames that carry many files are taken when they complete everything, and cost less than records', () => {
  const s = snapshotOf({ 's/a': [1000], 's/b': [1000], 's/c': [4000, 4000] });
  const frames = framesOf(s, [[0, 1, 2, 3]], 0.3);
  const plan = planSession({ ...base, snapshot: s, budget: Infinity, frames });
  assert.deepEqual(plan.frameRanges.map((r) => r.frames), [[0]]);
  assert.equal(plan.ranges.length, 0);
  assert.equal(plan.cost, frames[0].end - frames[0].start + HEADERS);
  assert.ok(plan.files.every((f) => f.outcome === 'complete'));
});

test('a frame that costs more than the records it brings is left alone', () => {
  const s = snapshotOf({ 's/a': [1000, 1000] });
  const plan = planSession({ ...base, snapshot: s, budget: Infinity, frames: framesOf(s, [[0, 1]], 1.2) });
  assert.equal(plan.frameRanges.length, 0);
  assert.equal(plan.ranges.length, 1);
});

test('under a tight budget, small files come as records rather than a frame too big to finish with', () => {
  // One frame holds everything; the budget pays for the two small files' records but not the frame.
  const s = snapshotOf({ 's/a': [500], 's/b': [500], 's/big': [20000, 20000] });
  const frames = framesOf(s, [[0, 1, 2, 3]], 0.5);
  const plan = planSession({ ...base, snapshot: s, budget: 2 * (517 + HEADERS), frames });
  assert.equal(plan.frameRanges.length, 0);
  assert.deepEqual(plan.files.filter((f) => f.outcome === 'complete').map((f) => f.file.path).sort(), ['s/a', 's/b']);
});

test('with frames, the plan never costs more than the budget and brings only missing chunks (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 0, maxLength: 6 }), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 0, max: 60000 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.integer({ min: 1, max: 5 }),
      fc.double({ min: 0.1, max: 1.5, noNaN: true }),
      (files, budget, presentPicks, runLength, ratio) => {
        const s = snapshotOf(Object.fromEntries(files.map((f, i) => [`s/f${i}`, f])));
        const present = new Set(presentPicks.filter(() => s.chunks.length > 0).map((p) => s.chunks.id(p % s.chunks.length)));
        const runs: number[][] = [];
        for (let i = 0; i < s.chunks.length; i += runLength) runs.push(Array.from({ length: Math.min(runLength, s.chunks.length - i) }, (_, j) => i + j));
        const plan = planSession({ ...base, snapshot: s, present, budget, frames: framesOf(s, runs, ratio) });
        assert.ok(plan.cost <= budget, `cost ${plan.cost} > budget ${budget}`);
        for (const r of plan.ranges) for (const i of r.chunks) assert.ok(!present.has(s.chunks.id(i)));
        // A file planned complete gets every missing chunk from a record or a frame.
        const brought = new Set([...plan.ranges.flatMap((r) => [...r.chunks]), ...plan.frameRanges.flatMap((r) => r.frames.flatMap((f) => runs[f]))]);
        for (const f of plan.files) {
          if (f.outcome === 'complete') for (const i of f.file.chunks) assert.ok(present.has(s.chunks.id(i)) || brought.has(i), `${f.file.path} misses chunk ${i}`);
        }
      },
    ),
    { numRuns: 400 },
  );
});

test('a budget too small for the stream it wants takes a prefix of it, never records it would pay for again', () => {
  const sizes: Record<string, number[]> = {};
  for (let i = 0; i < 100; i++) sizes[`s/f${String(i).padStart(3, '0')}`] = [2000];
  const s = snapshotOf(sizes);
  const frames = framesOf(s, [Array.from({ length: s.chunks.length }, (_, i) => i)], 0.3);
  const budget = 30_000;
  const plan = planSession({ ...base, snapshot: s, budget, frames });
  assert.equal(plan.ranges.length, 0, 'no records');
  assert.equal(plan.frameRanges.length, 1);
  assert.ok(plan.cost <= budget && plan.cost > budget - 100, `cost ${plan.cost} for a budget of ${budget}`);
  assert.ok(plan.frameRanges[0].end < frames[0].end, 'a prefix of the frame');
  const done = plan.files.filter((f) => f.outcome === 'complete').length;
  // Half the frame's bytes, counted at 90%: about 45 of the 100 files, in stream order.
  assert.ok(done >= 40 && done <= 50, `${done} files expected complete`);
  assert.deepEqual(plan.files.slice(0, done).map((f) => f.outcome), Array(done).fill('complete'));
  // With --want, the stream's order is not the user's: file by file instead.
  const wanted = planSession({ ...base, snapshot: s, budget, frames, wants: ['s/f099'] });
  assert.equal(wanted.files.find((f) => f.file.path === 's/f099')!.outcome, 'complete');
});

test('a frame prefix kept by an earlier card costs only what remains; the next card starts past it and cards add up', () => {
  // Equal cards on one long stream: each card resumes where the last stopped, until complete.
  const sizes: Record<string, number[]> = {};
  for (let i = 0; i < 100; i++) sizes[`s/f${String(i).padStart(3, '0')}`] = [2000];
  const s = snapshotOf(sizes);
  const [frame] = framesOf(s, [Array.from({ length: s.chunks.length }, (_, i) => i)], 0.3);
  const length = frame.end - frame.start;
  const card = 20_000;
  let kept = 0;
  const present = new Set<bigint>();
  let spent = 0;
  let cards = 0;
  for (; cards < 20; cards++) {
    const plan = planSession({ ...base, snapshot: s, present, budget: card, frames: [{ ...frame, kept: kept || undefined }] });
    assert.ok(plan.cost <= card, `card ${cards}: cost ${plan.cost}`);
    assert.equal(plan.frameRanges.length, 1, `card ${cards} fetches the stream`);
    const [r] = plan.frameRanges;
    assert.equal(r.resume, kept);
    assert.equal(r.start, frame.start + kept, 'starts at the first byte not kept');
    assert.ok(r.end > frame.start + kept);
    spent += plan.cost;
    kept = r.end - frame.start;
    if (kept === length) break;
    // What the prefix decoded to (the planner's own estimate is a lower bound) is in the store.
    for (const f of plan.files) if (f.outcome === 'complete') for (const i of f.file.chunks) present.add(s.chunks.id(i));
  }
  assert.equal(kept, length, `the stream completes (${cards + 1} cards)`);
  // Every byte of the frame once, plus one request per card.
  assert.equal(spent, length + (cards + 1) * HEADERS);
});

test('a kept prefix makes the frame cheaper than records again: priced at what remains, not its full size', () => {
  const s = snapshotOf({ 's/a': [1000, 1000, 1000, 1000] });
  const [frame] = framesOf(s, [[0, 1, 2, 3]], 1.1);
  // Whole, the frame costs more than the records; with 90% of it kept, it costs a tenth.
  assert.equal(planSession({ ...base, snapshot: s, budget: Infinity, frames: [frame] }).frameRanges.length, 0);
  const kept = Math.floor((frame.end - frame.start) * 0.9);
  const plan = planSession({ ...base, snapshot: s, budget: Infinity, frames: [{ ...frame, kept }] });
  assert.deepEqual(plan.frameRanges, [{ start: frame.start + kept, end: frame.end, frames: [0], resume: kept }]);
  assert.equal(plan.cost, frame.end - frame.start - kept + HEADERS);
});
