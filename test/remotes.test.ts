/**
 * Several remotes in order: a friend's `paquete serve` on the LAN first (free), the paid
 * remote last. Only paid bytes count against the budget, checked against nginx's access log.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';

after(cleanupAll);

const paquete = paqueteExpecting({ PAQUETE_BACKOFF: '0.05' });

async function serve(workDir: string): Promise<string> {
  const proc = runPaquete(['serve', '--port', '0', '-C', workDir]);
  onCleanup(() => void proc.kill('SIGKILL'));
  await proc.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' });
  return `${/at (http:\/\/\S+?)\/?\n/.exec(proc.stdout())![1]}/remote/`;
}

describe('a LAN peer before the paid remote', () => {
  let dir: string;
  let nginx: NginxServer;
  before(async () => {
    dir = await tmpDir('paquete-remotes-');
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 8; i++) files[`docs/d${i}.bin`] = pseudoRandom(200_000, i + 1);
    for (let i = 0; i < 8; i++) files[`lib/l${i}.bin`] = pseudoRandom(200_000, i + 101);
    writeTree(join(dir, 'site'), files);
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    nginx = await startNginx(join(dir, 'remote'));
    onCleanup(() => nginx.stop());
    // The friend went to the park and brought the docs only.
    await paquete(['init', nginx.url, 'friend', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'friend', '--want', 'site/docs/**'], dir);
  });

  test('what the friend has costs nothing; only the rest is paid, within the budget', async () => {
    const peer = await serve(join(dir, 'friend'));
    await paquete(['init', nginx.url, 'me', '--trust', 'pub.key.pub'], dir);
    const list = await paquete(['remote', 'add', peer, '--free', '-C', 'me'], dir);
    assert.match(list.stdout, new RegExp(`^free  ${peer}\\npaid  ${nginx.url}\\n$`));
    await nginx.clearLog();
    const budget = 2_000_000;
    const r = JSON.parse((await paquete(['sync', '-C', 'me', '--budget', String(budget), '--json'], dir)).stdout);
    assert.equal(r.completeFiles, 16);
    assert.deepEqual(treeDigest(join(dir, 'me/site')), treeDigest(join(dir, 'site')));
    const log = await nginx.accessLog();
    const paidWire = await nginx.wireBytes();
    assert.equal(r.spent, paidWire, 'the budget counts exactly the paid bytes');
    assert.ok(paidWire <= budget);
    // The docs (1.6 MB) came from the friend: the paid remote sent only the lib files and the index.
    const body = log.reduce((n, e) => n + e.bodyBytesSent, 0);
    assert.ok(body < 1_700_000, `paid remote sent ${body} body bytes`);
    assert.ok(body > 1_600_000, `paid remote sent ${body} body bytes; the lib files are 1.6 MB`);
  });

  test('a peer that is gone is skipped and the paid remote serves everything', async () => {
    await paquete(['init', nginx.url, 'me2', '--trust', 'pub.key.pub'], dir);
    await paquete(['remote', 'add', 'http://127.0.0.1:9/remote/', '--free', '-C', 'me2'], dir);
    const r = await paquete(['sync', '-C', 'me2'], dir);
    assert.match(r.stderr, /127\.0\.0\.1:9.*trying the next remote/);
    assert.deepEqual(treeDigest(join(dir, 'me2/site')), treeDigest(join(dir, 'site')));
  });
});
