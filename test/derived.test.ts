/**
 * A first download that derives its index (issue 14 item 3; src/snapshot/layers.ts,
 * src/sync/derived.ts): a newcomer reads the index's file and where layers and the stream from
 * nothing, never the `.snap` with its ids and hashes, and computes those from stream bytes each
 * checked against a signed piece hash. Counted on nginx's access log.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NginxServer, startNginx, type LogEntry } from './helpers/nginx.js';
import { cleanupAll, runPaquete, tmpDir } from './helpers/tmp.js';
import { editText, pseudoRandom, textFile, treeDigest, writeTree } from './helpers/trees.js';
import { decodeManifest, sha256Hex } from '../src/snapshot/manifest.js';
import { decodeSnapshot, encodeSnapshotBody, snapshotBody } from '../src/snapshot/snapshot.js';
import { decodeFileLayer, decodeWhereLayer, PIECE_BYTES, planPieces, skeletonOf, StreamDerivation } from '../src/snapshot/layers.js';
import { decodeUpdateHead } from '../src/delta/update.js';
import { RemoteChunkReader } from '../src/publish/published-file.js';
import { planSession } from '../src/sync/planner.js';

after(cleanupAll);

const LINK = { PAQUETE_RETRIES: '1', PAQUETE_BACKOFF: '0.05' };

/** Many small files (some alike, one empty), a few over a piece, one that repeats another's chunks. */
function tree(v: number): Record<string, string | Uint8Array> {
  const files: Record<string, string | Uint8Array> = {};
  for (let i = 0; i < 400; i++) {
    let text = textFile(i + 1, 20 + (i % 37) * 6);
    if (v > 0 && i % 17 === 0) text = editText(text, i + v, 2);
    files[`icons/i${String(i).padStart(3, '0')}.js`] = text;
  }
  files['icons/copy-of-7.js'] = files['icons/i007.js'];
  files['empty.txt'] = '';
  // Text, so that the stream costs well under the records and a card takes the stream.
  files['big/a.txt'] = textFile(900 + v, 28_000);
  files['big/b.bin'] = Buffer.concat([pseudoRandom(20_000, 5), Buffer.from(textFile(901, 40_000))]);
  return files;
}

async function ok(args: string[], cwd: string) {
  const r = await runPaquete(args, { cwd, env: LINK, timeoutMs: 120_000 }).done;
  assert.equal(r.code, 0, `paquete ${args.join(' ')}: ${r.stderr}`);
  return r;
}

const uris = (log: LogEntry[]) => log.map((e) => e.uri);
const latestEntry = (remote: string) => {
  const m = decodeManifest(readFileSync(join(remote, 'manifest.json')), remote).body;
  return m.snapshots[m.snapshots.length - 1];
};

let root: string;
before(async () => {
  root = await tmpDir('paquete-derived-');
  await ok(['keygen', '--out', 'k'], root);
  writeTree(join(root, 'v0', 'site'), tree(0));
  writeTree(join(root, 'v1', 'site'), tree(1));
  await ok(['publish', join(root, 'v0', 'site'), '--to', 'remote', '--key', 'k'], root);
});

test('the layers are the index: the skeleton with the stream\'s ids and hashes encodes to the signed body', () => {
  const remote = join(root, 'remote');
  const entry = latestEntry(remote);
  assert.ok(entry.layers, 'the entry names its layers');
  const files = decodeFileLayer(readFileSync(join(remote, 'layers', `${entry.layers.files.name}.files`)));
  const where = decodeWhereLayer(readFileSync(join(remote, 'layers', `${entry.layers.where.name}.where`)));
  const whole = decodeSnapshot(readFileSync(join(remote, 'snapshots', `${entry.name}.snap`)));
  const skeleton = skeletonOf(files, where);
  assert.ok(files.files.some((f) => f.sha256.every((b) => b === 0)), 'small files carry no hash');
  assert.ok(files.hashed.reduce((n, b) => n + b, 0) <= 3, 'only the files over a piece carry theirs');
  const head = decodeUpdateHead(readFileSync(join(remote, 'updates', `${files.stream}.upd`)));
  const d = new StreamDerivation(skeleton, files, head.frames.map((f) => f.yields));
  // A plan made before anything is derived (as a session's is): its entries read their hash from
  // the skeleton's table, so each is placed against the hash derived after the plan was made.
  const planned = planSession({ snapshot: skeleton, present: new Set(), complete: new Set(), wants: [], budget: Infinity, requestCost: () => 0 }).files.map((l) => l.file);
  assert.ok(planned.some((f) => f.sha256.every((b) => b === 0)), 'planned before their hash is known');
  const reader = new RemoteChunkReader(remote);
  try {
    head.frames.forEach((fr, f) => {
      const check = d.frame(f);
      for (const i of fr.yields) check.push(i, reader.read(whole, i));
    });
  } finally {
    reader.close();
  }
  assert.ok(d.complete);
  const wholeHash = new Map(whole.files.map((f) => [f.path, Buffer.from(f.sha256).toString('hex')]));
  for (const f of planned) assert.equal(Buffer.from(f.sha256).toString('hex'), wholeHash.get(f.path), `${f.path}: the plan's entry sees its derived hash`);
  assert.equal(sha256Hex(encodeSnapshotBody(skeleton)), entry.body);
  assert.deepEqual(Buffer.from(encodeSnapshotBody(skeleton)), Buffer.from(snapshotBody(readFileSync(join(remote, 'snapshots', `${entry.name}.snap`)))));
  // A piece that does not hash to its signed SHA-256 derives nothing.
  const again = new StreamDerivation(skeletonOf(files, where), files, head.frames.map((f) => f.yields));
  const check = again.frame(0);
  const reader2 = new RemoteChunkReader(remote);
  try {
    assert.throws(() => {
      for (const i of head.frames[0].yields) {
        const raw = Uint8Array.from(reader2.read(whole, i));
        raw[0] ^= 1;
        check.push(i, raw);
      }
    }, /does not match its signed SHA-256/);
  } finally {
    reader2.close();
  }
  assert.ok(!again.knows(head.frames[0].yields[0]));
});

test('planPieces: pieces end where no small file is open; a file split across pieces carries its hash', () => {
  const whole = decodeSnapshot(readFileSync(join(root, 'remote', 'snapshots', `${latestEntry(join(root, 'remote')).name}.snap`)));
  const yields = whole.files.flatMap((f) => f.chunks).filter((c, i, all) => all.indexOf(c) === i);
  const { pieces, hashed } = planPieces(whole, [yields]);
  assert.equal(pieces[0].reduce((n, c) => n + c, 0), yields.length);
  whole.files.forEach((f, k) => {
    if (f.size > PIECE_BYTES) assert.equal(hashed[k], 1, f.path);
    else assert.equal(hashed[k], 0, f.path);
  });
});

/**
 * A copy of the published remote in root/NAME, served by an nginx of its own for `use`, stopped
 * after (it reads files from disk at each request: `use` may change the copy before asking).
 */
async function onCopy(name: string, use: (dir: string, nginx: NginxServer) => Promise<void>): Promise<void> {
  const dir = join(root, name);
  cpSync(join(root, 'remote'), join(dir, 'remote'), { recursive: true });
  const nginx = await startNginx(join(dir, 'remote'));
  try {
    await use(dir, nginx);
  } finally {
    await nginx.stop();
  }
}

test('a newcomer reads the layers and the stream, never the .snap, and derives the signed index; the next release comes as an update', async () => {
  await onCopy('first', async (dir, nginx) => {
    await ok(['init', nginx.url, join(dir, 'w'), '--trust', join(root, 'k.pub')], root);
    await nginx.clearLog();
    await ok(['sync', '-C', join(dir, 'w')], root);
    const log = await nginx.accessLog();
    assert.ok(!uris(log).some((u) => u.startsWith('/snapshots/')), `no whole index: ${uris(log).join(' ')}`);
    assert.ok(uris(log).some((u) => u.endsWith('.files')) && uris(log).some((u) => u.endsWith('.where')));
    assert.deepEqual(treeDigest(join(dir, 'w')), treeDigest(join(root, 'v0')));
    // The index derived is the signed one, kept as a rebuilt index is.
    const entry = latestEntry(join(dir, 'remote'));
    const kept = readFileSync(join(dir, 'w', '.paquete', 'snapshots', `${entry.name}.snap`));
    assert.equal(sha256Hex(kept.subarray(8)), entry.body);
    assert.deepEqual(readdirSync(join(dir, 'w', '.paquete', 'layers')), [], 'layers and log go once the index is whole');

    await ok(['publish', join(root, 'v1', 'site'), '--to', join(dir, 'remote'), '--key', join(root, 'k')], root);
    await nginx.clearLog();
    await ok(['sync', '-C', join(dir, 'w')], root);
    const update = await nginx.accessLog();
    assert.ok(!uris(update).some((u) => u.startsWith('/snapshots/')), `the index came as a delta: ${uris(update).join(' ')}`);
    assert.deepEqual(treeDigest(join(dir, 'w')), treeDigest(join(root, 'v1')));
  });
});

test('a card whose budget cannot carry the layers and the whole stream reads the whole index (a card cut short and a release after it keep their routes), and places files', async () => {
  await onCopy('cut', async (dir, nginx) => {
    await ok(['init', nginx.url, join(dir, 'w'), '--trust', join(root, 'k.pub')], root);
    await nginx.clearLog();
    const card = await runPaquete(['sync', '-C', join(dir, 'w'), '--budget', '400000', '--json'], { cwd: root, env: LINK, timeoutMs: 120_000 }).done;
    assert.equal(card.code, 3, card.stderr);
    assert.ok((JSON.parse(card.stdout) as { completeFiles: number }).completeFiles > 0);
    assert.ok(uris(await nginx.accessLog()).some((u) => u.startsWith('/snapshots/')));
    await ok(['sync', '-C', join(dir, 'w')], root);
    assert.deepEqual(treeDigest(join(dir, 'w')), treeDigest(join(root, 'v0')));
  });
});

test('a card whose budget covers the layers and the whole stream derives too: no .snap, within its budget by nginx\'s count', async (t) => {
  await onCopy('card-derives', async (dir, nginx) => {
    // What a newcomer with no budget pays (the layers route), by nginx's count.
    await ok(['init', nginx.url, join(dir, 'clean'), '--trust', join(root, 'k.pub')], root);
    await nginx.clearLog();
    await ok(['sync', '-C', join(dir, 'clean')], root);
    const clean = await nginx.wireBytes();
    await ok(['init', nginx.url, join(dir, 'w'), '--trust', join(root, 'k.pub')], root);
    await nginx.clearLog();
    const budget = Math.ceil(clean * 1.1);
    await ok(['sync', '-C', join(dir, 'w'), '--budget', String(budget)], root);
    const log = await nginx.accessLog();
    const wire = await nginx.wireBytes();
    t.diagnostic(`card of ${budget} bytes: ${wire} on the wire; the newcomer with no budget ${clean}`);
    assert.ok(!uris(log).some((u) => u.startsWith('/snapshots/')), `no whole index: ${uris(log).join(' ')}`);
    assert.ok(uris(log).some((u) => u.endsWith('.files')) && uris(log).some((u) => u.endsWith('.where')));
    assert.ok(wire <= budget, `${wire} bytes for a ${budget}-byte card`);
    assert.deepEqual(treeDigest(join(dir, 'w')), treeDigest(join(root, 'v0')));
    const entry = latestEntry(join(dir, 'remote'));
    assert.equal(sha256Hex(readFileSync(join(dir, 'w', '.paquete', 'snapshots', `${entry.name}.snap`)).subarray(8)), entry.body);
  });
});

test('a sync that goes to records (the stream gone) fetches the whole index then, and completes', async () => {
  await onCopy('records', async (dir, nginx) => {
    // The mirror lost its frames (a copy without frames/): records are the way.
    renameSync(join(dir, 'remote', 'frames'), join(dir, 'frames-gone'));
    await ok(['init', nginx.url, join(dir, 'w'), '--trust', join(root, 'k.pub')], root);
    await nginx.clearLog();
    const r = await ok(['sync', '-C', join(dir, 'w')], root);
    const log = await nginx.accessLog();
    assert.ok(uris(log).some((u) => u.endsWith('.files')), 'the layers first');
    assert.ok(uris(log).some((u) => u.startsWith('/snapshots/')), `the whole index for records: ${uris(log).join(' ')}; ${r.stderr}`);
    assert.ok(uris(log).some((u) => u.startsWith('/packs/')));
    assert.deepEqual(treeDigest(join(dir, 'w')), treeDigest(join(root, 'v0')));
  });
});

test('a frame whose bytes were altered places nothing wrong: its piece fails, the index and records come instead', async () => {
  await onCopy('tampered', async (dir, nginx) => {
    for (const f of readdirSync(join(dir, 'remote', 'frames'))) {
      const p = join(dir, 'remote', 'frames', f);
      const b = readFileSync(p);
      // Bytes deep in the first frame (literals of the small files), not its header.
      for (let at = 4000; at < Math.min(b.length, 9000); at += 97) b[at] ^= 0x20;
      writeFileSync(p, b);
    }
    await ok(['init', nginx.url, join(dir, 'w'), '--trust', join(root, 'k.pub')], root);
    const r = await runPaquete(['sync', '-C', join(dir, 'w')], { cwd: root, env: LINK, timeoutMs: 120_000 }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(treeDigest(join(dir, 'w')), treeDigest(join(root, 'v0')));
  });
});
