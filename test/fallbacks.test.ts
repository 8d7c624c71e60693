/**
 * Fallbacks never strand a user (issue 12, item 6): a mirror without frames/ or updates/ is read
 * as records; a free remote with another publisher's key or a bad signature is skipped with one
 * warning while the paid remote serves the sync. Against real nginx.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { cleanupAll, onCleanup, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { setRemotes } from './helpers/workdirs.js';

after(cleanupAll);

const paquete = paqueteExpecting({ PAQUETE_RETRIES: '1', PAQUETE_BACKOFF: '0.01' });

describe('fallbacks', () => {
  let dir: string;
  let nginx: NginxServer;
  let source: Record<string, string>;

  before(async () => {
    dir = await tmpDir('paquete-fallbacks-');
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 6; i++) files[`f${i}.bin`] = pseudoRandom(20_000 + i * 15_000, i + 7);
    writeTree(join(dir, 'site'), files);
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    source = Object.fromEntries(Object.entries(treeDigest(join(dir, 'site'))).map(([p, d]) => [`site/${p}`, d]));
    nginx = await startNginx(join(dir, 'remote'));
    onCleanup(() => nginx.stop());
  });

  test('a mirror without frames/, or without updates/, falls back to records', async () => {
    for (const lacking of ['frames', 'updates']) {
      const mirror = join(dir, `mirror-no-${lacking}`);
      cpSync(join(dir, 'remote'), mirror, { recursive: true });
      rmSync(join(mirror, lacking), { recursive: true, force: true });
      const ng = await startNginx(mirror);
      onCleanup(() => ng.stop());
      const w = `no-${lacking}`;
      await paquete(['init', ng.url, w, '--trust', 'pub.key.pub'], dir);
      const r = await paquete(['sync', '-C', w], dir);
      assert.deepEqual(treeDigest(join(dir, w)), source, `a mirror without ${lacking}/`);
      // Not a test that cannot fail: the sync did want the missing part, and went on without it.
      const log = await ng.accessLog();
      assert.ok(log.some((e) => e.uri.startsWith(`/${lacking}/`) && e.status === 404), `${lacking}/ was asked for`);
      assert.ok(r.stderr.split('\n').filter(Boolean).length <= 1, `at most one line of warning: ${r.stderr}`);
    }
  });

  test('a free remote with another publisher\'s key, or a bad signature, is skipped with one warning', async () => {
    await paquete(['keygen', '--out', 'other.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote-other', '--key', 'other.key'], dir);
    const tampered = join(dir, 'remote-tampered');
    cpSync(join(dir, 'remote'), tampered, { recursive: true });
    const text = readFileSync(join(tampered, 'manifest.json'), 'utf8');
    writeFileSync(join(tampered, 'manifest.json'), text.replace(/"serial":\s*(\d+)/, (_m, n) => `"serial":${Number(n) + 7}`));
    for (const [free, why] of [[join(dir, 'remote-other'), /signed by|trusts/], [tampered, /signed|altered|signature/]] as const) {
      const w = `skip-${free.endsWith('other') ? 'other' : 'tampered'}`;
      await paquete(['init', nginx.url, w, '--trust', 'pub.key.pub'], dir);
      setRemotes(join(dir, w), [{ location: free, free: true }, { location: nginx.url }]);
      const r = await paquete(['sync', '-C', w], dir);
      assert.deepEqual(treeDigest(join(dir, w)), source);
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], why);
      assert.match(lines[0], /skipping this free remote/);
    }
  });
});
