import { lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { PaqueteError } from '../errors.js';

export interface TreeFile {
  /** '/'-separated path relative to the tree root. */
  rel: string;
  abs: string;
  mode: number;
  size: number;
  /** What the publisher cache compares (src/publish/publisher-cache.ts): a file whose stat is unchanged is not read again. */
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export interface TreeListing {
  files: TreeFile[];
  /** Entries left out, each with the reason (a dangling link, a socket, a loop). */
  skipped: string[];
  /** Symbolic links published as what they name: "rel -> target". */
  followed: string[];
}

/**
 * Lists the files under `root` in a stable order (byte order of their paths), so the same tree
 * always makes the same snapshot.
 *
 * Symbolic links are **followed**: a link to a regular file is published as that file's bytes, a
 * link to a directory as that directory's files. Sources as users have them need this: Debian's
 * python3.11-doc links `_static/jquery.js` and `underscore.js` to /usr/share/javascript, and
 * leaving them out broke the docs' own JavaScript in the browser while the catalog called them
 * complete. A snapshot has no link entries, so what a client places is always a plain file, on
 * every filesystem (FAT32 sticks have no links). The publisher chose the tree, so what its links
 * name is theirs to publish; every followed link is listed in the publish output. A link that
 * dangles, points at something that is neither a file nor a directory, or loops back into a
 * directory being walked is skipped and reported with its reason; nothing is dropped silently.
 */
export function listTree(root: string): TreeListing {
  let st;
  try {
    st = statSync(root);
  } catch {
    throw new PaqueteError('BAD_SOURCE', `source ${root} does not exist`);
  }
  if (!st.isDirectory()) throw new PaqueteError('BAD_SOURCE', `source ${root} is not a directory`);
  const files: TreeFile[] = [];
  const skipped: string[] = [];
  const followed: string[] = [];
  /** Directories on the current walk (dev:ino): a link back into one of them is a loop. */
  const walking = new Set<string>();
  const dirKey = (s: Stats): string => `${s.dev}:${s.ino}`;
  const walk = (dir: string, prefix: string, self: Stats) => {
    walking.add(dirKey(self));
    // Each name's bytes once: a comparator making two Buffers per comparison took most of the walk.
    const names = readdirSync(dir)
      .map((name) => ({ name, key: Buffer.from(name) }))
      .sort((a, b) => Buffer.compare(a.key, b.key))
      .map((e) => e.name);
    for (const name of names) {
      if (prefix === '' && name === '.paquete') continue;
      const abs = join(dir, name);
      const rel = prefix + name;
      let s = lstatSync(abs);
      if (s.isSymbolicLink()) {
        try {
          s = statSync(abs);
        } catch {
          skipped.push(`${rel} (a symbolic link to nothing)`);
          continue;
        }
        if (s.isDirectory() && walking.has(dirKey(s))) {
          skipped.push(`${rel} (a symbolic link that loops back to a directory above it)`);
          continue;
        }
        if (s.isFile() || s.isDirectory()) followed.push(`${rel} -> ${linkTarget(root, abs)}`);
      }
      if (s.isDirectory()) walk(abs, rel + '/', s);
      else if (s.isFile()) files.push({ rel, abs, mode: s.mode & 0o777, size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino, dev: s.dev });
      else skipped.push(`${rel} (not a regular file)`);
    }
    walking.delete(dirKey(self));
  };
  walk(root, '', st);
  return { files, skipped, followed };
}

/** Where a link leads, for the publish output: inside the tree as a relative path, else absolute. */
function linkTarget(root: string, abs: string): string {
  const real = realpathSync(abs);
  const inside = relative(realpathSync(root), real);
  return inside && !inside.startsWith('..') ? inside.split(sep).join('/') : real;
}
