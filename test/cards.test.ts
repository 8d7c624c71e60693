/**
 * Cards add up (issue 12): random sequences of budgeted cards, each maybe cut by the link or
 * killed with -9, with new snapshots published between them, against real nginx behind the fault
 * proxy. Per card, the proxy's count stays within the budget and a card that ends on its own with
 * its budget covering the index completes files; at the end the tree is the final snapshot byte
 * for byte, and everything the cards spent is within 10% of one clean session of a newcomer to
 * that snapshot, plus the headers of the extra requests. Seeded and bounded: small generated
 * trees, a few runs.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { startNginx, type LogEntry } from './helpers/nginx.js';
import { startFaultProxy } from './helpers/faultproxy.js';
import { cleanupAll, runPaquete, tmpDir } from './helpers/tmp.js';
import { editText, pseudoRandom, textFile, treeDigest, writeTree } from './helpers/trees.js';

after(cleanupAll);

const LINK = { PAQUETE_RETRIES: '2', PAQUETE_BACKOFF: '0.05', PAQUETE_STALL_TIMEOUT: '30', PAQUETE_CONNECT_TIMEOUT: '5' };
/** Versions published one after another: text that changes a little, a binary that stays. */
const VERSIONS = 3;

function version(v: number): Record<string, string | Uint8Array> {
  const files: Record<string, string | Uint8Array> = {};
  for (let i = 0; i < 14; i++) {
    let text = textFile(i + 1, 150 + i * i * 12);
    for (let k = 1; k <= v; k++) if ((i + k) % 3 === 0) text = editText(text, 100 * k + i, 4);
    files[`src/m${String(i).padStart(2, '0')}.js`] = text;
  }
  files['assets/logo.bin'] = pseudoRandom(30_000, 7);
  if (v > 0) files[`src/new-in-${v}.js`] = textFile(50 + v, 300);
  return files;
}

async function paquete(args: string[], cwd: string, env: Record<string, string> = LINK) {
  return runPaquete(args, { cwd, env }).done;
}

async function ok(args: string[], cwd: string) {
  const r = await paquete(args, cwd);
  assert.equal(r.code, 0, `paquete ${args.join(' ')}: ${r.stderr}`);
  return r;
}

const headersOf = (log: LogEntry[]) => log.reduce((n, e) => n + e.bytesSent - e.bodyBytesSent + e.requestLength, 0);

/** Bytes a client keeps durably: its packs and frame prefixes (what a kill must not lose). */
function keptBytes(work: string): number {
  let n = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      // A running sync renames its temp files (tree.json.tmp-…) between the listing and the stat.
      else n += statSync(join(dir, e.name), { throwIfNoEntry: false })?.size ?? 0;
    }
  };
  walk(join(work, '.paquete'));
  return n;
}

type Step = { kind: 'publish' } | { kind: 'card'; share: number; fault: 'none' | 'cut' | 'kill'; at: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Step>({ kind: 'publish' }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('card' as const),
      share: fc.double({ min: 0.2, max: 0.7, noNaN: true }),
      fault: fc.constantFrom('none' as const, 'cut' as const, 'kill' as const),
      at: fc.double({ min: 0.2, max: 0.8, noNaN: true }),
    }),
  },
);

let root: string;
let published: string[];

before(async () => {
  root = await tmpDir('paquete-cards-');
  await ok(['keygen', '--out', 'pub.key'], root);
  // Each version's tree, and a remote holding version 0 to copy for each run.
  published = [];
  for (let v = 0; v < VERSIONS; v++) {
    writeTree(join(root, `v${v}`, 'site'), version(v));
    published.push(join(root, `v${v}`, 'site'));
  }
  await ok(['publish', published[0], '--to', 'remote0', '--key', 'pub.key'], root);
});

test('any sequence of cards, cuts, kills and releases adds up to one clean session (+10%, + extra headers); per card within budget (property)', async (t) => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 5 }), async (steps) => {
      const dir = join(root, `run${run++}`);
      cpSync(join(root, 'remote0'), join(dir, 'remote'), { recursive: true });
      const nginx = await startNginx(join(dir, 'remote'));
      const proxy = await startFaultProxy(nginx.url);
      try {
        // The size of a first download of version 0: what card budgets are shares of.
        await ok(['init', nginx.url, join(dir, 'probe'), '--trust', join(root, 'pub.key.pub')], root);
        await nginx.clearLog();
        await ok(['sync', '-C', join(dir, 'probe')], root);
        const first = await nginx.wireBytes();

        await ok(['init', proxy.url, join(dir, 'w'), '--trust', join(root, 'pub.key.pub')], root);
        const work = join(dir, 'w');
        let v = 0;
        let total = 0;
        let headers = 0;
        const card = async (budget: number | undefined, fault: 'none' | 'cut' | 'kill', at: number) => {
          proxy.reset();
          proxy.resetStats();
          await nginx.clearLog();
          const args = ['sync', '-C', work, '--json', ...(budget !== undefined ? ['--budget', String(budget)] : [])];
          const where = Math.round((budget ?? first) * at);
          if (fault === 'cut') proxy.cutAfterBytes(where, { scope: 'total' });
          if (fault === 'kill') proxy.stallAfterBytes(where, Infinity, { scope: 'total' });
          const running = runPaquete(args, { cwd: root, env: LINK });
          let killed = false;
          if (fault === 'kill') {
            let ended = false;
            void running.done.then(() => (ended = true));
            while (!ended && proxy.stats.bytesToClient < where) await new Promise((r) => setTimeout(r, 20));
            // The link is held; once the client has kept what reached it, the process dies.
            let last = -1;
            for (let still = 0; !ended && still < 10; ) {
              const now = keptBytes(work);
              still = now === last ? still + 1 : 0;
              last = now;
              await new Promise((r) => setTimeout(r, 100));
            }
            if (!ended) {
              running.kill('SIGKILL');
              killed = true;
            }
          }
          const r = await running.done;
          proxy.reset();
          const wire = proxy.stats.bytesToClient + proxy.stats.bytesFromClient;
          total += wire;
          headers += headersOf(await nginx.accessLog());
          // Cut or killed too: every request, retry and redirect hop is reserved from the budget
          // before it is sent (src/remote/budget.ts).
          if (budget !== undefined) assert.ok(wire <= budget, `card of ${budget} bytes (${fault}) spent ${wire} (proxy's count)`);
          if (killed) return;
          assert.ok([0, 3, 4].includes(r.code ?? -1), `sync exited ${r.code}: ${r.stderr}`);
          if (fault === 'none' && r.code !== 4) {
            const report = JSON.parse(r.stdout) as { completeFiles: number; wantedFiles: number; placed: string[] };
            if (report.completeFiles < report.wantedFiles) assert.ok(report.placed.length > 0, `a card of ${budget} bytes completed no file: ${r.stdout.slice(0, 400)}`);
          }
        };
        for (const s of steps) {
          if (s.kind === 'publish') {
            if (v + 1 >= VERSIONS) continue;
            v++;
            await ok(['publish', published[v], '--to', join(dir, 'remote'), '--key', join(root, 'pub.key')], root);
          } else await card(Math.round(first * s.share), s.fault, s.at);
        }
        await card(undefined, 'none', 0);
        const want = Object.fromEntries(Object.entries(treeDigest(published[v])).map(([p, d]) => [`site/${p}`, d]));
        assert.deepEqual(treeDigest(work), want, 'the tree is the final snapshot');

        // One clean session of a newcomer to the final snapshot, straight from nginx.
        await ok(['init', nginx.url, join(dir, 'ref'), '--trust', join(root, 'pub.key.pub')], root);
        await nginx.clearLog();
        await ok(['sync', '-C', join(dir, 'ref')], root);
        const reference = await nginx.wireBytes();
        const extra = headers - headersOf(await nginx.accessLog());
        t.diagnostic(`${JSON.stringify(steps.map((s) => (s.kind === 'publish' ? 'P' : `${s.share.toFixed(2)}${s.fault[0]}`)))}: ${total} bytes, clean ${reference}, extra headers ${extra}`);
        assert.ok(total <= reference * 1.1 + extra, `cards spent ${total}; one clean session ${reference} (+10% = ${Math.round(reference * 1.1)}) + ${extra} extra header bytes`);
      } catch (e) {
        t.diagnostic(`run ${run - 1} failed: ${(e as Error).message}`);
        throw e;
      } finally {
        await proxy.close();
        await nginx.stop();
      }
    }),
    { numRuns: 3, seed: 20261201, endOnFailure: true },
  );
});
