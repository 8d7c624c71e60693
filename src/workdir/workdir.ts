import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { ChunkStore } from '../store/store.js';
import { writeFileAtomic } from '../util/fsx.js';
import { acquireLock } from './lock.js';
import { STORE_DIR_NAME } from '../snapshot/paths.js';

/** The store's directory inside DIR; no name from outside may ever reach it (src/snapshot/paths.ts). */
export const META_DIR = STORE_DIR_NAME;

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

/** What paquete placed in the working tree, so it can tell its own files from the user's. */
export interface TreeState {
  snapshot?: string;
  files: Record<string, { size: number; mtimeMs: number; sha256: string }>;
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

  /** Creates DIR/.paquete with its config. Fails if DIR already is a working directory. */
  static create(root: string, config: WorkConfig): void {
    const meta = join(root, META_DIR);
    if (existsSync(join(meta, 'config.json'))) {
      throw new PaqueteError('ALREADY_INITIALIZED', `${root} is already a paquete directory`);
    }
    if (existsSync(root) && !statSync(root).isDirectory()) throw new PaqueteError('USAGE', `${root} is not a directory`);
    mkdirSync(meta, { recursive: true });
    writeFileAtomic(join(meta, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  }

  /** Opens the working directory containing `from`, taking its lock for `command`. */
  static async open(from: string, command: string): Promise<WorkDir> {
    const root = WorkDir.find(from);
    const meta = join(root, META_DIR);
    let config: WorkConfig;
    try {
      config = JSON.parse(readFileSync(join(meta, 'config.json'), 'utf8')) as WorkConfig;
    } catch (e) {
      throw new PaqueteError('DAMAGED_STORE', `${join(meta, 'config.json')} is unreadable: ${(e as Error).message}`);
    }
    const unlock = acquireLock(join(meta, 'lock'), command);
    try {
      const store = await ChunkStore.open(join(meta, 'store'));
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
    writeFileAtomic(this.file(name), data);
  }

  /** Where assembled files wait for their checksum before being renamed into place. */
  get tmpDir(): string {
    const t = this.file('tmp');
    mkdirSync(t, { recursive: true });
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
