/**
 * Which average chunk size? `node dist/bench/chunk-size.js`
 *
 * For npm version pairs (OLD → NEW, each as one tar of the unpacked package) and several average
 * sizes (min = avg/4, max = avg*8), counts what a client holding OLD must fetch to get NEW:
 * the chunks of NEW that OLD lacks (each distinct one once), raw and compressed one by one with
 * deflate (raw, level 9), plus an index estimate of INDEX_BYTES_PER_CHUNK per chunk of NEW (a
 * placeholder until the index format is settled; env INDEX_BYTES_PER_CHUNK overrides it). Prints
 * a table and the best average.
 */
import zlib from 'node:zlib';
import { ChunkParams, chunkFile, chunkId, createChunker, initHash } from '../src/chunk/index.js';
import { NPM_PAIRS, npmTar } from './corpus.js';

const INDEX_BYTES_PER_CHUNK = Number(process.env.INDEX_BYTES_PER_CHUNK ?? 30);
const AVERAGES = [2048, 4096, 8192, 16384, 65536];

interface Result {
  pair: string;
  avg: number;
  chunks: number;
  newChunks: number;
  newRaw: number;
  newDeflated: number;
  index: number;
  total: number;
}

async function measure(oldTar: string, newTar: string, params: ChunkParams): Promise<Omit<Result, 'pair' | 'avg'>> {
  const chunker = await createChunker(params);
  const have = new Set<bigint>();
  await chunkFile(oldTar, chunker, (c) => void have.add(chunkId(c)));
  let chunks = 0;
  let newChunks = 0;
  let newRaw = 0;
  let newDeflated = 0;
  await chunkFile(newTar, chunker, (c) => {
    chunks++;
    const id = chunkId(c);
    if (have.has(id)) return;
    have.add(id); // a chunk repeated inside NEW is fetched once
    newChunks++;
    newRaw += c.length;
    newDeflated += Math.min(c.length, zlib.deflateRawSync(c, { level: 9 }).length); // stored raw if deflate does not help
  });
  const index = chunks * INDEX_BYTES_PER_CHUNK;
  return { chunks, newChunks, newRaw, newDeflated, index, total: newDeflated + index };
}

function kb(n: number): string {
  return (n / 1000).toFixed(1);
}

function table(results: Result[]): void {
  const head = ['update', 'avg', 'chunks of NEW', 'new chunks', 'new raw KB', 'new deflated KB', `index KB (${INDEX_BYTES_PER_CHUNK} B/chunk)`, 'total KB'];
  const rows = results.map((r) => [
    r.pair,
    `${r.avg / 1024}K`,
    String(r.chunks),
    String(r.newChunks),
    kb(r.newRaw),
    kb(r.newDeflated),
    kb(r.index),
    kb(r.total),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + w.map((x, i) => (i < 2 ? '-'.repeat(x + 2) : '-'.repeat(x + 1) + ':')).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<void> {
  await initHash();
  const results: Result[] = [];
  for (const { name, from, to } of NPM_PAIRS) {
    const oldTar = await npmTar(name, from);
    const newTar = await npmTar(name, to);
    for (const avg of AVERAGES) {
      const params = { minSize: avg / 4, avgSize: avg, maxSize: avg * 8 };
      results.push({ pair: `${name} ${from} → ${to}`, avg, ...(await measure(oldTar, newTar, params)) });
    }
  }
  console.log(`\nBytes to update OLD → NEW (each a tar of the unpacked npm package); min = avg/4, max = avg*8\n`);
  table(results);
  console.log('');
  for (const pair of new Set(results.map((r) => r.pair))) {
    const best = results.filter((r) => r.pair === pair).reduce((a, b) => (b.total < a.total ? b : a));
    console.log(`best for ${pair}: avg ${best.avg / 1024}K (${kb(best.total)} KB)`);
  }
  const sums = AVERAGES.map((avg) => ({ avg, total: results.filter((r) => r.avg === avg).reduce((s, r) => s + r.total, 0) }));
  const best = sums.reduce((a, b) => (b.total < a.total ? b : a));
  console.log(`sum over all pairs: ${sums.map((s) => `${s.avg / 1024}K ${kb(s.total)} KB`).join(', ')}`);
  console.log(`best average over all pairs: ${best.avg / 1024}K`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
