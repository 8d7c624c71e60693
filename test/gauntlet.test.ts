/**
 * The gauntlet (issue 7), CI-sized: kill -9 at random instants during publish, import and export;
 * a hostile network (a tampering HTTP server standing in for the hotspot or a mirror); fuzzing of
 * the manifest decoder and the pack record reader; hostile snapshot counts and lengths.
 *
 * Kill instants come from a seeded generator: GAUNTLET_SEED=N replays a run (the seed is printed
 * as a test diagnostic). bench/reliability.ts runs the same trials by the hundred.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, seededRandom as rng, treeDigest, writeTree } from './helpers/trees.js';
import { PaqueteError } from '../src/errors.js';
import { decodeManifest, encodeManifest, sha256Hex } from '../src/snapshot/manifest.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { decodeSnapshot, SNAPSHOT_VERSION } from '../src/snapshot/snapshot.js';
import { ByteWriter } from '../src/util/bytes.js';
import { decodePayload, decodeRecordHeader, encodeRecord, RecordStream, RECORD_HEADER_SIZE } from '../src/store/pack.js';
import { sampleManifestBody } from './helpers/fixtures.js';

after(cleanupAll);

const SEED = Number(process.env.GAUNTLET_SEED ?? Date.now() % 2 ** 31);

const paquete = paqueteExpecting();

/** Runs `args`, sends SIGKILL after `ms`; says whether the kill landed before the command ended. */
async function killAfter(args: string[], cwd: string, ms: number): Promise<{ killed: boolean; code: number | null; stderr: string }> {
  const p = runPaquete(args, { cwd });
  const timer = setTimeout(() => p.kill('SIGKILL'), ms);
  const r = await p.done;
  clearTimeout(timer);
  if (r.signal !== 'SIGKILL') assert.equal(r.code, 0, `paquete ${args.join(' ')} failed before the kill\n${r.stderr}`);
  return { killed: r.signal === 'SIGKILL', code: r.code, stderr: r.stderr };
}

/** Every file present under `work` is exactly the one in `want` (path → sha256): nothing wrong or half-written. */
function checkNoWrongFiles(work: string, want: Record<string, string>): number {
  const got = existsSync(work) ? treeDigest(work) : {};
  for (const [path, digest] of Object.entries(got)) assert.equal(digest, want[path], `${path} in the tree is not the published file`);
  return Object.keys(got).length;
}

const serialOf = (remote: string): number => (JSON.parse(readFileSync(join(remote, 'manifest.json'), 'utf8')) as { signed: { serial: number } }).signed.serial;

describe('kill -9 at random instants', { concurrency: true }, () => {
  let dir: string;
  let rand: () => number;
  before(async () => {
    dir = await tmpDir('paquete-gauntlet-');
    rand = rng(SEED);
    await paquete(['keygen', '--out', 'pub.key'], dir);
  });

  test('publish: the remote always serves the last complete snapshot byte for byte, and the next publish completes', async (t) => {
    t.diagnostic(`GAUNTLET_SEED=${SEED}`);
    const src = join(dir, 'pub/site');
    const remote = join(dir, 'pub/remote');
    const digests = new Map<number, Record<string, string>>();
    const state = (k: number) => {
      writeTree(src, { 'base.bin': pseudoRandom(1_500_000, 5), 'v.bin': pseudoRandom(1_500_000, 100 + k), 'note.txt': `state ${k}\n` });
      return treeDigest(src);
    };
    digests.set(1, state(0));
    const t0 = performance.now();
    await paquete(['publish', src, '--to', remote, '--key', 'pub.key'], dir);
    const full = performance.now() - t0;
    assert.equal(serialOf(remote), 1);
    let landed = 0;
    const trials = 6;
    for (let k = 1; k <= trials; k++) {
      const before = serialOf(remote);
      digests.set(before + 1, state(k));
      const r = await killAfter(['publish', src, '--to', remote, '--key', 'pub.key'], dir, 80 + rand() * full * 0.8);
      if (r.killed) landed++;
      const now = serialOf(remote);
      assert.ok(now === before || now === before + 1, `serial ${before} → ${now}`);
      if (!r.killed) assert.equal(now, before + 1, 'a finished publish moved the serial');
      // The remote still verifies: a fresh directory syncs the last complete snapshot exactly.
      const w = join(dir, `pub/w${k}`);
      await paquete(['init', remote, w, '--trust', 'pub.key.pub'], dir);
      await paquete(['sync', '-C', w], dir);
      assert.deepEqual(Object.fromEntries(Object.entries(treeDigest(w)).map(([p, d]) => [p.replace(/^site\//, ''), d])), digests.get(now));
      rmSync(w, { recursive: true, force: true });
      // The next publish completes.
      await paquete(['publish', src, '--to', remote, '--key', 'pub.key'], dir);
      digests.set(serialOf(remote), digests.get(before + 1)!);
    }
    t.diagnostic(`publish: ${trials} trials, ${landed} kills landed mid-command (full run ${full.toFixed(0)} ms)`);
    assert.ok(landed >= 2, `only ${landed} of ${trials} kills landed mid-publish`);
  });

  test('a first publish killed while writing the manifest (its temp file left behind): the next publish completes', async () => {
    // Deterministic stand-in for a kill in writeFileAtomic's window: packs and snapshot written,
    // manifest.json.tmp-… half written, no manifest.json yet.
    const remote = join(dir, 'first/remote');
    writeTree(join(dir, 'first/site'), { 'a.txt': 'a\n' });
    writeTree(remote, { 'packs/.tmp-0123456789ab.pack': 'PQPK', 'manifest.json.tmp-0123456789ab': '{"signed":' });
    await paquete(['publish', join(dir, 'first/site'), '--to', remote, '--key', 'pub.key'], dir);
    await paquete(['init', remote, join(dir, 'first/w'), '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', join(dir, 'first/w')], dir);
    assert.equal(readFileSync(join(dir, 'first/w/site/a.txt'), 'utf8'), 'a\n');
  });

  test('a store cut while creating its first pack (an empty pack file left behind): verify passes, sync completes', async () => {
    writeTree(join(dir, 'orphan/site'), { 'a.bin': pseudoRandom(100_000, 3) });
    await paquete(['publish', join(dir, 'orphan/site'), '--to', join(dir, 'orphan/remote'), '--key', 'pub.key'], dir);
    const w = join(dir, 'orphan/w');
    await paquete(['init', join(dir, 'orphan/remote'), w, '--trust', 'pub.key.pub'], dir);
    writeTree(w, { '.paquete/store/packs/00000001.pack': '' });
    await paquete(['verify', '-C', w], dir);
    await paquete(['sync', '-C', w], dir);
    await paquete(['verify', '-C', w], dir);
    assert.deepEqual(treeDigest(join(w, 'site')), treeDigest(join(dir, 'orphan/site')));
  });

  describe('peer exchange', () => {
    let source: Record<string, string>;
    let stick: string;
    let exportMs: number;
    let volumeSizes: Map<string, number>;
    before(async () => {
      const files: Record<string, Uint8Array> = {};
      for (let i = 0; i < 8; i++) files[`f${i}.bin`] = pseudoRandom(300_000 + i * 150_000, 40 + i);
      writeTree(join(dir, 'peer/site'), files);
      source = Object.fromEntries(Object.entries(treeDigest(join(dir, 'peer/site'))).map(([p, d]) => [`site/${p}`, d]));
      await paquete(['publish', 'peer/site', '--to', 'peer/remote', '--key', 'pub.key'], dir);
      await paquete(['init', 'peer/remote', 'peer/A', '--trust', 'pub.key.pub'], dir);
      await paquete(['sync', '-C', 'peer/A'], dir);
      stick = join(dir, 'peer/stick');
      const t0 = performance.now();
      await paquete(['export', '-C', 'peer/A', '--to', stick, '--max-size', '2500000'], dir);
      exportMs = performance.now() - t0;
      volumeSizes = new Map(readdirSync(stick).map((n) => [n.replace(/^.*-(\d+of\d+)\.pqb$/, '$1'), statSync(join(stick, n)).size]));
      assert.ok(volumeSizes.size >= 2, `expected several volumes, got ${[...volumeSizes.keys()]}`);
    });

    test('import: after each kill verify passes, no wrong file in the tree, the next import completes', async (t) => {
      await paquete(['init', 'peer/remote', 'peer/B0', '--trust', 'pub.key.pub'], dir);
      const t0 = performance.now();
      await paquete(['import', '-C', 'peer/B0', stick], dir);
      assert.deepEqual(treeDigest(join(dir, 'peer/B0')), source);
      const full = performance.now() - t0;
      let landed = 0;
      const trials = 8;
      for (let k = 1; k <= trials; k++) {
        const b = join(dir, `peer/B${k}`);
        await paquete(['init', 'peer/remote', b, '--trust', 'pub.key.pub'], dir);
        const r = await killAfter(['import', '-C', b, stick], dir, 60 + rand() * full * 0.6);
        if (r.killed) landed++;
        await paquete(['verify', '-C', b], dir);
        checkNoWrongFiles(b, source);
        await paquete(['import', '-C', b, stick], dir);
        assert.deepEqual(treeDigest(b), source);
        rmSync(b, { recursive: true, force: true });
      }
      t.diagnostic(`import: ${trials} trials, ${landed} kills landed mid-command (full run ${full.toFixed(0)} ms)`);
      assert.ok(landed >= 2, `only ${landed} of ${trials} kills landed mid-import`);
    });

    test('export: after each kill verify passes, the tree is intact, every visible volume is whole, the next export completes', async (t) => {
      let landed = 0;
      const trials = 8;
      for (let k = 1; k <= trials; k++) {
        const out = join(dir, `peer/stick${k}`);
        const r = await killAfter(['export', '-C', 'peer/A', '--to', out, '--max-size', '2500000'], dir, 60 + rand() * exportMs * 0.8);
        if (r.killed) landed++;
        await paquete(['verify', '-C', 'peer/A'], dir);
        assert.deepEqual(treeDigest(join(dir, 'peer/A')), source);
        for (const name of existsSync(out) ? readdirSync(out) : []) {
          if (name.startsWith('.')) continue; // an unfinished volume, never under its real name
          const part = name.replace(/^.*-(\d+of\d+)\.pqb$/, '$1');
          assert.equal(statSync(join(out, name)).size, volumeSizes.get(part), `${name} is whole`);
        }
        await paquete(['export', '-C', 'peer/A', '--to', out, '--max-size', '2500000'], dir);
        if (k === 1) {
          // What a killed export leaves behind does not confuse an import of the stick.
          await paquete(['init', 'peer/remote', 'peer/C', '--trust', 'pub.key.pub'], dir);
          await paquete(['import', '-C', 'peer/C', out], dir);
          assert.deepEqual(treeDigest(join(dir, 'peer/C')), source);
        }
        rmSync(out, { recursive: true, force: true });
      }
      t.diagnostic(`export: ${trials} trials, ${landed} kills landed mid-command (full run ${exportMs.toFixed(0)} ms)`);
      assert.ok(landed >= 2, `only ${landed} of ${trials} kills landed mid-export`);
    });
  });
});

/**
 * A static file server with Range, ETag and If-Range (enough for paquete's HTTP remote), that can
 * lie: flip bytes inside pack ranges, or serve other bytes as the manifest or a snapshot index.
 */
interface Tamperer {
  url: string;
  flipPacks: boolean;
  /** Served instead of manifest.json when set. */
  manifest: Buffer | undefined;
  flipSnapshots: boolean;
  packRequests: number;
}

async function startTamperer(root: string): Promise<Tamperer> {
  const state: Tamperer = { url: '', flipPacks: false, manifest: undefined, flipSnapshots: false, packRequests: 0 };
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    let body: Buffer;
    try {
      if (rel.split('/').includes('..')) throw new Error('no');
      body = rel === 'manifest.json' && state.manifest ? state.manifest : readFileSync(join(root, rel));
    } catch {
      res.writeHead(404, { 'content-length': '0' }).end();
      return;
    }
    const etag = `"${createHash('sha1').update(body).digest('hex')}"`;
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (m && (ifRange === undefined || ifRange === etag)) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}`, 'content-length': '0' }).end();
        return;
      }
      status = 206;
    }
    const slice = Buffer.from(body.subarray(start, end + 1));
    // Packs and update frames: the two places chunk bytes come from.
    if (rel.startsWith('packs/') || rel.startsWith('frames/')) {
      state.packRequests++;
      if (state.flipPacks && slice.length > 64) slice[slice.length >> 1] ^= 0xff;
    }
    // The index in every form a client may read it: the .snap, its layers, a root and its shards.
    if (/^(snapshots|layers|roots|shards)\//.test(rel) && state.flipSnapshots && slice.length > 16) slice[slice.length - 5] ^= 0x01;
    const headers: Record<string, string> = { 'content-length': String(slice.length), etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  onCleanup(() => void server.closeAllConnections());
  return state;
}

const FAST_LINK = { PAQUETE_RETRIES: '2', PAQUETE_BACKOFF: '0.05', PAQUETE_STALL_TIMEOUT: '2', PAQUETE_CONNECT_TIMEOUT: '2' };

describe('hostile network: a hotspot or mirror that lies', () => {
  let dir: string;
  let source: Record<string, string>;
  let tamper: Tamperer;
  before(async () => {
    dir = await tmpDir('paquete-hostile-');
    writeTree(join(dir, 'site'), { 'a.bin': pseudoRandom(900_000, 11), 'b.bin': pseudoRandom(700_000, 12), 'c.txt': 'small\n'.repeat(100) });
    source = Object.fromEntries(Object.entries(treeDigest(join(dir, 'site'))).map(([p, d]) => [`site/${p}`, d]));
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    tamper = await startTamperer(join(dir, 'remote'));
  });

  test('a tampered chunk (bytes flipped inside a pack or frames range) is caught and named; nothing wrong is placed; an honest link completes', async (t) => {
    await paquete(['init', tamper.url, 'w1', '--trust', 'pub.key.pub'], dir, 0, FAST_LINK);
    tamper.flipPacks = true;
    try {
      const r = await paquete(['sync', '-C', 'w1'], dir, null, FAST_LINK);
      assert.notEqual(r.code, 0, 'a sync over a lying link does not report success');
      assert.ok(tamper.packRequests > 0);
      t.diagnostic(`sync over the tampering link said: ${r.stderr.trim()}`);
      assert.match(r.stderr, /chunk [0-9a-f]{16}|pack [0-9a-f]{12}|corrupt|does not decompress|does not hold|damaged/i, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length <= 3, true, `a short message, not a dump:\n${r.stderr}`);
      const n = checkNoWrongFiles(join(dir, 'w1'), source);
      assert.ok(n < Object.keys(source).length, 'the files crossing the tampered ranges were not placed');
      await paquete(['verify', '-C', 'w1'], dir);
    } finally {
      tamper.flipPacks = false;
    }
    await paquete(['sync', '-C', 'w1'], dir, 0, FAST_LINK);
    assert.deepEqual(treeDigest(join(dir, 'w1')), source);
  });

  test('a tampered snapshot index is refused as not matching the signed manifest', async () => {
    tamper.flipSnapshots = true;
    try {
      const r = await paquete(['init', tamper.url, 'w2', '--trust', 'pub.key.pub'], dir, null, FAST_LINK);
      const s = r.code === 0 ? await paquete(['sync', '-C', 'w2'], dir, null, FAST_LINK) : r;
      assert.notEqual(s.code, 0);
      assert.match(s.stderr, /does not match the signed manifest/);
      checkNoWrongFiles(join(dir, 'w2'), source);
      assert.equal(existsSync(join(dir, 'w2/site')), false);
    } finally {
      tamper.flipSnapshots = false;
    }
  });

  test('a replayed older manifest (rollback) is refused by name, and the tree keeps the newer files', async () => {
    const old = readFileSync(join(dir, 'remote/manifest.json'));
    writeFileSync(join(dir, 'site/c.txt'), 'newer\n');
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    const newer = Object.fromEntries(Object.entries(treeDigest(join(dir, 'site'))).map(([p, d]) => [`site/${p}`, d]));
    await paquete(['init', tamper.url, 'w3', '--trust', 'pub.key.pub'], dir, 0, FAST_LINK);
    await paquete(['sync', '-C', 'w3'], dir, 0, FAST_LINK);
    tamper.manifest = old;
    try {
      const r = await paquete(['sync', '-C', 'w3'], dir, 1, FAST_LINK);
      assert.match(r.stderr, /older than .*refusing to go back/);
      assert.deepEqual(treeDigest(join(dir, 'w3')), newer);
      // The same serial with other bytes is a replay too: re-sign serial 2 with different content.
      const m = decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
      const { key } = parseSecretKey(readFileSync(join(dir, 'pub.key'), 'utf8'), 'k');
      tamper.manifest = Buffer.from(encodeManifest({ ...m, snapshots: [m.snapshots[0]] }, key));
      const r2 = await paquete(['sync', '-C', 'w3'], dir, 1, FAST_LINK);
      assert.match(r2.stderr, /a different manifest with the same serial \d+: refusing it/);
      assert.deepEqual(treeDigest(join(dir, 'w3')), newer);
    } finally {
      tamper.manifest = undefined;
    }
    await paquete(['sync', '-C', 'w3'], dir, 0, FAST_LINK);
    source = newer;
  });

  test('garbage, a truncated manifest, or a flipped bit in it: a clear one-line error, nothing stored', async () => {
    await paquete(['init', tamper.url, 'w4', '--trust', 'pub.key.pub'], dir, 0, FAST_LINK);
    await paquete(['sync', '-C', 'w4'], dir, 0, FAST_LINK);
    const trusted = readFileSync(join(dir, 'w4/.paquete/manifest.json'));
    const good = readFileSync(join(dir, 'remote/manifest.json'));
    const flipped = Buffer.from(good);
    flipped[good.indexOf('"serial":') + '"serial":'.length] ^= 0x01; // a digit of the serial
    const cases: Array<[string, Buffer, RegExp]> = [
      ['random bytes', randomBytes(700), /no valid paquete manifest|not JSON|no paquete manifest/],
      ['truncated', good.subarray(0, good.length >> 1), /no valid paquete manifest|not JSON/],
      ['JSON of another shape', Buffer.from('{"hello":"world"}'), /no paquete manifest/],
      ['a flipped bit', flipped, /altered|not signed|malformed/],
    ];
    for (const [what, bytes, pattern] of cases) {
      tamper.manifest = bytes;
      const r = await paquete(['sync', '-C', 'w4'], dir, null, FAST_LINK);
      assert.notEqual(r.code, 0, what);
      assert.match(r.stderr, pattern, `${what}: ${r.stderr}`);
      assert.ok(r.stderr.trim().split('\n').length <= 2, `${what}: one line (and a hint):\n${r.stderr}`);
      assert.deepEqual(readFileSync(join(dir, 'w4/.paquete/manifest.json')), trusted, `${what}: the trusted manifest is unchanged`);
      assert.deepEqual(treeDigest(join(dir, 'w4')), source, what);
    }
    tamper.manifest = undefined;
    await paquete(['sync', '-C', 'w4'], dir, 0, FAST_LINK);
  });
});

const errorCode = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof PaqueteError, `expected a PaqueteError, got ${(e as Error)?.stack ?? String(e)}`);
    return e.code;
  }
};

describe('fuzz: manifest decoder and pack records', () => {
  const { secretPem } = generateKeys();
  const { key, publicKey } = parseSecretKey(secretPem, 'k');
  const body = sampleManifestBody(publicKey);
  const good = Buffer.from(encodeManifest(body, key));

  test('decodeManifest: arbitrary bytes, mutations of a real manifest, arbitrary JSON in every field — only PaqueteError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (junk) => void errorCode(() => decodeManifest(junk, 'm'))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.nat({ max: 3 }), (at, bytes, how) => {
        const p = at % good.length;
        const m = how === 0 ? Buffer.concat([good.subarray(0, p), bytes, good.subarray(p + bytes.length)])
          : how === 1 ? good.subarray(0, p)
          : how === 2 ? Buffer.concat([good.subarray(0, p), bytes, good.subarray(p)])
          : Buffer.concat([good.subarray(0, p), good.subarray(p + 1 + (bytes[0] % 16))]);
        const c = errorCode(() => decodeManifest(m, 'm'));
        // Anything that still decodes must be the signed body, unchanged.
        if (c === undefined) assert.deepEqual(decodeManifest(m, 'm').body, body);
      }),
      { numRuns: 1000 },
    );
    const field = fc.constantFrom('format', 'version', 'publisher', 'serial', 'snapshots');
    fc.assert(
      fc.property(field, fc.jsonValue(), fc.oneof(fc.jsonValue(), fc.constant(undefined)), (f, v, sig) => {
        const doc = { signed: { ...body, [f]: v }, signature: sig ?? 'AAAA' };
        void errorCode(() => decodeManifest(Buffer.from(JSON.stringify(doc)), 'm'));
        void errorCode(() => decodeManifest(Buffer.from(JSON.stringify({ signed: v, signature: sig })), 'm'));
        void errorCode(() => decodeManifest(Buffer.from(JSON.stringify(v) ?? 'null'), 'm'));
        const snaps = { signed: { ...body, snapshots: [v, { ...body.snapshots[0], [f === 'serial' ? 'size' : 'name']: v }] }, signature: sig };
        void errorCode(() => decodeManifest(Buffer.from(JSON.stringify(snaps)), 'm'));
      }),
      { numRuns: 1500 },
    );
  });

  test('decodeManifest: objects that refuse to become strings (a JSON "toString" key) are a clear error', () => {
    const hostile = { toString: 1, valueOf: 1 };
    for (const f of ['version', 'format', 'publisher', 'serial', 'snapshots']) {
      const doc = { signed: { ...body, [f]: hostile }, signature: 'AAAA' };
      assert.notEqual(errorCode(() => decodeManifest(Buffer.from(JSON.stringify(doc)), 'm')), undefined, f);
    }
  });

  test('RecordStream and decodePayload: any bytes, cut anywhere — only PaqueteError, and what decodes hashes to its length', () => {
    const real = Buffer.concat([encodeRecord(1n, randomBytes(3000)), encodeRecord(2n, Buffer.alloc(5000, 3)), encodeRecord(3n, Buffer.alloc(0))]);
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 6 })).map(([at, b]) => {
        const m = Buffer.from(real);
        m.set(b.subarray(0, Math.max(0, m.length - (at % m.length))), at % m.length);
        return m;
      }),
      fc.nat({ max: real.length }).map((n) => real.subarray(0, n)),
    );
    fc.assert(
      fc.property(input, fc.array(fc.nat(), { maxLength: 5 }), (bytes, cutsRaw) => {
        const cuts = [...new Set(cutsRaw.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const s = new RecordStream();
        let prev = 0;
        try {
          for (const c of [...cuts, bytes.length]) {
            for (const r of s.push(bytes.subarray(prev, c))) {
              assert.equal(r.record.length, RECORD_HEADER_SIZE + r.header.storedLength);
              const c2 = errorCode(() => {
                const raw = decodePayload(r.header, r.payload);
                assert.equal(raw.length, r.header.rawLength);
              });
              if (c2 !== undefined) assert.equal(c2, 'DAMAGED_PACK');
            }
            prev = c;
          }
        } catch (e) {
          assert.ok(e instanceof PaqueteError && e.code === 'DAMAGED_PACK', String(e));
        }
      }),
      { numRuns: 1500 },
    );
    // Headers with any field values, payloads of any bytes.
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat({ max: 255 }), fc.nat({ max: 2 ** 32 - 1 }), fc.uint8Array({ maxLength: 300 }), (id, repr, rawLength, payload) => {
        const h = { id, repr, rawLength: rawLength % 3 === 0 ? rawLength % 2000 : rawLength, storedLength: payload.length };
        const c = errorCode(() => decodePayload(h, payload));
        if (c !== undefined) assert.equal(c, 'DAMAGED_PACK');
      }),
      { numRuns: 1500 },
    );
    assert.equal(errorCode(() => decodeRecordHeader(Buffer.alloc(10))), 'DAMAGED_PACK');
  });

  test('a deflate bomb in a record is stopped at the raw length it claims', () => {
    const bomb = encodeRecord(9n, Buffer.alloc(MAX_RAW_FOR_BOMB));
    const h = decodeRecordHeader(bomb);
    assert.ok(bomb.length < 100_000);
    assert.equal(errorCode(() => decodePayload({ ...h, rawLength: 1000 }, bomb.subarray(RECORD_HEADER_SIZE))), 'DAMAGED_PACK');
  });
});
const MAX_RAW_FOR_BOMB = 32 * 2 ** 20;

describe('hostile snapshot entries: huge counts and lengths are refused before allocation', () => {
  /** An uncompressed snapshot index (compression byte 0) with the given body. */
  const snap = (w: ByteWriter): Uint8Array => Buffer.concat([Buffer.from('PQSN'), Buffer.from([SNAPSHOT_VERSION, 0, 0, 0]), w.finish()]);
  const head = () => new ByteWriter().varint(16384).varint(65536).varint(262144).varint(1_700_000_000);

  const refused = (bytes: Uint8Array, pattern: RegExp) => {
    const heap = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    try {
      decodeSnapshot(bytes);
      assert.fail('decoded');
    } catch (e) {
      assert.ok(e instanceof PaqueteError && e.code === 'BAD_FORMAT', String(e));
      assert.match(e.message, pattern);
    }
    assert.ok(performance.now() - t0 < 200, 'refused at once');
    assert.ok(process.memoryUsage().heapUsed - heap < 64 * 2 ** 20, 'nothing large allocated');
  };

  test('2^40 files, 2^40 chunks, 2^40 sources or packs', () => {
    refused(snap(head().varint(0).varint(0).varint(0).varint(2 ** 40)), /file count 1099511627776 is larger than the data/);
    refused(snap(head().varint(0).varint(0).varint(2 ** 40)), /chunk count .* larger than the data/);
    refused(snap(head().varint(2 ** 40)), /source count .* larger than the data/);
    refused(snap(head().varint(0).varint(2 ** 40)), /pack count .* larger than the data/);
    refused(snap(head().varint(2 ** 53 - 1)), /larger than the data/);
    // A file claiming 2^40 chunks of its own.
    const w = head().varint(0).varint(0).varint(0).varint(1).string('site/a').varint(0o644).varint(0).bytes(new Uint8Array(32)).varint(2 ** 40);
    refused(snap(w), /file chunk count .* larger than the data/);
  });

  test('a chunk of 2^31 bytes, a string of 2^40 bytes, a varint past 2^53', () => {
    const pack = new Uint8Array(32);
    const chunk = (raw: number, stored: number) => head().varint(0).varint(1).bytes(pack).varint(1).bytes(new Uint8Array(8)).varint(0).zigzag(0).u8(0).varint(raw).varint(stored);
    refused(snap(chunk(2 ** 31, 10).varint(0)), /claims 2147483648 bytes/);
    refused(snap(chunk(10, 2 ** 31).varint(0)), /claims/);
    refused(snap(head().varint(1).varint(2 ** 40)), /needs 1099511627776 more bytes/);
    const long = head().finish();
    refused(Buffer.concat([Buffer.from('PQSN'), Buffer.from([SNAPSHOT_VERSION, 0, 0, 0]), long, Buffer.alloc(9, 0xff)]), /varint longer than 8 bytes|too large/);
    // A file whose size the chunks cannot add up to (a size of 2^50 over one 10-byte chunk).
    const f = chunk(10, 10).varint(1).string('site/a').varint(0o644).varint(2 ** 50).bytes(new Uint8Array(32)).varint(1).zigzag(0);
    refused(snap(f), /chunks add up to 10/);
  });

  test('signed by the trusted key but hostile: sync refuses it before writing a file', async () => {
    const dir = await tmpDir('paquete-hostile-snap-');
    writeTree(join(dir, 'site'), { 'a.txt': 'a\n' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir);
    const bytes = snap(head().varint(0).varint(0).varint(0).varint(2 ** 40));
    const name = sha256Hex(bytes);
    writeFileSync(join(dir, 'remote/snapshots', `${name}.snap`), bytes);
    const m = decodeManifest(readFileSync(join(dir, 'remote/manifest.json')), 'm').body;
    const { key } = parseSecretKey(readFileSync(join(dir, 'pub.key'), 'utf8'), 'k');
    const entry = { ...m.snapshots[0], name, size: bytes.length, files: 2 ** 40 };
    writeFileSync(join(dir, 'remote/manifest.json'), encodeManifest({ ...m, serial: m.serial + 1, snapshots: [...m.snapshots, entry] }, key));
    const r = await paquete(['sync', '-C', 'w'], dir, null);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /file count 1099511627776 is larger than the data/);
    assert.equal(existsSync(join(dir, 'w/site')), false);
  });
});
