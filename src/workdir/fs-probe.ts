import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_PATH_BYTES, NameRules, PORTABLE_RULES } from '../snapshot/paths.js';

/**
 * What the file system under a working directory does with names, found by trying: a few empty
 * files created in a scratch folder of DIR/.paquete and removed at once (about 20 file
 * operations; 1-2 ms on ext4). The same tree can sit on ext4 at home, on a FAT32 stick, or on a
 * Mac: which names collide or cannot be held is a fact of the disk, not of the operating system.
 *
 * - case: is `aB` found as `Ab`?
 * - Unicode normalization: is `é` (NFC, U+00E9) found as `é` (NFD, e + U+0301)?
 * - Windows names: is `a:b`, `a*b` or `a"b` refused, or does `x.` lose its dot (Linux's vfat,
 *   ntfs3 and exfat drivers do one or the other)? Then every FAT/NTFS rule applies, device names
 *   too: the disk is one that Windows will read.
 * - lengths: the longest ASCII component it takes, and whether a name of two-byte characters
 *   longer in bytes than that fits (then the limit counts characters, as on FAT and NTFS).
 *
 * A probe that cannot run (a read-only disk) gives the portable rules, the strictest.
 */
export function probeNameRules(metaDir: string, root: string): NameRules {
  const scratch = join(metaDir, `probe-${randomBytes(6).toString('hex')}`);
  try {
    mkdirSync(scratch, { recursive: true });
  } catch {
    return withRoot(PORTABLE_RULES, root);
  }
  try {
    const create = (name: string): boolean => {
      try {
        closeSync(openSync(join(scratch, name), 'wx'));
        return true;
      } catch {
        return false;
      }
    };
    const listed = () => new Set(readdirSync(scratch));
    const has = (name: string) => listed().has(name) || existsByOpen(join(scratch, name));
    create('aB');
    const caseInsensitive = has('Ab');
    create('\u00e9');
    const normalizationInsensitive = has('e\u0301');
    const strips = create('x.') && !listed().has('x.');
    const windowsNames = strips || !create('a:b') || !create('a*b') || !create('a"b');
    const fits = (n: number, ch = 'a') => {
      const name = ch.repeat(n);
      const ok = create(name);
      if (ok) rmSync(join(scratch, name), { force: true });
      return ok;
    };
    // The longest ASCII name: 255 nearly everywhere; searched when not.
    let maxComponent = 255;
    if (!fits(255)) maxComponent = largest(1, 254, fits);
    else if (fits(256)) maxComponent = largest(256, 1024, fits);
    // Two-byte characters, more bytes than the limit but fewer characters: counted how?
    const half = Math.floor(maxComponent / 2) + 1;
    const componentUnit = half <= maxComponent && fits(half, '\u00e9') ? 'utf16' : 'bytes';
    return withRoot({ caseInsensitive, normalizationInsensitive, windowsNames, maxComponent, componentUnit, maxPathBytes: MAX_PATH_BYTES }, root);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The rules for the tree at `root`: the probe's, or the portable set when PAQUETE_NAMES=portable
 * (a tree that will be copied to a FAT stick, a Mac or Windows: refuse there what would not fit).
 */
export function nameRulesFor(metaDir: string, root: string, env: NodeJS.ProcessEnv = process.env): NameRules {
  return env.PAQUETE_NAMES === 'portable' ? withRoot(PORTABLE_RULES, root) : probeNameRules(metaDir, root);
}

/** What a user should know about the disk's names, in words; undefined for a disk that holds any name. */
export function describeNameRules(r: NameRules): string | undefined {
  const what = [
    r.caseInsensitive ? 'ignores case' : '',
    r.normalizationInsensitive ? 'ignores Unicode normalization' : '',
    r.windowsNames ? 'cannot hold names FAT/NTFS refuse (CON, a:b, a trailing dot)' : '',
    r.maxComponent < 255 ? `holds names of at most ${r.maxComponent} ${r.componentUnit === 'bytes' ? 'bytes' : 'characters'}` : '',
  ].filter(Boolean);
  return what.length ? `this disk ${what.join(', ')}: files whose names it cannot hold will be refused by name, and the others placed` : undefined;
}

/** The path limit below `root`: the system's, less the root's own path and its slash. */
function withRoot(rules: NameRules, root: string): NameRules {
  const systemMax = process.platform === 'darwin' ? 1024 : MAX_PATH_BYTES;
  return { ...rules, maxPathBytes: Math.min(rules.maxPathBytes, systemMax - 1 - Buffer.byteLength(root) - 1) };
}

/** The largest n in [lo, hi] with fits(n), fits being monotone and true below lo. */
function largest(lo: number, hi: number, fits: (n: number) => boolean): number {
  let best = lo - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return Math.max(best, 1);
}

function existsByOpen(path: string): boolean {
  try {
    closeSync(openSync(path, 'r'));
    return true;
  } catch {
    return false;
  }
}
