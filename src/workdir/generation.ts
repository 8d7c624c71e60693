import { closeSync, existsSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { alive, identityOf, parseLock } from './lock.js';
import type { PlacedFile, TreeState } from './workdir.js';
import { LEGACY_TREE_JSON, readTreeStateIn, TREE_STATE, TREE_STATE_LENGTH } from './tree-state.js';

/**
 * Generations: what readers (serve) answer from while a writer (sync) changes the working
 * directory (docs/DESIGN-REMOTE-V3.md decision 8, on today's files). Readers never take the
 * lock; a writer switches what readers see with one rename, and never takes from under a live
 * reader the bytes its generation names.
 *
 *   .paquete/current                "<n>\n": the generation a reader takes now
 *   .paquete/generations/<n>/       tree.state and manifest.json as they were when n was made:
 *                                   hard links to the writer's files, which are only ever
 *                                   replaced by a rename, or appended to (tree.state: read up
 *                                   to tree.state.length, its length at the switch), never
 *                                   changed in place (copies on a disk without hard links)
 *   .paquete/keep/<sha256>          a file paquete placed, replaced or removed since: linked here
 *                                   just before the rename or unlink, while a generation names it
 *   .paquete/readers/<pid>          "<pid> #<dev>:<ino> <what> <n>[ <n>…]\n": a reader and the
 *                                   generations it answers from
 *
 * The switch: the writer makes generations/<n> whole (under a temporary name, then renamed),
 * then writes `current` (atomic rename). A reader registers the generation it read from
 * `current` and then reads `current` again; only when it is unchanged does it use it. A writer
 * reads the registrations only after its switch, so a reader it did not see reads the new
 * `current` and moves on: nothing a registered generation names is removed (prune).
 */
export const CURRENT = 'current';
const GENERATIONS = 'generations';
export const KEEP = 'keep';
const READERS = 'readers';
/** The files a generation holds, each as the working directory has it at the switch (tree.json: an older paquete's). */
const GENERATION_FILES = [TREE_STATE, LEGACY_TREE_JSON, 'manifest.json'];

/** The generation `current` names, or undefined when none was made yet (an older paquete's directory). */
export function currentGeneration(meta: string): number | undefined {
  try {
    const n = Number(readFileSync(join(meta, CURRENT), 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Makes the working directory's tree state and manifest.json the next generation and switches
 * `current` to it (writer only, under the lock). Then removes what no generation still in use
 * names. `PAQUETE_PAUSE_BEFORE_SWITCH` (tests): the path of a file written just before the
 * switch; the switch waits until it is removed, so a test can read while the tree is placed and
 * the switch not yet made.
 */
export async function switchGeneration(meta: string, opts: { pause?: boolean; state?: TreeState } = {}): Promise<number> {
  const n = (currentGeneration(meta) ?? 0) + 1;
  const dir = join(meta, GENERATIONS, String(n));
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true }); // a leftover of a switch cut before `current`
  mkdirSync(tmp, { recursive: true });
  for (const f of GENERATION_FILES) if (existsSync(join(meta, f))) linkOrCopy(join(meta, f), join(tmp, f));
  // The log grows after the switch (appends, under the same inode): the generation is its prefix.
  if (existsSync(join(tmp, TREE_STATE))) writeFileSync(join(tmp, TREE_STATE_LENGTH), `${statSync(join(tmp, TREE_STATE)).size}\n`);
  renameSync(tmp, dir);
  const pause = process.env.PAQUETE_PAUSE_BEFORE_SWITCH;
  if (pause && opts.pause !== false) {
    writeFileSync(pause, `${n}\n`);
    while (existsSync(pause)) await new Promise((r) => setTimeout(r, 20));
  }
  writeFileAtomic(join(meta, CURRENT), `${n}\n`);
  prune(meta, opts.state && { n, state: opts.state });
  return n;
}

/**
 * Whether `current` names a generation older than the working directory's state: a writer saved
 * its state and stopped before its switch (a kill -9 there). A sync that then finds nothing new
 * must still switch, or readers stay on the snapshot before for as long as nothing new comes.
 * Reads only metadata (and, on a disk without hard links, the small manifest); writes nothing.
 */
export function generationBehind(meta: string): boolean {
  const n = currentGeneration(meta);
  if (n === undefined) return true;
  const dir = join(meta, GENERATIONS, String(n));
  const stat = (p: string) => statSync(p, { throwIfNoEntry: false });
  for (const f of GENERATION_FILES) {
    const here = stat(join(meta, f));
    const there = stat(join(dir, f));
    if (!here && !there) continue;
    if (!here || !there) return true;
    if (here.ino === there.ino && here.dev === there.dev) continue; // the link made at the switch
    // A copy (no hard links here): the log is its prefix, the manifest its bytes.
    if (f === TREE_STATE) continue;
    if (!readFileSync(join(meta, f)).equals(readFileSync(join(dir, f)))) return true;
  }
  const log = stat(join(meta, TREE_STATE));
  if (log) {
    let length = NaN;
    try {
      length = Number(readFileSync(join(dir, TREE_STATE_LENGTH), 'latin1').trim());
    } catch {
      /* no length: a generation older than the log */
    }
    if (length !== log.size) return true;
  }
  return false;
}

/** A hard link (no bytes written); a copy where the disk has none (FAT). */
function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
    copyFileSync(from, to);
  }
}

/**
 * Keeps the bytes of a file paquete placed before they are replaced or removed, named by their
 * SHA-256, for readers whose generation still names them. Only a link: on a disk without hard
 * links nothing is kept (a reader of an older generation then finds the file gone: 404).
 */
export function keepBeforeReplace(keepDir: string, path: string, sha256: string): void {
  try {
    mkdirSync(keepDir, { recursive: true });
    linkSync(path, join(keepDir, sha256));
  } catch {
    /* EEXIST: kept already; no hard links here: nothing kept */
  }
}

/** A reader's registration. */
export interface ReaderRecord {
  pid: number;
  what: string;
  generations: number[];
}

/** The live readers (a registration of a dead process, or copied with the folder, is stale: removed). */
export function liveReaders(meta: string): ReaderRecord[] {
  const dir = join(meta, READERS);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const here = identityOf(meta);
  const live: ReaderRecord[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(join(dir, name), 'utf8');
    } catch {
      continue;
    }
    const holder = parseLock(text);
    const parts = holder.what.split(' ');
    const generations = parts.slice(1).map(Number).filter((g) => Number.isSafeInteger(g) && g > 0);
    if (holder.pid !== Number(name) || holder.dir !== here || !(holder.pid === process.pid || alive(holder.pid))) {
      rmSync(join(dir, name), { force: true });
      continue;
    }
    live.push({ pid: holder.pid, what: parts[0], generations });
  }
  return live;
}

/**
 * Removes generations and kept files nothing uses: the current generation and every live
 * reader's stay, with every kept file one of them names. `made`: the generation just switched
 * to and the tree state it was made of (saved just before), so it is not read back.
 */
export function prune(meta: string, made?: { n: number; state: TreeState }): void {
  const current = currentGeneration(meta);
  const used = new Set<number>(liveReaders(meta).flatMap((r) => r.generations));
  if (current !== undefined) used.add(current);
  const gdir = join(meta, GENERATIONS);
  for (const name of safeReaddir(gdir)) {
    const n = Number(name);
    if (!(Number.isSafeInteger(n) && used.has(n))) rmSync(join(gdir, name), { recursive: true, force: true });
  }
  const kept = safeReaddir(join(meta, KEEP));
  if (!kept.length) return;
  const named = new Set<string>();
  for (const n of used) {
    // The generation just made, as the writer holds it: decoding its whole log again was most of
    // the switch after a 1% update (10k records read to keep or drop the 100 files replaced).
    const files = n === made?.n ? made.state.files : generationState(meta, n).files;
    for (const path in files) named.add(files[path].sha256);
  }
  for (const sha of kept) if (!named.has(sha)) rmSync(join(meta, KEEP, sha), { force: true });
}

/**
 * Throws LOCKED while a reader (serve) is live: `what` rewrites the store and the tree in ways a
 * reader's generation cannot be kept through (verify --repair drops and rebuilds records).
 */
export function refuseWhileRead(meta: string, what: string): void {
  const r = liveReaders(meta)[0];
  if (r) throw new PaqueteError('LOCKED', `${r.what} (pid ${r.pid}) is reading this directory; ${what} rewrites the store under it`, `stop ${r.what} (Ctrl-C), run ${what}, then start it again`);
}

/** The shas of the snapshots the live readers' generations are at (gc keeps their chunks). */
export function readersSnapshots(meta: string): { snapshots: Set<string>; readers: ReaderRecord[] } {
  const readers = liveReaders(meta);
  const snapshots = new Set<string>();
  for (const n of new Set(readers.flatMap((r) => r.generations))) {
    const s = generationState(meta, n).snapshot;
    if (s) snapshots.add(s);
  }
  return { snapshots, readers };
}

function generationState(meta: string, n: number): TreeState {
  return readTreeStateIn(join(meta, GENERATIONS, String(n)));
}

/**
 * One generation as a reader holds it: its tree state and manifest, and the bytes of each file
 * it names, found at the file's path while the file there is still the one placed (size and
 * mtime as recorded) or else in keep/.
 */
export class Generation {
  private constructor(
    /** 0: the directory has no generations yet; the live files are read (nothing is kept for them). */
    readonly n: number,
    readonly state: TreeState,
    readonly manifest: Buffer | undefined,
    private readonly root: string,
    private readonly meta: string,
  ) {}

  static load(root: string, meta: string, n: number | undefined): Generation {
    const dir = n === undefined ? meta : join(meta, GENERATIONS, String(n));
    const read = (f: string) => {
      try {
        return readFileSync(join(dir, f));
      } catch {
        return undefined;
      }
    };
    return new Generation(n ?? 0, readTreeStateIn(dir), read('manifest.json'), root, meta);
  }

  /** Whether the bytes this generation placed at `path` (with this SHA-256) can still be read. */
  has(path: string, sha256: string): boolean {
    const rec = this.state.files[path];
    return rec?.sha256 === sha256 && this.pathOf(path, join(this.root, path)) !== undefined;
  }

  /**
   * Where the bytes this generation placed at `path` are now: `treePath` (its real path in the
   * tree, checked by the caller) while the file there is the one placed, else the kept copy;
   * undefined when gone, or when this generation placed nothing there.
   */
  pathOf(path: string, treePath: string | undefined): string | undefined {
    const rec = this.state.files[path];
    if (!rec) return undefined;
    const st = treePath ? safeLstat(treePath) : undefined;
    if (st && asPlaced(st, rec)) return treePath;
    const kept = join(this.meta, KEEP, rec.sha256);
    return safeLstat(kept)?.size === rec.size ? kept : undefined;
  }

  /**
   * Opens the bytes this generation placed at `path`: from the tree, `treePath` being its real
   * path there (checked by the caller to stay inside the mirror), else from keep/. The
   * descriptor keeps them readable whatever a sync does next. Undefined when they are gone.
   */
  open(path: string, treePath: string | undefined): number | undefined {
    const rec = this.state.files[path];
    if (!rec) return undefined;
    const candidates = [treePath, join(this.meta, KEEP, rec.sha256)];
    for (const p of candidates) {
      if (!p) continue;
      let fd: number;
      try {
        fd = openSync(p, 'r');
      } catch {
        continue;
      }
      const st = fstatSync(fd);
      // The kept file is the same inode as the one placed: its mtime is the placement's too.
      if (asPlaced(st, rec)) return fd;
      closeSync(fd);
    }
    return undefined;
  }
}

const asPlaced = (st: { isFile(): boolean; size: number; mtimeMs: number }, rec: PlacedFile) => st.isFile() && st.size === rec.size && st.mtimeMs === rec.mtimeMs;

/**
 * A reader's entry in .paquete/readers/: which generations it answers from, rewritten whole
 * when that changes, removed when it stops.
 */
export class ReaderRegistration {
  private readonly path: string;

  constructor(
    private readonly meta: string,
    private readonly what: string,
  ) {
    this.path = join(meta, READERS, String(process.pid));
  }

  /**
   * Registers `held` and the generation `current` names, and returns that generation once
   * `current` still names it after the registration (so a writer that switched meanwhile saw it).
   */
  take(held: number[]): number | undefined {
    for (;;) {
      const n = currentGeneration(this.meta);
      this.set(n === undefined ? held : [...new Set([...held, n])]);
      if (currentGeneration(this.meta) === n) return n;
    }
  }

  set(generations: number[]): void {
    writeFileAtomic(this.path, `${process.pid} #${identityOf(this.meta)} ${this.what} ${generations.join(' ')}`.trimEnd() + '\n');
  }

  release(): void {
    try {
      unlinkSync(this.path);
    } catch {
      /* gone already */
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function safeLstat(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
