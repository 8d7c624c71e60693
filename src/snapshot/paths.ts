import { PaqueteError } from '../errors.js';

/**
 * The one checker for every name that comes from outside: file paths and source names of a
 * snapshot (from a remote, a LAN peer, a friend's bundle), the source names a manifest lists,
 * the names a publisher reads from its disk, git ref names. Pure. Two sets of rules
 * (docs/FORMATS.md §Names):
 *
 * - **Always** (`checkSnapshotPath`, `checkSourceName`, `checkNameComponent`): what is never
 *   safe on any disk. One component each, never empty, `.` or `..`; no NUL, `/`, `\`, control
 *   characters (a name printed to a terminal must not carry escape sequences), and never the
 *   store's own directory `.paquete` in any guise a file system could fold it to (case, Unicode
 *   normalization and compatibility forms, characters HFS+ ignores, trailing dots and spaces
 *   Windows strips, an NTFS stream suffix `:x`, the 8.3 short name `PAQUET~1`). These are
 *   refused when decoded, before anything is written; the publisher refuses to publish them.
 * - **The target's** (`nameProblems` with the `NameRules` a probe of the working directory's
 *   file system found, src/workdir/fs-probe.ts): names that collide there (case, Unicode
 *   normalization), names FAT/NTFS/exFAT cannot hold (`CON`, `a:b`, `<>|?*"`, trailing dots
 *   and spaces), components and paths over the disk's lengths. Those files are refused, each
 *   named with why, and every other file is placed; the publisher warns about such names.
 */

/** The store's own directory in a working directory (WorkDir's META_DIR). */
export const STORE_DIR_NAME = '.paquete';

/** Most bytes of a snapshot path (Linux's PATH_MAX); the target's own limit may be lower. */
export const MAX_PATH_BYTES = 4096;

const unsafe = (what: string, name: string, why: string): never => {
  throw new PaqueteError('UNSAFE_PATH', `refusing ${what} ${JSON.stringify(name)}: ${why}`);
};

/**
 * Code points a file system may drop when it compares names: HFS+ ignores these (the list git
 * uses against `.g\u200cit`, CVE-2014-9390), and other default-ignorable ones are as invisible.
 */
const IGNORABLE = /[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]/gu;

/** A UTF-16 half without its other half (with the u flag, a pair is one code point). */
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/** Control characters: C0, DEL and C1. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

/**
 * Whether a file system could take this component for the store's directory: compared without
 * ignorable code points, in NFKC, case-folded, without an NTFS stream suffix (`:…`) and without
 * the trailing dots and spaces Windows and Linux's vfat strip; or the 8.3 short name Windows
 * gives `.paquete` (`PAQUET~1`).
 */
export function isStoreDirName(component: string): boolean {
  let s = component.replace(IGNORABLE, '').normalize('NFKC').toLowerCase();
  const colon = s.indexOf(':');
  if (colon >= 0) s = s.slice(0, colon);
  s = s.replace(/[. ]+$/u, '');
  return s === STORE_DIR_NAME || /^\.?paquet~[0-9]+$/u.test(s);
}

/**
 * One component of a path or a source name, by the rules that always apply. `what` and `name`
 * say what is refused in the message ("file name", "source name", the whole path).
 */
export function checkNameComponent(part: string, what = 'name', name = part): void {
  if (part === '' || part === '.') unsafe(what, name, 'empty or "." component');
  if (part === '..') unsafe(what, name, 'escapes the directory with ".."');
  if (part.includes('\0')) unsafe(what, name, 'contains NUL');
  if (part.includes('/')) unsafe(what, name, 'contains a slash');
  if (part.includes('\\')) unsafe(what, name, 'contains a backslash');
  if (CONTROL.test(part)) unsafe(what, name, 'contains a control character');
  if (LONE_SURROGATE.test(part)) unsafe(what, name, 'is not valid Unicode');
  if (isStoreDirName(part)) unsafe(what, name, `would be the store's own ${STORE_DIR_NAME} directory on some disks`);
}

/**
 * A path inside a snapshot must stay inside the working directory on every platform we run on:
 * relative, '/'-separated, each component safe, never naming our own `.paquete` directory at any
 * depth (a `.paquete` in a subfolder would be found by `paquete -C subfolder`). Checked when
 * decoding, before anything is written.
 */
export function checkSnapshotPath(path: string): void {
  const what = 'file name';
  if (path.length === 0) unsafe(what, path, 'empty');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) unsafe(what, path, `longer than ${MAX_PATH_BYTES} bytes`);
  if (path.startsWith('/')) unsafe(what, path, 'absolute path');
  if (/^[A-Za-z]:/.test(path)) unsafe(what, path, 'drive letter');
  for (const part of path.split('/')) checkNameComponent(part, what, path);
}

/**
 * checkSnapshotPath for the many paths of one index: a folder's components are checked once,
 * not once per file in it (the checks took 0.6 s of a 1M-file index's decode). `dirs` is then
 * every folder the paths name, each with all its parents.
 */
export function snapshotPathChecker(): { check(path: string): void; dirs: Set<string> } {
  const dirs = new Set<string>();
  return {
    dirs,
    check(path: string): void {
      const cut = path.lastIndexOf('/');
      const dir = cut > 0 ? path.slice(0, cut) : '';
      if (!dir || !dirs.has(dir)) {
        checkSnapshotPath(path);
        for (let at = path.indexOf('/'); at > 0; at = path.indexOf('/', at + 1)) dirs.add(path.slice(0, at));
        return;
      }
      if (Buffer.byteLength(path) > MAX_PATH_BYTES) unsafe('file name', path, `longer than ${MAX_PATH_BYTES} bytes`);
      checkNameComponent(path.slice(cut + 1), 'file name', path);
    },
  };
}

/**
 * A source name is the first component of its files' paths and names the folder they go to,
 * the /docs/NAME/ and /git/NAME.git URLs of serve, and .paquete/git/NAME.git: letters, digits
 * and `. _ + -` only, at most 100 characters, and a safe component.
 */
export const SOURCE_NAME = /^[A-Za-z0-9._+-]{1,100}$/;

export function checkSourceName(name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new PaqueteError('UNSAFE_PATH', `refusing source name ${JSON.stringify(name)}: not a string`);
  checkNameComponent(name, 'source name');
  if (!SOURCE_NAME.test(name)) unsafe('source name', name, 'source names are 1-100 letters, digits, ". _ + -"');
}

/** A source's kind: `tree`, `pypi`, `git`, `docs`, or one a later paquete adds (or "" for tree). */
const SOURCE_KIND = /^[a-z0-9-]{0,32}$/;

/**
 * A list of sources as a snapshot index or a manifest carries it: each a kind and a safe name,
 * no name twice (in any case: two sources `Docs` and `docs` would share a folder on most disks).
 */
export function checkSources(list: unknown, where: string): asserts list is { kind: string; name: string }[] {
  if (!Array.isArray(list)) throw new PaqueteError('BAD_FORMAT', `${where}: the source list is not a list`);
  const seen = new Set<string>();
  for (const s of list as { kind?: unknown; name?: unknown }[]) {
    if (typeof s?.kind !== 'string' || !SOURCE_KIND.test(s.kind)) throw new PaqueteError('BAD_FORMAT', `${where}: source kind ${JSON.stringify(s?.kind)} is not a kind`);
    checkSourceName(s.name);
    const key = s.name.toLowerCase();
    if (seen.has(key)) throw new PaqueteError('UNSAFE_PATH', `${where}: two sources are named ${JSON.stringify(s.name)} (in some case)`);
    seen.add(key);
  }
}

/** True when checkSourceName would accept it. */
export function isSafeSourceName(name: unknown): name is string {
  try {
    checkSourceName(name);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------------------------------------
// The target file system's rules

/** What a probe found about the file system the files go to (src/workdir/fs-probe.ts). */
export interface NameRules {
  /** `A.TXT` and `a.txt` are one file there. */
  caseInsensitive: boolean;
  /** NFC and NFD forms of a name are one file there (macOS). */
  normalizationInsensitive: boolean;
  /**
   * It refuses or mangles what FAT/NTFS/exFAT cannot hold (`a:b`, a trailing dot): the
   * Windows rules apply in full, device names included, since such a disk goes to Windows.
   */
  windowsNames: boolean;
  /** Longest component, in UTF-8 bytes or UTF-16 units as `componentUnit` says. */
  maxComponent: number;
  componentUnit: 'bytes' | 'utf16';
  /** Longest path below the working directory, in UTF-8 bytes (its own path subtracted). */
  maxPathBytes: number;
}

/** The strictest rules: a name that passes them lands whole on Windows, macOS and a FAT32 stick. */
export const PORTABLE_RULES: NameRules = {
  caseInsensitive: true,
  normalizationInsensitive: true,
  windowsNames: true,
  maxComponent: 255,
  componentUnit: 'utf16',
  maxPathBytes: MAX_PATH_BYTES,
};

export interface NameProblem {
  path: string;
  /** ENAMETOOLONG (a length), NAME_COLLISION (a pair the disk takes for one), NAME_INVALID (FAT/NTFS cannot hold it). */
  code: 'ENAMETOOLONG' | 'NAME_COLLISION' | 'NAME_INVALID';
  /** Why, in words a user can act on; for a collision, the other name too. */
  reason: string;
  /** The other path of a colliding pair. */
  collidesWith?: string;
}

const WINDOWS_CHARS = /[<>:"|?*]/u;
/** Device names Windows reserves in any folder, with any extension (`CON.txt`), any case; COM¹ too. */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/iu;
const isAscii = (s: string) => /^[\x20-\x7e]*$/u.test(s);

/** Why one component cannot be held by Windows' file systems, or undefined. */
function windowsProblem(part: string): string | undefined {
  const bad = WINDOWS_CHARS.exec(part);
  if (bad) return `"${bad[0]}" cannot be in a name on FAT/NTFS/exFAT`;
  if (/[. ]$/u.test(part)) return 'a name ending in a dot or space loses it on FAT/NTFS/exFAT';
  if (WINDOWS_DEVICE.test(part.replace(/[. ]+$/u, ''))) return `"${part}" is a device name on Windows`;
  return undefined;
}

/** The key two names share when a file system takes them for one. */
function foldKey(path: string, rules: NameRules): string {
  let s = path;
  if (rules.normalizationInsensitive && !isAscii(s)) s = s.normalize('NFD');
  // Upper then lower: 'ß' and 'SS' meet, as on file systems with full case folding.
  if (rules.caseInsensitive) s = isAscii(s) ? s.toLowerCase() : s.toUpperCase().toLowerCase();
  return s;
}

/**
 * Which of `paths` the target cannot hold as distinct, whole files (each already passed
 * checkSnapshotPath). A colliding pair is refused as a pair, both named; a file that collides
 * with a folder of another path (`A` and `a/b`) likewise. Pure; linear in the paths.
 */
export function nameProblems(paths: readonly string[], rules: NameRules): NameProblem[] {
  const problems: NameProblem[] = [];
  const refused = new Set<string>();
  const refuse = (p: Omit<NameProblem, 'code'> & { code?: NameProblem['code'] }) => {
    if (refused.has(p.path)) return;
    refused.add(p.path);
    problems.push({ ...p, code: p.code ?? 'NAME_COLLISION' });
  };
  const folding = rules.caseInsensitive || rules.normalizationInsensitive;
  const byKey = new Map<string, string>();
  /** Folded folder → its first spelling, and the first path through it. */
  const dirs = new Map<string, { spelled: string; path: string }>();
  for (const path of paths) {
    if (Buffer.byteLength(path) > rules.maxPathBytes) {
      refuse({ path, code: 'ENAMETOOLONG', reason: `the path is longer than the ${rules.maxPathBytes} bytes this disk allows below the working directory` });
      continue;
    }
    const parts = path.split('/');
    let why: string | undefined;
    let code: NameProblem['code'] = 'NAME_INVALID';
    for (const part of parts) {
      const length = rules.componentUnit === 'bytes' ? Buffer.byteLength(part) : part.length;
      if (length > rules.maxComponent) {
        why = `"${part.slice(0, 40)}…" is longer than the ${rules.maxComponent} ${rules.componentUnit === 'bytes' ? 'bytes' : 'characters'} a name may have on this disk`;
        code = 'ENAMETOOLONG';
      } else if (rules.windowsNames) why = windowsProblem(part);
      if (why) break;
    }
    if (why) {
      refuse({ path, code, reason: why });
      continue;
    }
    if (!folding) continue;
    const key = foldKey(path, rules);
    const other = byKey.get(key);
    if (other !== undefined) {
      const reason = (a: string) => `"${a}" is the same name on this disk (${rules.caseInsensitive ? 'case' : ''}${rules.caseInsensitive && rules.normalizationInsensitive ? ' and ' : ''}${rules.normalizationInsensitive ? 'Unicode normalization' : ''} ignored)`;
      refuse({ path, reason: reason(other), collidesWith: other });
      refuse({ path: other, reason: reason(path), collidesWith: path });
      continue;
    }
    byKey.set(key, path);
    // Each folder on the way, folded, remembers the first spelling seen for it.
    const keyParts = key.split('/');
    for (let i = 1; i < parts.length; i++) {
      const k = keyParts.slice(0, i).join('/');
      const spelled = parts.slice(0, i).join('/');
      const seen = dirs.get(k);
      if (seen === undefined) dirs.set(k, { spelled, path });
      else if (seen.spelled !== spelled) {
        refuse({ path, reason: `its folder "${spelled}" is the folder "${seen.spelled}" of "${seen.path}" on this disk`, collidesWith: seen.path });
        refuse({ path: seen.path, reason: `its folder "${seen.spelled}" is the folder "${spelled}" of "${path}" on this disk`, collidesWith: path });
        break;
      }
    }
  }
  if (folding) {
    // A file whose name is a folder of another path, once folded (`A` beside `a/b`).
    for (const path of paths) {
      if (refused.has(path)) continue;
      const seen = dirs.get(foldKey(path, rules));
      if (seen === undefined) continue;
      refuse({ path, reason: `it is the folder "${seen.spelled}" of "${seen.path}" on this disk`, collidesWith: seen.path });
      refuse({ path: seen.path, reason: `its folder "${seen.spelled}" is the file "${path}" on this disk`, collidesWith: path });
    }
  }
  return problems;
}

/** The paths of a snapshot's file table, as its columns hold them. */
export interface PathColumns {
  readonly length: number;
  readonly pathBytes: Uint8Array;
  readonly pathStart: Uint32Array;
  path(i: number): string;
}

/**
 * nameProblems of a file table's paths. Where the disk's only rules are lengths in bytes (ext4,
 * btrfs, XFS: no folding, no FAT names), each path is judged alone, and one whose bytes are
 * within every length cannot have a problem: only the others are made into strings and judged.
 * Splitting 1M paths into names for that was ~1 s of a 1M-file dry run.
 */
export function nameProblemsOf(files: PathColumns, rules: NameRules): NameProblem[] {
  const byBytesAlone = !rules.caseInsensitive && !rules.normalizationInsensitive && !rules.windowsNames && rules.componentUnit === 'bytes';
  const paths: string[] = [];
  const { pathBytes: b, pathStart: at } = files;
  for (let i = 0; i < files.length; i++) {
    if (byBytesAlone && withinLengths(b, at[i], at[i + 1], rules)) continue;
    paths.push(files.path(i));
  }
  return nameProblems(paths, rules);
}

/** Whether the path b[start, end) is within the disk's path and name lengths in bytes. */
function withinLengths(b: Uint8Array, start: number, end: number, rules: NameRules): boolean {
  if (end - start > rules.maxPathBytes) return false;
  let name = start;
  for (let k = start; k < end; k++) {
    if (b[k] !== 0x2f) continue;
    if (k - name > rules.maxComponent) return false;
    name = k + 1;
  }
  return end - name <= rules.maxComponent;
}
