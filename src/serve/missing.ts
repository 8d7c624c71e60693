import type { Snapshot } from '../snapshot/snapshot.js';
import type { Completeness } from '../sync/completeness.js';
import { formatSize } from '../util/size.js';

/**
 * What serve says about something the snapshot has but this mirror does not hold yet, and the
 * exact command that brings it. A page not yet synced used to answer a bare "no such file", the
 * same as a page that does not exist, and the catalog's hint for a PyPI source wanted a project
 * named after the source. Pure: the server hands in the snapshot and what is complete.
 */

/** `s` as one shell word (POSIX single quotes), for commands a user pastes. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command that brings the files matching `want` into the working directory at `root`. */
export function syncCommand(root: string, want?: string): string {
  return `paquete sync -C ${shellWord(root)}${want === undefined ? '' : ` --want ${shellWord(want)}`}`;
}

/** The `--want` that names a whole source: `KIND:NAME` (a PyPI source: every file under it). */
export function sourceWant(kind: string, name: string): string {
  return kind && kind !== 'pypi' && kind !== 'tree' ? `${kind}:${name}` : `${name}/**`;
}

/**
 * What serve can say of `path` in a source a partial index does not describe (a sync --want that
 * left it out): not whether the file exists, only that the source is not indexed here, how much it
 * holds, and the want that brings it. Undefined when the path's source is indexed.
 */
export function notIndexedHere(notIndexed: Map<string, { files: number; bytes: number }> | undefined, path: string, folder: boolean, sources: { kind: string; name: string }[]): NotYetHere | undefined {
  const name = path.split('/')[0];
  const n = notIndexed?.get(name);
  const src = sources.find((s) => s.name === name);
  if (!n || !src) return undefined;
  const prefix = path.endsWith('/') ? path : `${path}/`;
  const whole = folder && prefix === `${name}/`;
  return {
    what: whole ? `${prefix} (${n.files} of ${n.files} files not here yet; its index was not wanted in this copy)` : `${path} (in ${name}/, whose index was not wanted in this copy)`,
    want: whole ? sourceWant(src.kind, src.name) : folder ? `${prefix}**` : path,
    bytes: n.bytes,
    files: n.files,
    unindexed: true,
  };
}

export interface NotYetHere {
  /** Set when the source is not indexed here: `bytes` and `files` are the whole source's (the root's count). */
  unindexed?: boolean;
  /** What is missing, for the message: the file, or the folder with how many files. */
  what: string;
  /** The glob to want: the file's path, or the folder's `PATH/**`. */
  want: string;
  /** Bytes the files hold (the size of what will appear, not of what crosses the wire). */
  bytes: number;
  files: number;
}

/**
 * Whether `path` (a file, or a folder with `folder` set) is in the snapshot but not complete
 * here. Undefined when the snapshot has no such file or folder, or it is all here.
 */
export function notYetHere(snapshot: Snapshot, completeness: Completeness, path: string, folder: boolean): NotYetHere | undefined {
  if (!folder) {
    const f = snapshot.files.find((x) => x.path === path);
    if (!f || completeness.complete.has(path)) return undefined;
    return { what: path, want: path, bytes: f.size, files: 1 };
  }
  const prefix = path.endsWith('/') ? path : `${path}/`;
  let files = 0;
  let bytes = 0;
  let missing = 0;
  for (const f of snapshot.files) {
    if (!f.path.startsWith(prefix)) continue;
    files++;
    bytes += f.size;
    if (!completeness.complete.has(f.path)) missing++;
  }
  if (files === 0 || missing === 0) return undefined;
  return { what: `${prefix} (${missing} of ${files} files not here yet)`, want: `${prefix}**`, bytes, files };
}

/** The plain-text answer for a 404 of something not synced yet. */
export function notYetHereText(n: NotYetHere, root: string): string {
  return (
    (n.unindexed
      ? `not synced yet: ${n.what}; the source holds ${n.files} files, ${formatSize(n.bytes)}, not in this copy.\n`
      : `not synced yet: ${n.what}, ${formatSize(n.bytes)}, is in the mirror's snapshot but not in this copy.\n`) +
    `To bring it (where there is internet):\n\n  ${syncCommand(root, n.want)}\n`
  );
}
