import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { exec } from './tmp.js';

/**
 * Debian's headless chromium, as a user's browser sees a page of `paquete serve`: the DOM after
 * the page's own scripts ran, and a screenshot. scripts/ensure-system-deps.sh installs it.
 */
export const chromiumPath = (): string | undefined => ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

export const NO_CHROMIUM = '!!! SKIPPED: no chromium on this machine (bash scripts/ensure-system-deps.sh installs it) !!!';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Each call its own profile folder under `dir`: two chromiums never share one. */
let profiles = 0;
function profile(dir: string): string {
  const p = join(dir, `chromium-profile-${process.pid}-${++profiles}`);
  mkdirSync(p, { recursive: true });
  return p;
}

/** The page as the browser rendered it (DOM serialized after load). */
export async function renderedDom(chromium: string, url: string, dir: string): Promise<string> {
  const r = await exec(chromium, [...FLAGS, `--user-data-dir=${profile(dir)}`, '--dump-dom', url]);
  assert.equal(r.code, 0, `chromium --dump-dom ${url} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** A width × height PNG of the page; checked to be a PNG of that size with something drawn on it. */
export async function screenshot(chromium: string, url: string, dir: string, png: string, width = 1200, height = 900): Promise<Buffer> {
  const r = await exec(chromium, [...FLAGS, `--user-data-dir=${profile(dir)}`, `--screenshot=${png}`, `--window-size=${width},${height}`, url]);
  assert.ok(existsSync(png), `no screenshot: ${r.stderr.slice(-2000)}`);
  const bytes = readFileSync(png);
  assert.equal(bytes.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'a PNG');
  assert.equal(bytes.readUInt32BE(16), width);
  assert.equal(bytes.readUInt32BE(20), height);
  return bytes;
}
