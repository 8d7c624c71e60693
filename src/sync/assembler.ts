import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { chmod, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { ChunkStore } from '../store/store.js';
import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { TreeState } from '../workdir/workdir.js';
import { hashFile } from '../util/fsx.js';
import { ChunkCache } from './cache.js';

/**
 * Puts files into the working tree. A file is written to a temp file beside the store, checked
 * against its SHA-256 from the signed snapshot, synced, and only then renamed into place: a
 * reader never sees a half-written or wrong file, whatever interrupts us.
 */
export class Assembler {
  constructor(
    private readonly root: string,
    private readonly tmpDir: string,
    private readonly store: ChunkStore,
    private readonly snapshot: Snapshot,
    private readonly state: TreeState,
    private readonly cache?: ChunkCache,
  ) {}

  /** True when the file in the tree is already the snapshot's version. */
  isInPlace(f: FileEntry): boolean {
    const abs = join(this.root, f.path);
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      return false;
    }
    if (!st.isFile() || st.size !== f.size) return false;
    const want = Buffer.from(f.sha256).toString('hex');
    const rec = this.state.files[f.path];
    if (rec && rec.sha256 === want && rec.size === st.size && rec.mtimeMs === st.mtimeMs) return true;
    // Not recorded (a crash after the rename, or placed by hand): hash it once.
    const got = hashFile(abs);
    if (got !== want) return false;
    this.state.files[f.path] = { size: st.size, mtimeMs: st.mtimeMs, sha256: want };
    return true;
  }

  /**
   * Writes the file from the store. Returns false (and drops its chunks from the store so they
   * are fetched again) when the result does not match the snapshot's SHA-256.
   */
  async place(f: FileEntry): Promise<boolean> {
    const target = join(this.root, f.path);
    this.prepareParents(f.path);
    const tmp = join(this.tmpDir, `${randomBytes(8).toString('hex')}.part`);
    const mode = f.mode & 0o777 || 0o644;
    // Async file I/O so that a download running beside us keeps reading its socket.
    const fh = await open(tmp, 'w', mode);
    const hash = createHash('sha256');
    let ok = false;
    try {
      // Chunks not in the cache are looked up together, a few hundred at a time.
      const BATCH = 256;
      for (let at = 0; at < f.chunks.length; at += BATCH) {
        const ids = f.chunks.slice(at, at + BATCH).map((i) => this.snapshot.chunks[i].id);
        const missing = ids.filter((id) => !this.cache?.get(id));
        const read = new Map<bigint, Uint8Array>();
        if (missing.length) (await this.store.getMany(missing)).forEach((raw, j) => read.set(missing[j], raw));
        // One write per batch: an async write per 4 KiB chunk costs more than the copy.
        const raws = ids.map((id) => this.cache?.get(id) ?? read.get(id)!);
        for (const raw of raws) hash.update(raw);
        await fh.write(raws.length === 1 ? raws[0] : Buffer.concat(raws));
      }
      ok = hash.digest().compare(f.sha256) === 0;
      if (ok) await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new PaqueteError('DISK_FULL', `the disk is full while writing ${f.path}`, 'free some space and run paquete sync again; everything downloaded is kept');
      }
      throw e;
    }
    await fh.close();
    if (!ok) {
      await rm(tmp, { force: true });
      await this.store.forget(f.chunks.map((i) => this.snapshot.chunks[i].id));
      return false;
    }
    await chmod(tmp, mode);
    const existing = safeLstat(target);
    if (existing?.isDirectory()) throw new PaqueteError('UNSAFE_PATH', `${f.path} is a directory in your tree; the snapshot has a file there`, 'move it away and sync again');
    await rename(tmp, target);
    const st = statSync(target);
    this.state.files[f.path] = { size: st.size, mtimeMs: st.mtimeMs, sha256: Buffer.from(f.sha256).toString('hex') };
    return true;
  }

  /** Creates the parent directories, refusing to follow a symlink out of the tree. */
  private prepareParents(path: string): void {
    const parts = path.split('/');
    let dir = this.root;
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      const st = safeLstat(dir);
      if (!st) mkdirSync(dir);
      else if (st.isSymbolicLink()) throw new PaqueteError('UNSAFE_PATH', `refusing to write through the symlink ${dir}`);
      else if (!st.isDirectory()) throw new PaqueteError('UNSAFE_PATH', `${dir} is a file in your tree; the snapshot has a directory there`, 'move it away and sync again');
    }
  }

  /** Removes a file of an older snapshot, only if it is still exactly as we placed it. */
  removeStale(path: string): boolean {
    const rec = this.state.files[path];
    if (!rec) return false;
    const abs = join(this.root, path);
    const st = safeLstat(abs);
    delete this.state.files[path];
    if (!st || !st.isFile() || st.size !== rec.size || st.mtimeMs !== rec.mtimeMs) return false;
    unlinkSync(abs);
    return true;
  }
}

function safeLstat(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
