import { lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore } from '../store/store.js';
import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { TreeState } from '../workdir/workdir.js';
import { hashFile } from '../util/fsx.js';
import { Placer } from './placer.js';
import { safeLstat } from './tree-writer.js';

/**
 * Puts files into the working tree: looks up where each file's chunks lie in the store and
 * hands that to the place worker, which reads them from the packs, writes a temp file, checks
 * its SHA-256 against the signed snapshot, syncs it and only then renames it into place
 * (src/sync/tree-writer.ts). A reader never sees a half-written or wrong file.
 */
export class Assembler {
  constructor(
    private readonly root: string,
    private readonly tmpDir: string,
    private readonly store: ChunkStore,
    private readonly snapshot: Snapshot,
    private readonly state: TreeState,
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
   * Writes the file from the store; resolves once it is synced and in place. Returns false (and
   * drops its chunks from the store so they are fetched again) when the result does not match
   * the snapshot's SHA-256. Calls under way together are synced together.
   */
  async place(f: FileEntry): Promise<boolean> {
    const placer = Placer.get();
    // sha256 copied: a view would take the whole buffer under it along to the worker.
    const job = { root: this.root, tmpDir: this.tmpDir, storeDir: this.store.dir, path: f.path, mode: f.mode & 0o777 || 0o644, sha256: Uint8Array.from(f.sha256) };
    const id = placer.begin(job);
    try {
      // Located a few hundred at a time; the worker reads them from the packs.
      const BATCH = 256;
      for (let at = 0; at < f.chunks.length; at += BATCH) {
        const ids = f.chunks.slice(at, at + BATCH).map((i) => this.snapshot.chunks[i].id);
        placer.write(id, await this.store.locateMany(ids), at + BATCH >= f.chunks.length);
      }
    } catch (e) {
      // Ended all the same, so the worker drops the temp file (short, it fails its checksum).
      placer.end(id).catch(() => {});
      throw e;
    }
    const outcome = await placer.end(id);
    if (!outcome.ok) {
      await this.store.forget(f.chunks.map((i) => this.snapshot.chunks[i].id));
      return false;
    }
    this.state.files[f.path] = { size: outcome.size, mtimeMs: outcome.mtimeMs, sha256: Buffer.from(f.sha256).toString('hex') };
    return true;
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
