/**
 * A kill -9 loop through the fault proxy (issue 12.5): syncs started one after the other, each
 * killed once the proxy has carried a drawn number of bytes to it, until one completes.
 *
 * The kill points are bytes, not seconds: a loaded machine slows a sync, and a sync killed on a
 * timer is then killed more often, so the count of kills (and what they may lose) would be the
 * load's. Drawn from a seeded generator, they are the same in every run: 230 kB to 1.63 MB, what
 * 20 kB and then 0.3-2.3 s carry at 700 kB/s (the loop this replaced).
 */
import type { FaultProxy } from './faultproxy.js';
import { whenBytesFlow } from './faultproxy.js';
import type { Running, RunResult } from './tmp.js';

export interface KilledSync {
  /** Bytes through the proxy both ways for this sync (the hotspot's count). */
  wire: number;
  /** Bytes to the client after which it was killed; undefined for the sync that completed. */
  killAfter?: number;
  result: RunResult;
}

/** The byte counts after which the syncs of a loop are killed: the same every run for a seed. */
export function killPoints(seed = 12345): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return Math.round(230_000 + (s / 2 ** 31) * 1_400_000);
  };
}

/**
 * Runs `start()` until a sync exits 0 (at most `rounds`), killing each with SIGKILL once `next()`
 * bytes went to it through `proxy`. Waits for the proxy to see each killed client's sockets
 * closed before the next starts, so each sync's count includes what came after its kill.
 * `check` runs after every kill (the tree holds no wrong file, say).
 */
export async function killLoop(
  proxy: FaultProxy,
  start: () => Running,
  opts: { next?: () => number; rounds?: number; check?: () => void } = {},
): Promise<KilledSync[]> {
  const next = opts.next ?? killPoints();
  const out: KilledSync[] = [];
  const count = () => proxy.stats.bytesToClient + proxy.stats.bytesFromClient;
  for (let round = 0; round < (opts.rounds ?? 40); round++) {
    const before = count();
    const killAfter = next();
    const running = start();
    await whenBytesFlow(proxy, killAfter, running.done);
    running.kill('SIGKILL');
    const result = await running.done;
    await proxy.whenIdle();
    const killed = result.code !== 0;
    out.push({ wire: count() - before, killAfter: killed ? killAfter : undefined, result });
    if (!killed) break;
    if (result.signal !== 'SIGKILL') throw new Error(`sync failed on its own (exit ${result.code}): ${result.stderr}`);
    opts.check?.();
  }
  return out;
}
