import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import type { GetLanding } from '../remote/remote.js';
import { PaqueteError } from '../errors.js';

/**
 * Bytes landed but not yet used that are also kept in memory: past this, a piece is read back
 * from its file when its turn comes (a link faster than the checking, storing and decoding
 * behind it would otherwise pile the whole range up in memory).
 */
export const LANDED_IN_MEMORY = 8 << 20;

/**
 * The bytes of one fetch, landed first and used after. Each piece is written to a file (a frame's
 * `.part`, a range's journal) by the sink in the very turn its socket read brought it, and only
 * then queued here to be used (parsed, checked, decoded, stored), in order, one piece at a time.
 * The remote is not held up by that use, so it reads the connection at the link's pace: what a
 * kill -9 takes from this process is at most the one socket read under way, and everything
 * landed is on disk (the page cache outlives a killed process) for the next session to use.
 *
 * The first use that fails stops every later one and aborts the fetch through `signal`.
 */
export class Landing {
  private work: Promise<void> = Promise.resolve();
  private inMemory = 0;
  private waiting = 0;
  private failure: { e: unknown } | undefined;
  private readonly stopper = new AbortController();
  /** For the fetch: aborted with the first failure of a use (or when `signal` is). */
  readonly signal: AbortSignal;

  constructor(signal?: AbortSignal) {
    this.signal = signal ? AbortSignal.any([signal, this.stopper.signal]) : this.stopper.signal;
  }

  /** The first use that failed, if one did. */
  get failed(): { e: unknown } | undefined {
    return this.failure;
  }

  /** Runs `task` once everything queued before it is done (not at all after a failure). */
  after(task: () => void | Promise<void>): void {
    this.waiting++;
    this.work = this.work.then(async () => {
      try {
        if (!this.failure) await task();
      } catch (e) {
        this.failure = { e };
        this.stopper.abort(e instanceof Error ? e : new Error(String(e)));
      } finally {
        this.waiting--;
      }
    });
  }

  /**
   * Queues the use of `bytes`, landed already at `position` of the file open as `fd` (which must
   * stay open until the use ran): from memory while little is waiting, read back otherwise.
   */
  use(bytes: Uint8Array, fd: number, position: number, task: (bytes: Uint8Array) => void | Promise<void>): void {
    const length = bytes.length;
    const keep = this.inMemory + length <= LANDED_IN_MEMORY;
    if (keep) this.inMemory += length;
    const kept = keep ? bytes : undefined;
    this.after(async () => {
      if (keep) this.inMemory -= length;
      await task(kept ?? readBack(fd, position, length));
    });
  }

  /**
   * For a sink whose remote reads ahead of it only to no purpose (a directory on this machine):
   * a promise that settles once every queued use ran, undefined when none waits.
   */
  caughtUp(): Promise<void> | undefined {
    return this.waiting > 0 ? this.work : undefined;
  }

  /** Waits for every queued use; throws the first failure. */
  async drained(): Promise<void> {
    for (let w = this.work; ; w = this.work) {
      await w;
      if (w === this.work) break;
    }
    if (this.failure) throw this.failure.e;
  }
}

/**
 * A whole small file being fetched (an index), landed in `path` as it comes: what a killed session
 * received of it is the next one's `prefix` and is not asked for again. Longer than `size`: not
 * this file's, started over.
 */
export class LandedFile implements GetLanding {
  readonly prefix: Uint8Array;
  private fd: number;

  constructor(
    private readonly path: string,
    size: number,
  ) {
    this.fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
    const have = fstatSync(this.fd).size;
    if (have > size) ftruncateSync(this.fd, 0);
    this.prefix = have > size ? new Uint8Array(0) : readBack(this.fd, 0, have);
    this.at = this.prefix.length;
  }

  private at: number;

  land(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done, bytes.length - done, this.at + done);
    this.at += bytes.length;
  }

  restart(): void {
    ftruncateSync(this.fd, 0);
    this.at = 0;
  }

  /** Done with (used, or found not to be the file): closed and deleted. */
  remove(): void {
    this.close();
    rmSync(this.path, { force: true });
  }

  /** Closed; what landed stays for the next try. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** `length` bytes at `position` of the file open as `fd`. */
export function readBack(fd: number, position: number, length: number): Uint8Array {
  const out = Buffer.allocUnsafe(length);
  for (let at = 0; at < length; ) {
    const n = readSync(fd, out, at, length - at, position + at);
    if (n === 0) throw new PaqueteError('IO', `a landed file ended at ${position + at}, before ${position + length}: something else changed it`);
    at += n;
  }
  return out;
}
