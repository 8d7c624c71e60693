/**
 * Park sessions over HTTP against real nginx, with a fault-injecting proxy standing in for the
 * hotspot: budgets checked against nginx's own access log, cut and stalled connections, a
 * captive portal, the network going away, and kill -9 at random instants.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { startFaultProxy, whenBytesFlow } from './helpers/faultproxy.js';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { checkNoWrongFiles } from './helpers/workdirs.js';

after(cleanupAll);

/** Fast failure settings so the network-gone cases finish in seconds. */
const FAST_LINK = { PAQUETE_RETRIES: '2', PAQUETE_BACKOFF: '0.05', PAQUETE_STALL_TIMEOUT: '1', PAQUETE_CONNECT_TIMEOUT: '2' };

const paquete = paqueteExpecting(FAST_LINK);

/**
 * Bytes in the network stack between the proxy and its clients right now, from the kernel's own
 * view (`ss -tin`): what the proxy's sockets hold written but not yet sent (notsent) plus what the
 * clients' sockets hold received but unread (Recv-Q). A kill -9 discards these with the socket:
 * they were paid for by the proxy's count but no process can keep them. Bytes the proxy sent that
 * are merely unacknowledged are left out: on loopback they are already in (or read from) the
 * client's queue, and a delayed ACK made /proc/net/tcp's tx_queue count one 16 kB piece a kill
 * that the client had read and kept (-2% "beyond" under load). Without `ss`, the clients' unread
 * bytes from /proc/net/tcp alone (never more than the truth).
 */
function bytesInFlight(proxyPort: number): number {
  let out: string;
  try {
    out = execFileSync('ss', ['-tinH', 'state', 'established', `( sport = :${proxyPort} or dport = :${proxyPort} )`], { encoding: 'utf8' });
  } catch {
    return unreadFromProc(proxyPort);
  }
  let n = 0;
  let proxySide = false;
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (/^\d+$/.test(f[0] ?? '') && f.length >= 4) {
      const port = (addr: string) => Number(addr.slice(addr.lastIndexOf(':') + 1));
      proxySide = port(f[2]) === proxyPort;
      if (!proxySide && port(f[3]) === proxyPort) n += Number(f[0]);
    } else if (proxySide) {
      const m = /\bnotsent:(\d+)/.exec(line);
      if (m) n += Number(m[1]);
    }
  }
  return n;
}

/** Waits (blocking: the proxy in this process stays still too) until process `pid` is stopped; false if it is gone or never stops. */
function whenStopped(pid: number | undefined): boolean {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return false;
    }
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'T' || state === 't') return true;
    if (state === 'Z' || state === 'X') return false;
  }
  return false;
}

function unreadFromProc(proxyPort: number): number {
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      const remote = parseInt(f[2].split(':')[1], 16);
      if (remote === proxyPort) n += parseInt(f[4].split(':')[1], 16);
    }
  }
  return n;
}

/**
 * The most a client process holds between reading bytes off its socket and landing them in a
 * file, which a kill -9 loses: the one socket read it may be in the middle of (64 KiB, libuv's
 * read size). Every fetch that carries paid bytes lands each piece in the turn its read brought
 * it (src/remote/http.ts pump, src/sync/landing.ts), before anything parses or decodes it, so no
 * second read's bytes are ever held, however long a loaded machine keeps the client off the CPU.
 */
const PROCESS_HOLDS = 64 << 10;

describe('park sessions over HTTP', () => {
  let dir: string;
  let nginx: NginxServer;
  let source: Record<string, string>;
  let fileCount: number;

  before(async () => {
    dir = await tmpDir('paquete-park-');
    // Incompressible data, so bytes on the wire track the plan; sizes from 40 kB to 1.6 MB.
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 14; i++) files[`f${String(i).padStart(2, '0')}.bin`] = pseudoRandom(40_000 + i * i * 8_000, i + 1);
    files['big/huge.bin'] = pseudoRandom(1_600_000, 99);
    writeTree(join(dir, 'site'), files);
    fileCount = Object.keys(files).length;
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    source = Object.fromEntries(Object.entries(treeDigest(join(dir, 'site'))).map(([p, d]) => [`site/${p}`, d]));
    nginx = await startNginx(join(dir, 'remote'));
    onCleanup(() => nginx.stop());
  });

  test('a budget is never exceeded on the wire (nginx log), whole files come first, exit 3; the next session completes', async () => {
    await paquete(['init', nginx.url, 'w1', '--trust', 'pub.key.pub'], dir);
    await nginx.clearLog();
    const budget = 1_200_000;
    const r = await paquete(['sync', '-C', 'w1', '--budget', String(budget), '--json'], dir, 3);
    const report = JSON.parse(r.stdout);
    const wire = await nginx.wireBytes();
    assert.ok(wire <= budget, `nginx sent and received ${wire} bytes for a ${budget}-byte budget`);
    assert.equal(report.spent, wire, 'our meter agrees with nginx to the byte');
    assert.ok(report.completeFiles > 3 && report.completeFiles < fileCount, `${report.completeFiles} files complete`);
    assert.equal(checkNoWrongFiles(source, join(dir, 'w1')), report.completeFiles);
    assert.ok(report.leftBytes > 0);
    assert.match(r.stderr, /^$/);

    await nginx.clearLog();
    const second = JSON.parse((await paquete(['sync', '-C', 'w1', '--json'], dir)).stdout);
    assert.deepEqual(treeDigest(join(dir, 'w1')), source);
    // Nothing fetched twice: the two sessions together cost the remote's data once, plus headers.
    assert.ok(second.spent < report.leftBytes + 30_000, `second session spent ${second.spent}, needed ${report.leftBytes}`);
  });

  test('--dry-run prints the plan and spends only the index and the update head it prices frames with', async () => {
    await paquete(['init', nginx.url, 'w2', '--trust', 'pub.key.pub'], dir);
    await nginx.clearLog();
    const r = await paquete(['sync', '-C', 'w2', '--budget', '500kB', '--dry-run'], dir);
    assert.match(r.stdout, /would fetch .* of 500 kB budget/);
    const log = await nginx.accessLog();
    assert.deepEqual(log.map((e) => e.uri.split('/')[1]).sort(), ['manifest.json', 'snapshots', 'updates']);
    assert.equal(checkNoWrongFiles(source, join(dir, 'w2')), 0);
  });

  test('connections cut mid-range are resumed from the first missing byte and the sync completes', async () => {
    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', proxy.url, 'w3', '--trust', 'pub.key.pub'], dir);
    proxy.cutAfterBytes(150_000, { scope: 'request' });
    await nginx.clearLog();
    await paquete(['sync', '-C', 'w3'], dir, 0, { ...FAST_LINK, PAQUETE_RETRIES: '3' });
    assert.deepEqual(treeDigest(join(dir, 'w3')), source);
    const log = await nginx.accessLog();
    const ranged = log.filter((e) => e.range);
    assert.ok(ranged.some((e) => !/^bytes=\d+-\d*$/.test(e.range ?? '') || e.status === 206));
    assert.ok(log.length > 5, 'the cuts forced retries');
  });

  test('a captive portal is named in plain words, and nothing from it is stored', async () => {
    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', nginx.url, 'w4', '--trust', 'pub.key.pub'], dir);
    // Point the working directory at the proxy (as if the hotspot sat in the way).
    const { readFileSync, writeFileSync } = await import('node:fs');
    const cfgPath = join(dir, 'w4/.paquete/config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    cfg.remotes[0].location = proxy.url;
    writeFileSync(cfgPath, JSON.stringify(cfg));
    for (const mode of ['portal', 'redirect'] as const) {
      if (mode === 'portal') proxy.portal();
      else proxy.redirectToPortal();
      const r = await paquete(['sync', '-C', 'w4'], dir, 4);
      assert.match(r.stderr, /the network wants you to log in/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      const st = JSON.parse((await paquete(['status', '-C', 'w4', '--json'], dir)).stdout);
      assert.equal(st.synced ? st.store.chunks : st.store.chunks, 0, 'nothing stored');
    }
    proxy.reset();
    await paquete(['sync', '-C', 'w4'], dir);
    assert.deepEqual(treeDigest(join(dir, 'w4')), source);
  });

  test('when the network goes away: exit 4 with progress saved; the next sync continues', async () => {
    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', proxy.url, 'w5', '--trust', 'pub.key.pub'], dir);
    proxy.throttle(1_000_000);
    const running = runPaquete(['sync', '-C', 'w5'], { cwd: dir, env: FAST_LINK, timeoutMs: 60_000 });
    await whenBytesFlow(proxy, 1_000_000, running.done);
    proxy.down();
    const r = await running.done;
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /network/i);
    assert.match(r.stderr, /run the same command again|progress is saved/i);
    const st = JSON.parse((await paquete(['status', '-C', 'w5', '--json'], dir)).stdout);
    assert.ok(st.store.chunks > 0, 'chunks received before the drop are kept');
    checkNoWrongFiles(source, join(dir, 'w5'));
    proxy.reset();
    await nginx.clearLog();
    const done = JSON.parse((await paquete(['sync', '-C', 'w5', '--json'], dir)).stdout);
    assert.deepEqual(treeDigest(join(dir, 'w5')), source);
    assert.ok(done.spent < st.total.missingBytes + 30_000, `resumed session spent ${done.spent} for ${st.total.missingBytes} missing`);
  });

  test('a stalled link times out and is retried from where it stopped; a link that stays stalled ends with exit 4', async () => {
    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', proxy.url, 'w6', '--trust', 'pub.key.pub'], dir);
    proxy.stallAfterBytes(3_000_000, Infinity, { scope: 'request' });
    const r = await paquete(['sync', '-C', 'w6'], dir, 0);
    assert.match(r.stderr, /link trouble .*trying again/);
    assert.deepEqual(treeDigest(join(dir, 'w6')), source);

    await paquete(['init', proxy.url, 'w6b', '--trust', 'pub.key.pub'], dir);
    proxy.reset();
    proxy.stallAfterBytes(0, Infinity, { scope: 'request' });
    const t0 = Date.now();
    const dead = await paquete(['sync', '-C', 'w6b'], dir, 4, { ...FAST_LINK, PAQUETE_RETRIES: '1' });
    assert.ok(Date.now() - t0 < 30_000);
    assert.match(dead.stderr, /network/i);
  });

  test('kill -9 at random instants: the tree ends byte-identical and the wire total stays within 2% of one session plus extra headers', async (t) => {
    // The reference: one uninterrupted session straight from nginx.
    await paquete(['init', nginx.url, 'ref', '--trust', 'pub.key.pub'], dir);
    await nginx.clearLog();
    await paquete(['sync', '-C', 'ref'], dir);
    const reference = await nginx.wireBytes();

    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', proxy.url, 'w7', '--trust', 'pub.key.pub'], dir);
    // A park-like rate: what the network holds for a killed process grows with the rate times
    // however long a loaded machine takes to tear the process down.
    proxy.throttle(700_000);
    proxy.resetStats();
    await nginx.clearLog();
    let kills = 0;
    // What the network held for the client at each kill (no process can keep it): the kernel's
    // queues and the proxy's unsent buffer just before the kill, and what the proxy still sent
    // until it saw the connection gone (a killed process is torn down, and its sockets closed,
    // only when the loaded machine gives it the CPU: 16-190 kB a kill here).
    let network = 0;
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 40; round++) {
      const running = runPaquete(['sync', '-C', 'w7'], { cwd: dir, env: FAST_LINK, timeoutMs: 60_000 });
      // Kill mid-transfer: once data flows again, after a random moment (the link drops while
      // bytes are moving, whatever the machine's load does to start-up time).
      await whenBytesFlow(proxy, 20_000, running.done);
      let mark: number | undefined;
      const killAt = setTimeout(() => {
        // Stopped first, so it reads nothing more while the network's share is read (a loaded
        // machine takes tens of ms to run `ss`: bytes the client read and kept meanwhile were
        // counted as lost, -0.54% "beyond" under load), then killed where it stands.
        if (!running.kill('SIGSTOP')) return;
        whenStopped(running.pid);
        const held = bytesInFlight(proxy.port) + proxy.unsentBytes();
        const at = proxy.stats.bytesToClient;
        if (running.kill('SIGKILL')) {
          network += held;
          mark = at;
        }
      }, 300 + random() * 2000);
      const r = await running.done;
      clearTimeout(killAt);
      if (mark !== undefined) {
        await proxy.whenIdle();
        network += proxy.stats.bytesToClient - mark;
      }
      if (r.code === 0) break;
      assert.equal(r.signal, 'SIGKILL', `sync failed on its own: ${r.stderr}`);
      kills++;
      checkNoWrongFiles(source, join(dir, 'w7'));
    }
    assert.ok(kills >= 2, `only ${kills} kills landed`);
    assert.deepEqual(treeDigest(join(dir, 'w7')), source);
    await paquete(['verify', '-C', 'w7'], dir);
    // Nothing half-done is left behind: no temp file of a killed assembly, no frame prefix, no
    // range journal or index prefix (each is used by the next session, then deleted).
    assert.deepEqual(readdirSync(join(dir, 'w7', '.paquete', 'tmp')).filter((n) => n.endsWith('.part')), []);
    const log = await nginx.accessLog();
    const headers = log.reduce((n, e) => n + e.bytesSent - e.bodyBytesSent + e.requestLength, 0);
    const wire = proxy.stats.bytesToClient + proxy.stats.bytesFromClient;
    const beyond = (n: number) => `${(((wire - headers - n) / reference - 1) * 100).toFixed(2)}%`;
    t.diagnostic(
      `${kills} kills: ${wire} bytes on the wire, one session ${reference}, extra ${beyond(0)} beyond ${headers} header bytes; ` +
        `the network held ${network} bytes at the kills (${beyond(network)} beyond those)`,
    );
    // Issue 12.5: 2% beyond headers. A kill -9 loses what the network held (measured above, from
    // the kernel's view and the proxy's own) and what the process had read but not landed: by
    // construction no more than the one socket read under way (PROCESS_HOLDS). So the bound holds
    // whatever the load, and it catches any kill that costs more than that (a range or frame
    // started over, landed bytes left unused: 16-64 kB a kill before leftovers were kept, and
    // 25-80 kB under load while stream buffers waited on the decoder).
    assert.ok(
      wire <= reference * 1.02 + headers + network + kills * PROCESS_HOLDS,
      `${kills} kills: ${wire} bytes on the wire vs ${reference} for one session (+2% = ${Math.round(reference * 1.02)}) + ${headers} header bytes + ${network} the network held at the kills + ${kills} x ${PROCESS_HOLDS} of a socket read`,
    );
  });
});
