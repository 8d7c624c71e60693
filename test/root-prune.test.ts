/**
 * Root deltas (docs/FORMATS.md §Root delta) are retained as updates are (§Pruning): only the
 * newest manifest entry names one, and a `.rd` no entry names goes once it has been unnamed for
 * `--prune-after` (recorded in .paquete-prune.json meanwhile).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { writeWheel } from './helpers/wheels.js';
import { decodeManifest } from '../src/snapshot/manifest.js';

after(cleanupAll);
const paquete = paqueteExpecting();
const project = (i: number, version = '1.0') => ({ name: `q${i}`, version, modules: { [`q${i}/__init__.py`]: `V = "${version}"\n` } });

test('only the newest entry names a root delta; unnamed .rd files are pruned after the grace period', async () => {
  const dir = await tmpDir('paquete-root-prune-');
  for (let i = 0; i < 5; i++) writeWheel(join(dir, 'wheels'), project(i));
  await paquete(['keygen', '--out', 'pub.key'], dir);
  const publish = (after: string) => paquete(['publish', 'pypi:wheels', '--to', 'remote', '--key', 'pub.key', '--level', '3', '--prune-after', after], dir);
  const manifest = () => decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'remote').body;
  const deltas = () => readdirSync(join(dir, 'remote/roots')).filter((n) => n.endsWith('.rd')).sort();
  await publish('7d');
  for (const v of ['1.1', '1.2']) {
    writeWheel(join(dir, 'wheels'), project(1, v));
    await publish('7d');
  }
  let m = manifest();
  assert.deepEqual(m.snapshots.slice(0, -1).map((e) => e.root?.delta), m.snapshots.slice(0, -1).map(() => undefined), 'older entries name no root delta');
  const newest = m.snapshots[m.snapshots.length - 1].root!.delta!;
  // Within the grace period the previous snapshot's delta stays (a client mid-sync may read it), recorded.
  assert.equal(deltas().length, 2);
  const record = JSON.parse(readFileSync(join(dir, 'remote/.paquete-prune.json'), 'utf8'));
  assert.equal(Object.keys(record.unnamed).filter((p) => p.startsWith('roots/')).length, 1);
  writeWheel(join(dir, 'wheels'), project(2, '1.1'));
  await publish('0');
  m = manifest();
  const latest = m.snapshots[m.snapshots.length - 1].root!.delta!;
  assert.notEqual(latest.name, newest.name);
  assert.deepEqual(deltas(), [`${latest.name}.rd`]);
});
