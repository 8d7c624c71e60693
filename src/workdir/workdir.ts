import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { ChunkStore, OpenOptions } from '../store/store.js';
import { writeFileAtomic } from '../util/fsx.js';
import { acquireLock, isReadOnlyError, refuseIfHeld } from './lock.js';
import { currentGeneration, KEEP, switchGeneration } from './generation.js';
import { STORE_DIR_NAME } from '../snapshot/paths.js';

/** The store's directory inside DIR; no name from outside may ever reach it (src/snapshot/paths.ts). */
export const META_DIR = STORE_DIR_NAME;

/** A working directory's lock names the directory too: a copy of the folder is not locked by it. */
const LOCK = { identifyDirectory: true };

export interface RemoteConfig {
  /** An http(s) URL or an absolute local path. */
  location: string;
  /**
   * Reading it costs nothing (a LAN peer, a stick): read before the paid remotes, and not counted
   * against the budget. Default: true for a local path, false for a URL.
   */
  free?: boolean;
}

/** Whether reading a remote costs nothing: as configured, else true for local paths only. */
export const isFreeRemote = (r: RemoteConfig): boolean => r.free ?? !/^https?:\/\//i.test(r.location);

export interface WorkConfig {
  version: 1;
  /** In order: free ones are read first, then the paid one, which the budget applies to. */
  remotes: RemoteConfig[];
  /** Base64 of the trusted publisher's Ed25519 key. */
  publisher: string;
}

export interface WorkDirOptions {
  /**
   * The command only reads (status, verify, serve): on a directory it cannot write (a read-only
   * mount, a stick with its lock slider on, files of another user) it runs without the lock
   * file, still refusing while a command holds the lock, on a read-only store.
   */
  readOnlyFallback?: boolean;
  /**
   * The command only reads and must not lock out a writer (serve): no lock is taken, the store
   * is read through a copy of its index (LevelDB admits one process), and nothing of the
   * writer's is written (src/workdir/generation.ts says what it reads instead).
   */
  reader?: boolean;
  /**
   * The command only reads (status, verify): it takes the lock when it is free, as a writer
   * does, and reads as a `reader` while a writer (sync) holds it.
   */
  shared?: boolean;
  /** How the store is opened otherwise. */
  store?: OpenOptions;
}

/** A file as paquete placed it: any other size or mtime (and other bytes) means the user's. */
export interface PlacedFile {
  size: number;
  mtimeMs: number;
  /** Hex SHA-256 of the bytes placed. */
  sha256: string;
}

/**
 * What paquete placed in the working tree, so it can tell its own files from the user's, and
 * what it could not place in the snapshot being brought in (src/sync/restorer.ts owns it).
 */
export interface TreeState {
  snapshot?: string;
  files: Record<string, PlacedFile>;
  /**
   * Files whose assembled chunks did not hash to their signed SHA-256 in snapshot `snapshot`:
   * once (`publisher` false) a suspicion, the chunks fetched again; `publisher` true, the
   * publisher's data is inconsistent and the file is not fetched again in that snapshot.
   */
  inconsistent?: Record<string, { snapshot: string; sha256: string; mismatches: number; publisher: boolean }>;
  /** Files that could not be placed in snapshot `snapshot`, and why (status shows them). */
  failed?: Record<string, { snapshot: string; code: string; message: string }>;
}

/**
 * A working directory: DIR with DIR/.paquete holding the config, the trusted manifest, cached
 * snapshot indexes, the record of placed files, and the chunk store.
 */
export class WorkDir {
  private constructor(
    readonly root: string,
    readonly config: WorkConfig,
    readonly store: ChunkStore,
    private readonly unlock: () => void,
    /** Opened on a directory it cannot write: nothing is written, caches are not updated. */
    readonly readOnly = false,
    /** Opened without the lock, beside a writer: the writer's files are not written (caches are). */
    readonly reader = false,
  ) {}

  get meta(): string {
    return join(this.root, META_DIR);
  }

  /** The working directory containing `from` (itself or a parent), as git finds its repository. */
  static find(from: string): string {
    let dir = resolve(from);
    for (;;) {
      if (existsSync(join(dir, META_DIR, 'config.json'))) return dir;
      const up = dirname(dir);
      if (up === dir) {
        throw new PaqueteError('NOT_A_WORKDIR', `${resolve(from)} is not a paquete directory`, 'run paquete init URL DIR first, or use -C DIR');
      }
      dir = up;
    }
  }

  /**
   * Throws unless DIR can become a working directory: not one already, and empty unless
   * `keepExisting`: the user says so before paquete shares a folder with their files (which then
   * stay theirs: the restorer never replaces a file it did not place).
   */
  static checkCreatable(root: string, opts: { keepExisting?: boolean } = {}): void {
    if (existsSync(join(root, META_DIR, 'config.json'))) {
      throw new PaqueteError('ALREADY_INITIALIZED', `${root} is already a paquete directory`);
    }
    if (existsSync(root) && !statSync(root).isDirectory()) throw new PaqueteError('USAGE', `${root} is not a directory`);
    const existing = existsSync(root) ? readdirSync(root).filter((n) => n !== META_DIR) : [];
    if (existing.length && !opts.keepExisting) {
      throw new PaqueteError(
        'NOT_EMPTY',
        `${root} already has files (${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ', …' : ''})`,
        'give an empty or new directory, or add --keep-existing: your files stay yours (sync never overwrites them; identical ones are adopted)',
      );
    }
  }

  /** Creates DIR/.paquete with its config (see checkCreatable). */
  static create(root: string, config: WorkConfig, opts: { keepExisting?: boolean } = {}): void {
    WorkDir.checkCreatable(root, opts);
    const meta = join(root, META_DIR);
    mkdirSync(meta, { recursive: true });
    writeFileAtomic(join(meta, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  }

  /** Opens the working directory containing `from`, taking its lock for `command`. */
  static async open(from: string, command: string, options: WorkDirOptions = {}): Promise<WorkDir> {
    const root = WorkDir.find(from);
    const meta = join(root, META_DIR);
    let config: WorkConfig;
    try {
      config = JSON.parse(readFileSync(join(meta, 'config.json'), 'utf8')) as WorkConfig;
    } catch (e) {
      throw new PaqueteError('DAMAGED_STORE', `${join(meta, 'config.json')} is unreadable: ${(e as Error).message}`);
    }
    if (options.reader) return new WorkDir(root, config, await openReadOnlyStore(join(meta, 'store')), () => {}, !writable(meta), true);
    let unlock: () => void;
    try {
      unlock = acquireLock(join(meta, 'lock'), command, LOCK);
    } catch (e) {
      if (options.shared && (e as PaqueteError).code === 'LOCKED') return WorkDir.open(from, command, { ...options, shared: false, reader: true });
      if (!isReadOnlyError(e)) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (!options.readOnlyFallback) throw new PaqueteError('IO', `${root} cannot be written (${code}); ${command} needs to write there`, 'status, verify (without --repair) and serve work on a read-only directory');
      refuseIfHeld(join(meta, 'lock'), LOCK);
      return new WorkDir(root, config, await ChunkStore.open(join(meta, 'store'), { readOnly: true }), () => {}, true);
    }
    try {
      const store = await ChunkStore.open(join(meta, 'store'), options.store);
      // A directory of an older paquete has no generation yet: readers get one from the first writer.
      if (currentGeneration(meta) === undefined) await switchGeneration(meta, { pause: false });
      return new WorkDir(root, config, store, unlock);
    } catch (e) {
      unlock();
      throw e;
    }
  }

  private file(name: string): string {
    return join(this.meta, name);
  }

  readOptional(name: string): Buffer | undefined {
    try {
      return readFileSync(this.file(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  writeMeta(name: string, data: Uint8Array | string): void {
    if (this.reader) throw new PaqueteError('LOCKED', `another paquete command is working in ${this.root}; not saving ${name}`);
    if (this.readOnly) throw new PaqueteError('IO', `${this.root} cannot be written (read-only); not saving ${name}`);
    writeFileAtomic(this.file(name), data);
  }

  /** Derived data any command may save (extracted metadata): skipped on a read-only directory. */
  writeCache(name: string, data: Uint8Array | string): void {
    if (!this.readOnly) writeFileAtomic(this.file(name), data);
  }

  /** Where the bytes of files replaced or removed wait while a reader's generation names them. */
  get keepDir(): string {
    return this.file(KEEP);
  }

  /**
   * What this command wrote becomes what readers see (serve), in one rename: call when the
   * tree and its record are consistent again (a sync's end, an import's, a repair's).
   */
  async switchGeneration(): Promise<void> {
    if (!this.readOnly && !this.reader) await switchGeneration(this.meta);
  }

  /** Where assembled files wait for their checksum before being renamed into place. */
  get tmpDir(): string {
    const t = this.file('tmp');
    if (!this.readOnly) mkdirSync(t, { recursive: true });
    return t;
  }

  saveConfig(): void {
    this.writeMeta('config.json', JSON.stringify(this.config, null, 2) + '\n');
  }

  treeState(): TreeState {
    const b = this.readOptional('tree.json');
    if (!b) return { files: {} };
    try {
      return JSON.parse(b.toString('utf8')) as TreeState;
    } catch {
      // Only a cache of what we placed: losing it costs re-hashing files, never data.
      return { files: {} };
    }
  }

  saveTreeState(s: TreeState): void {
    // Only a cache of what we placed (see treeState): on a read-only directory, files are hashed again
    // next time; beside a writer, the tree state is the writer's.
    if (this.readOnly || this.reader) return;
    this.writeMeta('tree.json', JSON.stringify(s));
  }

  async close(): Promise<void> {
    try {
      await this.store.close();
    } finally {
      this.unlock();
    }
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The store read through a copy of its index, beside a writer that may be compacting it: a copy
 * taken while LevelDB removed a file it had just merged fails to open, and is taken again.
 */
export async function openReadOnlyStore(dir: string): Promise<ChunkStore> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ChunkStore.open(dir, { readOnly: true });
    } catch (e) {
      if (attempt >= 5) throw e;
    }
  }
}
