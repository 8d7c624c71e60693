import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startNginx } from './helpers/nginx.js';
import { startFaultProxy } from './helpers/faultproxy.js';
import { cleanupAll, onCleanup, paqueteBin, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, writeTree } from './helpers/trees.js';

after(cleanupAll);

const LINK = 300_000; // bytes per second: the park link of issue 17

const paquete = paqueteExpecting();

const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const parseRate = (s: string): number | undefined => {
  const m = /([\d.]+) (B|kB|MB|GB)\/s/.exec(s);
  return m ? Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2] as 'B']! : undefined;
};

// A sync inside a real terminal (tmux) on a link throttled to 300 kB/s: what the screen shows.
test('the progress line on a throttled link, at 80 and 120 columns: one line, bytes against the budget, a rate no faster than the link', async () => {
  const dir = await tmpDir('paquete-term-');
  // Incompressible bytes: the link, not zstd, sets the time (~8 s at 300 kB/s, however busy the machine).
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 12; i++) files[`f${String(i).padStart(2, '0')}.bin`] = pseudoRandom(200_000, 40 + i);
  writeTree(join(dir, 'site'), files);
  await paquete(['keygen', '--out', 'pub.key'], dir);
  await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key', '--no-solid', '--updates-from', '0'], dir);
  const nginx = await startNginx(join(dir, 'remote'));
  onCleanup(() => nginx.stop());

  const screens = await Promise.all(
    [80, 120].map(async (width) => {
      const proxy = await startFaultProxy(nginx.port);
      onCleanup(() => proxy.close());
      const work = `work${width}`;
      await paquete(['init', proxy.url, work, '--trust', 'pub.key.pub'], dir);
      proxy.throttle(LINK);
      const session = `paquete-test-${process.pid}-${width}`;
      tmux('new-session', '-d', '-s', session, '-x', String(width), '-y', '10', '-c', dir,
        `${process.execPath} ${paqueteBin} sync -C ${work} --budget 5MB; echo EXIT=$?; sleep 600`);
      onCleanup(() => {
        try {
          tmux('kill-session', '-t', session);
        } catch {
          // already gone
        }
      });
      const seen: string[] = [];
      for (;;) {
        const screen = tmux('capture-pane', '-p', '-J', '-t', session); // -J: a wrapped line comes back joined
        seen.push(screen);
        if (/EXIT=\d+/.test(screen)) break;
        await sleep(200);
      }
      return { width, seen };
    }),
  );

  for (const { width, seen } of screens) {
    const last = seen[seen.length - 1];
    assert.match(last, /EXIT=0/, last);
    const lines = seen.flatMap((s) => s.split('\n')).filter((l) => /^sync [·█░]/.test(l));
    assert.ok(lines.length > 0, `a progress line was seen at ${width} columns:\n${seen.join('\n---\n')}`);
    for (const l of lines) {
      assert.ok(l.length < width, `${l.length} columns at width ${width}: ${JSON.stringify(l)}`);
      assert.match(l, /\/ 5\.00 MB budget/, l);
      const rate = parseRate(l);
      // One window is at least a second, so a rate can beat the link by one burst at most.
      if (rate !== undefined) assert.ok(rate <= LINK * 1.5, `rate ${rate} B/s shown on a ${LINK} B/s link: ${l}`);
      const files = /files (\d+)\/(\d+)/.exec(l);
      if (files) assert.ok(Number(files[1]) <= Number(files[2]), l);
    }
    assert.ok(lines.some((l) => /files \d+\/12/.test(l)), `files done out of planned at ${width}: ${lines.join('\n')}`);
  }
});
