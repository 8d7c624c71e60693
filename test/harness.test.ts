/**
 * Proves the test helpers (real nginx, fault proxy, tmp/run) do what the end-to-end tests rely on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFaultProxy, PROXY_PORTAL_HTML, type FaultProxy } from './helpers/faultproxy.js';
import { NGINX_BIN, PORTAL_HTML, startNginx, type NginxServer } from './helpers/nginx.js';
import { cleanupAll, exec, run, tmpDir, until } from './helpers/tmp.js';

const FILE_SIZE = 1 << 20;
const data = randomBytes(FILE_SIZE);

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  bytesRead: number;
  bytesWritten: number;
}

/** One request on a fresh connection (no keep-alive), with the socket's own byte counts. */
function rawGet(url: string, headers: Record<string, string> = {}, agent: http.Agent | false = false): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, headers }, (res) => {
      const sock = res.socket; // a kept-alive socket is detached from res by the time of 'end'
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('error', reject);
      res.on('end', () => {
        const finish = (): void =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks),
            bytesRead: sock.bytesRead,
            bytesWritten: sock.bytesWritten,
          });
        // With agent false the server closes the connection: count after the socket is closed.
        if (agent === false && !sock.destroyed) sock.once('close', finish);
        else finish();
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Send a raw GET over TCP and collect every response byte until the server closes. */
function tcpGet(port: number, pathName: string, timeoutMs = 10_000): Promise<{ bytes: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => {
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), error: 'timeout' });
    }, timeoutMs);
    s.on('connect', () => s.write(`GET ${pathName} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('error', (e) => {
      clearTimeout(t);
      resolve({ bytes: Buffer.concat(chunks), error: e.message });
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve({ bytes: Buffer.concat(chunks) });
    });
  });
}

function splitHead(bytes: Buffer): { head: string; body: Buffer } {
  const i = bytes.indexOf('\r\n\r\n');
  assert.ok(i >= 0, 'response has a complete head');
  return { head: bytes.subarray(0, i).toString('latin1'), body: bytes.subarray(i + 4) };
}

test('nginx is installed (else run scripts/ensure-system-deps.sh)', () => {
  assert.ok(existsSync(NGINX_BIN), `nginx not found at ${NGINX_BIN}: run scripts/ensure-system-deps.sh (as root) to install it`);
});

describe('nginx helper', () => {
  let root: string;
  let ng: NginxServer;
  before(async () => {
    root = await tmpDir('harness-root-');
    await writeFile(path.join(root, 'blob.bin'), data);
    ng = await startNginx(root);
  });
  after(async () => {
    await ng?.stop();
  });

  test('serves a Range as 206 and logs exactly the bytes the socket counted', async (t) => {
    await ng.clearLog();
    const r = await rawGet(`${ng.url}blob.bin`, { Range: 'bytes=1000-1999' });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 1000-1999/${FILE_SIZE}`);
    assert.ok(r.headers.etag, 'etag header present');
    assert.deepEqual(r.body, data.subarray(1000, 2000));

    const [e] = await ng.waitForRequests(1);
    assert.equal(e.method, 'GET');
    assert.equal(e.uri, '/blob.bin');
    assert.equal(e.status, 206);
    assert.equal(e.range, 'bytes=1000-1999');
    assert.equal(e.bodyBytesSent, 1000);
    t.diagnostic(
      `nginx log: bytes_sent ${e.bytesSent} + request_length ${e.requestLength}; ` +
        `socket: bytesRead ${r.bytesRead} + bytesWritten ${r.bytesWritten}`,
    );
    assert.equal(e.bytesSent, r.bytesRead, 'bytes_sent = bytes the client read');
    assert.equal(e.requestLength, r.bytesWritten, 'request_length = bytes the client wrote');
    assert.equal(await ng.wireBytes(), r.bytesRead + r.bytesWritten);
  });

  test('whole file without Range: 200, range logged as null; wire bytes still exact', async () => {
    await ng.clearLog();
    const r = await rawGet(`${ng.url}blob.bin`);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, FILE_SIZE);
    assert.ok(r.body.equals(data));
    const [e] = await ng.waitForRequests(1);
    assert.equal(e.range, null);
    assert.equal(e.status, 200);
    assert.equal(await ng.wireBytes(), r.bytesRead + r.bytesWritten);
  });

  test('keep-alive: several requests on one connection add up exactly', async (t) => {
    await ng.clearLog();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let socket: net.Socket | undefined;
      for (const range of ['bytes=0-99', 'bytes=5000-5999', 'bytes=-10']) {
        const r = await new Promise<Buffer>((resolve, reject) => {
          const req = http.get(`${ng.url}blob.bin`, { agent, headers: { Range: range } }, (res) => {
            socket = res.socket;
            const chunks: Buffer[] = [];
            res.on('data', (b: Buffer) => chunks.push(b));
            res.on('end', () => resolve(Buffer.concat(chunks)));
          });
          req.on('error', reject);
        });
        assert.ok(r.length > 0);
      }
      const entries = await ng.waitForRequests(3);
      assert.equal(new Set(entries.map((e) => e.connection)).size, 1, 'one connection reused');
      assert.deepEqual(
        entries.map((e) => e.connectionRequests),
        [1, 2, 3],
      );
      const wire = await ng.wireBytes();
      t.diagnostic(`keep-alive x3: log ${wire} bytes, socket ${socket!.bytesRead + socket!.bytesWritten} bytes`);
      assert.equal(wire, socket!.bytesRead + socket!.bytesWritten);
    } finally {
      agent.destroy();
    }
  });

  test('multi-range gets 206 multipart/byteranges', async () => {
    const r = await rawGet(`${ng.url}blob.bin`, { Range: 'bytes=0-9,100-109' });
    assert.equal(r.status, 206);
    assert.match(String(r.headers['content-type']), /^multipart\/byteranges; boundary=/);
  });

  test('built-in captive-portal page and redirect locations', async () => {
    const p = await rawGet(`${ng.url}__test/portal`);
    assert.equal(p.status, 200);
    assert.match(String(p.headers['content-type']), /text\/html/);
    assert.equal(p.body.toString(), PORTAL_HTML);
    const r = await rawGet(`${ng.url}__test/redirect`);
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, `http://127.0.0.1:${ng.port}/__test/portal`);
  });

  test('404 for a missing file is logged too', async () => {
    await ng.clearLog();
    const r = await rawGet(`${ng.url}nope.json`);
    assert.equal(r.status, 404);
    const [e] = await ng.waitForRequests(1);
    assert.equal(e.status, 404);
    assert.equal(e.uri, '/nope.json');
  });
});

describe('nginx ignoreRange / extraConfig / stop', () => {
  test('ignoreRange answers a Range request with 200 and the whole file', async () => {
    const root = await tmpDir('harness-norange-');
    await writeFile(path.join(root, 'blob.bin'), data);
    const ng = await startNginx(root, { ignoreRange: true });
    try {
      const r = await rawGet(`${ng.url}blob.bin`, { Range: 'bytes=1000-1999' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-range'], undefined);
      assert.equal(r.body.length, FILE_SIZE);
      assert.ok(r.body.equals(data));
      const [e] = await ng.waitForRequests(1);
      assert.equal(e.range, 'bytes=1000-1999');
      assert.equal(e.status, 200);
      assert.equal(await ng.wireBytes(), r.bytesRead + r.bytesWritten);
    } finally {
      await ng.stop();
    }
  });

  test('maxRanges 1: a multi-range request gets 200 whole file, a single range still 206', async () => {
    const root = await tmpDir('harness-onerange-');
    await writeFile(path.join(root, 'blob.bin'), data);
    const ng = await startNginx(root, { maxRanges: 1 });
    try {
      const multi = await rawGet(`${ng.url}blob.bin`, { Range: 'bytes=0-9,100-109' });
      assert.equal(multi.status, 200);
      assert.equal(multi.body.length, FILE_SIZE);
      const single = await rawGet(`${ng.url}blob.bin`, { Range: 'bytes=0-9' });
      assert.equal(single.status, 206);
    } finally {
      await ng.stop();
    }
  });

  test('extraConfig adds locations; stop() kills nginx and removes its prefix', async () => {
    const root = await tmpDir('harness-extra-');
    const ng = await startNginx(root, {
      extraConfig: 'location = /login { default_type text/html; return 200 "<html>login</html>"; }\nlocation /old/ { return 302 /login; }',
    });
    const r = await rawGet(`${ng.url}login`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), '<html>login</html>');
    const r2 = await rawGet(`${ng.url}old/x`);
    assert.equal(r2.status, 302);
    assert.equal(r2.headers.location, `http://127.0.0.1:${ng.port}/login`);
    const pid = ng.pid;
    await ng.stop();
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'nginx master is gone');
    assert.equal(existsSync(ng.prefix), false, 'prefix removed');
    await assert.rejects(rawGet(ng.url), /ECONNREFUSED/);
  });
});

describe('fault proxy', () => {
  let root: string;
  let ng: NginxServer;
  let proxy: FaultProxy;
  before(async () => {
    root = await tmpDir('harness-proxy-');
    await writeFile(path.join(root, 'blob.bin'), data);
    await writeFile(path.join(root, 'small.bin'), data.subarray(0, 100_000));
    ng = await startNginx(root);
    proxy = await startFaultProxy(ng.url);
  });
  after(async () => {
    await proxy?.close();
    await ng?.stop();
  });

  test('transparent by default: the same bytes and counters that match nginx', async () => {
    proxy.reset();
    proxy.resetStats();
    await ng.clearLog();
    const r = await rawGet(`${proxy.url}blob.bin`, { Range: 'bytes=10-20009' });
    assert.equal(r.status, 206);
    assert.deepEqual(r.body, data.subarray(10, 20010));
    await ng.waitForRequests(1);
    assert.equal(proxy.stats.bytesToClient, r.bytesRead);
    assert.equal(proxy.stats.bytesFromClient, r.bytesWritten);
    assert.equal(proxy.stats.bytesToClient + proxy.stats.bytesFromClient, await ng.wireBytes());
  });

  test('cutAfterBytes: the client gets exactly n response bytes, then EOF', async () => {
    proxy.reset();
    for (const n of [1, 100, 5000, 300_001]) {
      proxy.cutAfterBytes(n);
      const r = await tcpGet(proxy.port, '/blob.bin');
      assert.equal(r.error, undefined);
      assert.equal(r.bytes.length, n, `cut at ${n}`);
      // the bytes that did come are the right ones
      if (n > 1000) assert.ok(splitHead(r.bytes).body.equals(data.subarray(0, splitHead(r.bytes).body.length)));
    }
    // an http client sees an aborted response
    proxy.cutAfterBytes(50_000);
    await assert.rejects(rawGet(`${proxy.url}blob.bin`), /aborted|ECONNRESET|socket hang up/);
    proxy.reset();
    const ok = await rawGet(`${proxy.url}blob.bin`);
    assert.equal(ok.body.length, FILE_SIZE);
  });

  test('cutAfterBytes scope total fires once; scope request cuts each request on a kept-alive connection', async () => {
    proxy.reset();
    proxy.cutAfterBytes(2000, { scope: 'total' });
    const a = await tcpGet(proxy.port, '/blob.bin');
    assert.equal(a.bytes.length, 2000);
    const b = await tcpGet(proxy.port, '/blob.bin');
    assert.ok(b.bytes.length > FILE_SIZE, 'second request passes whole');

    // per request: a response smaller than n passes, a bigger one is cut at n
    proxy.cutAfterBytes(200_000, { scope: 'request' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const small = await rawGet(`${proxy.url}small.bin`, {}, agent);
      assert.equal(small.body.length, 100_000);
      const small2 = await rawGet(`${proxy.url}small.bin`, {}, agent);
      assert.equal(small2.body.length, 100_000, 'counter restarts with each request');
      await assert.rejects(rawGet(`${proxy.url}blob.bin`, {}, agent), /aborted|ECONNRESET|socket hang up/);
    } finally {
      agent.destroy();
    }
    proxy.reset();
  });

  test('stallAfterBytes: pauses for ms, then the rest comes; Infinity holds until reset()', async () => {
    proxy.reset();
    proxy.stallAfterBytes(1000, 400);
    const t0 = performance.now();
    const r = await rawGet(`${proxy.url}small.bin`);
    const took = performance.now() - t0;
    assert.equal(r.body.length, 100_000);
    assert.ok(took >= 380, `stalled ${took.toFixed(0)} ms`);

    proxy.stallAfterBytes(5000, Infinity);
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port: proxy.port });
    s.on('data', (b: Buffer) => got.push(b));
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.write('GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await until('5000 bytes through the proxy', () => Buffer.concat(got).length >= 5000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(Buffer.concat(got).length, 5000, 'exactly n bytes while stalled');
    proxy.reset();
    await closed;
    const { body } = splitHead(Buffer.concat(got));
    assert.ok(body.equals(data.subarray(0, 100_000)), 'the rest came after reset()');
  });

  test('throttle: about bytesPerSec', async (t) => {
    proxy.reset();
    proxy.throttle(400_000);
    const t0 = performance.now();
    const r = await rawGet(`${proxy.url}small.bin`); // ~100 KB: ~0.25 s
    const sec = (performance.now() - t0) / 1000;
    proxy.reset();
    assert.equal(r.body.length, 100_000);
    const rate = r.bytesRead / sec;
    t.diagnostic(`throttle 400000 B/s: measured ${rate.toFixed(0)} B/s over ${sec.toFixed(3)} s`);
    // Roughly: never faster than asked (plus the first piece's head start), not absurdly slower.
    assert.ok(rate > 160_000 && rate < 500_000, `rate ${rate.toFixed(0)} B/s`);
  });

  test('portal(): 200 + HTML login page for any request, upstream never contacted', async () => {
    proxy.reset();
    await ng.clearLog();
    proxy.portal();
    const before = proxy.stats.bytesToUpstream;
    const r = await rawGet(`${proxy.url}blob.bin`, { Range: 'bytes=0-99' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /text\/html/);
    assert.equal(r.body.toString(), PROXY_PORTAL_HTML);
    assert.equal(proxy.stats.bytesToUpstream, before);
    assert.equal((await ng.accessLog()).length, 0);
    proxy.reset();
  });

  test('redirectToPortal(): 302 to /login on the proxy, which serves the portal page', async () => {
    proxy.reset();
    proxy.redirectToPortal();
    const r = await rawGet(`${proxy.url}manifest.json`);
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, `http://127.0.0.1:${proxy.port}/login`);
    const p = await rawGet(r.headers.location!);
    assert.equal(p.status, 200);
    assert.match(p.body.toString(), /<form/);
    proxy.reset();
  });

  test('rules set between requests apply to the next request on the same kept-alive connection', async () => {
    proxy.reset();
    proxy.resetStats();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await rawGet(`${proxy.url}small.bin`, { Range: 'bytes=0-9' }, agent);
      assert.equal(a.status, 206);
      proxy.portal();
      const b = await rawGet(`${proxy.url}small.bin`, { Range: 'bytes=0-9' }, agent);
      assert.equal(b.status, 200);
      assert.equal(b.body.toString(), PROXY_PORTAL_HTML);
      assert.equal(proxy.stats.connections, 1, 'the kept-alive connection was reused');
    } finally {
      agent.destroy();
      proxy.reset();
    }
  });

  test('down(): connections are closed without a byte; reset() brings it back', async () => {
    proxy.reset();
    proxy.down();
    await assert.rejects(rawGet(`${proxy.url}small.bin`), /ECONNRESET|socket hang up/);
    proxy.reset();
    const r = await rawGet(`${proxy.url}small.bin`);
    assert.equal(r.status, 200);
  });

  test('close() closes open sockets', async () => {
    const p2 = await startFaultProxy(ng.port);
    p2.stallAfterBytes(10, Infinity);
    const res = tcpGet(p2.port, '/small.bin', 5000);
    await until('the first bytes to the client', () => p2.stats.bytesToClient >= 10);
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the 10 bytes land
    await p2.close();
    const r = await res;
    assert.equal(r.error, undefined);
    assert.equal(r.bytes.length, 10);
    await assert.rejects(rawGet(p2.url), /ECONNREFUSED/);
  });
});

describe('tmp helpers', () => {
  test('run: exit code, output, env, cwd; never rejects', async () => {
    const dir = await tmpDir('harness-run-');
    const r = await exec(
      process.execPath,
      ['-e', 'console.log(process.cwd()); console.error(process.env.HARNESS_X); process.exit(3)'],
      { cwd: dir, env: { HARNESS_X: 'hello' } },
    );
    assert.equal(r.code, 3);
    assert.equal(r.signal, null);
    assert.equal(r.stdout.trim(), dir);
    assert.equal(r.stderr.trim(), 'hello');
    const missing = await exec('/nonexistent/binary', []);
    assert.equal(missing.code, 127);
  });

  test('run: kill -9 mid-run, and timeout', async () => {
    const p = run(process.execPath, ['-e', 'console.log("ready"); setInterval(() => {}, 1000)']);
    await p.waitForOutput('ready');
    assert.equal(p.kill('SIGKILL'), true);
    const r = await p.done;
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.code, null);

    const t = await exec(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { timeoutMs: 200 });
    assert.equal(t.timedOut, true);
    assert.equal(t.signal, 'SIGKILL');
  });
});

after(cleanupAll);
