import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Deterministic pseudo-random bytes (xorshift32), so test trees are the same on every run. */
export function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** mulberry32: a small seeded generator (kill instants, fault choices) a seed can replay. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Writes files (path → content) under root. */
export function writeTree(root: string, files: Record<string, string | Uint8Array>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

/** path → sha256 of every regular file under root, skipping .paquete. */
export function treeDigest(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir)) {
      if (prefix === '' && name === '.paquete') continue;
      const abs = join(dir, name);
      const st = statSync(abs);
      if (st.isDirectory()) walk(abs, `${prefix}${name}/`);
      else out[`${prefix}${name}`] = createHash('sha256').update(readFileSync(abs)).digest('hex');
    }
  };
  walk(root, '');
  return out;
}

/** A sample tree with the awkward cases: empty files, a large file, odd names, nesting. */
export function sampleTree(root: string, seed = 1): Record<string, string | Uint8Array> {
  const files: Record<string, string | Uint8Array> = {
    'README.txt': 'hello from the park\n',
    'empty.txt': '',
    'deep/a/b/c/d.txt': 'deep\n',
    'odd names/spaces and ñandú ☕.txt': 'unicode name\n',
    'odd names/#hash%percent&amp;.bin': pseudoRandom(3000, seed + 7),
    'big/large.bin': pseudoRandom(6_000_000, seed),
    'big/zeros.bin': Buffer.alloc(1_000_000),
    'src/code.js': 'export const x = 1;\n'.repeat(5000),
  };
  writeTree(root, files);
  return files;
}

const WORDS = ('function return const let if else for while import export class this value index length push map ' +
  'filter reduce node chunk store frame delta update snapshot => { } ( ) ; = + - async await new throw Error string ' +
  'number budget remote manifest verify session planner').split(' ');

/**
 * Source-code-like text: lines drawn mostly from a pool of a few hundred statements, as real code
 * repeats itself far beyond one chunk (what one long compressed stream catches and chunks
 * compressed alone do not), with some fresh lines between. `lines` lines from a seed.
 */
export function textFile(seed: number, lines: number): string {
  const rnd = seededRandom(seed);
  const pool = Array.from({ length: 400 }, () => textLine(rnd));
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(rnd() < 0.1 ? textLine(rnd) : pool[Math.floor(pool.length * rnd() ** 2)]);
  return out.join('\n') + '\n';
}

function textLine(rnd: () => number): string {
  const words = Array.from({ length: 3 + Math.floor(rnd() * 8) }, () => WORDS[Math.floor(rnd() * WORDS.length)]);
  return ' '.repeat(2 * Math.floor(rnd() * 4)) + words.join(' ') + ` v${Math.floor(rnd() * 1e6)}`;
}

/** A new release of a text file: `edits` lines replaced and as many inserted, spread over it. */
export function editText(text: string, seed: number, edits: number): string {
  const rnd = seededRandom(seed);
  const lines = text.split('\n');
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rnd() * lines.length);
    lines[at] = textLine(rnd);
    lines.splice(Math.floor(rnd() * lines.length), 0, textLine(rnd));
  }
  return lines.join('\n');
}
