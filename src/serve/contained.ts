import { realpathSync } from 'node:fs';
import { join, sep } from 'node:path';
import { META_DIR } from '../workdir/workdir.js';

/**
 * Where serve may read: the real path of `rel` (a '/'-separated path below `root`) when it
 * stays inside the mirror through every symlink, and outside the mirror's own `.paquete`
 * directory (its config names the remote, with any password, and the key the user trusts).
 * Undefined otherwise, and when it does not exist: the caller answers 404. The names that
 * reach here were checked when their snapshot was decoded; this is the second wall, against a
 * symlink in the tree (the user's, or one left by another tool) and anything the first missed.
 */
export function realPathInMirror(root: string, rel: string): string | undefined {
  let realRoot: string;
  let real: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(join(root, ...rel.split('/')));
  } catch {
    return undefined;
  }
  if (!isInside(real, realRoot) || real === realRoot) return undefined;
  if (real === join(realRoot, META_DIR) || isInside(real, join(realRoot, META_DIR))) return undefined;
  return real;
}

/** Whether `path` is `dir` or below it (both real, absolute). */
export const isInside = (path: string, dir: string): boolean => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
