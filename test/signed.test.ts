/**
 * What is signed, end to end (issue 13 items 3, 4, 8): a manifest's identity is its signed
 * canonical body, its size is capped, every field is checked by type before use; expiry; key
 * rotation; one publish at a time. Real nginx where a hotspot stands in, real concurrent
 * `paquete publish` processes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, treeDigest, writeTree } from './helpers/trees.js';
import { startNginx } from './helpers/nginx.js';
import { PaqueteError } from '../src/errors.js';
import { decodeManifest, encodeManifest, ManifestBody, MANIFEST_MAX_BYTES } from '../src/snapshot/manifest.js';
import { generateKeys, parseSecretKey } from '../src/snapshot/keys.js';
import { sampleManifestBody } from './helpers/fixtures.js';
import { publish } from '../src/publish/publisher.js';
import { signRotation } from '../src/snapshot/rotation.js';

after(cleanupAll);

const paquete = paqueteExpecting();

const readBody = (remote: string): ManifestBody => decodeManifest(readFileSync(join(remote, 'manifest.json')), 'm').body;
/** Re-signs the remote's manifest with `change` applied, as a key holder (buggy or hostile) would. */
function resign(dir: string, keyFile: string, change: (b: ManifestBody) => unknown): void {
  const { key } = parseSecretKey(readFileSync(join(dir, keyFile), 'utf8'), keyFile);
  writeFileSync(join(dir, 'remote/manifest.json'), encodeManifest(change(readBody(join(dir, 'remote'))) as ManifestBody, key));
}

describe('a manifest is its signed body', () => {
  let dir: string;
  let source: Record<string, string>;
  before(async () => {
    dir = await tmpDir('paquete-signed-');
    writeTree(join(dir, 'site'), { 'a.bin': pseudoRandom(300_000, 1), 'b.txt': 'hello\n'.repeat(50) });
    source = Object.fromEntries(Object.entries(treeDigest(join(dir, 'site'))).map(([p, d]) => [`site/${p}`, d]));
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
  });

  test('a hotspot padding the genuine manifest with whitespace: the same manifest; stored canonical; the honest remote and bundles still agree', async () => {
    const genuine = readFileSync(join(dir, 'remote/manifest.json'));
    const nginx = await startNginx(join(dir, 'remote'));
    onCleanup(() => nginx.stop());
    await paquete(['init', nginx.url, 'w', '--trust', 'pub.key.pub'], dir);
    await paquete(['init', nginx.url, 'friend', '--trust', 'pub.key.pub'], dir);
    try {
      // Over the cap: refused as a whole, nothing trusted changes.
      writeFileSync(join(dir, 'remote/manifest.json'), Buffer.concat([genuine.subarray(0, -1), Buffer.alloc(MANIFEST_MAX_BYTES + 4_000_000, ' '), Buffer.from('\n')]));
      const big = await paquete(['sync', '-C', 'w'], dir, 2);
      assert.match(big.stderr, /more than the 16777216 a manifest may have/);
      assert.deepEqual(readFileSync(join(dir, 'w/.paquete/manifest.json')), genuine);
      // Under the cap, padded inside and out, keys reordered: the same signed body.
      const doc = JSON.parse(genuine.toString()) as { signed: ManifestBody; signature: string };
      const reordered = JSON.stringify({ signature: doc.signature, signed: Object.fromEntries(Object.entries(doc.signed).reverse()) }, null, 7);
      writeFileSync(join(dir, 'remote/manifest.json'), Buffer.concat([Buffer.alloc(3_000_000, '\n'), Buffer.from(reordered), Buffer.alloc(2_000_000, ' ')]));
      await paquete(['sync', '-C', 'w'], dir);
      assert.deepEqual(treeDigest(join(dir, 'w')), source);
      assert.deepEqual(readFileSync(join(dir, 'w/.paquete/manifest.json')), genuine, 'the trusted copy is the canonical form, not the padded bytes');
    } finally {
      writeFileSync(join(dir, 'remote/manifest.json'), genuine);
    }
    // The honest remote again: not "a different manifest with the same serial".
    await paquete(['sync', '-C', 'w'], dir);
    // A bundle from the directory that saw the padded copy is taken by one that never did.
    await paquete(['have', '-C', 'friend', '--out', join(dir, 'friend.have')], dir);
    await paquete(['export', '-C', 'w', '--for', join(dir, 'friend.have'), '--to', join(dir, 'w.pqb')], dir);
    const imp = await paquete(['import', '-C', 'friend', join(dir, 'w.pqb')], dir);
    assert.doesNotMatch(imp.stderr + imp.stdout, /refus|different manifest/i);
    assert.deepEqual(treeDigest(join(dir, 'friend')), source);
  });

  test('a signed manifest whose snapshot date is not a string: a clear error naming the field, nothing trusted, and serve still answers', async () => {
    await paquete(['init', 'remote', 'w2', '--trust', 'pub.key.pub'], dir);
    const trusted = readFileSync(join(dir, 'w2/.paquete/manifest.json'));
    const genuine = readFileSync(join(dir, 'remote/manifest.json'));
    try {
      resign(dir, 'pub.key', (b) => ({ ...b, serial: b.serial + 1, snapshots: b.snapshots.map((s) => ({ ...s, created: 1764547200 })) }));
      const r = await paquete(['sync', '-C', 'w2'], dir, 2);
      assert.match(r.stderr, /malformed: bad snapshot date/);
      assert.deepEqual(readFileSync(join(dir, 'w2/.paquete/manifest.json')), trusted);
    } finally {
      writeFileSync(join(dir, 'remote/manifest.json'), genuine);
    }
    const proc = runPaquete(['serve', '--port', '0', '-C', 'w2'], { cwd: dir });
    onCleanup(() => void proc.kill('SIGKILL'));
    await proc.waitForOutput(/serving .* at http:\/\/\S+\//, { stream: 'stdout' });
    const url = /at (http:\/\/\S+?)\/?\n/.exec(proc.stdout())![1];
    assert.equal((await fetch(`${url}/`)).status, 200);
    proc.kill('SIGTERM');
    await proc.done;
  });
});

describe('fuzz: every field of a signed manifest', () => {
  const { secretPem } = generateKeys();
  const { key, publicKey } = parseSecretKey(secretPem, 'k');
  const body = sampleManifestBody(publicKey);
  const top = ['format', 'version', 'serial', 'expires', 'rotations', 'snapshots'] as const;
  const entry = ['name', 'size', 'created', 'files', 'bytes', 'sources', 'body', 'updates'] as const;
  const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const isDate = (v: unknown) => typeof v === 'string' && Number.isFinite(Date.parse(v));

  /** What a decoded manifest promises the code after it, restated here on its own. */
  function assertTyped(b: ManifestBody): void {
    assert.ok(isCount(b.serial));
    assert.ok(b.expires === undefined || isDate(b.expires));
    assert.ok(b.rotations === undefined || (Array.isArray(b.rotations) && b.rotations.every((r) => typeof r.from === 'string' && typeof r.to === 'string' && isDate(r.created) && typeof r.signature === 'string')));
    for (const s of b.snapshots) {
      assert.ok(typeof s.name === 'string' && isCount(s.size) && isDate(s.created) && isCount(s.files) && isCount(s.bytes));
      assert.ok(Array.isArray(s.sources) && s.sources.every((x) => typeof x.kind === 'string' && typeof x.name === 'string'));
      assert.ok(s.body === undefined || typeof s.body === 'string');
      assert.ok(s.updates === undefined || (Array.isArray(s.updates) && s.updates.every((u) => typeof u.from === 'string' && typeof u.name === 'string' && isCount(u.size))));
      s.created.slice(0, 10); // what the catalog page does with it
    }
  }

  const decodeSigned = (b: unknown): void => {
    let m;
    try {
      m = decodeManifest(encodeManifest(b as ManifestBody, key), 'm');
    } catch (e) {
      assert.ok(e instanceof PaqueteError, `not a PaqueteError: ${(e as Error)?.stack}`);
      assert.ok(['BAD_FORMAT', 'NOT_A_REMOTE'].includes(e.code), `${e.code}: ${e.message}`);
      return;
    }
    assertTyped(m.body);
  };

  test('any JSON value in any field, signed with the right key: decoded with every field typed, or a clean BAD_FORMAT', () => {
    fc.assert(
      fc.property(fc.constantFrom(...top), fc.jsonValue(), (f, v) => decodeSigned({ ...body, [f]: v })),
      { numRuns: 600 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...entry), fc.jsonValue(), (f, v) => decodeSigned({ ...body, snapshots: [{ ...body.snapshots[0], [f]: v }] })),
      { numRuns: 1000 },
    );
    const inner = fc.record({ kind: fc.jsonValue(), name: fc.jsonValue(), from: fc.jsonValue(), size: fc.jsonValue(), to: fc.jsonValue(), created: fc.jsonValue(), signature: fc.jsonValue() }, { requiredKeys: [] });
    fc.assert(
      fc.property(inner, inner, (src, u) =>
        decodeSigned({ ...body, rotations: [u], snapshots: [{ ...body.snapshots[0], sources: [src], updates: [u] }] }),
      ),
      { numRuns: 600 },
    );
  });
});

describe('freshness: manifests expire', () => {
  let dir: string;
  before(async () => {
    dir = await tmpDir('paquete-expiry-');
    writeTree(join(dir, 'site'), { 'a.txt': 'one\n'.repeat(1000) });
    await paquete(['keygen', '--out', 'pub.key'], dir);
  });

  test('publish signs an expiry (30 days unless --expires says); publishing with no sources signs the same snapshots again', async () => {
    const before = Date.now();
    const r = await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    const first = readBody(join(dir, 'remote'));
    const days = (iso: string) => (Date.parse(iso) - before) / 86_400_000;
    assert.ok(days(first.expires!) >= 30 && days(first.expires!) < 30.01, first.expires);
    assert.match(r.stdout, new RegExp(`until ${first.expires}`));
    await paquete(['publish', '--to', 'remote', '--key', 'pub.key', '--expires', '2w'], dir);
    const again = readBody(join(dir, 'remote'));
    assert.equal(again.serial, first.serial + 1);
    assert.deepEqual(again.snapshots, first.snapshots);
    assert.ok(days(again.expires!) >= 14 && days(again.expires!) < 14.01, again.expires);
    const bad = await paquete(['publish', '--to', 'remote', '--key', 'pub.key', '--expires', 'soon'], dir, 2);
    assert.match(bad.stderr, /not a duration: "soon"/);
    const none = await paquete(['publish', '--to', 'empty', '--key', 'pub.key'], dir, 2);
    assert.match(none.stderr, /no manifest to sign again/);
  });

  test('the newest manifest expired: sync refuses it by name, --allow-expired uses it with a warning, status warns; a fresh one is taken again', async () => {
    await paquete(['init', 'remote', 'w', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'w'], dir);
    const trusted = readFileSync(join(dir, 'w/.paquete/manifest.json'));
    writeTree(join(dir, 'site'), { 'b.txt': 'two\n' });
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'pub.key'], dir);
    // The publisher's newest, as a mirror frozen a year would still serve it.
    resign(dir, 'pub.key', (b) => ({ ...b, expires: '2025-01-01T00:00:00.000Z' }));
    const refused = await paquete(['sync', '-C', 'w'], dir, 1);
    assert.match(refused.stderr, /serial \d+\) expired on 2025-01-01T00:00:00.000Z: the publisher has signed nothing newer since, or a mirror is serving a frozen copy/);
    assert.match(refused.stderr, /--allow-expired/);
    assert.deepEqual(readFileSync(join(dir, 'w/.paquete/manifest.json')), trusted, 'nothing of the expired manifest is trusted');
    const told = await paquete(['sync', '-C', 'w', '--allow-expired'], dir);
    assert.match(told.stderr, /expired on 2025-01-01.*using it as told/);
    assert.equal(readFileSync(join(dir, 'w/site/b.txt'), 'utf8'), 'two\n');
    const status = await paquete(['status', '-C', 'w'], dir);
    assert.match(status.stderr, /the manifest expired on 2025-01-01/);
    await paquete(['publish', '--to', 'remote', '--key', 'pub.key'], dir);
    const fresh = await paquete(['sync', '-C', 'w'], dir);
    assert.doesNotMatch(fresh.stderr, /expire/);
  });

  test('a manifest with no expiry (an older publisher) never expires, and sync says a freeze cannot be noticed there', async () => {
    resign(dir, 'pub.key', (b) => ({ ...b, serial: b.serial + 1, expires: undefined }));
    const r = await paquete(['sync', '-C', 'w'], dir);
    assert.match(r.stderr, /signs no expiry \(published by an older paquete\)/);
  });
});

describe('one publish at a time', () => {
  let dir: string;
  const lockFile = () => join(dir, 'remote', '.paquete-publish.lock');
  before(async () => {
    dir = await tmpDir('paquete-publock-');
    writeTree(join(dir, 'a'), { 'a.bin': pseudoRandom(2_000_000, 5) });
    writeTree(join(dir, 'b'), { 'b.bin': pseudoRandom(2_000_000, 6) });
    writeTree(join(dir, 'c'), { 'c.txt': 'c\n' });
    await paquete(['keygen', '--out', 'pub.key'], dir);
    await paquete(['publish', 'c', '--to', 'remote', '--key', 'pub.key'], dir);
  });

  test('two real publishes at once, both told to wait: each signs its own serial and neither snapshot is lost', async () => {
    // The test holds the lock (as a live process on this host) until both publishes are waiting,
    // so they overlap by construction; then both race for it.
    writeFileSync(lockFile(), `${process.pid} ${hostname()} publish since 2026-12-01T00:00:00.000Z\n`);
    const pa = runPaquete(['publish', 'a', '--to', 'remote', '--key', 'pub.key', '--wait', '--updates-from', '0'], { cwd: dir });
    const pb = runPaquete(['publish', 'b', '--to', 'remote', '--key', 'pub.key', '--wait', '--updates-from', '0'], { cwd: dir });
    const held = new RegExp(`waiting: another publish is writing to \\S+ \\(pid ${process.pid} on ${hostname()}: publish since 2026-12-01`);
    await Promise.all([pa.waitForOutput(held, { stream: 'stderr' }), pb.waitForOutput(held, { stream: 'stderr' })]);
    rmSync(lockFile());
    const [ra, rb] = await Promise.all([pa.done, pb.done]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const serials = [ra, rb].map((r) => Number(/\(serial (\d+)\)/.exec(r.stdout)![1])).sort();
    assert.deepEqual(serials, [2, 3]);
    const body = readBody(join(dir, 'remote'));
    assert.equal(body.serial, 3);
    assert.deepEqual(body.snapshots.at(-1)!.sources.map((s) => s.name).sort(), ['a', 'b', 'c'], 'the last snapshot keeps what the other publish added');
    assert.equal(existsSync(lockFile()), false, 'the lock is released');
  });

  test('a publish while another holds the lock fails at once, naming it; a lock of a dead process is taken over; one from another host is not', async () => {
    const sleeper = spawn('sleep', ['30']);
    onCleanup(() => void sleeper.kill('SIGKILL'));
    writeFileSync(lockFile(), `${sleeper.pid} ${hostname()} publish since 2026-12-01T00:00:00.000Z\n`);
    const r = await paquete(['publish', 'c', '--to', 'remote', '--key', 'pub.key'], dir, 1);
    assert.match(r.stderr, new RegExp(`another publish is writing to \\S+remote \\(pid ${sleeper.pid} on ${hostname()}: publish since 2026-12-01T00:00:00.000Z\\)`));
    assert.match(r.stderr, /--wait/);
    assert.equal(readBody(join(dir, 'remote')).serial, 3, 'nothing was signed');
    sleeper.kill('SIGKILL');
    await new Promise((resolve) => sleeper.once('exit', resolve));
    await paquete(['publish', 'c', '--to', 'remote', '--key', 'pub.key'], dir);
    assert.equal(readBody(join(dir, 'remote')).serial, 4);
    writeFileSync(lockFile(), `${process.pid + 1_000_000} other-host publish since 2026-12-01T00:00:00.000Z\n`);
    const other = await paquete(['publish', 'c', '--to', 'remote', '--key', 'pub.key'], dir, 1);
    assert.match(other.stderr, /on other-host: publish since .*\n.*if nothing runs on other-host, delete \S+\.paquete-publish\.lock/);
    rmSync(lockFile());
  });

  test('a manifest replaced during a publish (a publisher that ignores the lock), or the lock lost: nothing is signed over it', async () => {
    const { key, publicKey } = parseSecretKey(readFileSync(join(dir, 'pub.key'), 'utf8'), 'k');
    const remoteDir = join(dir, 'remote');
    const sources = [{ kind: 'tree' as const, name: 'a', path: join(dir, 'a') }];
    const serial = readBody(remoteDir).serial;
    // While this publish chunks its files (it has read serial N), another writes serial N+1.
    const racing = publish({ sources, remoteDir, secret: key, publicKey, updatesFrom: 0, solid: false,
      onFile: () => writeFileSync(join(remoteDir, 'manifest.json'), encodeManifest({ ...readBody(remoteDir), serial: serial + 1 }, key)) });
    await assert.rejects(racing, (e: PaqueteError) => e.code === 'LOCKED' && new RegExp(`changed during this publish \\(serial ${serial} → ${serial + 1}`).test(e.message));
    assert.equal(readBody(remoteDir).serial, serial + 1, 'the other publish stands');
    // The lock file replaced under it (taken over by mistake): refused too.
    const lost = publish({ sources, remoteDir, secret: key, publicKey, updatesFrom: 0, solid: false,
      onFile: () => writeFileSync(lockFile(), `1 ${hostname()} publish since 2026-12-01T00:00:00.000Z\n`) });
    await assert.rejects(lost, (e: PaqueteError) => e.code === 'LOCKED' && /lock on .* was taken by another process during this publish/.test(e.message));
    assert.equal(readBody(remoteDir).serial, serial + 1);
    rmSync(lockFile());
  });
});

describe('key rotation', () => {
  let dir: string;
  const key = (name: string) => parseSecretKey(readFileSync(join(dir, name), 'utf8'), name);
  const b64 = (name: string) => Buffer.from(key(name).publicKey.raw).toString('base64');
  before(async () => {
    dir = await tmpDir('paquete-rotate-');
    writeTree(join(dir, 'site'), { 'a.txt': 'one\n' });
    for (const k of ['old.key', 'new.key', 'evil.key']) await paquete(['keygen', '--out', k], dir);
    await paquete(['publish', 'site', '--to', 'remote', '--key', 'old.key'], dir);
    await paquete(['init', 'remote', 'w', '--trust', 'old.key.pub'], dir);
    await paquete(['sync', '-C', 'w'], dir);
    await paquete(['init', 'remote', 'w3', '--trust', 'old.key.pub'], dir);
  });

  test('a forged rotation (signed by the new key itself, or the old key\'s statement re-aimed) is refused', async () => {
    const genuine = readFileSync(join(dir, 'remote/manifest.json'));
    const body = readBody(join(dir, 'remote'));
    const evil = key('evil.key');
    const now = new Date();
    const selfSigned = signRotation(evil.key, key('old.key').publicKey, evil.publicKey, now);
    const reaimed = { ...signRotation(key('old.key').key, key('old.key').publicKey, key('new.key').publicKey, now), to: b64('evil.key') };
    try {
      for (const [what, rotation] of [['self-signed', selfSigned], ['re-aimed', reaimed]] as const) {
        writeFileSync(join(dir, 'remote/manifest.json'), encodeManifest({ ...body, serial: body.serial + 1, publisher: b64('evil.key'), rotations: [rotation] }, evil.key));
        const r = await paquete(['sync', '-C', 'w3'], dir, 1);
        assert.match(r.stderr, /but this directory trusts .*, and no rotation statement signed by the trusted key leads to it/, what);
        assert.equal(JSON.parse(readFileSync(join(dir, 'w3/.paquete/config.json'), 'utf8')).publisher, b64('old.key'), `${what}: the trusted key is unchanged`);
      }
    } finally {
      writeFileSync(join(dir, 'remote/manifest.json'), genuine);
    }
  });

  test('rotation: the publisher moves to a new key with a statement by the old one; clients follow once, then trust only the new key; the old key is refused after', async () => {
    writeTree(join(dir, 'site'), { 'b.txt': 'two\n' });
    const pub = await paquete(['publish', 'site', '--to', 'remote', '--key', 'new.key', '--rotate-from', 'old.key'], dir);
    assert.match(pub.stdout, /rotated from SHA256:\S+: clients trusting it move to SHA256:/);
    const body = readBody(join(dir, 'remote'));
    assert.equal(body.publisher, b64('new.key'));
    assert.equal(body.rotations?.length, 1);
    const r = await paquete(['sync', '-C', 'w'], dir);
    assert.match(r.stderr, /the publisher moved from key SHA256:\S+ to SHA256:\S+ \(a rotation signed by the old key\): this directory now trusts only the new one/);
    assert.equal(readFileSync(join(dir, 'w/site/b.txt'), 'utf8'), 'two\n');
    assert.equal(JSON.parse(readFileSync(join(dir, 'w/.paquete/config.json'), 'utf8')).publisher, b64('new.key'));
    // Accepted once: the next sync is quiet about it.
    assert.doesNotMatch((await paquete(['sync', '-C', 'w'], dir)).stderr, /moved from key/);
    // Later publishes with the new key keep the statement, so a client many publishes behind still follows.
    await paquete(['publish', '--to', 'remote', '--key', 'new.key'], dir);
    assert.equal(readBody(join(dir, 'remote')).rotations?.length, 1);
    // A user handed the old key file sets up and ends up trusting the new key.
    const init = await paquete(['init', 'remote', 'w4', '--trust', 'old.key.pub'], dir);
    assert.match(init.stdout, /it moved to SHA256:\S+ \(a rotation signed by it\)/);
    await paquete(['sync', '-C', 'w4'], dir);
    // The old key (stolen, or a publisher's mistake) signing a newer manifest after the rotation: refused.
    const genuine = readFileSync(join(dir, 'remote/manifest.json'));
    try {
      const now = readBody(join(dir, 'remote'));
      writeFileSync(join(dir, 'remote/manifest.json'), encodeManifest({ ...now, serial: now.serial + 5, publisher: b64('old.key') }, key('old.key').key));
      const back = await paquete(['sync', '-C', 'w'], dir, 1);
      assert.match(back.stderr, /but this directory trusts/);
    } finally {
      writeFileSync(join(dir, 'remote/manifest.json'), genuine);
    }
    const oldPublish = await paquete(['publish', 'site', '--to', 'remote', '--key', 'old.key'], dir, 1);
    assert.match(oldPublish.stderr, /is published with key .*, not with yours/);
    await paquete(['sync', '-C', 'w'], dir);
  });
  test('a friend\'s bundle carries the rotation to a directory still trusting the old key', async () => {
    await paquete(['have', '-C', 'w3', '--out', join(dir, 'w3.have')], dir);
    await paquete(['export', '-C', 'w', '--for', join(dir, 'w3.have'), '--to', join(dir, 'w3.pqb')], dir);
    const r = await paquete(['import', '-C', 'w3', join(dir, 'w3.pqb')], dir);
    assert.doesNotMatch(r.stdout + r.stderr, /ignored|refused/, r.stdout + r.stderr);
    assert.equal(JSON.parse(readFileSync(join(dir, 'w3/.paquete/config.json'), 'utf8')).publisher, b64('new.key'));
    assert.equal(readFileSync(join(dir, 'w3/site/b.txt'), 'utf8'), 'two\n');
    // And a bundle for a publisher the trusted key never rotated to is still ignored.
    const stranger = await tmpDir('paquete-stranger-');
    writeTree(join(stranger, 'site'), { 'x.txt': 'x\n' });
    await paquete(['publish', 'site', '--to', 'remote', '--key', join(dir, 'evil.key')], stranger);
    await paquete(['init', 'remote', 'e', '--trust', join(dir, 'evil.key.pub')], stranger);
    await paquete(['sync', '-C', 'e'], stranger);
    await paquete(['export', '-C', 'e', '--to', join(stranger, 'e.pqb')], stranger);
    const foreign = await paquete(['import', '-C', 'w3', join(stranger, 'e.pqb')], dir, null);
    assert.match(foreign.stdout + foreign.stderr, /made for the publisher .* but this directory trusts .*: ignored/);
  });
});
