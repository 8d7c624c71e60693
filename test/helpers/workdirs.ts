/**
 * Checks and settings shared by the tests that sync through nginx and the fault proxy (park,
 * budget-wire, budget-property, fallbacks): one copy each, so they judge the same way.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FaultProxy } from './faultproxy.js';
import { treeDigest } from './trees.js';

/** Points a working directory's remotes at `remotes` (as if the hotspot or a friend sat there). */
export function setRemotes(work: string, remotes: Array<{ location: string; free?: boolean }>): void {
  const path = join(work, '.paquete', 'config.json');
  const cfg = JSON.parse(readFileSync(path, 'utf8'));
  cfg.remotes = remotes;
  writeFileSync(path, JSON.stringify(cfg));
}

/** What the proxy carried for the client, both directions. */
export const carried = (p: FaultProxy): number => p.stats.bytesFromClient + p.stats.bytesToClient;

/** Every file in the tree is the published one (no half-written or wrong file); returns how many there are. */
export function checkNoWrongFiles(source: Record<string, string>, work: string): number {
  const got = treeDigest(work);
  for (const [path, digest] of Object.entries(got)) assert.equal(digest, source[path], `${path} in the tree is not the published file`);
  return Object.keys(got).length;
}
