import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PIECES_AFTER_KILL, PIECES_CLEAN, type PieceRule } from '../remote/outstanding.js';
import type { WorkDir } from '../workdir/workdir.js';

/**
 * Whether the last sync of a working directory died (kill -9, a crash, a power cut), and so how
 * many bytes one request may leave outstanding in this one. A sync writes `tmp/sync.running`
 * before its first request and deletes it when it ends in any orderly way (done, budget, network
 * gone, an error): one found at the start is a sync that never ended. A kill loses what the
 * server sent for the request under way and the process never landed, so every request is a
 * bounded piece (src/remote/outstanding.ts PieceRule): PIECES_CLEAN, 32 KiB growing to 1/64 of what
 * came, so even a first kill with no warning loses at most that; after a kill PIECES_AFTER_KILL,
 * 16 KiB growing only past 4 MiB (a directory that is being killed is likely to be again). The
 * lock (one sync at a time) makes the file this process's while it runs.
 */
export class KillRisk {
  private readonly path: string | undefined;
  /** The last sync died: requests are kept to PIECES_AFTER_KILL. */
  readonly afterKill: boolean;

  constructor(work: WorkDir) {
    this.path = work.readOnly ? undefined : join(work.tmpDir, RUNNING);
    this.afterKill = this.path !== undefined && existsSync(this.path);
  }

  /** How many body bytes one request of this sync asks for. */
  get outstanding(): PieceRule {
    return this.afterKill ? PIECES_AFTER_KILL : PIECES_CLEAN;
  }

  /** This sync is about to spend: a kill from here on is known to the next one. */
  running(): void {
    if (this.path) writeFileSync(this.path, `${process.pid}\n`);
  }

  /** This sync ended in order (whatever its outcome). */
  ended(): void {
    if (this.path) rmSync(this.path, { force: true });
  }
}

const RUNNING = 'sync.running';
