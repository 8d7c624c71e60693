import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { PAQUETE_RELEASE, requireFormat } from '../src/util/format-gate.js';
import { packHead, unpackHead } from '../src/delta/update.js';

test('the release the gate names is the package.json version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(PAQUETE_RELEASE, pkg.version);
});

test('a known version passes; a newer one says "upgrade paquete" with this release and the versions read', () => {
  requireFormat('f', 'update head', 4, [1, 2, 3, 4]);
  assert.throws(
    () => requireFormat('the update head of x', 'update head', 5, [1, 2, 3, 4]),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'BAD_FORMAT' &&
      e.message === `the update head of x is update head version 5, which this paquete ${PAQUETE_RELEASE} does not read (it reads update head 1-4)` &&
      e.hint === `upgrade paquete: this is paquete ${PAQUETE_RELEASE}; update head version 5 needs a newer release (one that reads it)`,
  );
});

test('an older version than any read asks for a new publish, not an upgrade; a non-number is "newer"', () => {
  assert.throws(() => requireFormat('x', 'index layer', 1, [2, 3]), (e: Error & { hint?: string }) => e.hint === `publish the remote again with paquete ${PAQUETE_RELEASE}`);
  assert.throws(() => requireFormat('x', 'manifest', '2', [1]), (e: Error & { hint?: string }) => /^upgrade paquete/.test(String(e.hint)));
});

test('a head packed at version 4 meets a reader of 1-3 (a paquete before segments) at the gate', () => {
  const bytes = packHead(4, Buffer.from('{}'));
  assert.deepEqual(Buffer.from(unpackHead(bytes, 'update head', [4])), Buffer.from('{}'));
  assert.throws(() => unpackHead(bytes, 'update head', [1, 2, 3]), /update head version 4, which this paquete .* does not read \(it reads update head 1-3\)/);
});
