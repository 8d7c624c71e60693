/**
 * Park sessions over HTTP against real nginx, with a fault-injecting proxy standing in for the
 * hotspot: budgets checked against nginx's own access log, cut and stalled connections, a
 * captive portal, the network going away, and kill -9 at random points (test/helpers/kill-loop.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { startFaultProxy, whenBytesFlow } from './helpers/faultproxy.js';
import { killLoop } from './helpers/kill-loop.js';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { checkNoWrongFiles } from './helpers/workdirs.js';
import { PIECES_AFTER_KILL, PIECES_CLEAN, pieceSize } from '../src/remote/http.js';
import type { LogEntry } from './helpers/nginx.js';

after(cleanupAll);

/** Fast failure settings so the network-gone cases finish in seconds. */
const FAST_LINK = { PAQUETE_RETRIES: '2', PAQUETE_BACKOFF: '0.05', PAQUETE_STALL_TIMEOUT: '1', PAQUETE_CONNECT_TIMEOUT: '2' };

const paquete = paqueteExpecting(FAST_LINK);

/** Request and response heads of the requests in `log` (nginx's own count). */
const headerBytes = (log: LogEntry[]) => log.reduce((n, e) => n + e.bytesSent - e.bodyBytesSent + e.requestLength, 0);

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
    // Nothing fetched twice: the two sessions together cost the remote's data once, plus the
    // heads of the requests (one per piece: src/remote/outstanding.ts PieceRule).
    const heads = headerBytes(await nginx.accessLog());
    assert.ok(second.spent - heads < report.leftBytes + 30_000, `second session spent ${second.spent} (${heads} of heads), needed ${report.leftBytes}`);
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
    const running = runPaquete(['sync', '-C', 'w5'], { cwd: dir, env: FAST_LINK });
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
    const heads = headerBytes(await nginx.accessLog());
    assert.ok(done.spent - heads < st.total.missingBytes + 30_000, `resumed session spent ${done.spent} (${heads} of heads) for ${st.total.missingBytes} missing`);
  });

  test('a stalled link times out and is retried from where it stopped; a link that stays stalled ends with exit 4', async () => {
    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', proxy.url, 'w6', '--trust', 'pub.key.pub'], dir);
    // Once, 3 MB in (every request is a piece far smaller than that).
    proxy.stallAfterBytes(3_000_000, Infinity, { scope: 'total' });
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

  test('kill -9 at random points: the tree ends byte-identical and the wire total stays within 2% of one session plus extra headers, by construction', async (t) => {
    // The reference: one uninterrupted session straight from nginx.
    await paquete(['init', nginx.url, 'ref', '--trust', 'pub.key.pub'], dir);
    await nginx.clearLog();
    await paquete(['sync', '-C', 'ref'], dir);
    const reference = await nginx.wireBytes();
    const refHeaders = headerBytes(await nginx.accessLog());

    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', proxy.url, 'w7', '--trust', 'pub.key.pub'], dir);
    // A park-like rate: the sender goes on at it while a loaded machine tears a killed process
    // (and its sockets) down, so what a kill loses is what was asked for and not yet landed.
    proxy.throttle(700_000);
    proxy.resetStats();
    await nginx.clearLog();
    const syncs = await killLoop(proxy, () => runPaquete(['sync', '-C', 'w7'], { cwd: dir, env: FAST_LINK }), {
      check: () => void checkNoWrongFiles(source, join(dir, 'w7')),
    });
    const killed = syncs.filter((s) => s.killAfter !== undefined);
    assert.ok(killed.length >= 2, `only ${killed.length} kills landed`);
    assert.equal(syncs.at(-1)!.result.code, 0, 'the loop ends with a sync that completes');
    assert.deepEqual(treeDigest(join(dir, 'w7')), source);
    await paquete(['verify', '-C', 'w7'], dir);
    // Nothing half-done is left behind: no temp file of a killed assembly, no frame prefix, no
    // range journal or index prefix (each is used by the next session, then deleted), and the
    // finished sync cleared the mark that made the syncs after a kill ask in small pieces.
    assert.deepEqual(readdirSync(join(dir, 'w7', '.paquete', 'tmp')).filter((n) => n.endsWith('.part') || n === 'sync.running'), []);
    const log = await nginx.accessLog();
    // Every request is a bounded piece (src/remote/outstanding.ts PieceRule), the first sync's too: no
    // sync here receives the 2 MiB past which a piece may grow beyond its floor.
    const asked = log
      .filter((e) => /^\/(frames|packs)\//.test(e.uri))
      .map((e) => /^bytes=(\d+)-(\d+)$/.exec(e.range ?? ''))
      .map((m) => (m ? Number(m[2]) - Number(m[1]) + 1 : Infinity));
    assert.ok(asked.every((n) => n <= PIECES_CLEAN.floor), `a request asked for ${Math.max(...asked)} bytes`);
    const firstSyncs = asked.filter((n) => n > PIECES_AFTER_KILL.floor).length;
    assert.ok(firstSyncs <= Math.ceil(killed[0].killAfter! / PIECES_AFTER_KILL.floor), `${firstSyncs} requests asked for more than ${PIECES_AFTER_KILL.floor} bytes: only the first sync's may`);
    // The server's own count: the fault proxy is the hotspot (both directions), nginx's log gives
    // the heads of every request it answered.
    const wire = proxy.stats.bytesToClient + proxy.stats.bytesFromClient;
    const extraHeaders = headerBytes(log) - refHeaders;
    const beyond = ((wire - extraHeaders) / reference - 1) * 100;
    // What a kill can lose, by construction: the body of the piece under way, whatever the load
    // does to the time the machine takes to tear the process down. The first sync (no kill
    // before it) asks PIECES_CLEAN's pieces, every later one PIECES_AFTER_KILL's; a sync killed
    // after `killAfter` bytes has received about that many (a piece grows only with what came,
    // and none here gets past its floor).
    const allowed = killed.reduce((n, s, i) => n + pieceSize(i === 0 ? PIECES_CLEAN : PIECES_AFTER_KILL, s.killAfter!), 0);
    t.diagnostic(
      `${killed.length} kills: ${wire} bytes through the proxy in ${log.length} requests, one session ${reference}; ` +
        `${extraHeaders} bytes of extra heads, ${beyond.toFixed(2)}% beyond those; by construction at most ${allowed} (${((allowed / reference) * 100).toFixed(2)}%)`,
    );
    // Each kill lost at most its piece: a kill that cost more (a range or frame started over,
    // landed bytes left unused) breaks this whatever the load.
    assert.ok(wire <= reference + extraHeaders + allowed, `${wire} bytes on the wire vs ${reference} for one session + ${extraHeaders} of extra heads + ${allowed} for ${killed.length} pieces`);
    // The kill points are the same every run (bytes, not seconds: test/helpers/kill-loop.ts), so
    // what the kills may lose is fixed too, and it is under the 2%.
    assert.ok(allowed <= reference * 0.02, `${killed.length} kills may lose ${allowed} bytes, more than 2% of ${reference}`);
    // Issue 12.5, literally: within 2% of one session plus the extra requests' heads.
    assert.ok(wire <= reference * 1.02 + extraHeaders, `${killed.length} kills: ${wire} bytes on the wire vs ${reference} for one session (+2% = ${Math.round(reference * 1.02)}) + ${extraHeaders} bytes of extra heads`);
  });
});
