import { createHash, Hash, randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fstatSync, fsync, lstatSync, mkdirSync, openSync, renameSync, rmSync, Stats, writevSync } from 'node:fs';
import { join } from 'node:path';
import { keepBeforeReplace } from '../workdir/generation.js';
import { promisify } from 'node:util';
import { PaqueteError } from '../errors.js';
import { Located, PackReader } from '../store/pack-reader.js';
import { Rebuilder } from '../rebuild/recipe.js';

/**
 * Writes files into a working tree: each goes to a temp file, is checked against its SHA-256,
 * synced, and only then renamed into place, so a reader never sees a half-written or wrong file
 * whatever interrupts us. It runs in the place worker (src/sync/place-worker.ts): every call
 * here may wait on the disk's journal (creating a file while another file's fsync commits
 * blocked the main thread's open() for 60 ms of a 420 ms sync), and none of that should stop
 * the thread that decodes the download.
 *
 * Syncing is done in groups, whose fsyncs all run at once: one journal commit then serves many
 * files (typescript 5.9.3, 132 files: fsync one by one ~90 ms, all at once ~25 ms). A group is
 * synced when the writer has nothing else to do (no file data waiting), or when it is big:
 * while data pours in, creating files beside a running commit waits on the journal (the tail of
 * a local sync took 100-220 ms that way), and over a slow link the writer is idle between files,
 * so each is in place moments after its last byte.
 */
export interface PlaceJob {
  /** The working tree and the temp directory beside it (same file system). */
  root: string;
  tmpDir: string;
  /** The store whose packs hold the file's chunks. */
  storeDir: string;
  /** Relative, '/'-separated, already checked not to escape the tree. */
  path: string;
  mode: number;
  sha256: Uint8Array;
  /**
   * What may be at the path when the file is renamed there: nothing (undefined), paquete's own
   * file exactly as the restorer saw it, or anything but a directory ('any': the user said
   * --overwrite). Checked just before the rename, so a file the user made meanwhile is kept.
   */
  replace?: { size: number; mtimeMs: number } | 'any';
  /**
   * Where the file being replaced is hard-linked just before the rename (paquete's own file, so a
   * reader of an older generation still reads it: src/workdir/generation.ts).
   */
  keep?: { dir: string; sha256: string };
  /** Set when the chunks are a rebuild stream (src/rebuild/recipe.ts): the size of the file they rebuild. */
  rebuiltSize?: number;
}

export type PlaceOutcome =
  | { ok: true; size: number; mtimeMs: number }
  /** The bytes did not hash to the snapshot's SHA-256, or did not rebuild (`detail` says how): nothing was placed. */
  | { ok: false; why: 'checksum'; detail?: string }
  /** Something of the user's is in the way (found when the file was ready): kept, nothing placed. */
  | { ok: false; why: 'yours'; message: string }
  /** This one file could not be placed (a name this disk cannot hold, EACCES, …). */
  | { ok: false; why: 'failed'; code: string; message: string };

interface Open {
  job: PlaceJob;
  tmp: string;
  fd: number;
  hash: Hash;
  size: number;
  error?: unknown;
  /** For a rebuilt file: the rebuilder the chunks go through, and why it failed. */
  rebuilder?: Rebuilder;
  rebuildFailure?: string;
}

interface Staged {
  open: Open;
  settle: (outcome: PlaceOutcome | Error) => void;
}

const fsyncAsync = promisify(fsync);
/**
 * The process's umask, read once (paquete never sets it; a worker thread may not). A temp file is
 * always new (a unique name), so open() gave it exactly mode & ~UMASK: fchmod is needed only when
 * that took bits off (10k of a first sync's system calls, under the usual 022 and modes 644/755).
 */
const UMASK = process.umask();
/** The name of a file being assembled in the temp directory. */
export const TEMP_FILE = /^[0-9a-f]{16}\.part$/;
/** A group is synced at once when it holds this many files or bytes (open descriptors, memory). */
const GROUP_FILES = 256;
const GROUP_BYTES = 256 << 20;

export class TreeWriter {
  private files = new Map<number, Open>();
  private staged: Staged[] = [];
  private stagedBytes = 0;
  private committing = false;
  private idleCheck: NodeJS.Immediate | undefined;
  /** Pack readers by store, closed whenever no file is under way (packs may go between syncs). */
  private readers = new Map<string, PackReader>();
  /**
   * Folders of the tree seen to be real directories, forgotten with the readers: three lstats a
   * file for a file three folders deep were most of a first sync's system calls.
   */
  private dirs = new Set<string>();

  /** Starts file `id`. A failure is kept and reported by `end`. */
  /** Temp names: a random prefix per writer and a counter (randomBytes per file cost 40 µs each). */
  private readonly tempPrefix = randomBytes(4).toString('hex');
  private tempCount = 0;

  begin(id: number, job: PlaceJob): void {
    const n = (this.tempCount = (this.tempCount + 1) >>> 0);
    const tmp = join(job.tmpDir, `${this.tempPrefix}${n.toString(16).padStart(8, '0')}.part`); // TEMP_FILE
    const open: Open = { job, tmp, fd: -1, hash: createHash('sha256'), size: 0 };
    if (job.rebuiltSize !== undefined) open.rebuilder = rebuilderFor(open);
    this.files.set(id, open);
    try {
      prepareParents(job.root, job.path, this.dirs);
      open.fd = openSync(tmp, 'w', job.mode);
    } catch (e) {
      open.error = e;
    }
  }

  /** Appends the chunks at `records` to file `id` (ignored once it has failed). */
  write(id: number, records: Located[]): void {
    const open = this.files.get(id);
    if (!open || open.error !== undefined || open.rebuildFailure !== undefined) return;
    try {
      this.reader(open.job.storeDir).read(records, (raws) => {
        if (open.rebuilder) {
          try {
            for (const raw of raws) open.rebuilder.push(raw);
          } catch (e) {
            if ((e as PaqueteError).code !== 'BAD_FORMAT') throw e;
            open.rebuildFailure = (e as Error).message;
          }
          return;
        }
        writeAll(open.fd, raws);
        for (const raw of raws) {
          open.hash.update(raw);
          open.size += raw.length;
        }
      });
    } catch (e) {
      open.error = e;
    }
  }

  private reader(storeDir: string): PackReader {
    let r = this.readers.get(storeDir);
    if (!r) this.readers.set(storeDir, (r = new PackReader(storeDir)));
    return r;
  }

  /** Ends file `id`: settles once it is in place, or failed its checksum, or failed. */
  end(id: number, settle: (outcome: PlaceOutcome | Error) => void): void {
    const open = this.files.get(id);
    this.files.delete(id);
    if (!open) return settle(new Error(`no file ${id} under way`));
    if (open.rebuilder && open.error === undefined && open.rebuildFailure === undefined) {
      try {
        open.rebuilder.end();
      } catch (e) {
        open.rebuildFailure = (e as Error).message;
      }
    }
    if (open.rebuildFailure !== undefined) {
      discard(open);
      return settle({ ok: false, why: 'checksum', detail: `it did not rebuild: ${open.rebuildFailure}` });
    }
    if (open.error === undefined && open.hash.digest().compare(open.job.sha256) === 0) {
      this.staged.push({ open, settle });
      this.stagedBytes += open.size;
      if (this.staged.length >= GROUP_FILES || this.stagedBytes >= GROUP_BYTES) this.commitNext();
      // Runs once the messages already queued (more file data) are handled: when idle.
      else this.idleCheck ??= setImmediate(() => {
        this.idleCheck = undefined;
        this.commitNext();
      });
      return;
    }
    discard(open);
    settle(open.error === undefined ? { ok: false, why: 'checksum' } : outcomeOf(open.error, open.job.path));
  }

  private commitNext(): void {
    if (this.committing || this.staged.length === 0) return;
    const group = this.staged;
    this.staged = [];
    this.stagedBytes = 0;
    this.committing = true;
    void this.commit(group).finally(() => {
      this.committing = false;
      this.commitNext();
      if (!this.committing && this.files.size === 0 && this.staged.length === 0) {
        for (const r of this.readers.values()) r.close();
        this.readers.clear();
        this.dirs.clear();
      }
    });
  }

  /** Syncs a group's temp files all at once, then renames each into place. */
  private async commit(group: Staged[]): Promise<void> {
    const synced = await Promise.allSettled(group.map((s) => fsyncAsync(s.open.fd)));
    group.forEach(({ open, settle }, k) => {
      try {
        const r = synced[k];
        if (r.status === 'rejected') throw r.reason;
        // By descriptor: no path lookups. The mode is set past the umask, only when the umask took
        // bits off it (open() made the file with mode & ~umask); a rename keeps the mtime.
        if ((open.job.mode & UMASK) !== 0) fchmodSync(open.fd, open.job.mode);
        const st = fstatSync(open.fd);
        closeSync(open.fd);
        open.fd = -1;
        settle(moveIntoPlace(open, st));
      } catch (e) {
        discard(open);
        settle(outcomeOf(e, open.job.path));
      }
    });
  }
}

/**
 * A rebuilder writing into the file's temp file and hash. Its output comes in small pieces
 * (literals, copied views, 64 KiB of deflate output), written at once: the views it hands out
 * are only valid during the call (the pack reader's buffer is reused).
 */
function rebuilderFor(open: Open): Rebuilder {
  return new Rebuilder((bytes) => {
    if (open.fd < 0) return;
    writeAll(open.fd, [bytes]);
    open.hash.update(bytes);
    open.size += bytes.length;
  });
}

/** writev until every byte is written (a short write is legal, if rare, on a full disk). */
function writeAll(fd: number, parts: Uint8Array[]): void {
  while (parts.length) {
    let written = writevSync(fd, parts);
    while (parts.length && written >= parts[0].length) {
      written -= parts[0].length;
      parts = parts.slice(1);
    }
    if (parts.length && written > 0) parts = [parts[0].subarray(written), ...parts.slice(1)];
  }
}

function moveIntoPlace(open: Open, placed: Stats): PlaceOutcome {
  const { job, tmp } = open;
  const target = join(job.root, job.path);
  const st = safeLstat(target);
  if (st) {
    const r = job.replace;
    const ours = r === 'any' || (r !== undefined && st.isFile() && st.size === r.size && st.mtimeMs === r.mtimeMs);
    if (st.isDirectory() || !ours) {
      discard(open);
      return { ok: false, why: 'yours', message: st.isDirectory() ? 'a directory of yours is where the snapshot has a file' : 'created or changed by you while paquete was placing it' };
    }
  }
  if (st && job.keep) keepBeforeReplace(job.keep.dir, target, job.keep.sha256);
  renameSync(tmp, target);
  return { ok: true, size: placed.size, mtimeMs: placed.mtimeMs };
}

function discard(open: Open): void {
  open.rebuilder?.close();
  if (open.fd >= 0) closeSync(open.fd);
  open.fd = -1;
  rmSync(open.tmp, { force: true });
}

/** Something of the user's where a file's parent directory should be. */
class InTheWay extends Error {}

/** Plain words for what stops one file; the system's message otherwise. */
const REASONS: Record<string, string> = {
  ENAMETOOLONG: 'its name is too long for this disk',
  EACCES: 'permission denied',
  EPERM: 'not permitted',
  EINVAL: 'this disk cannot hold that name',
  EILSEQ: 'this disk cannot hold that name',
  EIO: 'the disk reported an input/output error',
};

/**
 * What an error while placing one file means: the end of every file (a full disk, a read-only
 * one: thrown, the session stops with progress saved) or of this one file only (an outcome).
 */
function outcomeOf(e: unknown, path: string): PlaceOutcome | Error {
  if (e instanceof InTheWay) return { ok: false, why: 'yours', message: e.message };
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PaqueteError('DISK_FULL', `the disk is full while writing ${path}`, 'free some space and run paquete sync again; everything downloaded is kept');
  }
  if (code === 'EROFS') return new PaqueteError('IO', `the disk is read-only: cannot write ${path}`, 'sync into a directory you can write to');
  if (e instanceof PaqueteError) return { ok: false, why: 'failed', code: e.code, message: e.message };
  if (code) return { ok: false, why: 'failed', code, message: REASONS[code] ?? (e as Error).message };
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * Creates the parent directories, refusing to follow a symlink out of the tree. `known` holds
 * folders already seen to be real directories (added to here).
 */
function prepareParents(root: string, path: string, known: Set<string>): void {
  const parts = path.split('/');
  let dir = root;
  for (const [k, part] of parts.slice(0, -1).entries()) {
    dir = join(dir, part);
    if (known.has(dir)) continue;
    const st = safeLstat(dir);
    const name = parts.slice(0, k + 1).join('/');
    if (!st) mkdirSync(dir);
    else if (!st.isDirectory()) throw new InTheWay(notADirectory(name, st));
    known.add(dir);
  }
}

/** Why `name`, which is not a directory, stands where the snapshot has one. */
export function notADirectory(name: string, st: Stats): string {
  return st.isSymbolicLink() ? `${name} is a symlink of yours; paquete never writes through one` : `${name} is a file of yours where the snapshot has a directory`;
}

export function safeLstat(p: string) {
  try {
    // Not an exception for a path that is not there (the common case when placing): building
    // one cost more than the lstat itself (1.4 s of a 10k-file first sync's 6 s).
    return lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}
