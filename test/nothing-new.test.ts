import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { decodeTreeState, encodeTreeState, scanTreeState, TreeStateWriter } from '../src/workdir/tree-state.js';
import { setPlaced, WorkDir, type TreeState } from '../src/workdir/workdir.js';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';

after(cleanupAll);

const paquete = paqueteExpecting();

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

test('tree.state: a save appends only the records noted as changed; a state read elsewhere is compared whole', async () => {
  const dir = await tmpDir();
  WorkDir.create(dir, { version: 1, remotes: [{ location: dir }] } as never);
  const work = await WorkDir.open(dir, 'test', { deferStore: true });
  try {
    const sha = (n: number) => n.toString(16).padStart(64, '0');
    const log = () => readFileSync(join(dir, '.paquete', 'tree.state'));
    const first = work.treeState();
    for (let i = 0; i < 1000; i++) setPlaced(first, `src/f${String(i).padStart(4, '0')}`, { size: i, mtimeMs: i, sha256: sha(i) });
    work.saveTreeState(first);
    const whole = log().length;

    // Read again: three changes (one replaced, one dropped, one new) and nothing else.
    const s = work.treeState();
    setPlaced(s, 'src/f0001', { size: 7, mtimeMs: 7, sha256: sha(7) });
    setPlaced(s, 'src/f0002', undefined);
    setPlaced(s, 'src/new', { size: 1, mtimeMs: 1, sha256: sha(1) });
    // Set and dropped again before any save: nothing to say about it.
    setPlaced(s, 'src/gone', { size: 1, mtimeMs: 1, sha256: sha(1) });
    setPlaced(s, 'src/gone', undefined);
    // The save looks at what was noted, never at every file (it did, every 250 ms of a sync).
    let listed = 0;
    s.files = new Proxy(s.files, { ownKeys: (t) => (listed++, Reflect.ownKeys(t)) });
    work.saveTreeState(s);
    assert.equal(listed, 0, 'the files were listed');
    const appended = log().subarray(whole);
    const d = decodeTreeState(log())!;
    assert.equal(d.records, 1001 + 3, 'three records appended');
    assert.ok(appended.length < 3 * 64, `appended ${appended.length} bytes`);
    assert.equal(d.state.files['src/f0001'].size, 7);
    assert.equal(d.state.files['src/f0002'], undefined);
    assert.equal(d.state.files['src/new'].size, 1);
    assert.equal(Object.keys(d.state.files).length, 1000);
    work.saveTreeState(s);
    assert.equal(log().length, whole + appended.length, 'nothing changed since: nothing written');

    // A state not read by this WorkDir (the test's own): every file compared with the log.
    const other: TreeState = { ...decodeTreeState(log())!.state };
    other.files = { ...other.files, 'src/f0003': { size: 9, mtimeMs: 9, sha256: sha(9) } };
    delete other.files['src/f0004'];
    work.saveTreeState(other);
    const e = decodeTreeState(log())!;
    assert.equal(e.records, 1004 + 2);
    assert.equal(e.state.files['src/f0003'].size, 9);
    assert.equal(e.state.files['src/f0004'], undefined);
    // And the noted state saved after it is compared whole too: it is no longer what the log holds.
    setPlaced(s, 'src/f0005', { size: 5, mtimeMs: 55, sha256: sha(5) });
    work.saveTreeState(s);
    const f = decodeTreeState(log())!.state.files;
    assert.equal(f['src/f0005'].mtimeMs, 55);
    assert.equal(f['src/f0003'].size, 3, "s's record of f0003 stands");
    assert.equal(f['src/f0004'].size, 4);
  } finally {
    await work.close();
  }
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
