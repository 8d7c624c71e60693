import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { progressLine, RateMeter, type ProgressView } from '../src/cli/progress.js';

describe('the progress line', () => {
  const view: ProgressView = {
    label: 'sync',
    done: 1_234_567,
    limit: 3_000_000,
    limitIsBudget: true,
    rate: 300_000,
    remaining: 1_765_433,
    items: { label: 'files', done: 3, planned: 12 },
    status: 'typescript/lib/lib.dom.d.ts',
  };

  test('at 120 columns it shows bytes against the budget, rate, time left, files and the last file', () => {
    const line = progressLine(view, 120);
    assert.ok(line.length <= 119, line);
    for (const part of ['1.23 MB / 3.00 MB budget', '300 kB/s', '6 s left', 'files 3/12', 'lib.dom.d.ts']) {
      assert.ok(line.includes(part), `${part} in ${JSON.stringify(line)}`);
    }
  });

  test('at any width it fits on one line and keeps the bytes; the least useful parts go first', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.string({ maxLength: 200 }), (width, status) => {
        const line = progressLine({ ...view, status }, width);
        assert.ok(line.length <= Math.max(20, width) - 1, `${line.length} > ${width}`);
        if (width >= 40) assert.ok(line.includes('1.23 MB / 3.00 MB budget'), line);
      }),
    );
    const at80 = progressLine({ ...view, status: 'a/very/deep/path/'.repeat(8) + 'file.txt' }, 80);
    assert.ok(at80.includes('files 3/12') && at80.includes('6 s left'), at80);
    assert.ok(at80.endsWith('file.txt'), `a long path is cut from the left: ${at80}`);
  });

  test('never more files done than planned, "finishing" once the plan is in', () => {
    const line = progressLine({ ...view, items: { label: 'files', done: 164, planned: 112 }, remaining: 0 }, 120);
    assert.ok(line.includes('files 164/164'), line);
    assert.ok(line.includes('finishing'), line);
  });
});

describe('the rate follows the link', () => {
  test('bytes spent before the bar (the index) and bursts shorter than a second give no rate', () => {
    const m = new RateMeter();
    m.add(0, 2_000_000); // what was spent before the bar started
    m.add(50, 2_100_000);
    assert.equal(m.rate(), undefined);
  });

  test('on a 300 kB/s link with bursty delivery the rate shown never exceeds the link by more than one burst per window', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 10, max: 900 }), { minLength: 20, maxLength: 200 }), (gaps) => {
        const m = new RateMeter();
        let t = 0;
        let v = 0;
        m.add(t, v);
        for (const gap of gaps) {
          t += gap;
          v = Math.floor((t * 300_000) / 1000); // the link's bytes, delivered at each tick
          m.add(t, v);
          const r = m.rate();
          if (r !== undefined) assert.ok(Math.abs(r - 300_000) <= 300_000 * 0.01 + 1000, `rate ${r} at t=${t}`);
        }
      }),
    );
  });

  test('a link that slows down is followed within the window', () => {
    const m = new RateMeter(8000);
    let v = 0;
    for (let t = 0; t <= 10_000; t += 500) m.add(t, (v = t * 1000)); // 1 MB/s
    for (let t = 10_500; t <= 30_000; t += 500) m.add(t, (v += 50_000)); // then 100 kB/s
    const r = m.rate()!;
    assert.ok(r > 90_000 && r < 120_000, `rate ${r}`);
  });
});

describe('publish reports its progress', () => {
  test('chunking then each update and the offer, bytes rising to each phase total, every file counted', async () => {
    const { join } = await import('node:path');
    const { cleanupAll, tmpDir } = await import('./helpers/tmp.js');
    const { pseudoRandom, textFile, writeTree } = await import('./helpers/trees.js');
    const { publish } = await import('../src/publish/publisher.js');
    const { generateKeys, parseSecretKey } = await import('../src/snapshot/keys.js');
    try {
      const root = await tmpDir('paquete-pubprog-');
      const { key, publicKey } = parseSecretKey(generateKeys().secretPem, 'test key');
      const files: Record<string, string | Uint8Array> = { 'big.bin': pseudoRandom(20 << 20, 3) };
      for (let i = 0; i < 30; i++) files[`t/${i}.txt`] = textFile(i, 200);
      writeTree(join(root, 'v1'), files);
      files['t/0.txt'] = textFile(99, 300);
      writeTree(join(root, 'v2'), files);
      const events: Array<{ phase: string; from?: string; bytesDone: number; bytesTotal: number; files?: number; filesTotal?: number }> = [];
      await publish({ sources: [{ kind: 'tree', name: 's', path: join(root, 'v1') }], remoteDir: join(root, 'r'), secret: key, publicKey, level: 3 });
      await publish({ sources: [{ kind: 'tree', name: 's', path: join(root, 'v2') }], remoteDir: join(root, 'r'), secret: key, publicKey, level: 3, onProgress: (p) => events.push({ ...p }) });
      const chunking = events.filter((e) => e.phase === 'chunking');
      assert.ok(chunking.length > 3, 'a 20 MB file reports while it is read, not only at its end');
      const last = chunking[chunking.length - 1];
      assert.equal(last.bytesDone, last.bytesTotal);
      assert.equal(last.files, 31);
      const phases = [...new Set(events.filter((e) => e.phase === 'updates').map((e) => e.from))];
      // The update from nothing, the delta from v1, and the offer (t/0.txt changed: a delta from its old content).
      assert.equal(phases.length, 3, `the update from nothing, the delta from v1 and the offer: ${phases.join(', ')}`);
      assert.ok(phases.includes('offer') && phases.includes(''), phases.join(', '));
      for (const from of phases) {
        const es = events.filter((e) => e.phase === 'updates' && e.from === from);
        for (let i = 1; i < es.length; i++) assert.ok(es[i].bytesDone >= es[i - 1].bytesDone);
        assert.equal(es[es.length - 1].bytesDone, es[0].bytesTotal);
      }
    } finally {
      await cleanupAll();
    }
  });
});
