import { accessSync, closeSync, constants, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { ChunkStore, OpenOptions } from '../store/store.js';
import { writeFileAtomic } from '../util/fsx.js';
import { decodeTreeState, encodeTreeState, LEGACY_TREE_JSON, restOf, samePlaced, scanTreeState, ScannedTreeState, TREE_STATE, TreeStateWriter } from './tree-state.js';
import { acquireLock, isReadOnlyError, refuseIfHeld } from './lock.js';
import { currentGeneration, generationBehind, KEEP, switchGeneration } from './generation.js';
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
  /**
   * The store is opened by the first openStore(), not here: a sync with nothing new never opens
   * it (LevelDB writes a new log and manifest at every open, and reads its tables).
   */
  deferStore?: boolean;
  /** Told of the store once it is open (what it mended as it opened). */
  onStoreOpen?: (store: ChunkStore) => void;
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
  /**
   * Set by a sync that left every file it wanted in place in snapshot `snapshot`, with nothing
   * kept as the user's, refused, failed or inconsistent, and every file of `files` wanted or
   * placed by paquete: while the manifest names that snapshot, the same sync (same `asked`
   * wants) has nothing to do if every file of `files` still has its size and mtime (what rsync
   * -a trusts), and the index is not read at all. Any other change to `files` drops it.
   */
  complete?: CompleteAt;
  /**
   * The files whose record changed since this state was read (treeState) or last saved, each with
   * whether it had one then: what saveTreeState appends, so a save costs what changed, not the
   * tree (10k files placed with a save every 250 ms compared every record each time, and a 1%
   * update decoded the whole log a second time to compare against). Noted by setPlaced; never
   * written to disk.
   */
  changed?: Map<string, boolean>;
}

/**
 * Sets (or with `rec` undefined, drops) the record of the file at `path`, noting the change for
 * the next save. The only way a file's record changes (Restorer.record calls it).
 */
export function setPlaced(s: TreeState, path: string, rec: PlacedFile | undefined): void {
  if (s.changed && !s.changed.has(path)) s.changed.set(path, Object.hasOwn(s.files, path));
  if (rec) s.files[path] = rec;
  else delete s.files[path];
}

/** A tree complete at a snapshot, for a sync given `asked` as its wants (`wants` once expanded). */
export interface CompleteAt {
  snapshot: string;
  asked: string[];
  wants: string[];
}

/**
 * A working directory: DIR with DIR/.paquete holding the config, the trusted manifest, cached
 * snapshot indexes, the record of placed files, and the chunk store.
 */
export class WorkDir {
  private opened?: ChunkStore;
  private opening?: Promise<ChunkStore>;

  private constructor(
    readonly root: string,
    readonly config: WorkConfig,
    private readonly storeOptions: WorkDirOptions,
    private readonly unlock: () => void,
    /** Opened on a directory it cannot write: nothing is written, caches are not updated. */
    readonly readOnly = false,
    /** Opened without the lock, beside a writer: the writer's files are not written (caches are). */
    readonly reader = false,
  ) {}

  /** The chunk store; opened by WorkDir.open unless it was told to defer it (then: openStore()). */
  get store(): ChunkStore {
    if (!this.opened) throw new Error('the store is not open yet (WorkDir.openStore)');
    return this.opened;
  }

  /** Opens the store if it is not open yet. */
  async openStore(): Promise<ChunkStore> {
    if (this.opened) return this.opened;
    const dir = join(this.meta, 'store');
    // Beside a writer, through a copy of its index; on a read-only directory, read-only.
    this.opening ??= (this.reader ? openReadOnlyStore(dir) : ChunkStore.open(dir, this.readOnly ? { readOnly: true } : this.storeOptions.store)).then((store) => {
      this.opened = store;
      this.storeOptions.onStoreOpen?.(store);
      return store;
    });
    return this.opening;
  }

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
    if (options.reader) {
      const work = new WorkDir(root, config, options, () => {}, !writable(meta), true);
      if (!options.deferStore) await work.openStore();
      return work;
    }
    let unlock: () => void;
    try {
      unlock = acquireLock(join(meta, 'lock'), command, LOCK);
    } catch (e) {
      if (options.shared && (e as PaqueteError).code === 'LOCKED') return WorkDir.open(from, command, { ...options, shared: false, reader: true });
      if (!isReadOnlyError(e)) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (!options.readOnlyFallback) throw new PaqueteError('IO', `${root} cannot be written (${code}); ${command} needs to write there`, 'status, verify (without --repair) and serve work on a read-only directory');
      refuseIfHeld(join(meta, 'lock'), LOCK);
      const work = new WorkDir(root, config, options, () => {}, true);
      if (!options.deferStore) await work.openStore();
      return work;
    }
    const work = new WorkDir(root, config, options, unlock);
    try {
      if (!options.deferStore) await work.openStore();
      // A directory of an older paquete has no generation yet: readers get one from the first writer.
      if (currentGeneration(meta) === undefined) await switchGeneration(meta, { pause: false });
      return work;
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
  /** `state`: the tree state just saved (saveTreeState), so the switch need not read it back. */
  async switchGeneration(state?: TreeState): Promise<void> {
    if (!this.readOnly && !this.reader) await switchGeneration(this.meta, { state });
  }

  /** Switches when `current` is behind this directory's state (a writer killed before its switch). */
  async switchIfBehind(): Promise<void> {
    if (!this.readOnly && !this.reader && generationBehind(this.meta)) await switchGeneration(this.meta);
  }

  /** Where assembled files wait for their checksum before being renamed into place. */
  get tmpDir(): string {
    const t = this.file('tmp');
    // Once per process: asked for every file placed (a mkdir each was 0.5 s of a 10k-file sync).
    if (!this.readOnly && !this.tmpMade) {
      mkdirSync(t, { recursive: true });
      this.tmpMade = true;
    }
    return t;
  }

  private tmpMade = false;

  saveConfig(): void {
    this.writeMeta('config.json', JSON.stringify(this.config, null, 2) + '\n');
  }

  /**
   * What tree.state holds now: the state object last read or saved (a save of that same object
   * appends only what it noted as changed), its files as last read or written (`files`: or the
   * bytes read, until a save needs them to compare a state of another origin against; undefined
   * once a noted save made them stale: read again from the log then), how many there are, and
   * where its log ends.
   */
  private saved?: { state?: TreeState; files: Map<string, PlacedFile> | Buffer | undefined; live: number; rest: string; length: number; records: number };

  /**
   * What paquete placed (src/workdir/tree-state.ts). Each call reads the file afresh; the files'
   * records are frozen, so a change is always a new record (what saveTreeState compares).
   */
  treeState(): TreeState {
    const b = this.readOptional(TREE_STATE);
    const decoded = b ? decodeTreeState(b) : undefined;
    let state: TreeState;
    if (decoded) state = decoded.state;
    else {
      // Only a cache of what we placed: losing it costs re-hashing files, never data. Until
      // its first save, a directory of an older paquete has tree.json instead.
      state = (!b && this.legacyTreeJson()) || { files: {} };
      for (const k of Object.keys(state.files)) Object.freeze(state.files[k]);
    }
    // Noted from here; a state with no log behind it is written whole at its first save anyway.
    if (decoded) state.changed = new Map();
    this.saved = decoded
      ? { state, files: b, live: decoded.count, rest: restOf(state), length: decoded.validLength, records: decoded.records }
      : // No log to append to: the next save writes it whole.
        { files: undefined, live: 0, rest: '', length: 0, records: 0 };
    return state;
  }

  /**
   * The tree state log as columns (src/workdir/tree-state.ts), for a reader that only checks
   * the tree against it (a sync with nothing new, status): nothing per file is built, and the
   * state a save appends to is left as it was. Undefined when there is no log to read (a
   * directory of an older paquete, a damaged log): the caller goes the whole way.
   */
  scanTreeState(): ScannedTreeState | undefined {
    const b = this.readOptional(TREE_STATE);
    return b ? scanTreeState(b) : undefined;
  }

  /** The files tree.state holds now, by path. */
  private savedFiles(): Map<string, PlacedFile> {
    const saved = this.saved;
    if (!saved || saved.length === 0) return new Map();
    if (saved.files instanceof Map) return saved.files;
    const log = saved.files ?? this.readOptional(TREE_STATE)?.subarray(0, saved.length);
    return (saved.files = new Map(Object.entries((log && decodeTreeState(log)?.state.files) ?? {})));
  }

  private legacyTreeJson(): TreeState | undefined {
    try {
      const b = this.readOptional(LEGACY_TREE_JSON);
      return b ? (JSON.parse(b.toString('utf8')) as TreeState) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Saves the tree state, writing what changed since it was read or last saved: nothing when
   * nothing did, else records appended to the log (fsynced). The log is written whole again
   * (atomically) when it holds more than twice the records of the state it replays to.
   */
  saveTreeState(s: TreeState): void {
    // Only a cache of what we placed (see treeState): on a read-only directory, files are hashed again
    // next time; beside a writer, the tree state is the writer's.
    if (this.readOnly || this.reader) return;
    const saved = this.saved ?? { files: undefined, live: 0, rest: '', length: 0, records: 0 };
    const w = new TreeStateWriter();
    let live: number;
    let files: Map<string, PlacedFile> | undefined;
    if (saved.state === s && s.changed) {
      // What changed since the last save of this very state, and only that.
      live = saved.live;
      for (const [path, had] of s.changed) {
        const rec = s.files[path];
        if (rec) w.placed(path, rec);
        else if (had) w.dropped(path);
        live += (rec ? 1 : 0) - (had ? 1 : 0);
      }
    } else {
      // A state of another origin: compared file by file with what the log holds.
      const savedFiles = this.savedFiles();
      for (const path in s.files) {
        const rec = s.files[path];
        const before = savedFiles.get(path);
        if (before === undefined || !samePlaced(before, rec)) w.placed(path, rec);
      }
      for (const path of savedFiles.keys()) if (!Object.hasOwn(s.files, path)) w.dropped(path);
      files = new Map();
      for (const path in s.files) files.set(path, Object.freeze(s.files[path]));
      live = files.size;
    }
    const rest = restOf(s);
    if (rest !== saved.rest) w.rest(rest);
    if (w.records === 0) return;
    if (saved.length === 0 || saved.records + w.records > 2 * (live + 1) + 64) {
      const whole = encodeTreeState(s);
      this.writeMeta(TREE_STATE, whole);
      rmSync(this.file(LEGACY_TREE_JSON), { force: true });
      this.savedAs(s, files, live, rest, whole.length, live + 1);
      return;
    }
    const fd = openSync(this.file(TREE_STATE), 'r+');
    try {
      // Past a record a kill cut short, nothing would be read: the log goes on where it was whole.
      ftruncateSync(fd, saved.length);
      const bytes = w.finish();
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at, saved.length + at);
      fsyncSync(fd);
      this.savedAs(s, files, live, rest, saved.length + bytes.length, saved.records + w.records);
    } finally {
      closeSync(fd);
    }
  }

  /** `s` is what the log now holds: its later changes are noted from here. */
  private savedAs(s: TreeState, files: Map<string, PlacedFile> | undefined, live: number, rest: string, length: number, records: number): void {
    (s.changed ??= new Map()).clear();
    this.saved = { state: s, files, live, rest, length, records };
  }

  async close(): Promise<void> {
    try {
      // One being opened is waited for, so that it is closed too.
      if (this.opening) await (await this.opening.catch(() => undefined))?.close();
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
