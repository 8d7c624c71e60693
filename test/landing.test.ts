/**
 * What a killed fetch leaves on disk is used by the next one: the Landing queue (bytes used in
 * order, behind their landing, read back from the file past its memory share, the first failure
 * aborting the fetch), a range journal's whole records stored by id while the torn one at its end
 * is dropped, and a snapshot index's landed prefix resumed (src/sync/landing.ts, fetcher.ts).
 * The kill loop over a real link is test/park.test.ts.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore } from '../src/store/store.js';
import { encodeRecord } from '../src/store/pack.js';
import { chunkId, initHash } from '../src/chunk/index.js';
import { absorbLandedRanges } from '../src/sync/fetcher.js';
import { LANDED_IN_MEMORY, Landing, LandedFile } from '../src/sync/landing.js';
import { cleanupAll, tmpDir } from './helpers/tmp.js';
import { pseudoRandom } from './helpers/trees.js';

after(cleanupAll);

describe('landing', () => {
  test('uses pieces in order, from the file once more than its memory share waits, and a failure aborts the fetch', async () => {
    const dir = await tmpDir('paquete-landing-');
    const fd = openSync(join(dir, 'journal'), 'w+');
    const landing = new Landing();
    const piece = 1 << 20;
    const pieces = Math.ceil((LANDED_IN_MEMORY * 1.5) / piece);
    const seen: number[] = [];
    for (let i = 0; i < pieces; i++) {
      const bytes = Buffer.alloc(piece, i);
      writeSync(fd, bytes, 0, bytes.length, i * piece);
      // Landed, then overwritten in memory: a piece read back from the file still has its bytes.
      landing.use(bytes, fd, i * piece, async (b) => {
        await new Promise((r) => setTimeout(r, 1));
        seen.push(b[0] === b[b.length - 1] ? b[0] : -1);
      });
      if (i * piece >= LANDED_IN_MEMORY) bytes.fill(255);
    }
    await landing.drained();
    assert.deepEqual(seen, Array.from({ length: pieces }, (_, i) => i));
    closeSync(fd);

    const failing = new Landing();
    let after = 0;
    failing.after(() => {
      throw new Error('corrupt');
    });
    failing.after(() => {
      after++;
    });
    await assert.rejects(failing.drained(), /corrupt/);
    assert.equal(after, 0, 'nothing runs after a failure');
    assert.ok(failing.signal.aborted, 'the fetch is told to stop');
    assert.match(String((failing.signal.reason as Error).message), /corrupt/);
  });

  test('a range journal a kill left: its whole records are stored by id, the torn one dropped, the journal deleted', async () => {
    await initHash();
    const dir = await tmpDir('paquete-landing-');
    const store = await ChunkStore.open(join(dir, 'store'));
    const part = join(dir, 'tmp');
    const chunks = [pseudoRandom(9000, 1), Buffer.from('text '.repeat(900)), pseudoRandom(4000, 3), pseudoRandom(12000, 4)];
    const records = chunks.map((c) => Buffer.from(encodeRecord(chunkId(c), c)));
    mkdirSync(part);
    // Three whole records, then the fourth cut half way (where the kill came).
    writeFileSync(join(part, 'range-0123456789abcdef-8.part'), Buffer.concat([...records.slice(0, 3), records[3].subarray(0, 5000)]));
    // A record whose bytes are not its id: stored by nothing (and ends what is usable).
    const bad = Buffer.from(records[0]);
    bad[bad.length - 1] ^= 1;
    writeFileSync(join(part, 'range-fedcba9876543210-8.part'), Buffer.concat([bad, records[3]]));
    assert.equal(await absorbLandedRanges(part, store), 3);
    for (const c of chunks.slice(0, 3)) assert.deepEqual(Buffer.from(await store.get(chunkId(c))), c);
    assert.equal(await store.has(chunkId(chunks[3])), false);
    assert.deepEqual(readdirSync(part), []);
    await store.close();
  });

  test("an index's landed prefix is the next fetch's start; one longer than the index starts over", async () => {
    const dir = await tmpDir('paquete-landing-');
    const path = join(dir, 'x.snap.part');
    const first = new LandedFile(path, 10);
    assert.equal(first.prefix.length, 0);
    first.land(Buffer.from('abcd'));
    first.land(Buffer.from('ef'));
    first.close(); // killed here
    const second = new LandedFile(path, 10);
    assert.equal(Buffer.from(second.prefix).toString(), 'abcdef');
    second.land(Buffer.from('ghij'));
    second.close();
    assert.equal(readFileSync(path, 'utf8'), 'abcdefghij');
    const shorter = new LandedFile(path, 4); // not that file: started over
    assert.equal(shorter.prefix.length, 0);
    shorter.remove();
    assert.equal(existsSync(path), false);
  });
});
