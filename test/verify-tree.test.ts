import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeTreeState, encodeTreeState } from '../src/workdir/tree-state.js';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';

after(cleanupAll);

const paquete = paqueteExpecting();

// issue 17: `verify` checked the store but not the files in the folder.
test('verify reads the files in the folder: damage is found and mended by --repair and a sync; the user\'s edits are left alone', async () => {
  const dir = await tmpDir('paquete-verify-tree-');
  writeTree(join(dir, 'site'), { 'a.bin': pseudoRandom(100_000, 1), 'b.txt': 'hello\n'.repeat(1000), 'c.txt': 'mine?\n' });
  await paquete(['keygen', '--out', 'pub.key'], dir);
  await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
  await paquete(['sync', '-C', 'work'], dir);
  assert.match((await paquete(['verify', '-C', 'work'], dir)).stdout, /tree ok: 3 files read/);

  // Bit rot: bytes flipped while size and mtime stay as paquete recorded them (a sync trusts
  // those). Writing changes the mtime, so the test sets one and records it, as rot would leave it.
  const a = join(dir, 'work/site/a.bin');
  const bytes = readFileSync(a);
  bytes[50_000] ^= 0x40;
  writeFileSync(a, bytes);
  utimesSync(a, 1_700_000_000, 1_700_000_000);
  const treeFile = join(dir, 'work/.paquete/tree.state');
  const tree = decodeTreeState(readFileSync(treeFile))!.state;
  tree.files['site/a.bin'] = { ...tree.files['site/a.bin'], mtimeMs: statSync(a).mtimeMs };
  writeFileSync(treeFile, encodeTreeState(tree));
  // The user's own edit: a new mtime, so it is theirs.
  writeFileSync(join(dir, 'work/site/c.txt'), 'my notes\n');

  const v = await paquete(['verify', '-C', 'work', '--json'], dir, 1);
  const report = JSON.parse(v.stdout);
  assert.deepEqual(report.tree.damaged, ['site/a.bin']);
  assert.equal(report.tree.yours, 1);
  // (exit 1: the user's c.txt is kept, not placed, and sync says so)
  await paquete(['sync', '-C', 'work'], dir, 1); // a plain sync trusts size and mtime
  assert.notDeepEqual(readFileSync(a), readFileSync(join(dir, 'site/a.bin')));

  const r = await paquete(['verify', '-C', 'work', '--repair'], dir);
  assert.match(r.stdout, /1 damaged files will be placed again by the next paquete sync/);
  await paquete(['sync', '-C', 'work'], dir, 1);
  assert.deepEqual(readFileSync(a), readFileSync(join(dir, 'site/a.bin')), 'the damaged file is the snapshot\'s again');
  assert.equal(readFileSync(join(dir, 'work/site/c.txt'), 'utf8'), 'my notes\n', 'the user\'s edit is kept');
  const digest = treeDigest(join(dir, 'work/site'));
  assert.equal(digest['b.txt'], treeDigest(join(dir, 'site'))['b.txt']);
  assert.match((await paquete(['verify', '-C', 'work'], dir)).stdout, /tree ok: 2 files read .*1 files of yours kept/);
});
