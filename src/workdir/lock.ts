import { linkSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { PaqueteError } from '../errors.js';

/**
 * One command at a time on a directory (a working directory, a served git repository, a remote
 * being published to). The lock file holds one line, `<pid> <what>`, or `<pid> <host> <what>`
 * when the directory may be shared between machines (a remote on a network share). A lock whose
 * process is gone (kill -9, power loss) is stale and taken over, so a crash never locks the user
 * out; a lock from another host is never judged stale here (its pid means nothing on this one).
 * A working directory's lock also names the directory it is in, `<pid> #<dev>:<ino> <what>`:
 * a copy of the folder (made while `serve` ran in the original, whose pid is alive) carries a
 * lock naming another directory, which is not held there.
 */
export interface LockOptions {
  /** This machine's name, written into the lock and compared before judging a pid dead. */
  host?: string;
  /** How a refusal starts (default "another paquete command is working here"). */
  busy?: string;
  /** What a refusal suggests when the holder is on this host (default "wait for it to finish, or stop it"). */
  hint?: string;
  /**
   * Write the identity (device and inode) of the directory holding the lock file, and judge a
   * lock naming another one stale whatever its pid: it was copied here with the folder.
   */
  identifyDirectory?: boolean;
}

/** Releases the lock; `held()` says whether the lock file is still this process's own. */
export type Release = (() => void) & { held(): boolean };

export function acquireLock(path: string, what: string, opts: LockOptions = {}): Release {
  const dir = opts.identifyDirectory ? `#${directoryIdentity(path)}` : undefined;
  const text = `${[process.pid, opts.host, dir, what].filter((p) => p !== undefined).join(' ')}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createWhole(path, text)) return releaser(path, text);
    let owner: string;
    try {
      owner = readFileSync(path, 'utf8');
    } catch {
      continue; // released meanwhile
    }
    const busy = refusal(path, owner, opts);
    if (busy) throw busy;
    breakStale(path, owner);
  }
  throw new PaqueteError('LOCKED', `cannot take the lock ${path}`);
}

/** Why the lock whose file holds `owner` is not stale: LOCKED, or undefined when it is. */
function refusal(path: string, owner: string, opts: LockOptions): PaqueteError | undefined {
  const holder = parseLock(owner, opts.host !== undefined);
  const sameHost = opts.host === undefined || holder.host === opts.host;
  const copied = opts.identifyDirectory && holder.dir !== undefined && holder.dir !== directoryIdentity(path);
  if (sameHost && (copied || !(holder.pid > 0 && holder.pid !== process.pid && alive(holder.pid)))) return undefined;
  const on = holder.host !== undefined ? ` on ${holder.host}` : '';
  return new PaqueteError(
    'LOCKED',
    `${opts.busy ?? 'another paquete command is working here'} (pid ${holder.pid || '?'}${on}: ${holder.what || 'unknown'})`,
    sameHost ? (opts.hint ?? 'wait for it to finish, or stop it') : `wait for it to finish; if nothing runs on ${holder.host}, delete ${path}`,
  );
}

/** Errors that mean the directory cannot be written at all, so no lock file can be made there. */
export const isReadOnlyError = (e: unknown): boolean => ['EROFS', 'EACCES', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '');

/**
 * Throws LOCKED when the lock at `path` is held (as acquireLock judges it), reading only: a
 * read-only command on a directory it cannot write, where no lock file can be made, still
 * honours a command that holds the lock.
 */
export function refuseIfHeld(path: string, opts: LockOptions = {}): void {
  let owner: string;
  try {
    owner = readFileSync(path, 'utf8');
  } catch {
    return;
  }
  const busy = refusal(path, owner, opts);
  if (busy) throw busy;
}

/**
 * The lock file appears with its whole line or not at all (written aside, then hard-linked into
 * place, which fails if it exists): a reader never sees an empty lock and judges it stale.
 */
function createWhole(path: string, text: string): boolean {
  const tmp = `${path}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, text);
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return false;
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * Removes a stale lock without removing a fresh one: two takers may both judge the same dead
 * lock stale, and the slower one must not delete the lock the faster one just made. The file is
 * moved aside first (atomic), then checked to be the stale one read; a fresh lock moved by
 * mistake is linked back (and if a third process took the place meanwhile, the displaced
 * owner's `held()` says so before it commits anything).
 */
function breakStale(path: string, staleText: string): void {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch {
    return; // someone else moved it: try again
  }
  try {
    if (readFileSync(aside, 'utf8') !== staleText) {
      try {
        linkSync(aside, path);
      } catch {
        /* a third taker holds it now; the displaced owner sees it in held() */
      }
    }
  } finally {
    unlinkSync(aside);
  }
}

function releaser(path: string, text: string): Release {
  const held = () => {
    try {
      return readFileSync(path, 'utf8') === text;
    } catch {
      return false;
    }
  };
  const release = () => {
    // Only our own: after a takeover by mistake (see breakStale) the file may be another's.
    if (!held()) return;
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  };
  return Object.assign(release, { held });
}

export interface LockHolder {
  /** 0 when the file names none (torn or foreign). */
  pid: number;
  host?: string;
  /** `<dev>:<ino>` of the directory the lock was made in; absent in locks without it (older ones). */
  dir?: string;
  what: string;
}

/** Who a lock file's text names. */
export function parseLock(text: string, withHost = false): LockHolder {
  const parts = text.trim().split(' ');
  const pid = Number(parts[0]);
  const host = withHost ? parts[1] : undefined;
  let rest = parts.slice(withHost ? 2 : 1);
  let dir: string | undefined;
  if (/^#\d+:\d+$/.test(rest[0] ?? '')) {
    dir = rest[0].slice(1);
    rest = rest.slice(1);
  }
  return { pid: Number.isSafeInteger(pid) ? pid : 0, host, dir, what: rest.join(' ') };
}

/** Device and inode of the directory holding `lockPath`, decimal: what a copy of it does not share. */
const directoryIdentity = (lockPath: string): string => identityOf(dirname(lockPath));

/** Device and inode of `dir`, decimal (`<dev>:<ino>`): what a copy of the directory does not share. */
export function identityOf(dir: string): string {
  const st = statSync(dir, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

/**
 * acquireLock, waiting while another process holds it: told once who that is (`onWait`), then
 * trying every 200 ms, up to `timeoutMs` (default: for ever) or until `signal` aborts.
 */
export async function waitForLock(path: string, what: string, opts: LockOptions & { timeoutMs?: number; onWait?: (holder: string) => void; signal?: AbortSignal } = {}): Promise<Release> {
  const deadline = Date.now() + (opts.timeoutMs ?? Infinity);
  let told = false;
  for (;;) {
    try {
      return acquireLock(path, what, opts);
    } catch (e) {
      if (!(e instanceof PaqueteError) || e.code !== 'LOCKED' || Date.now() > deadline || opts.signal?.aborted) throw e;
      if (!told) opts.onWait?.(e.message);
      told = true;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Whether process `pid` runs on this machine. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
