/**
 * The budget as a hard limit on the wire (issue 12, items 1 and 4), against real nginx and the
 * fault proxy (the random-fault property is in budget-property.test.ts, fallbacks in
 * fallbacks.test.ts). Every bound is checked on the server's own count: nginx's access log when the
 * client talks to nginx directly, the fault proxy's byte counters (what the "hotspot" carried,
 * both directions) when it sits in between (nginx then counts what it pushed into the proxy,
 * which is more than what reached the client).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { startFaultProxy, whenBytesFlow } from './helpers/faultproxy.js';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { setRemotes, carried, checkNoWrongFiles } from './helpers/workdirs.js';

after(cleanupAll);

/** Fast failure settings, so a dead link ends a sync in seconds. */
const FAST_LINK = { PAQUETE_RETRIES: '3', PAQUETE_BACKOFF: '0.01', PAQUETE_STALL_TIMEOUT: '1', PAQUETE_CONNECT_TIMEOUT: '2' };

const paquete = paqueteExpecting(FAST_LINK);

describe('the budget is a hard limit on the wire', () => {
  let dir: string;
  let nginx: NginxServer;
  let source: Record<string, string>;
  let clean: number;

  before(async () => {
    dir = await tmpDir('paquete-budget-');
    // Incompressible, so bytes on the wire track the plan: about 950 kB in 12 files.
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 12; i++) files[`f${String(i).padStart(2, '0')}.bin`] = pseudoRandom(30_000 + i * 9_000, i + 1);
    writeTree(join(dir, 'site'), files);
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    source = Object.fromEntries(Object.entries(treeDigest(join(dir, 'site'))).map(([p, d]) => [`site/${p}`, d]));
    nginx = await startNginx(join(dir, 'remote'));
    onCleanup(() => nginx.stop());
    await paquete(['init', nginx.url, 'ref', '--trust', 'pub.key.pub'], dir);
    await nginx.clearLog();
    await paquete(['sync', '-C', 'ref'], dir);
    clean = await nginx.wireBytes();
  });

  test('a link cut every 2 kB, then every 800 B: the hotspot carries at most --budget, exit 3, progress kept', async (t) => {
    const budget = 150_000;
    for (const cut of [2000, 800]) {
      const proxy = await startFaultProxy(nginx.url);
      onCleanup(() => proxy.close());
      const w = `cut${cut}`;
      await paquete(['init', proxy.url, w, '--trust', 'pub.key.pub'], dir);
      proxy.resetStats();
      proxy.cutAfterBytes(cut, { scope: 'request' });
      const r = await paquete(['sync', '-C', w, '--budget', String(budget)], dir, 3);
      const wire = carried(proxy);
      t.diagnostic(`cut every ${cut} B: ${wire} bytes carried for a ${budget}-byte budget (${((100 * wire) / budget).toFixed(1)}%), one clean session ${clean}`);
      assert.ok(wire <= budget, `cut every ${cut} B: ${wire} bytes carried for a ${budget}-byte budget`);
      assert.match(r.stdout + r.stderr, /budget/);
      const placed = checkNoWrongFiles(source, join(dir, w));
      assert.ok(placed > 0, 'files completed before the budget ran out are in place');
      // What came is kept: an unlimited clean session brings only the rest.
      proxy.reset();
      await paquete(['sync', '-C', w], dir);
      assert.deepEqual(treeDigest(join(dir, w)), source);
    }
  });

  test('an index the budget cannot cover is refused before a byte of it is asked for', async () => {
    // 600 small files: an index of some 18 kB.
    const files: Record<string, string> = {};
    for (let i = 0; i < 600; i++) files[`d${i % 30}/n${i}.txt`] = `note ${i}\n`;
    writeTree(join(dir, 'many'), files);
    await paquete(['publish', 'many', '--to', 'remote-many', '--key', 'pub.key'], dir);
    const ng = await startNginx(join(dir, 'remote-many'));
    onCleanup(() => ng.stop());
    const manifest = JSON.parse(readFileSync(join(dir, 'remote-many', 'manifest.json'), 'utf8'));
    const indexSize: number = manifest.signed.snapshots.at(-1).size;
    assert.ok(indexSize > 10_000, `index of ${indexSize} bytes`);
    // A budget under the whole index but over the layers and the stream: the newcomer derives.
    await paquete(['init', ng.url, 'many-d', '--trust', 'pub.key.pub'], dir);
    await ng.clearLog();
    const budget = indexSize - 2_000;
    await paquete(['sync', '-C', 'many-d', '--budget', String(budget)], dir);
    assert.ok(!(await ng.accessLog()).some((e) => e.uri.startsWith('/snapshots/')), 'the layers, not the whole index');
    assert.ok((await ng.wireBytes()) <= budget, `${await ng.wireBytes()} bytes for a ${budget}-byte budget`);
    // A budget that covers the manifest and neither the layers nor the whole index asks for neither.
    await paquete(['init', ng.url, 'many-w', '--trust', 'pub.key.pub'], dir);
    await ng.clearLog();
    const manifestCost = readFileSync(join(dir, 'remote-many', 'manifest.json')).length + 600;
    const r = await paquete(['sync', '-C', 'many-w', '--budget', String(manifestCost + 300)], dir, 3);
    assert.match(r.stderr, /does not cover snapshots\//);
    const log = await ng.accessLog();
    assert.deepEqual(log.map((e) => e.uri), ['/manifest.json'], 'only the manifest was asked for');
  });

  test('a hotspot answering the index with 60 MB is hung up on at once: exit 4, the budget holds', async () => {
    const remote = join(dir, 'remote-huge');
    cpSync(join(dir, 'remote'), remote, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(remote, 'manifest.json'), 'utf8'));
    const name: string = manifest.signed.snapshots.at(-1).name;
    writeFileSync(join(remote, 'snapshots', `${name}.snap`), Buffer.alloc(60_000_000, 1));
    // The index a newcomer reads first, its file layer, answered so too.
    writeFileSync(join(remote, 'layers', `${manifest.signed.snapshots.at(-1).layers.files.name}.files`), Buffer.alloc(60_000_000, 1));
    const ng = await startNginx(remote);
    onCleanup(() => ng.stop());
    const proxy = await startFaultProxy(ng.url);
    onCleanup(() => proxy.close());
    // A fast park link (2 MB/s): what a server pushes past a hang-up is what is in flight.
    proxy.throttle(2_000_000);
    await paquete(['init', proxy.url, 'huge-w', '--trust', 'pub.key.pub'], dir);
    proxy.resetStats();
    const budget = 1_000_000;
    const t0 = Date.now();
    const r = await paquete(['sync', '-C', 'huge-w', '--budget', String(budget)], dir, 4);
    assert.match(r.stderr, /more than the \d+ it can be/);
    assert.ok(carried(proxy) <= budget, `${carried(proxy)} bytes carried for a ${budget}-byte budget`);
    assert.ok(Date.now() - t0 < 20_000);
  });

  test('a free remote redirecting to a paid host: that hop and all after it are paid, within --budget', async () => {
    // The paid host serves the remote; the "free" LAN address only redirects there.
    const redirector = await startNginx(join(dir, 'site'), { extraConfig: `    location ~ ^/ { return 302 ${nginx.url.replace(/\/$/, '')}$request_uri; }` });
    onCleanup(() => redirector.stop());
    await paquete(['init', nginx.url, 'redir-w', '--trust', 'pub.key.pub'], dir);
    setRemotes(join(dir, 'redir-w'), [{ location: redirector.url, free: true }]);
    await nginx.clearLog();
    const budget = 100_000;
    const r = await paquete(['sync', '-C', 'redir-w', '--budget', String(budget), '--json'], dir, 3);
    const paid = await nginx.wireBytes();
    assert.ok(paid > 0 && paid <= budget, `the paid host served ${paid} bytes for a ${budget}-byte budget`);
    assert.ok((await redirector.accessLog()).length > 0, 'the free remote was asked first');
    assert.match(r.stdout + r.stderr, /budget/);
  });

  test('a link trickling a byte a second trips --min-rate: exit 4, what came is kept, the next sync resumes', async () => {
    const proxy = await startFaultProxy(nginx.url);
    onCleanup(() => proxy.close());
    await paquete(['init', proxy.url, 'slow-w', '--trust', 'pub.key.pub'], dir);
    // A 30 s stall timeout that a trickle resets forever; the rate is judged over 1 s here.
    const env = { ...FAST_LINK, PAQUETE_STALL_TIMEOUT: '30', PAQUETE_RATE_WINDOW: '1' };
    proxy.throttle(400_000);
    const running = runPaquete(['sync', '-C', 'slow-w', '--min-rate', '1kB'], { cwd: dir, env });
    await whenBytesFlow(proxy, 400_000, running.done);
    proxy.throttle(1); // one byte a second
    const t0 = Date.now();
    const r = await running.done;
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /too slow to be worth paying for/);
    assert.ok(Date.now() - t0 < 15_000, `ended ${Date.now() - t0} ms after the link slowed`);
    const st = JSON.parse((await paquete(['status', '-C', 'slow-w', '--json'], dir)).stdout);
    assert.ok(st.store.chunks > 0, 'chunks received before are kept');
    checkNoWrongFiles(source, join(dir, 'slow-w'));
    proxy.reset();
    proxy.resetStats();
    await paquete(['sync', '-C', 'slow-w'], dir);
    assert.deepEqual(treeDigest(join(dir, 'slow-w')), source);
    assert.ok(carried(proxy) < st.total.missingBytes + 30_000, `resumed with ${carried(proxy)} bytes for ${st.total.missingBytes} missing`);
  });
});
