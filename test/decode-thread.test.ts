import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, StreamingFrame, THREAD_MIN_CONTENT } from '../src/delta/decode-thread.js';
import { compressFrame } from '../src/delta/zstd.js';
import { PaqueteError } from '../src/errors.js';
import { seededRandom, textFile } from './helpers/trees.js';

/** Text big enough for the decode worker, and a smaller one decoded in this thread. */
const bigText = Buffer.from(textFile(7, 120_000));
const smallText = Buffer.from(textFile(8, 2_000));

/**
 * Feeds `frame` in pieces of random sizes and takes chunks of random sizes as they come, the
 * way the frame reader does; returns what was taken, joined.
 */
async function decodeLikeAReader(decoding: StreamingFrame, frame: Uint8Array, expected: number, seed: number): Promise<Buffer> {
  const rnd = seededRandom(seed);
  const sizes: number[] = [];
  for (let left = expected; left > 0; ) {
    const n = Math.min(left, 1 + Math.floor(rnd() * 40_000));
    sizes.push(n);
    left -= n;
  }
  const taken: Uint8Array[] = [];
  const takeAll = async () => {
    for (let piece; sizes.length && (piece = decoding.take(sizes[0])); sizes.shift()) taken.push(Uint8Array.from(piece));
    // As the reader stores chunks: time passes, and the worker's messages arrive meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 2));
  };
  for (let at = 0; at < frame.length; ) {
    const n = 1 + Math.floor(rnd() * 300_000);
    decoding.push(frame.subarray(at, at + n));
    at += n;
    await takeAll();
  }
  await decoding.end(takeAll);
  await takeAll();
  assert.equal(sizes.length, 0, 'every chunk was taken');
  return Buffer.concat(taken);
}

describe('decoding frames as they arrive', () => {
  test('a big frame (decode worker) and a small one (this thread) give back exactly their content, whatever the pieces', async () => {
    assert.ok(bigText.length >= THREAD_MIN_CONTENT, 'the big text goes to the worker');
    assert.ok(smallText.length < THREAD_MIN_CONTENT);
    for (const [text, seed] of [[bigText, 1], [bigText, 2], [smallText, 3]] as const) {
      const frame = compressFrame(text, { level: 3 });
      const got = await decodeLikeAReader(decodeFrame(text.length), frame, text.length, seed);
      assert.ok(got.equals(text));
    }
  });

  test('settle stores what a prefix decodes to, before the frame ends', async () => {
    const frame = compressFrame(bigText, { level: 3 });
    const decoding = decodeFrame(bigText.length);
    decoding.push(frame.subarray(0, frame.length >> 1));
    let taken = 0;
    await decoding.settle(async () => {
      for (let piece; (piece = decoding.take(1000)); ) taken += piece.length;
    });
    assert.ok(taken > bigText.length / 4, `half the compressed frame gave ${taken} bytes`);
    decoding.close();
  });

  test('a corrupt frame, a frame holding more than promised and one ending early are DAMAGED_PACK', async () => {
    const frame = compressFrame(bigText, { level: 3 });
    const corrupt = Buffer.from(frame);
    for (let i = 1000; i < corrupt.length; i += 997) corrupt[i] ^= 0x5a;
    const cases: [string, Uint8Array, number][] = [
      ['corrupt', corrupt, bigText.length],
      ['more than promised', frame, bigText.length - 1],
      ['ends early', frame.subarray(0, frame.length - 100), bigText.length],
    ];
    for (const [what, bytes, expected] of cases) {
      await assert.rejects(
        decodeLikeAReader(decodeFrame(expected), bytes, expected, 4),
        (e: unknown) => e instanceof PaqueteError && e.code === 'DAMAGED_PACK',
        what,
      );
    }
  });
});
