import { lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { ChunkStore } from '../store/store.js';
import { factsOf, FileEntry, FileFacts, fileTableOf, placedSize, Snapshot } from '../snapshot/snapshot.js';
import { PlacedFile, setPlaced, TreeState } from '../workdir/workdir.js';
import type { PlacedFiles, ScannedTreeState } from '../workdir/tree-state.js';
import { keepBeforeReplace } from '../workdir/generation.js';
import { hashFile } from '../util/fsx.js';
import { matcher } from '../util/glob.js';
import { Placer } from './placer.js';
import { notADirectory, PlaceJob, safeLstat } from './tree-writer.js';

/**
 * The one owner of "the user's files are theirs". Every way a file reaches the working tree or
 * leaves it (sync, import, seed, wants' metadata) goes through a Restorer, and so does every
 * reckoning of what is in place (status, serve's catalog, verify --repair).
 *
 * paquete owns a path only while the file there is exactly as paquete placed it (tree.state: size,
 * mtime and SHA-256 as placed). Anything else at a path the snapshot has, changes, adds or drops
 * is the user's: kept, and reported with what differs and how to resolve it, as `git checkout`
 * refuses to clobber local changes. The only ways past that are the user's own consent
 * (`sync --overwrite GLOB`) or a file identical to the snapshot's (adopted: nothing changes).
 * The place worker checks again just before its rename (PlaceJob.replace), so a file the user
 * creates or edits while a sync runs is kept too.
 *
 * It also remembers, per snapshot, the files the publisher's own data cannot produce (their
 * chunks never hash to the signed SHA-256: not downloaded again until the snapshot changes), and
 * the files that could not be placed and why (a name this disk cannot hold, EACCES, …), so that
 * `status` tells the truth and one file never stops the others.
 */

/** What is at a snapshot file's path, from the snapshot's point of view. */
export type Look =
  /** The snapshot's file, as it should be. */
  | { is: 'in-place' }
  /** Nothing there, or paquete's own older version, untouched since: free to place. */
  | { is: 'free'; replace?: { size: number; mtimeMs: number } }
  /**
   * Something of the user's: kept. `replaceable`: a file or symlink at the path itself, which the
   * user may let the snapshot's replace (--overwrite); never a directory or a parent in the way.
   */
  | { is: 'yours'; why: string; replaceable?: boolean }
  /** The publisher's data for this file is inconsistent in this snapshot: not fetched again. */
  | { is: 'inconsistent' };

export interface KeptFile {
  path: string;
  /** What differs, in plain words. */
  why: string;
}

export interface FailedFile {
  path: string;
  /** The system's code (ENAMETOOLONG, EACCES, …) or paquete's (UNSAFE_PATH). */
  code: string;
  message: string;
}

/** What a pass over the tree did, for the command to print. */
export interface TreeReport {
  placed: string[];
  /** Files of an older snapshot this one no longer has, removed (they were untouched). */
  removed: string[];
  /** The user's files kept where the snapshot has a file (or dropped one the user changed). */
  kept: KeptFile[];
  /** Files that could not be placed, each with its reason; the others were placed. */
  failed: FailedFile[];
  /** Files whose bytes failed their SHA-256; their chunks were dropped and are fetched again. */
  mismatched: string[];
  /** Files found now to be the publisher's fault: never matching their signed SHA-256. */
  inconsistent: string[];
}

export type Placement = 'placed' | 'kept' | 'failed' | 'mismatched' | 'inconsistent';

/** Where the tree is: a WorkDir, or a bare directory (bench). `tmpDir` is read only to place. */
export interface TreeSite {
  readonly root: string;
  readonly tmpDir: string;
  readonly store: ChunkStore;
  /**
   * Where paquete's own files are linked just before they are replaced or removed, by SHA-256:
   * a reader answering from an older generation (serve) still reads them (src/workdir/generation.ts).
   */
  readonly keepDir?: string;
}

/** Restorer.parentInTheWay's word for a parent folder that is not there (no reason text starts with a NUL). */
const ABSENT = '\0absent';
/** A file's signed SHA-256 as the tree state writes it. */
const hexOf = (f: FileFacts) => Buffer.from(f.sha256).toString('hex');

/** How a second mismatch (bytes not fetched from the publisher's remote in one go) is judged. */
const MISMATCHES_TO_BLAME = 2;

export const RESOLVE_HINT = 'keep it (nothing to do), or take the snapshot\'s with paquete sync --overwrite PATH (or move it away and sync again)';

export class Restorer {
  readonly report: TreeReport = { placed: [], removed: [], kept: [], failed: [], mismatched: [], inconsistent: [] };
  /** How files failed beyond "not their SHA-256" (a rebuild stream that did not rebuild), by path. */
  readonly details = new Map<string, string>();
  private readonly overwrite: (path: string) => boolean;
  /**
   * Whether the snapshot describes `path` at all: a partial index (src/sync/shard-cache.ts) does
   * not describe the sources a --want left out, and their placed files are not stale for it.
   */
  private readonly covers: (path: string) => boolean;

  /**
   * `snapshotName` names the snapshot being brought in: what the publisher got wrong, and what
   * failed, in another snapshot is forgotten (a new snapshot may have fixed it).
   */
  constructor(
    private readonly site: TreeSite,
    private readonly snapshot: Snapshot,
    readonly state: TreeState,
    private readonly snapshotName?: string,
    opts: { overwrite?: string[]; covers?: (path: string) => boolean } = {},
  ) {
    const m = opts.overwrite?.length ? matcher(opts.overwrite) : undefined;
    this.covers = opts.covers ?? (() => true);
    this.overwrite = m ? (p) => m(p) >= 0 : () => false;
    if (snapshotName !== undefined) {
      for (const table of [state.inconsistent, state.failed]) {
        for (const [path, rec] of Object.entries(table ?? {})) if (rec.snapshot !== snapshotName) delete table![path];
      }
    }
  }

  /** What is at `f`'s path. Hashes a file only when its size fits and its record does not. */
  look(f: FileFacts): Look {
    const bad = this.state.inconsistent?.[f.path];
    if (bad && bad.publisher && bad.sha256 === hexOf(f)) return { is: 'inconsistent' };
    const inTheWay = this.parentInTheWay(f.path);
    // Under a folder that is not there, nothing is at the path: no lstat (a first sync into an
    // empty directory asked 10k paths twice each). A file placed since has a record: looked at.
    if (inTheWay === ABSENT) {
      if (this.state.files[f.path] === undefined) return { is: 'free' };
    } else if (inTheWay) return { is: 'yours', why: inTheWay };
    const abs = join(this.site.root, f.path);
    const st = safeLstat(abs);
    if (!st) return { is: 'free' };
    if (st.isDirectory()) return { is: 'yours', why: 'a directory of yours is where the snapshot has a file' };
    if (!st.isFile()) return { is: 'yours', why: `${st.isSymbolicLink() ? 'a symlink' : 'something'} of yours is where the snapshot has a file`, replaceable: st.isSymbolicLink() };
    const rec = this.state.files[f.path];
    // Made only for a file that is there: a newcomer's survey of 1M paths made 1M hex strings.
    const want = hexOf(f);
    const asPlaced = rec !== undefined && rec.size === st.size && rec.mtimeMs === st.mtimeMs;
    if (asPlaced) return rec.sha256 === want ? { is: 'in-place' } : { is: 'free', replace: { size: st.size, mtimeMs: st.mtimeMs } };
    const yours: Look = { is: 'yours', why: rec ? 'changed since paquete placed it' : 'not placed by paquete', replaceable: true };
    if (st.size !== placedSize(f) && (!rec || st.size !== rec.size)) return yours;
    // Not as recorded (placed by hand, a crash after the rename, or touched): its bytes decide.
    const got = hashFile(abs);
    if (got === want) {
      this.record(f.path, { size: st.size, mtimeMs: st.mtimeMs, sha256: want });
      return { is: 'in-place' };
    }
    if (rec && got === rec.sha256) {
      this.record(f.path, { ...rec, mtimeMs: st.mtimeMs });
      return { is: 'free', replace: { size: st.size, mtimeMs: st.mtimeMs } };
    }
    return yours;
  }

  /** Directories already looked at: why each is in the way, '' when it is not, ABSENT when nothing was there. */
  private readonly dirs = new Map<string, string>();

  /**
   * Why something of the user's stands where `path`'s parent directories should be (a symlink,
   * a file), or undefined: known before a byte is fetched, as the place worker will refuse it.
   * ABSENT when a parent was not there when first looked at (the place worker makes it; what
   * is at the path by then is checked again just before the rename).
   */
  private parentInTheWay(path: string): string | undefined {
    for (let cut = path.indexOf('/'); cut > 0; cut = path.indexOf('/', cut + 1)) {
      const dir = path.slice(0, cut);
      let why = this.dirs.get(dir);
      if (why === undefined) {
        const st = safeLstat(join(this.site.root, dir));
        why = !st ? ABSENT : st.isDirectory() ? '' : notADirectory(dir, st);
        this.dirs.set(dir, why);
      }
      if (why) return why;
    }
    return undefined;
  }

  /**
   * `verify`'s look at the tree: every file paquete holds as placed is read whole and checked
   * against the signed SHA-256, not trusted by its size and mtime as a sync does. A file as
   * placed whose bytes differ is damaged (the disk, a stick, a program that kept the mtime);
   * the user's own files are listed, not judged; files not here yet are not this check's.
   */
  audit(): { checked: number; damaged: string[]; yours: KeptFile[] } {
    let checked = 0;
    const damaged: string[] = [];
    const yours: KeptFile[] = [];
    for (const f of this.snapshot.files) {
      const l = this.look(f);
      if (l.is === 'yours') yours.push({ path: f.path, why: l.why });
      if (l.is !== 'in-place') continue;
      checked++;
      if (hashFile(join(this.site.root, f.path)) !== Buffer.from(f.sha256).toString('hex')) damaged.push(f.path);
    }
    return { checked, damaged, yours };
  }

  /**
   * A damaged file is still paquete's (nobody changed it on purpose): its record takes the bytes
   * it now holds, so the next sync sees paquete's own outdated file and places the snapshot's.
   */
  markDamaged(path: string): void {
    const rec = this.state.files[path];
    if (rec) this.record(path, { ...rec, sha256: hashFile(join(this.site.root, path)) });
  }

  isInPlace(f: FileEntry): boolean {
    return this.look(f).is === 'in-place';
  }

  /**
   * One look at every file of the snapshot: those in place; those not to fetch (`blocked`): the
   * user's files, unless --overwrite covers them, and the publisher's faults found earlier.
   */
  survey(): { complete: Set<string>; blocked: Set<string>; yours: KeptFile[]; inconsistent: string[] } {
    const complete = new Set<string>();
    const blocked = new Set<string>();
    const yours: KeptFile[] = [];
    const inconsistent: string[] = [];
    // From the table: a file's facts, not its entry (1M entries held 350 MB for this one walk).
    const files = fileTableOf(this.snapshot);
    for (let i = 0; i < files.length; i++) {
      const f = factsOf(files, i);
      const l = this.look(f);
      if (l.is === 'in-place') complete.add(f.path);
      else if (l.is === 'inconsistent') {
        blocked.add(f.path);
        inconsistent.push(f.path);
      } else if (l.is === 'yours' && !this.overwritable(f.path, l)) {
        blocked.add(f.path);
        yours.push({ path: f.path, why: l.why });
      }
    }
    return { complete, blocked, yours, inconsistent };
  }

  /** Where paquete's own file at `path` is kept when the new one replaces it (not the user's: no generation names theirs). */
  private keepOf(path: string, l: Look): PlaceJob['keep'] {
    const rec = this.state.files[path];
    return l.is === 'free' && l.replace && rec && this.site.keepDir ? { dir: this.site.keepDir, sha256: rec.sha256 } : undefined;
  }

  private overwritable(path: string, l: Look): boolean {
    // A directory is never swept away, even when asked: it may hold anything.
    return l.is === 'yours' && !!l.replaceable && this.overwrite(path);
  }

  /**
   * Places `f` from the store unless something of the user's is at its path. `fromPublisher`:
   * every chunk came from the publisher's remote in this session, so a mismatch is the
   * publisher's fault at once (else the chunks are dropped and fetched again, and a second
   * mismatch in this snapshot is). Calls under way together are synced together. Throws only
   * what stops every file (a full disk, a broken store).
   */
  async place(f: FileEntry, fromPublisher = false): Promise<Placement> {
    const l = this.look(f);
    if (l.is === 'in-place') return 'placed';
    if (l.is === 'inconsistent') return 'inconsistent';
    if (l.is === 'yours' && !this.overwritable(f.path, l)) return this.keep(f.path, l.why);
    const replace: PlaceJob['replace'] = l.is === 'yours' ? 'any' : l.replace;
    const placer = Placer.get();
    const { store } = this.site;
    // sha256 copied: a view would take the whole buffer under it along to the worker.
    const job: PlaceJob = { root: this.site.root, tmpDir: this.site.tmpDir, storeDir: store.dir, path: f.path, mode: f.mode & 0o777 || 0o644, sha256: Uint8Array.from(f.sha256), replace, rebuiltSize: f.rebuiltSize, keep: this.keepOf(f.path, l) };
    const id = placer.begin(job);
    try {
      // Located a few hundred at a time; the worker reads them from the packs.
      const BATCH = 256;
      for (let at = 0; at < f.chunks.length; at += BATCH) {
        const ids = f.chunks.slice(at, at + BATCH).map((i) => this.snapshot.chunks.id(i));
        placer.write(id, await store.locateMany(ids), at + BATCH >= f.chunks.length);
      }
    } catch (e) {
      // Ended all the same, so the worker drops the temp file (short, it fails its checksum).
      placer.end(id).catch(() => {});
      throw e;
    }
    const outcome = await placer.end(id);
    if (outcome.ok) {
      this.record(f.path, { size: outcome.size, mtimeMs: outcome.mtimeMs, sha256: Buffer.from(f.sha256).toString('hex') });
      if (this.state.failed) delete this.state.failed[f.path];
      this.report.placed.push(f.path);
      return 'placed';
    }
    if (outcome.why === 'yours') return this.keep(f.path, outcome.message);
    if (outcome.why === 'failed') {
      // The store's own copy cannot be read (a pack cut or gone, a record that does not decode):
      // its chunks are dropped so that the next sync fetches them again. Not a mismatch: that
      // would count against the publisher.
      let message = outcome.message;
      if (outcome.code === 'DAMAGED_PACK' || outcome.code === 'DAMAGED_STORE') {
        await this.site.store.forget(f.chunks.map((i) => this.snapshot.chunks.id(i)));
        message = `the store's copy is damaged (${message}): its chunks will be fetched again by the next sync`;
      }
      (this.state.failed ??= {})[f.path] = { snapshot: this.snapshotName ?? '', code: outcome.code, message };
      this.report.failed.push({ path: f.path, code: outcome.code, message });
      return 'failed';
    }
    if (outcome.detail) this.details.set(f.path, outcome.detail);
    return this.mismatch(f, fromPublisher);
  }

  /**
   * A file this disk cannot hold by its name (src/sync/tree-names.ts), refused before anything is
   * fetched or written: recorded and reported as a file that could not be placed, with why.
   */
  refuse(path: string, code: string, message: string): void {
    (this.state.failed ??= {})[path] = { snapshot: this.snapshotName ?? '', code, message };
    this.report.failed.push({ path, code, message });
  }

  private keep(path: string, why: string): Placement {
    this.report.kept.push({ path, why });
    return 'kept';
  }

  private async mismatch(f: FileEntry, fromPublisher: boolean): Promise<Placement> {
    // Dropped either way: a peer's forged chunk must not stay, and the publisher's are refetched
    // only if another file needs them.
    await this.site.store.forget(f.chunks.map((i) => this.snapshot.chunks.id(i)));
    const sha256 = Buffer.from(f.sha256).toString('hex');
    const rec = this.state.inconsistent?.[f.path];
    const times = (rec && rec.sha256 === sha256 ? rec.mismatches : 0) + 1;
    const blamed = fromPublisher || times >= MISMATCHES_TO_BLAME;
    (this.state.inconsistent ??= {})[f.path] = { snapshot: this.snapshotName ?? '', sha256, mismatches: times, publisher: blamed };
    if (!blamed) {
      // Only a suspicion so far: look() does not hold it against the file.
      this.report.mismatched.push(f.path);
      return 'mismatched';
    }
    this.report.inconsistent.push(f.path);
    return 'inconsistent';
  }

  /**
   * Removes the files paquete placed that this snapshot no longer has, each only if it is still
   * exactly as placed and its every parent is a real directory of the tree: a parent the user
   * turned into a symlink would take the unlink outside DIR.
   */
  removeStale(): void {
    // Paths from the file table: `snapshot.files` made an entry per file for this one look
    // (0.16 s of a 1% update's profile at 10k files).
    const table = fileTableOf(this.snapshot);
    const inSnapshot = new Set<string>();
    for (let i = 0; i < table.length; i++) inSnapshot.add(table.path(i));
    for (const path in this.state.files) {
      if (inSnapshot.has(path) || !this.covers(path)) continue;
      const rec = this.state.files[path];
      this.record(path, undefined);
      const abs = join(this.site.root, path);
      const parents = parentsOf(this.site.root, path);
      if (parents === 'gone') continue;
      if (parents === 'not-directories') {
        this.report.kept.push({ path, why: 'dropped from the snapshot, but a parent directory is now a symlink or a file: nothing removed' });
        continue;
      }
      const st = safeLstat(abs);
      if (!st) continue;
      const untouched = st.isFile() && st.size === rec.size && (st.mtimeMs === rec.mtimeMs || hashFile(abs) === rec.sha256);
      if (!untouched) {
        this.report.kept.push({ path, why: 'dropped from the snapshot, but changed since paquete placed it: kept, it is yours now' });
        continue;
      }
      if (this.site.keepDir) keepBeforeReplace(this.site.keepDir, abs, rec.sha256);
      unlinkSync(abs);
      this.report.removed.push(path);
    }
  }

  /**
   * The one way the tree state's files change: any change but the sync's that then finds the tree
   * complete (finish) means the tree is no longer known complete.
   */
  private record(path: string, rec: PlacedFile | undefined): void {
    setPlaced(this.state, path, rec);
    delete this.state.complete;
  }

  /**
   * The snapshot is now the tree's: what paquete placed is recorded against it. `sync` says
   * what it wanted and which files those were: when every one of them is in place and nothing
   * was kept, refused or failed, the tree is recorded complete at the snapshot (stillComplete).
   */
  finish(sync?: { asked: string[]; wants: string[]; wanted: Iterable<string>; inPlace: Set<string> }): void {
    if (this.snapshotName === undefined) return;
    this.state.snapshot = this.snapshotName;
    delete this.state.complete;
    if (!sync || sync.asked.some(isPypiWant)) return;
    const r = this.report;
    if (r.kept.length || r.failed.length || r.mismatched.length || r.inconsistent.length) return;
    if (Object.keys(this.state.failed ?? {}).length || Object.keys(this.state.inconsistent ?? {}).length) return;
    for (const p of sync.wanted) if (!sync.inPlace.has(p) || !Object.hasOwn(this.state.files, p)) return;
    this.state.complete = { snapshot: this.snapshotName, asked: [...sync.asked], wants: [...sync.wants] };
  }
}

/** A `pypi:` want resolves through metadata and this machine's Python: never taken as unchanged. */
const isPypiWant = (w: string) => w.startsWith('pypi:');

/** The files of a tree found still complete: indices into `files`, in the order a plan lists them. */
export interface StillComplete {
  files: PlacedFiles;
  wanted: number[];
}

/**
 * The files a sync given `asked` wants, when the tree is still as the last such sync left it
 * complete at snapshot `snapshotName` (TreeState.complete): every file paquete placed still has
 * the size and mtime it was placed with (the check rsync -a makes), and every folder above one
 * is a real directory. Read from the tree state's columns (scanTreeState) and the tree alone: the
 * index is not needed, and no object is built per file. Else undefined, and the sync goes the
 * whole way.
 */
export function stillComplete(root: string, state: ScannedTreeState | undefined, snapshotName: string, asked: string[]): StillComplete | undefined {
  const c = state?.rest.complete;
  if (!state || !c || c.snapshot !== snapshotName || c.asked.length !== asked.length || c.asked.some((w, i) => w !== asked[i])) return undefined;
  const which = c.wants.length ? matcher(c.wants) : undefined;
  const files = state.files;
  const { paths, size, mtimeMs } = files;
  const dirs = new Set<string>();
  let lastDir = '';
  const unchanged = inDirectory(root, (base) => {
    for (let i = 0; i < paths.length; i++) {
      const path = paths[i];
      // Snapshot paths are checked relative paths (src/snapshot/paths.ts): joined as they are.
      const st = lstatSync(base + path, { throwIfNoEntry: false });
      if (!st || !st.isFile() || st.size !== size[i] || st.mtimeMs !== mtimeMs[i]) return false;
      const dir = path.slice(0, path.lastIndexOf('/'));
      if (dir !== lastDir) {
        lastDir = dir;
        for (let cut = dir.length; cut > 0 && !dirs.has(dir.slice(0, cut)); cut = dir.lastIndexOf('/', cut - 1)) dirs.add(dir.slice(0, cut));
      }
    }
    for (const d of dirs) if (!lstatSync(base + d, { throwIfNoEntry: false })?.isDirectory()) return false;
    return true;
  });
  if (!unchanged) return undefined;
  const byPath = (a: number, b: number) => (paths[a] < paths[b] ? -1 : paths[a] > paths[b] ? 1 : 0);
  if (!which) {
    const wanted = Array.from({ length: paths.length }, (_, i) => i);
    // A log written whole lists its files in path order: sorting 100k strings again cost ~0.1 s.
    return { files, wanted: inOrder(paths) ? wanted : wanted.sort(byPath) };
  }
  const rank = new Int32Array(paths.length);
  const wanted: number[] = [];
  for (let i = 0; i < paths.length; i++) if ((rank[i] = which(paths[i])) >= 0) wanted.push(i);
  return { files, wanted: wanted.sort((a, b) => rank[a] - rank[b] || byPath(a, b)) };
}

function inOrder(paths: string[]): boolean {
  for (let i = 1; i < paths.length; i++) if (!(paths[i - 1] < paths[i])) return false;
  return true;
}

/**
 * Runs `walk` with the tree's root as the current directory, so each lstat names a path relative
 * to it: the kernel then resolves a file's own few components, not the root's as well (100k
 * files at 7 components deep: 0.47 s instead of 0.57-0.75 s of lstat). Synchronous, so no other
 * code of this thread runs while the directory is changed; everything else paquete opens is
 * named by an absolute path. A worker thread cannot change directory: it passes root/ instead.
 */
function inDirectory<T>(root: string, walk: (base: string) => T): T {
  const withRoot = root.endsWith('/') ? root : `${root}/`;
  if (!isMainThread) return walk(withRoot);
  let before: string;
  try {
    before = process.cwd();
    process.chdir(root);
  } catch {
    return walk(withRoot);
  }
  try {
    return walk('');
  } finally {
    process.chdir(before);
  }
}

/** Whether every parent of `path` under `root` is a real directory (lstat: a symlink is not one). */
function parentsOf(root: string, path: string): 'directories' | 'gone' | 'not-directories' {
  let dir = root;
  for (const part of path.split('/').slice(0, -1)) {
    dir = join(dir, part);
    const st = safeLstat(dir);
    if (!st) return 'gone';
    if (!st.isDirectory()) return 'not-directories';
  }
  return 'directories';
}
