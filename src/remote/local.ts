import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { ByteRange, FetchOptions, MAX_GET_BYTES, Remote } from './remote.js';
import type { WireBudget } from './budget.js';

const BLOCK = 1 << 20;

/**
 * A remote on a local path: a directory, a mounted USB stick, a network share. Costs nothing,
 * unless the user marked it paid (`--no-free`: a share on a metered link): then every read is
 * reserved from `budget` like bytes on a wire.
 */
export function createLocalRemote(dir: string, budget?: WireBudget): Remote {
  const root = resolve(dir);
  let read = 0;
  const pay = (n: number, what: string) => budget?.reserve(n, what).settle(n);
  const full = (path: string) => {
    if (path.split('/').some((p) => p === '..' || p === '')) throw new PaqueteError('UNSAFE_PATH', `bad remote path ${path}`);
    return join(root, path);
  };
  const notFound = (path: string, e: unknown): never => {
    if (e instanceof PaqueteError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (path === 'manifest.json') throw new PaqueteError('NOT_A_REMOTE', `no paquete remote at ${root} (no manifest.json)`);
      throw new PaqueteError('REMOTE_CHANGED', `${path} is missing from the remote at ${root}`);
    }
    throw new PaqueteError('IO', `cannot read ${join(root, path)}: ${(e as Error).message}`);
  };
  return {
    location: root,
    free: budget === undefined,
    local: true,
    meter: { get total() { return read; } },
    async get(path: string, opts?: FetchOptions) {
      try {
        const limit = opts?.size ?? opts?.limit ?? MAX_GET_BYTES;
        const size = statSync(full(path)).size;
        if (size > limit) throw new PaqueteError('BAD_FORMAT', `${path} at ${root} is ${size} bytes, more than the ${limit} it can be`);
        pay(size, path);
        const b = readFileSync(full(path));
        read += b.length;
        return b;
      } catch (e) {
        return notFound(path, e);
      }
    },
    async getRange(path: string, range: ByteRange, sink, opts?: FetchOptions) {
      let fd: number;
      try {
        fd = openSync(full(path), 'r');
      } catch (e) {
        return notFound(path, e);
      }
      try {
        if (statSync(full(path)).size < range.end) throw new PaqueteError('REMOTE_CHANGED', `${path} on the remote is shorter than the snapshot says`);
        for (let pos = range.start; pos < range.end; ) {
          opts?.signal?.throwIfAborted();
          const buf = Buffer.allocUnsafe(Math.min(BLOCK, range.end - pos));
          pay(buf.length, path);
          const n = readSync(fd, buf, 0, buf.length, pos);
          if (n === 0) throw new PaqueteError('REMOTE_CHANGED', `${path} ended early`);
          read += n;
          pos += n;
          await sink(buf.subarray(0, n));
        }
      } finally {
        closeSync(fd);
      }
    },
    requestCost: (_path: string, bodyBytes: number) => bodyBytes,
    async close() {},
  };
}
