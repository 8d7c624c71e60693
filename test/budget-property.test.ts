/**
 * The budget as a hard limit on the wire under random faults (issue 12, item 1): a property test
 * over sequences of cards, against real nginx and the fault proxy. Every bound is checked on the server's own count: nginx's access log when the
 * client talks to nginx directly, the fault proxy's byte counters (what the "hotspot" carried,
 * both directions) when it sits in between (nginx then counts what it pushed into the proxy,
 * which is more than what reached the client).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { startNginx } from './helpers/nginx.js';
import { startFaultProxy, type FaultProxy } from './helpers/faultproxy.js';
import { cleanupAll, onCleanup, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { setRemotes, carried, checkNoWrongFiles } from './helpers/workdirs.js';

after(cleanupAll);

/** Fast failure settings, so a dead link ends a sync in seconds. */
const FAST_LINK = { PAQUETE_RETRIES: '3', PAQUETE_BACKOFF: '0.01', PAQUETE_STALL_TIMEOUT: '1', PAQUETE_CONNECT_TIMEOUT: '2' };

const paquete = paqueteExpecting(FAST_LINK);

describe('the budget holds under random faults (property)', () => {
  let dir: string;
  let source: Record<string, string>;
  let proxies: { plain: FaultProxy; ignoring: FaultProxy; redirect: FaultProxy };

  before(async () => {
    dir = await tmpDir('paquete-budget-prop-');
    // Small, so a server that ignores Range cannot push more past a hang-up than the rest of a
    // pack (the budget charges exactly that): 8 files, about 180 kB.
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 8; i++) files[`p${i}.bin`] = pseudoRandom(8_000 + i * 6_000, 50 + i);
    writeTree(join(dir, 'site'), files);
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    source = Object.fromEntries(Object.entries(treeDigest(join(dir, 'site'))).map(([p, d]) => [`site/${p}`, d]));
    const plainNginx = await startNginx(join(dir, 'remote'));
    onCleanup(() => plainNginx.stop());
    const ignoringNginx = await startNginx(join(dir, 'remote'), { ignoreRange: true });
    onCleanup(() => ignoringNginx.stop());
    const plain = await startFaultProxy(plainNginx.url);
    const ignoring = await startFaultProxy(ignoringNginx.url);
    // A mirror address that redirects every request to the plain server (through its proxy).
    const redirNginx = await startNginx(join(dir, 'site'), { extraConfig: `    location ~ ^/ { return 302 ${plain.url.replace(/\/$/, '')}$request_uri; }` });
    onCleanup(() => redirNginx.stop());
    const redirect = await startFaultProxy(redirNginx.url);
    proxies = { plain, ignoring, redirect };
    for (const p of Object.values(proxies)) onCleanup(() => p.close());
  });

  const fault = fc.oneof(
    fc.record({ kind: fc.constant('none' as const) }),
    fc.record({ kind: fc.constant('cut' as const), every: fc.integer({ min: 300, max: 30_000 }), reset: fc.boolean() }),
    fc.record({ kind: fc.constant('stall' as const), after: fc.integer({ min: 0, max: 60_000 }) }),
    fc.record({ kind: fc.constant('drops' as const), after: fc.integer({ min: 1_000, max: 100_000 }) }),
  );
  const card = fc.record({
    // From a server that ignores Range, a first request to a pack needs room for PUSH_ALLOWANCE.
    budget: fc.integer({ min: 2_000, max: 600_000 }),
    server: fc.constantFrom('plain' as const, 'ignoring' as const, 'redirect' as const),
    fault,
  });

  test('random cards of cuts, resets, stalls, Range ignored, redirects: per card the hotspot carries <= --budget; exit 0/3/4; progress kept', async (t) => {
    let run = 0;
    const figures: string[] = [];
    await fc.assert(
      fc.asyncProperty(fc.array(card, { minLength: 1, maxLength: 3 }), async (cards) => {
        const w = `w${run++}`;
        await paquete(['init', proxies.plain.url, w, '--trust', 'pub.key.pub'], dir);
        let complete = 0;
        for (const c of cards) {
          setRemotes(join(dir, w), [{ location: proxies[c.server].url }]);
          for (const p of Object.values(proxies)) {
            p.reset();
            p.resetStats();
          }
          // The fault hits the server the data comes from (the redirect's target is `plain`).
          const target = c.server === 'ignoring' ? proxies.ignoring : proxies.plain;
          if (c.fault.kind === 'cut') target.cutAfterBytes(c.fault.every, { scope: 'request', reset: c.fault.reset });
          if (c.fault.kind === 'stall') target.stallAfterBytes(c.fault.after, 1_500, { scope: 'request' });
          if (c.fault.kind === 'drops') target.cutAfterBytes(c.fault.after, { scope: 'connection' });
          const r = await paquete(['sync', '-C', w, '--budget', String(c.budget)], dir, null);
          const wire = Object.values(proxies).reduce((n, p) => n + carried(p), 0);
          figures.push(`${c.server}/${c.fault.kind} ${wire}/${c.budget} exit ${r.code}${r.code ? ` (${r.stderr.split('\n')[0].slice(0, 90)})` : ''}`);
          assert.ok(wire <= c.budget, `${JSON.stringify(c)}: ${wire} bytes carried for a ${c.budget}-byte budget\n${r.stderr}`);
          assert.ok([0, 3, 4].includes(r.code ?? -1), `${JSON.stringify(c)}: exit ${r.code}\n${r.stderr}`);
          assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
          // Progress is kept: files in place are the published ones, and never fewer.
          const now = checkNoWrongFiles(source, join(dir, w));
          assert.ok(now >= complete, `${now} files after ${complete}`);
          complete = now;
          if (r.code === 0) assert.deepEqual(treeDigest(join(dir, w)), source);
        }
        // A last clean card completes the tree from what the others kept.
        for (const p of Object.values(proxies)) p.reset();
        setRemotes(join(dir, w), [{ location: proxies.plain.url }]);
        await paquete(['sync', '-C', w], dir);
        assert.deepEqual(treeDigest(join(dir, w)), source);
      }),
      { numRuns: 4, seed: Number(process.env.PAQUETE_PROPERTY_SEED ?? 20261201), endOnFailure: true },
    );
    t.diagnostic(figures.join('; '));
  });
});
