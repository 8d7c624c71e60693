import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { decodeTreeState, encodeTreeState, scanTreeState, TreeStateWriter } from '../src/workdir/tree-state.js';
import type { TreeState } from '../src/workdir/workdir.js';
import { cleanupAll, runPaquete, tmpDir } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';

after(cleanupAll);

async function paquete(args: string[], cwd: string, expectCode = 0) {
  const r = await runPaquete(args, { cwd, timeoutMs: 60_000 }).done;
  assert.equal(r.code, expectCode, `paquete ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Every file under `dir` with its size and mtime: what "nothing written" is checked against. */
function stamps(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      // The lock file comes and goes with every command.
      else if (e.name !== 'lock' && !e.name.startsWith('LOCK')) out[relative(dir, p)] = `${statSync(p).size}:${statSync(p).mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

test('tree.state: a round trip, appends that later records win, and a record cut short ends the log', () => {
  const sha = (n: number) => n.toString(16).padStart(64, '0');
  const s: TreeState = {
    snapshot: 'ab'.repeat(32),
    files: { 'src/b.txt': { size: 3, mtimeMs: 1.5, sha256: sha(1) }, 'src/a/é.txt': { size: 2 ** 40, mtimeMs: 1796170577150.9255, sha256: sha(2) } },
    failed: { 'src/c': { snapshot: 'x', code: 'EACCES', message: 'no' } },
  };
  const whole = encodeTreeState(s);
  assert.equal(whole.subarray(0, 5).toString('latin1'), 'PQTS\x01');
  const back = decodeTreeState(whole)!;
  assert.deepEqual(back.state, s);
  assert.equal(back.validLength, whole.length);
  assert.equal(back.records, 3);
  // In path order, whatever order they were set in.
  assert.deepEqual(Object.keys(back.state.files), ['src/a/é.txt', 'src/b.txt']);

  const more = new TreeStateWriter().placed('src/b.txt', { size: 4, mtimeMs: 2, sha256: sha(3) }).dropped('src/a/é.txt').placed('src/d', { size: 0, mtimeMs: 0, sha256: sha(4) }).finish();
  const log = Buffer.concat([whole, more]);
  const after2 = decodeTreeState(log)!.state;
  assert.deepEqual(after2.files, { 'src/b.txt': { size: 4, mtimeMs: 2, sha256: sha(3) }, 'src/d': { size: 0, mtimeMs: 0, sha256: sha(4) } });
  assert.equal(after2.snapshot, s.snapshot);
  // Every cut inside the appended records keeps exactly the whole records before it.
  for (let cut = whole.length; cut < log.length; cut++) {
    const d = decodeTreeState(log.subarray(0, cut))!;
    assert.ok(d.validLength <= cut && d.validLength >= whole.length, `cut at ${cut}`);
    assert.deepEqual(decodeTreeState(log.subarray(0, d.validLength))!.state, d.state);
  }
  assert.equal(decodeTreeState(Buffer.from('{"files":{}}')), undefined, 'tree.json is not a tree state log');

  // The columns a sync with nothing new reads say what the replay says, a file dropped and
  // placed again included (its slot is reused, its latest record wins).
  const again = Buffer.concat([log, new TreeStateWriter().dropped('src/d').placed('src/a/é.txt', { size: 7, mtimeMs: 3, sha256: sha(5) }).dropped('src/b.txt').placed('src/b.txt', { size: 8, mtimeMs: 4, sha256: sha(6) }).finish()]);
  const scanned = scanTreeState(again)!;
  const replayed = decodeTreeState(again)!.state;
  const columns = Object.fromEntries(scanned.files.paths.map((p, i) => [p, scanned.files.placed(i)]));
  assert.deepEqual(columns, replayed.files);
  assert.deepEqual(columns, { 'src/a/é.txt': { size: 7, mtimeMs: 3, sha256: sha(5) }, 'src/b.txt': { size: 8, mtimeMs: 4, sha256: sha(6) } });
  assert.equal(scanned.rest.snapshot, s.snapshot);
  assert.equal(scanTreeState(Buffer.from('{"files":{}}')), undefined);
  // Paths out of order, one twice, before any other record: the later record still wins.
  const unordered = new TreeStateWriter().header().placed('src/b', { size: 1, mtimeMs: 1, sha256: sha(7) }).placed('src/a', { size: 2, mtimeMs: 2, sha256: sha(8) }).placed('src/b', { size: 3, mtimeMs: 3, sha256: sha(9) }).finish();
  const u = scanTreeState(unordered)!.files;
  assert.deepEqual(Object.fromEntries(u.paths.map((p, i) => [p, u.placed(i)])), decodeTreeState(unordered)!.state.files);
  assert.deepEqual(u.placed(u.paths.indexOf('src/b')), { size: 3, mtimeMs: 3, sha256: sha(9) });
});

test('a sync with nothing new reads no index and writes nothing; a change to the tree takes the whole way again', async () => {
  const dir = await tmpDir('paquete-nothing-new-');
  writeTree(join(dir, 'site'), { 'a.bin': pseudoRandom(150_000, 1), 'b.txt': 'hello\n', 'deep/c.txt': 'c\n', 'deep/er/d.txt': 'd\n' });
  await paquete(['keygen', '--out', 'pub.key'], dir);
  await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
  const first = JSON.parse((await paquete(['sync', '-C', 'work', '--json'], dir)).stdout);
  const meta = join(dir, 'work/.paquete');
  const tree = decodeTreeState(readFileSync(join(meta, 'tree.state')))!.state;
  assert.equal(tree.complete?.snapshot, first.snapshot, 'the finished sync records the tree complete at its snapshot');

  // What a sync that reads the index and plans says with nothing to do (the record dropped).
  const stateFile = join(meta, 'tree.state');
  writeFileSync(stateFile, encodeTreeState({ ...tree, complete: undefined }));
  const slow = JSON.parse((await paquete(['sync', '-C', 'work', '--json'], dir)).stdout);
  assert.equal(decodeTreeState(readFileSync(stateFile))!.state.complete?.snapshot, first.snapshot);
  // status says the same with the index read and without (the record), here at 4 files.
  const recorded = decodeTreeState(readFileSync(stateFile))!.state;
  writeFileSync(stateFile, encodeTreeState({ ...recorded, complete: undefined }));
  const slowStatus = JSON.parse((await paquete(['status', '-C', 'work', '--json'], dir)).stdout);
  writeFileSync(stateFile, encodeTreeState(recorded));
  writeFileSync(join(meta, 'snapshots', `${first.snapshot}.snap`), 'not an index');
  assert.deepEqual(JSON.parse((await paquete(['status', '-C', 'work', '--json'], dir)).stdout), slowStatus, 'status without reading the index');
  assert.equal(slowStatus.total.complete, 4);
  // The cached index made unreadable: a sync that read it would fetch it again and rewrite it.
  const snap = join(meta, 'snapshots', `${first.snapshot}.snap`);
  writeFileSync(snap, 'not an index');
  // tree.state was rewritten by hand above, after the last switch: the first sync with nothing
  // new makes it what readers see (one switch, as after a sync killed before its switch), and
  // from then on a sync with nothing new writes nothing.
  await paquete(['sync', '-C', 'work'], dir);
  const before = stamps(meta);
  const again = JSON.parse((await paquete(['sync', '-C', 'work', '--json'], dir)).stdout);
  assert.deepEqual(stamps(meta), before, 'nothing under .paquete was written');
  assert.equal(readFileSync(snap, 'utf8'), 'not an index', 'the index was not read');
  // The same answer as the sync that reads the index and plans, but for the bytes it read.
  assert.deepEqual(again, { ...slow, read: again.read, spent: again.spent });
  assert.equal(again.completeFiles, 4);
  const dry = JSON.parse((await paquete(['sync', '-C', 'work', '--dry-run', '--json'], dir)).stdout);
  assert.equal(dry.plannedCost, 0);
  assert.deepEqual(stamps(meta), before, 'a dry run wrote nothing');

  // A file gone: the sync goes the whole way (reading, so fetching, the index) and places it.
  rmSync(join(dir, 'work/site/deep/er/d.txt'));
  const back = JSON.parse((await paquete(['sync', '-C', 'work', '--json'], dir)).stdout);
  assert.deepEqual(back.placed, ['site/deep/er/d.txt']);
  assert.notEqual(readFileSync(snap, 'utf8'), 'not an index');
  // The user's edit (a new size): kept and reported, every time, never taken as nothing new.
  writeFileSync(join(dir, 'work/site/b.txt'), 'mine, longer\n');
  for (let i = 0; i < 2; i++) {
    const kept = JSON.parse((await paquete(['sync', '-C', 'work', '--json'], dir, 1)).stdout);
    assert.deepEqual(kept.kept.map((k: { path: string }) => k.path), ['site/b.txt']);
  }
  assert.equal(readFileSync(join(dir, 'work/site/b.txt'), 'utf8'), 'mine, longer\n');
  // Put back as it was (a new mtime, the same bytes: paquete's again). A want the tree was not
  // recorded complete for: the whole way, and its own record.
  writeFileSync(join(dir, 'work/site/b.txt'), 'hello\n');
  const wanted = JSON.parse((await paquete(['sync', '-C', 'work', '--want', 'site/deep/**', '--json'], dir)).stdout);
  assert.equal(wanted.wantedFiles, 2);
  writeFileSync(snap, 'not an index');
  const stamped = stamps(meta);
  const wantedAgain = JSON.parse((await paquete(['sync', '-C', 'work', '--want', 'site/deep/**', '--json'], dir)).stdout);
  assert.deepEqual(stamps(meta), stamped, 'the same want again: nothing written');
  assert.equal(readFileSync(snap, 'utf8'), 'not an index', 'the same want again: the index was not read');
  assert.deepEqual(wantedAgain.plan, wanted.plan);
  assert.deepEqual(treeDigest(join(dir, 'work/site/deep')), treeDigest(join(dir, 'site/deep')));
});
