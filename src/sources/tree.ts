import { lstatSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';

export interface TreeFile {
  /** '/'-separated path relative to the tree root. */
  rel: string;
  abs: string;
  mode: number;
  size: number;
}

/**
 * Lists the regular files under `root` in a stable order (byte order of their paths), so the
 * same tree always makes the same snapshot. Symlinks and special files are reported, not
 * followed: a link could point anywhere on the publisher's disk.
 */
export function listTree(root: string): { files: TreeFile[]; skipped: string[] } {
  let st;
  try {
    st = statSync(root);
  } catch {
    throw new PaqueteError('BAD_SOURCE', `source ${root} does not exist`);
  }
  if (!st.isDirectory()) throw new PaqueteError('BAD_SOURCE', `source ${root} is not a directory`);
  const files: TreeFile[] = [];
  const skipped: string[] = [];
  const walk = (dir: string, prefix: string) => {
    const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      if (prefix === '' && name === '.paquete') continue;
      const abs = join(dir, name);
      const rel = prefix + name;
      const s = lstatSync(abs);
      if (s.isDirectory()) walk(abs, rel + '/');
      else if (s.isFile()) files.push({ rel, abs, mode: s.mode & 0o777, size: s.size });
      else skipped.push(rel);
    }
  };
  walk(root, '');
  return { files, skipped };
}
