/**
 * Exit codes and messages of the built CLI against a real nginx (and the fault proxy between):
 * Ctrl-C and SIGTERM during a sync exit 130 and 143 with what was received kept; a budget too
 * small for anything exits 3 and says so; init on a wrong address says "contacting …" first,
 * tries once more (not five times over 31 s) and fails with exit 4 (no server) or 2 (no
 * paquete remote there), without claiming any progress was saved.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startNginx, type NginxServer } from './helpers/nginx.js';
import { startFaultProxy, type FaultProxy } from './helpers/faultproxy.js';
import { cleanupAll, onCleanup, runPaquete, tmpDir, type RunOptions, until } from './helpers/tmp.js';
import { pseudoRandom, writeTree } from './helpers/trees.js';

after(cleanupAll);

const FILES = 20;
const FILE_SIZE = 100_000;

async function paquete(args: string[], cwd: string, expectCode = 0, opts: RunOptions = {}) {
  const r = await runPaquete(args, { cwd, ...opts }).done;
  assert.equal(r.code, expectCode, `paquete ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

let dir: string;
let nginx: NginxServer;
let proxy: FaultProxy;
before(async () => {
  dir = await tmpDir('paquete-cli-net-');
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < FILES; i++) files[`f${String(i).padStart(2, '0')}.bin`] = pseudoRandom(FILE_SIZE, i + 1);
  writeTree(join(dir, 'site'), files);
  await paquete(['keygen', '--out', 'pub.key'], dir);
  // Records only (no update frames): what a session receives is then plain ranges of packs.
  await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key', '--no-solid', '--updates-from', '0'], dir);
  nginx = await startNginx(join(dir, 'remote'));
  onCleanup(() => nginx.stop());
  proxy = await startFaultProxy(nginx.url);
  onCleanup(() => proxy.close());
});

describe('a signal during a sync', () => {
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    test(`${sig} exits ${code}, says so in one line, and keeps what was received`, async () => {
      const work = `w-${sig}`;
      await paquete(['init', proxy.url, work, '--trust', 'pub.key.pub'], dir);
      proxy.reset();
      proxy.resetStats();
      // The link stalls for good after 1 MB: only the signal can end this session (the stall
      // timeout is far beyond the test's own), so a sync that ignored it would be killed.
      const stallAt = 1_000_000;
      proxy.stallAfterBytes(stallAt, Infinity, { scope: 'total' });
      const p = runPaquete(['sync', '-C', work], { cwd: dir, env: { PAQUETE_STALL_TIMEOUT: '600' } });
      await until('the link to stall', () => proxy.stats.bytesToClient >= stallAt);
      // The bytes in the socket's buffers are read and files placed before the signal.
      const placed = () => (existsSync(join(dir, work, 'site')) ? readdirSync(join(dir, work, 'site')).length : 0);
      await until('files to be placed', () => placed() >= 2);
      const before = placed();
      p.kill(sig);
      const r = await p.done;
      proxy.reset();
      assert.equal(r.code, code, `exit ${r.code} signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `paquete: interrupted (${sig}); everything received so far is kept\n  run the same command again to go on\n`);
      const st = JSON.parse((await paquete(['status', '-C', work, '--json'], dir)).stdout);
      assert.ok(st.total.complete >= before, `files placed before the signal (${before}): ${JSON.stringify(st.total)}`);
      assert.ok(st.total.missingBytes <= (FILES - before) * FILE_SIZE, `the store kept the bytes received: ${st.total.missingBytes} still missing`);
      const again = JSON.parse((await paquete(['sync', '-C', work, '--json'], dir)).stdout);
      assert.equal(again.exit, 0);
      assert.equal(again.completeFiles, FILES);
    });
  }
});

describe('the budget', () => {
  test('too small for the index: exit 3, one line', async () => {
    await paquete(['init', nginx.url, 'small1', '--trust', 'pub.key.pub'], dir);
    const r = await paquete(['sync', '-C', 'small1', '--budget', '100', '--json'], dir, 3);
    const o = JSON.parse(r.stdout);
    assert.equal(o.exit, 3);
    assert.equal(o.error.code, 'BUDGET');
    assert.match(r.stderr, /does not cover even the request for manifest\.json: \d{3,4} bytes on the wire, 100 left/);
  });

  test('enough for the index, too small for any file: exit 3, and the summary says why', async () => {
    await paquete(['init', nginx.url, 'probe', '--trust', 'pub.key.pub'], dir);
    const index = JSON.parse((await paquete(['sync', '-C', 'probe', '--dry-run', '--json'], dir)).stdout).spent as number;
    await paquete(['init', nginx.url, 'small2', '--trust', 'pub.key.pub'], dir);
    const budget = index + 5_000;
    const r = await paquete(['sync', '-C', 'small2', '--budget', String(budget)], dir, 3);
    assert.match(r.stdout, /the budget was too small to complete any file \(the cheapest needs 100 kB more\)/);
    assert.match(r.stdout, /stopped by the budget/);
    const again = await paquete(['sync', '-C', 'small2', '--budget', String(budget), '--json'], dir, 3);
    const j = JSON.parse(again.stdout);
    assert.equal(j.error, undefined, again.stdout);
    assert.equal(j.ok, false);
    assert.equal(j.stoppedByBudget, true);
    assert.equal(j.completeFiles, 0);
  });
});

describe('init on a wrong address', () => {
  test('nothing listening: "contacting …" first, one retry, exit 4, no claim of saved progress', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/`;
    const r = await paquete(['init', url, 'nowhere'], dir, 4);
    const lines = r.stderr.split('\n');
    assert.equal(lines[0], `contacting ${url} …`);
    assert.equal(r.stderr.match(/trying again/g)?.length, 1, r.stderr);
    assert.match(r.stderr, /paquete: the network is gone: connect ECONNREFUSED/);
    assert.match(r.stderr, /nothing was created; check the address/);
    assert.doesNotMatch(r.stderr, /progress is saved/);
    assert.equal(existsSync(join(dir, 'nowhere')), false);
    const j = JSON.parse((await paquete(['init', url, 'nowhere', '--json'], dir, 4)).stdout);
    assert.equal(j.error.code, 'NETWORK');
    assert.doesNotMatch(j.error.hint, /progress/);
  });

  test('a server with no paquete remote there: exit 2, and no credentials printed', async () => {
    const url = nginx.url.replace('http://', 'http://ann:s3cret@') + 'nope/';
    const r = await paquete(['init', url, 'nope'], dir, 2);
    assert.match(r.stderr, /^contacting http:\/\/\*\*\*@127\.0\.0\.1:\d+\/nope\/ …\npaquete: /);
    assert.doesNotMatch(r.stderr, /s3cret/);
    assert.equal(existsSync(join(dir, 'nope')), false);
  });

  test('a scheme paquete does not read, or not a URL at all: exit 2 at once', async () => {
    const r = await paquete(['init', 'ftp://mirror.example/x/', 'ftp'], dir, 2);
    assert.match(r.stderr, /^paquete: paquete cannot read ftp:\/\/ remotes/);
    assert.match((await paquete(['init', 'http://[bad/', 'bad'], dir, 2)).stderr, /\npaquete: not a URL: http:\/\/\[bad\/\n$/);
  });
});
