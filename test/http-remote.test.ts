/**
 * The HTTP remote against a real nginx (and a fault proxy in front of it for cuts, stalls and
 * captive portals). Needs /usr/sbin/nginx (scripts/ensure-system-deps.sh).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import net from 'node:net';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createHttpRemote, OUTSTANDING_MAX, PIECES_CLEAN, pieceSize, piecesFor, type ExchangeInfo, type HttpRemote, type HttpRemoteOptions, type RetryInfo } from '../src/remote/http.js';
import { PaqueteError } from '../src/errors.js';
import { WireBudget } from '../src/remote/budget.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { startFaultProxy } from './helpers/faultproxy.js';
import { cleanupAll, onCleanup, tmpDir } from './helpers/tmp.js';

// A self-signed certificate for 127.0.0.1 (P-256), only for these tests.
const TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6ZUn3NTSd8OCeiA0
OWd5xQpKqtCNLaq2mWe+GrLvEEKhRANCAAStzEGQfNaDf0CXIFpdwk0nhr3qNu6P
o8+0bztYBXV02hlyBt355GaMXHpEHpzUbnm623PNABK7wHbLWRxqyJWr
-----END PRIVATE KEY-----
`;
const TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUYK2XoIgWanwsGb+FuZdSrJu4NhEwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyMTIzNDI0OFoYDzIxMjYxMDI4
MjM0MjQ4WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAStzEGQfNaDf0CXIFpdwk0nhr3qNu6Po8+0bztYBXV02hlyBt355GaM
XHpEHpzUbnm623PNABK7wHbLWRxqyJWro28wbTAdBgNVHQ4EFgQUyHeutjrSLvpz
MTSFFUVAvgLOFoMwHwYDVR0jBBgwFoAUyHeutjrSLvpzMTSFFUVAvgLOFoMwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIgDFRNWJcZ66SwLREFQewuujTO+5HDDHt6+T+kmi1MQRACIQDN
sf1f+wYXteSSx+PNZMJERNzJ8KOuhc8aKeg+Ag/E9g==
-----END CERTIFICATE-----
`;

const PACK = randomBytes(1 << 20); // 1 MiB, served as packs/a.pack
const SNAP = randomBytes(200_000);
const MANIFEST = Buffer.from(JSON.stringify({ format: 'paquete-remote', version: 1, snapshots: ['s1'] }) + '\n');

/** Fast settings for tests: short timeouts, tiny back-off. */
const FAST: HttpRemoteOptions = { timeouts: { connect: 2000, stall: 1500 }, retries: 3, backoffMs: 5 };

let root: string;
let ng: NginxServer;

before(async () => {
  root = await tmpDir('http-remote-');
  await mkdir(path.join(root, 'r', 'packs'), { recursive: true });
  await mkdir(path.join(root, 'r', 'snapshots'), { recursive: true });
  await mkdir(path.join(root, 'empty'), { recursive: true });
  await writeFile(path.join(root, 'r', 'manifest.json'), MANIFEST);
  await writeFile(path.join(root, 'r', 'packs', 'a.pack'), PACK);
  await writeFile(path.join(root, 'r', 'snapshots', 's1.snap'), SNAP);
  ng = await startNginx(root, {
    extraConfig: [
      // A portal that does not say text/html: found by looking at the body.
      '    location = /sniff/manifest.json { default_type application/json; return 200 "<html><body>login</body></html>"; }',
      '    location = /busy/manifest.json { return 503; }',
      // Files without ETags: If-Range must then carry Last-Modified.
      `    location /noetag/ { alias ${path.join(root, 'r')}/; etag off; }`,
      // A redirect that keeps the file's path (a CDN, http→https…): to be followed.
      '    location = /moved/manifest.json { return 302 /r/manifest.json; }',
      '    location = /moved/packs/a.pack { return 301 /r/packs/a.pack; }',
    ].join('\n'),
  });
  onCleanup(() => ng.stop());
});

after(cleanupAll);

function remote(url: string, o: HttpRemoteOptions = {}): HttpRemote {
  const r = createHttpRemote(url, { ...FAST, ...o });
  onCleanup(() => r.close());
  return r;
}

/** getRange into one buffer, checking chunks arrive in order and never twice. */
async function fetchRange(r: HttpRemote, p: string, start: number, end: number, opts?: Parameters<HttpRemote['getRange']>[3]): Promise<{ bytes: Buffer; calls: number }> {
  const parts: Buffer[] = [];
  let calls = 0;
  await r.getRange(p, { start, end }, (b) => {
    calls++;
    parts.push(Buffer.from(b));
  }, opts);
  return { bytes: Buffer.concat(parts), calls };
}

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<PaqueteError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof PaqueteError, `expected PaqueteError ${code}, got ${String(e)} ${(e as Error)?.stack ?? ''}`);
    assert.equal(e.code, code, `${e.code}: ${e.message}`);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/** A TCP pipe to 127.0.0.1:port that counts the bytes each way (TLS passes untouched). */
async function countingPipe(port: number) {
  const stats = { connections: 0, bytesFromClient: 0, bytesToClient: 0 };
  const socks = new Set<net.Socket>();
  const srv = net.createServer((c) => {
    stats.connections++;
    const u = net.connect(port, '127.0.0.1');
    socks.add(c).add(u);
    c.on('data', (d: Buffer) => {
      stats.bytesFromClient += d.length;
      u.write(d);
    });
    u.on('data', (d: Buffer) => {
      if (c.destroyed) return; // e.g. the server's close_notify after we hung up: never reaches us
      stats.bytesToClient += d.length;
      c.write(d);
    });
    c.on('close', () => u.end());
    u.on('close', () => c.end());
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as net.AddressInfo).port,
    stats,
    resetStats: () => Object.assign(stats, { connections: 0, bytesFromClient: 0, bytesToClient: 0 }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of socks) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

describe('http remote against nginx', () => {
  test('get and getRange return the right bytes', async () => {
    const r = remote(ng.url + 'r/');
    assert.equal(r.free, false);
    assert.equal(r.location, ng.url + 'r/');
    assert.deepEqual(Buffer.from(await r.get('manifest.json')), MANIFEST);
    assert.deepEqual(Buffer.from(await r.get('snapshots/s1.snap')), SNAP);
    for (const [s, e] of [[0, 1], [0, 1000], [12345, 99999], [PACK.length - 1, PACK.length], [500_000, PACK.length], [0, PACK.length]] as const) {
      const { bytes } = await fetchRange(r, 'packs/a.pack', s, e);
      assert.ok(bytes.equals(PACK.subarray(s, e)), `range ${s}-${e}`);
    }
    // An empty range asks nothing.
    const before = r.meter.total;
    await r.getRange('packs/a.pack', { start: 7, end: 7 }, () => assert.fail('no bytes expected'));
    assert.equal(r.meter.total, before);
    assert.equal(r.rangeSupport, 'yes');
    // A base URL without the trailing slash works too.
    const r2 = remote(ng.url + 'r');
    assert.deepEqual(Buffer.from(await r2.get('manifest.json')), MANIFEST);
  });

  test('redirects that keep the path are followed', async () => {
    const r = remote(ng.url + 'moved/');
    assert.deepEqual(Buffer.from(await r.get('manifest.json')), MANIFEST);
    const { bytes } = await fetchRange(r, 'packs/a.pack', 1000, 5000);
    assert.ok(bytes.equals(PACK.subarray(1000, 5000)));
  });

  test('a range longer than `outstanding` goes piece after piece, each asking no more; requestCost counts every head; a budget cut keeps a prefix', async () => {
    const piece = 16_384;
    const [s, e] = [1000, 1000 + 6 * piece + 123];
    await ng.clearLog();
    const budget = new WireBudget(Infinity);
    const r = remote(ng.url + 'r/', { outstanding: piece, budget });
    await r.get('manifest.json');
    const cost = r.requestCost('packs/a.pack', e - s);
    const { bytes } = await fetchRange(r, 'packs/a.pack', s, e);
    assert.ok(bytes.equals(PACK.subarray(s, e)));
    const log = (await ng.accessLog()).slice(1);
    // What a kill can lose is one piece: nginx was never asked for more at once.
    assert.deepEqual(log.map((l) => l.range), [0, 1, 2, 3, 4, 5, 6].map((i) => `bytes=${s + i * piece}-${Math.min(e, s + (i + 1) * piece) - 1}`));
    const wire = log.reduce((n, l) => n + l.bytesSent + l.requestLength, 0);
    assert.ok(cost >= wire && cost - wire < 7 * 200, `cost ${cost} for ${wire} on the wire in 7 requests`);
    assert.equal(r.requestCost('packs/a.pack', 0), r.requestCost('packs/a.pack', piece) - piece, 'requestCost(0): one request at its largest');

    // A budget that runs out inside the fourth piece: three pieces and a prefix, never over.
    await ng.clearLog();
    const card = new WireBudget(r.requestCost('packs/a.pack', 3 * piece) + 2000);
    const cut = remote(ng.url + 'r/', { outstanding: piece, budget: card, facts: r.linkFacts!() });
    const parts: Buffer[] = [];
    await assert.rejects(cut.getRange('packs/a.pack', { start: s, end: e }, (b) => void parts.push(Buffer.from(b)), { prefixOk: true }), (err: PaqueteError) => err.code === 'BUDGET');
    const got = Buffer.concat(parts);
    assert.ok(got.length > 3 * piece && got.equals(PACK.subarray(s, s + got.length)), `${got.length} bytes kept`);
    assert.ok((await ng.wireBytes()) <= card.limit);
  });

  test('pieces grow with what came (PieceRule): each request asks for at most its floor or 1/share of the bytes before it; requestCost bounds the heads', async () => {
    const rule = { floor: 4096, share: 8 };
    const [s, e] = [500, 500 + 200_000];
    const r = remote(ng.url + 'r/', { outstanding: rule });
    await r.get('manifest.json');
    const cost = r.requestCost('packs/a.pack', e - s);
    await ng.clearLog();
    const { bytes } = await fetchRange(r, 'packs/a.pack', s, e);
    assert.ok(bytes.equals(PACK.subarray(s, e)));
    const log = await ng.accessLog();
    let before = 0;
    for (const l of log) {
      const [a, b] = /^bytes=(\d+)-(\d+)$/.exec(l.range ?? '')!.slice(1).map(Number);
      assert.equal(a, s + before, 'piece after piece, no gap');
      assert.ok(b - a + 1 <= Math.max(rule.floor, Math.floor(before / rule.share)), `piece ${l.range} after ${before} bytes`);
      before += b - a + 1;
    }
    assert.equal(before, e - s);
    assert.ok(log.length < 40, `${log.length} requests: the pieces grew`);
    const wire = log.reduce((n, l) => n + l.bytesSent + l.requestLength, 0);
    assert.ok(cost >= wire && cost - wire < log.length * 200, `cost ${cost} for ${wire} on the wire in ${log.length} requests`);
    assert.deepEqual(piecesFor(rule, 0, 0), { count: 1, largest: 4096 });
    assert.equal(piecesFor(rule, 0, e - s).count, log.length, 'piecesFor counts the pieces getRange asks for');
    assert.equal(pieceSize(PIECES_CLEAN, 2 ** 40), OUTSTANDING_MAX);
  });

  test('the meter equals nginx log bytes exactly over keep-alive requests; requestCost covers each', async (t) => {
    await ng.clearLog();
    const ex: ExchangeInfo[] = [];
    // One request a range (pieces are the test above's).
    const r = remote(ng.url + 'r/', { onExchange: (i) => ex.push(i), outstanding: OUTSTANDING_MAX });
    await r.get('manifest.json');
    const ranges: Array<[number, number]> = [[0, 100], [100, 65536], [700_000, 700_001], [1000, 300_000], [PACK.length - 10, PACK.length]];
    const costs: number[] = [];
    for (const [s, e] of ranges) {
      costs.push(r.requestCost('packs/a.pack', e - s));
      await fetchRange(r, 'packs/a.pack', s, e);
    }
    await r.get('snapshots/s1.snap');
    assert.equal(await r.probeRangeSupport(), 'yes');
    const n = 2 + ranges.length + 1;
    const log = await ng.waitForRequests(n);
    assert.equal(log.length, n);
    // One connection carried everything.
    assert.equal(new Set(log.map((l) => l.connection)).size, 1, JSON.stringify(log));
    // Each exchange as nginx counted it.
    assert.equal(ex.length, n);
    for (let i = 0; i < n; i++) {
      assert.equal(ex[i].sent, log[i].requestLength, `request ${i} sent`);
      assert.equal(ex[i].received, log[i].bytesSent, `request ${i} received`);
      assert.equal(ex[i].aborted, false);
    }
    assert.equal(r.meter.total, await ng.wireBytes());
    // The estimate is never below the truth, and not far above it.
    for (let i = 0; i < ranges.length; i++) {
      const l = log[1 + i];
      const actual = l.bytesSent + l.requestLength;
      assert.ok(costs[i] >= actual, `cost ${costs[i]} < actual ${actual} for range ${ranges[i]}`);
      assert.ok(costs[i] - actual < 200, `cost ${costs[i]} far above actual ${actual} for range ${ranges[i]}`);
    }
    const headers = log.slice(1, 1 + ranges.length).map((l, i) => ({ request: l.requestLength, response: l.bytesSent - l.bodyBytesSent, over: costs[i] - l.bytesSent - l.requestLength }));
    t.diagnostic(`range request/response heads: ${JSON.stringify(headers)}`);
    await r.close();
    assert.equal(r.meter.total, await ng.wireBytes());
    assert.equal(r.meter.openSockets, 0);
  });

  test('concurrent ranges on a few keep-alive connections: meter still exact', async () => {
    await ng.clearLog();
    const ex: ExchangeInfo[] = [];
    const r = remote(ng.url + 'r/', { onExchange: (i) => ex.push(i) });
    await r.get('manifest.json');
    const jobs = [];
    for (let i = 0; i < 24; i++) {
      const s = (i * 40_503) % (PACK.length - 70_000);
      const e = s + 1 + ((i * 7919) % 65_000);
      jobs.push(fetchRange(r, 'packs/a.pack', s, e).then(({ bytes }) => assert.ok(bytes.equals(PACK.subarray(s, e)), `range ${s}-${e}`)));
      if (i % 6 === 5) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    const log = await ng.waitForRequests(25);
    assert.ok(new Set(log.map((l) => l.connection)).size <= 6, 'connections reused');
    assert.equal(r.meter.total, await ng.wireBytes());
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    assert.equal(sum(ex.map((x) => x.sent + x.received)), await ng.wireBytes(), 'per-exchange counts add up');
    assert.deepEqual(ex.map((x) => x.sent).sort(), log.map((l) => l.requestLength).sort());
    assert.deepEqual(ex.map((x) => x.received).sort(), log.map((l) => l.bytesSent).sort());
  });

  test('a slow sink is not a stall, and a failing sink fails the call as it is', async () => {
    const retries: RetryInfo[] = [];
    const r = remote(ng.url + 'r/', { timeouts: { connect: 1000, stall: 150 }, onRetry: (i) => retries.push(i) });
    let calls = 0;
    const parts: Buffer[] = [];
    await r.getRange('packs/a.pack', { start: 0, end: 300_000 }, async (b) => {
      parts.push(Buffer.from(b));
      if (calls++ < 2) await new Promise((resolve) => setTimeout(resolve, 300));
    });
    assert.ok(Buffer.concat(parts).equals(PACK.subarray(0, 300_000)));
    assert.equal(retries.length, 0);
    const boom = new Error('disk full');
    await assert.rejects(r.getRange('packs/a.pack', { start: 0, end: 300_000 }, () => { throw boom; }), (e) => e === boom);
    assert.equal(retries.length, 0);
    // The remote is still usable afterwards.
    assert.deepEqual(Buffer.from(await r.get('manifest.json')), MANIFEST);
  });

  test('a server that ignores Range works, is detected, and stops early', async () => {
    const ig = await startNginx(root, { ignoreRange: true });
    onCleanup(() => ig.stop());
    const probe = remote(ig.url + 'r/');
    assert.equal(probe.rangeSupport, 'unknown');
    assert.equal(await probe.probeRangeSupport(), 'no');
    assert.equal(await remote(ng.url + 'r/').probeRangeSupport(), 'yes');

    const exs: ExchangeInfo[] = [];
    const r = remote(ig.url + 'r/', { onExchange: (i) => exs.push(i) });
    assert.deepEqual(Buffer.from(await r.get('manifest.json')), MANIFEST);
    assert.equal(r.rangeSupport, 'no');
    const { bytes } = await fetchRange(r, 'packs/a.pack', 1000, 3000);
    assert.ok(bytes.equals(PACK.subarray(1000, 3000)));
    // We hung up long before the whole MiB.
    const last = exs[exs.length - 1];
    assert.equal(last.status, 200);
    assert.equal(last.aborted, true);
    assert.ok(last.received < 200_000, `read ${last.received} bytes for a 2000-byte range`);
    // The tail of a file: the whole rest is read (nothing after it), connection kept.
    const tail = await fetchRange(r, 'packs/a.pack', PACK.length - 5000, PACK.length);
    assert.ok(tail.bytes.equals(PACK.subarray(PACK.length - 5000)));
    // A snapshot fetched whole from it.
    assert.deepEqual(Buffer.from(await r.get('snapshots/s1.snap')), SNAP);
  });

  test('a captive portal page (200 text/html) is CAPTIVE_PORTAL and reaches no sink', async () => {
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    const r = remote(proxy.url + 'r/');
    // Seen once before the portal shows up: its page must not pass for a changed file.
    assert.ok((await fetchRange(r, 'packs/a.pack', 0, 10)).bytes.equals(PACK.subarray(0, 10)));
    proxy.portal();
    await rejectsWith(r.get('manifest.json'), 'CAPTIVE_PORTAL', /log in .*web page/);
    let got = 0;
    await rejectsWith(r.getRange('packs/a.pack', { start: 0, end: 1000 }, () => void got++), 'CAPTIVE_PORTAL');
    await rejectsWith(r.getRange('packs/a.pack', { start: 5, end: 10 }, () => void got++), 'CAPTIVE_PORTAL');
    assert.equal(got, 0);
    assert.equal(proxy.stats.localAnswers, 3, 'no retries of a portal');
    // Once logged in, the same remote works.
    proxy.reset();
    assert.deepEqual(Buffer.from(await r.get('manifest.json')), MANIFEST);
  });

  test('a portal redirect is CAPTIVE_PORTAL and reaches no sink', async () => {
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    proxy.redirectToPortal();
    const r = remote(proxy.url + 'r/');
    const e = await rejectsWith(r.get('manifest.json'), 'CAPTIVE_PORTAL', /redirected to http:\/\/127\.0\.0\.1:\d+\/login/);
    assert.ok(e.hint);
    let got = 0;
    await rejectsWith(r.getRange('packs/a.pack', { start: 0, end: 1000 }, () => void got++), 'CAPTIVE_PORTAL');
    assert.equal(got, 0);
    // nginx's own redirect to a portal page.
    const r2 = remote(ng.url + '__test/');
    await rejectsWith(r2.getRange('redirect', { start: 0, end: 10 }, () => void got++), 'CAPTIVE_PORTAL');
    await rejectsWith(r2.getRange('portal', { start: 0, end: 10 }, () => void got++), 'CAPTIVE_PORTAL');
    assert.equal(got, 0);
  });

  test('an HTML body without an HTML content-type is still a portal', async () => {
    const r = remote(ng.url + 'sniff/');
    await rejectsWith(r.get('manifest.json'), 'CAPTIVE_PORTAL');
  });

  test('a connection cut mid-range is retried from the first missing byte', async () => {
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    await ng.clearLog();
    const retries: RetryInfo[] = [];
    const r = remote(proxy.url + 'r/', { onRetry: (i) => retries.push(i), outstanding: OUTSTANDING_MAX });
    proxy.cutAfterBytes(100_000); // every response: 100 000 bytes, then FIN
    const start = 10_000;
    const end = 360_000;
    let next = start;
    const parts: Buffer[] = [];
    await r.getRange('packs/a.pack', { start, end }, (b) => {
      parts.push(Buffer.from(b));
      next += b.length;
    });
    const all = Buffer.concat(parts);
    assert.equal(all.length, end - start);
    assert.ok(all.equals(PACK.subarray(start, end)), 'each byte once, in order');
    assert.ok(retries.length >= 3, `retries: ${retries.length}`);
    // Each retry asked exactly for what was missing.
    const log = await ng.waitForRequests(retries.length + 1);
    const asked = log.map((l) => l.range);
    let expectStart = start;
    for (let i = 0; i < log.length; i++) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(asked[i] ?? '');
      assert.ok(m, `range header ${asked[i]}`);
      assert.equal(Number(m[1]), expectStart, `request ${i} starts at the first missing byte`);
      assert.equal(Number(m[2]), end - 1);
      if (i + 1 < log.length) expectStart = start + retries[i].delivered;
    }
    // Nothing came twice: what reached us is the range plus a few heads.
    assert.ok(proxy.stats.bytesToClient < end - start + 500 * log.length, `${proxy.stats.bytesToClient} bytes reached us`);
    proxy.reset();
  });

  test('get resumes a cut download with a Range request', async () => {
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    await ng.clearLog();
    const r = remote(proxy.url + 'r/');
    proxy.cutAfterBytes(80_000);
    assert.deepEqual(Buffer.from(await r.get('snapshots/s1.snap', { size: SNAP.length })), SNAP);
    const log = await ng.accessLog();
    assert.ok(log.length >= 3);
    // Never more than the file's size is asked for.
    assert.equal(log[0].range, `bytes=0-${SNAP.length - 1}`);
    // Each later request asks for the rest only (nginx pushes more into the proxy than reaches
    // us before a cut, so its log overstates; count what the proxy passed on instead).
    for (const l of log.slice(1)) assert.equal(l.range, `bytes=${/^bytes=(\d+)-/.exec(l.range ?? '')?.[1]}-${SNAP.length - 1}`);
    for (const l of log.slice(1)) assert.match(l.range ?? '', /^bytes=[1-9]/);
    assert.ok(proxy.stats.bytesToClient < SNAP.length + 500 * log.length, `${proxy.stats.bytesToClient} bytes reached us`);
  });

  test('cuts on a server that ignores Range: each retry skips what arrived', async () => {
    const ig = await startNginx(root, { ignoreRange: true });
    onCleanup(() => ig.stop());
    const proxy = await startFaultProxy(ig.url);
    onCleanup(() => proxy.close());
    const retries: RetryInfo[] = [];
    const r = remote(proxy.url + 'r/', { onRetry: (i) => retries.push(i), outstanding: OUTSTANDING_MAX });
    // Cut once (each retry starts again from byte 0 of the file: with a cut on every response
    // below the range's end, no amount of retrying could get it, and we would give up).
    proxy.cutAfterBytes(60_000, { scope: 'total' });
    const { bytes } = await fetchRange(r, 'packs/a.pack', 20_000, 150_000);
    assert.ok(bytes.equals(PACK.subarray(20_000, 150_000)));
    assert.equal(retries.length, 1);
    assert.ok(retries[0].delivered > 30_000 && retries[0].delivered < 40_000, `${retries[0].delivered}`);
    assert.equal(r.rangeSupport, 'no');
    // get() too (on a fresh proxy: the old one may still be pushing the abandoned response).
    const proxy2 = await startFaultProxy(ig.url);
    onCleanup(() => proxy2.close());
    const r2 = remote(proxy2.url + 'r/', { onRetry: (i) => retries.push(i) });
    proxy2.cutAfterBytes(100_000, { scope: 'total' });
    assert.deepEqual(Buffer.from(await r2.get('snapshots/s1.snap')), SNAP);
    assert.equal(retries.length, 2);
    assert.ok(retries[1].delivered > 90_000, `${retries[1].delivered}`);
  });

  test('a stall triggers the stall timeout and a retry that continues', async () => {
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    const retries: RetryInfo[] = [];
    const r = remote(proxy.url + 'r/', { timeouts: { connect: 2000, stall: 300 }, onRetry: (i) => retries.push(i) });
    proxy.stallAfterBytes(50_000, Infinity, { scope: 'total' });
    const t0 = Date.now();
    const { bytes } = await fetchRange(r, 'packs/a.pack', 0, 200_000);
    assert.ok(bytes.equals(PACK.subarray(0, 200_000)));
    assert.equal(retries.length, 1);
    assert.match(retries[0].error.message, /no data for 300 ms/);
    assert.ok(retries[0].delivered > 40_000 && retries[0].delivered < 50_000, `delivered ${retries[0].delivered}`);
    assert.ok(Date.now() - t0 < 5000);
  });

  test('retries exhausted → NETWORK, with what was had kept', async () => {
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    const retries: RetryInfo[] = [];
    const r = remote(proxy.url + 'r/', { retries: 2, onRetry: (i) => retries.push(i) });
    proxy.down();
    const e = await rejectsWith(r.get('manifest.json'), 'NETWORK', /the network is gone/);
    assert.equal(e.hint, 'progress is saved; run the same command again when the link is back');
    assert.equal(e.exitCode, 4);
    assert.equal(retries.length, 2);
    assert.deepEqual(retries.map((x) => x.delayMs), [5, 10]);
    // A range that gets some bytes, then the link goes: the sink keeps them, then NETWORK.
    proxy.reset();
    proxy.cutAfterBytes(30_000, { scope: 'total' });
    let got = 0;
    const p = r.getRange('packs/a.pack', { start: 0, end: 500_000 }, (b) => {
      got += b.length;
      proxy.down(); // the link drops for good after the first bytes
    });
    await rejectsWith(p, 'NETWORK', /the network is gone/);
    assert.ok(got > 0 && got < 30_000);
    // A server that keeps answering 503.
    const busy = remote(ng.url + 'busy/', { retries: 1 });
    await rejectsWith(busy.get('manifest.json'), 'NETWORK', /503/);
    // Nothing listening at all.
    proxy.reset();
    const port = proxy.port;
    await proxy.close();
    const gone = remote(`http://127.0.0.1:${port}/r/`, { retries: 1 });
    await rejectsWith(gone.get('manifest.json'), 'NETWORK', /ECONNREFUSED/);
  });

  test('a file that changed between requests is REMOTE_CHANGED, bytes never mixed', async () => {
    const file = path.join(root, 'r', 'packs', 'c.pack');
    const v1 = randomBytes(100_000);
    await writeFile(file, v1);
    await utimes(file, 1_700_000_000, 1_700_000_000);
    const r = remote(ng.url + 'r/');
    const first = await fetchRange(r, 'packs/c.pack', 0, 10_000);
    assert.ok(first.bytes.equals(v1.subarray(0, 10_000)));
    // Same size, new content and mtime: the ETag changes, If-Range makes nginx send 200.
    await writeFile(file, randomBytes(100_000));
    await utimes(file, 1_700_000_100, 1_700_000_100);
    let got = 0;
    await rejectsWith(r.getRange('packs/c.pack', { start: 10_000, end: 20_000 }, () => void got++), 'REMOTE_CHANGED', /packs\/c\.pack changed/);
    assert.equal(got, 0);
    // A server without ETags: If-Range with Last-Modified makes it send 200, which we refuse.
    await writeFile(file, v1);
    await utimes(file, 1_700_000_000, 1_700_000_000);
    const exs: ExchangeInfo[] = [];
    const ne = remote(ng.url + 'noetag/', { onExchange: (i) => exs.push(i) });
    assert.ok((await fetchRange(ne, 'packs/c.pack', 0, 10_000)).bytes.equals(v1.subarray(0, 10_000)));
    assert.ok((await fetchRange(ne, 'packs/c.pack', 10_000, 20_000)).bytes.equals(v1.subarray(10_000, 20_000)));
    await writeFile(file, randomBytes(100_000));
    await utimes(file, 1_700_000_100, 1_700_000_100);
    await rejectsWith(ne.getRange('packs/c.pack', { start: 20_000, end: 30_000 }, () => void got++), 'REMOTE_CHANGED', /Last-Modified/);
    assert.equal(exs[exs.length - 1].status, 200);
    assert.equal(got, 0);
    // Shorter file: 416 for a range past its end, a short 206 for one across it.
    await writeFile(file, randomBytes(5000));
    const fresh = remote(ng.url + 'r/');
    await rejectsWith(fresh.getRange('packs/c.pack', { start: 10_000, end: 20_000 }, () => void got++), 'REMOTE_CHANGED', /shorter/);
    await rejectsWith(fresh.getRange('packs/c.pack', { start: 1000, end: 20_000 }, () => void got++), 'REMOTE_CHANGED', /shorter/);
    assert.equal(got, 0);
    // A file that is gone.
    await rejectsWith(fresh.getRange('packs/nope.pack', { start: 0, end: 10 }, () => void got++), 'REMOTE_CHANGED', /gone/);
  });

  test('no manifest → NOT_A_REMOTE', async () => {
    const r = remote(ng.url + 'empty/');
    const e = await rejectsWith(r.get('manifest.json'), 'NOT_A_REMOTE', /no paquete remote at/);
    assert.equal(e.exitCode, 2);
  });

  test('a budget: refused before sending when it cannot fit, a prefix when asked for one', async () => {
    await ng.clearLog();
    const probe = remote(ng.url + 'r/');
    const cost = probe.requestCost('packs/a.pack', 10_000);
    const tight = new WireBudget(9_000);
    const r = remote(ng.url + 'r/', { budget: tight });
    await rejectsWith(r.getRange('packs/a.pack', { start: 0, end: 10_000 }, () => assert.fail('no bytes')), 'BUDGET');
    assert.equal(r.meter.total, 0);
    // prefixOk: what fits comes, then BUDGET.
    let got = 0;
    await rejectsWith(r.getRange('packs/a.pack', { start: 0, end: 10_000 }, (b) => void (got += b.length), { prefixOk: true }), 'BUDGET');
    assert.ok(got > 7_500 && got < 9_000, `${got} bytes of the prefix`);
    assert.ok(tight.spent <= tight.limit && tight.spent === r.meter.total, `${tight.spent} spent of ${tight.limit}`);
    const budget = new WireBudget(cost);
    const r2 = remote(ng.url + 'r/', { budget });
    const { bytes } = await fetchRange(r2, 'packs/a.pack', 0, 10_000);
    assert.ok(bytes.equals(PACK.subarray(0, 10_000)));
    assert.ok(r2.meter.total <= cost);
    // get() of a file bigger than the budget: asks only for what fits, sees the size, stops.
    const small = new WireBudget(50_000);
    const r3 = remote(ng.url + 'r/', { budget: small });
    await rejectsWith(r3.get('snapshots/s1.snap'), 'BUDGET', /200000 bytes/);
    assert.ok(r3.meter.total <= 50_000, `${r3.meter.total}`);
    // ... one whose signed size does not fit is refused before a byte is sent ...
    const r4 = remote(ng.url + 'r/', { budget: new WireBudget(50_000) });
    await rejectsWith(r4.get('snapshots/s1.snap', { size: 200_000 }), 'BUDGET');
    assert.equal(r4.meter.total, 0);
    // ... and one that fits is fetched whole.
    const r5 = remote(ng.url + 'r/', { budget: new WireBudget(201_000) });
    assert.deepEqual(Buffer.from(await r5.get('snapshots/s1.snap', { size: 200_000 })), SNAP);
  });

  test('an abort signal stops a slow download promptly', async () => {
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    proxy.throttle(100_000);
    const r = remote(proxy.url + 'r/');
    const ac = new AbortController();
    let got = 0;
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 150);
    await assert.rejects(
      r.getRange('packs/a.pack', { start: 0, end: PACK.length }, (b) => void (got += b.length), { signal: ac.signal }),
      (e: Error) => e.name === 'AbortError',
    );
    assert.ok(Date.now() - t0 < 1000);
    assert.ok(got > 0 && got < PACK.length);
    // Aborted while waiting to retry: at once too.
    proxy.reset();
    proxy.down();
    const slow = remote(proxy.url + 'r/', { backoffMs: 10_000 });
    const ac2 = new AbortController();
    const t1 = Date.now();
    setTimeout(() => ac2.abort(), 100);
    await assert.rejects(slow.get('manifest.json', { signal: ac2.signal }), (e: Error) => e.name === 'AbortError');
    assert.ok(Date.now() - t1 < 1000);
    // An already aborted signal sends nothing.
    const before = slow.meter.total;
    await assert.rejects(slow.get('manifest.json', { signal: AbortSignal.abort() }), (e: Error) => e.name === 'AbortError');
    assert.equal(slow.meter.total, before);
  });

  test('https: the meter counts the TLS wire (handshake and records), exactly', async () => {
    const srv = https.createServer({ key: TLS_KEY, cert: TLS_CERT }, (req, res) => {
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (req.url !== '/r/packs/a.pack') return void res.writeHead(404).end();
      if (!m) return void res.writeHead(200, { 'content-length': PACK.length }).end(PACK);
      const s = Number(m[1]);
      const e = m[2] ? Number(m[2]) + 1 : PACK.length;
      res.writeHead(206, { 'content-range': `bytes ${s}-${e - 1}/${PACK.length}`, 'content-length': e - s });
      res.end(PACK.subarray(s, e));
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => srv.close(() => resolve())));
    const port = (srv.address() as { port: number }).port;
    // The fault proxy parses HTTP and holds TLS bytes back; a plain counting pipe instead.
    const proxy = await countingPipe(port);
    onCleanup(() => proxy.close());
    const url = `https://127.0.0.1:${proxy.port}/r/`;
    // Not trusted by default: a certificate error, not retried.
    const strict = remote(url);
    await rejectsWith(strict.getRange('packs/a.pack', { start: 0, end: 10 }, () => assert.fail('no bytes')), 'NETWORK', /certificate/);
    assert.equal(proxy.stats.connections, 1);
    await strict.close();
    proxy.resetStats();

    const r = remote(url, { rejectUnauthorized: false });
    for (const [s, e] of [[0, 1000], [5000, 300_000], [PACK.length - 3, PACK.length]] as const) {
      const { bytes } = await fetchRange(r, 'packs/a.pack', s, e);
      assert.ok(bytes.equals(PACK.subarray(s, e)));
    }
    assert.equal(proxy.stats.connections, 1, 'one TLS connection, kept alive');
    await r.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(r.meter.total, proxy.stats.bytesFromClient + proxy.stats.bytesToClient);
  });

  test('bad paths are refused', async () => {
    const r = remote(ng.url + 'r/');
    await rejectsWith(r.get('../etc/passwd'), 'UNSAFE_PATH');
    await rejectsWith(r.get('/abs'), 'UNSAFE_PATH');
  });
});
