/**
 * One number for what is left (issue 17 item 1): a dry run's prediction of a card is the real
 * card's bytes by nginx's own count, to within the headers of its requests, in the states a park
 * user meets (a fresh directory, after a cut card, after a release between cards, with --want);
 * status says what the dry run says; what a dry run downloads to plan (index, update heads) is
 * not downloaded again by the sync after it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, type LogEntry, type NginxServer } from './helpers/nginx.js';
import { startFaultProxy } from './helpers/faultproxy.js';
import { cleanupAll, runPaquete, tmpDir } from './helpers/tmp.js';
import { formatSize } from '../src/util/size.js';
import { editText, pseudoRandom, textFile, treeDigest, writeTree } from './helpers/trees.js';

after(cleanupAll);
const diagnostics: string[] = [];

const LINK = { PAQUETE_RETRIES: '2', PAQUETE_BACKOFF: '0.05', PAQUETE_STALL_TIMEOUT: '30', PAQUETE_CONNECT_TIMEOUT: '5' };

function version(v: number): Record<string, string | Uint8Array> {
  const files: Record<string, string | Uint8Array> = {};
  for (let i = 0; i < 24; i++) {
    let text = textFile(i + 1, 200 + i * i * 10);
    if (v > 0 && i % 4 === 0) text = editText(text, 100 * v + i, 3);
    files[`lib/m${String(i).padStart(2, '0')}.js`] = text;
  }
  for (let i = 0; i < 6; i++) files[`docs/p${i}.html`] = textFile(100 + i, 400);
  files['assets/logo.bin'] = pseudoRandom(40_000, 7);
  return files;
}

let root: string;
let nginx: NginxServer;

async function paquete(args: string[], code?: number, env: Record<string, string> = {}) {
  const r = await runPaquete(args, { cwd: root, env: { ...LINK, ...env } }).done;
  if (code !== undefined) assert.equal(r.code, code, `paquete ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}
const json = async (args: string[], code?: number) => JSON.parse((await paquete([...args, '--json'], code)).stdout);

/** Header bytes of requests, both ways: what "within the request headers" allows. */
const headersOf = (log: LogEntry[]) => log.reduce((n, e) => n + e.bytesSent - e.bodyBytesSent + e.requestLength, 0);
const wireOf = (log: LogEntry[]) => log.reduce((n, e) => n + e.bytesSent + e.requestLength, 0);

/**
 * A dry run, then the real card with the same arguments: the dry run's `card.wire` is the real
 * card's bytes on nginx's log within that card's header bytes, and the dry run's `toFetch` is
 * what status says. Returns both logs.
 */
async function predictThenRun(work: string, args: string[], realCode?: number) {
  await nginx.clearLog();
  const dry = await json(['sync', '-C', work, '--dry-run', ...args], 0);
  const dryLog = await nginx.accessLog();
  // status plans as the dry run does, with no network: the same figure for everything wanted.
  if (!args.includes('--want')) assert.deepEqual((await json(['status', '-C', work], 0)).toFetch, dry.toFetch, 'status and the dry run disagree');
  await nginx.clearLog();
  const real = await json(['sync', '-C', work, ...args], realCode);
  assert.ok([0, 3].includes(real.exit), `sync exited ${real.exit}`);
  const log = await nginx.accessLog();
  const wire = wireOf(log);
  const slack = headersOf(log);
  assert.ok(Math.abs(dry.card.wire - wire) <= slack, `the dry run predicted ${dry.card.wire} bytes; nginx counted ${wire} (headers ${slack}) in ${log.length} requests: ${log.map((e) => `${e.uri} ${e.status}`).join(', ')}`);
  // What the dry run fetched to plan is not fetched again.
  const planned = new Set(dryLog.filter((e) => /^\/(updates|snapshots)\//.test(e.uri)).map((e) => e.uri));
  const again = log.filter((e) => planned.has(e.uri)).map((e) => e.uri);
  assert.deepEqual(again, [], 'the sync fetched again what its dry run fetched');
  // What the summary says is left is what status says, and what the next dry run's card costs.
  if (!args.includes('--want')) {
    assert.deepEqual((await json(['status', '-C', work], 0)).toFetch, real.toFetch, 'status and the sync summary disagree');
    const next = await json(['sync', '-C', work, '--dry-run'], 0);
    assert.equal(next.card.wire, real.toFetch.wire || next.card.wire, 'the summary\'s "still to fetch" is not the next card');
  }
  diagnostics.push(`${args.join(' ') || '(no budget)'}: predicted ${dry.card.wire}, nginx ${wire}, headers ${slack}, ${log.length} requests`);
  return { dry, real, dryLog, log };
}

before(async () => {
  root = await tmpDir('paquete-to-fetch-');
  await paquete(['keygen', '--out', 'pub.key'], 0);
  for (let v = 0; v < 2; v++) writeTree(join(root, `v${v}`, 'site'), version(v));
  await paquete(['publish', join(root, 'v0', 'site'), '--to', 'remote', '--key', 'pub.key'], 0);
  nginx = await startNginx(join(root, 'remote'));
});
after(async () => nginx?.stop());

describe('a dry run predicts the card', () => {
  let first = 0;
  test('fresh: a whole download, then a card of 40% (the head fetched once over both)', async () => {
    await paquete(['init', nginx.url, 'whole', '--trust', 'pub.key.pub'], 0);
    const { dryLog, log } = await predictThenRun(join(root, 'whole'), [], 0);
    first = wireOf(log);
    const heads = [...dryLog, ...log].filter((e) => e.uri.startsWith('/updates/'));
    assert.equal(heads.length, new Set(heads.map((e) => e.uri)).size, 'an update head was fetched twice');

    await paquete(['init', nginx.url, 'card', '--trust', 'pub.key.pub'], 0);
    const { real } = await predictThenRun(join(root, 'card'), ['--budget', String(Math.round(first * 0.4))], 3);
    assert.ok(real.placed.length > 0);

    // The catalog shows the same figure, and the files' own sizes beside it (not compressed records).
    const status = await json(['status', '-C', 'card'], 0);
    const serve = runPaquete(['serve', '-C', 'card', '--port', '0', '--json'], { cwd: root });
    try {
      await serve.waitForOutput(/"url"/, { stream: 'stdout' });
      const url = (JSON.parse(serve.stdout()) as { url: string }).url;
      const page = (await (await fetch(url)).text()).replace(/<[^>]*>/g, '');
      const wire = formatSize(status.toFetch.wire);
      assert.match(page, new RegExp(`To fetch: ${wire.replace('.', '\\.')} on the wire, completes ${status.toFetch.files} files \\(${formatSize(status.toFetch.bytes).replace('.', '\\.')}\\)`));
      assert.match(page, new RegExp(`${formatSize(status.total.missingSize).replace('.', '\\.')} missing`));
      assert.doesNotMatch(page, new RegExp(`${formatSize(status.total.missingBytes).replace('.', '\\.')} missing`), 'the catalog shows compressed record bytes as missing');
    } finally {
      serve.kill('SIGTERM');
      await serve.done;
    }
  });

  test('after a release between cards: the rest of the first stream and the delta', async () => {
    await paquete(['publish', join(root, 'v1', 'site'), '--to', 'remote', '--key', 'pub.key'], 0);
    const { real } = await predictThenRun(join(root, 'card'), ['--budget', String(Math.round(first * 0.4))]);
    if (real.exit === 3) await predictThenRun(join(root, 'card'), [], 0);
    assert.deepEqual(treeDigest(join(root, 'card')), Object.fromEntries(Object.entries(treeDigest(join(root, 'v1', 'site'))).map(([p, d]) => [`site/${p}`, d])));
  });

  test('after a card the link cut mid-frame: its kept prefix priced at what remains', async () => {
    const proxy = await startFaultProxy(nginx.url);
    try {
      await paquete(['init', proxy.url, 'cut', '--trust', 'pub.key.pub'], 0);
      proxy.cutAfterBytes(Math.round(first * 0.5), { scope: 'total' });
      // No retry: the link is gone after the cut, as when the card's hour ends mid-frame.
      const cut = await paquete(['sync', '-C', 'cut', '--json'], undefined, { PAQUETE_RETRIES: '0' });
      assert.equal(cut.code, 4, `the cut card exited ${cut.code}: ${cut.stderr}`);
      proxy.reset();
      assert.ok(readdirSync(join(root, 'cut', '.paquete', 'tmp')).some((n) => n.endsWith('.part')), 'the cut card kept a frame prefix');
      await predictThenRun(join(root, 'cut'), ['--budget', String(Math.round(first * 0.3))], 3);
      await predictThenRun(join(root, 'cut'), [], 0);
    } finally {
      await proxy.close();
    }
  });

  test('with --want, and a budget', async () => {
    await paquete(['init', nginx.url, 'want', '--trust', 'pub.key.pub'], 0);
    await predictThenRun(join(root, 'want'), ['--want', 'site/docs/**', '--budget', String(Math.round(first * 0.1))]);
    await predictThenRun(join(root, 'want'), ['--want', 'site/lib/**']);
  });

  after(() => {
    for (const d of diagnostics) console.log(`# ${d}`);
  });
});
