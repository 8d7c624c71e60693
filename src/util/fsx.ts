import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeFileSync, writeSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes a whole file so that a crash leaves either the old content or the new, never a mix:
 * temp file in the same directory, fsync, rename, fsync of the directory.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  writeFileSync(tmp, data);
  fsyncPath(tmp);
  renameSync(tmp, path);
  fsyncPath(dir);
}

/**
 * A new file written front to back and named `<sha256 hex>.<ext>` in `dir` when finished (remote
 * packs, frames files): it stays `.tmp-…` until its bytes are durable, so a crash leaves only a
 * temp file nothing names, never a file under a name its bytes do not match. The caller fsyncs
 * `dir` once its renames are done.
 */
export class ContentNamedFile {
  private readonly fd: number;
  private readonly hash = createHash('sha256');
  private readonly tmp: string;
  size = 0;

  constructor(
    private readonly dir: string,
    private readonly ext: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}.${ext}`);
    this.fd = openSync(this.tmp, 'w');
  }

  /** Appends `b`; returns the offset it starts at. */
  write(b: Uint8Array): number {
    const at = this.size;
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
    this.hash.update(b);
    this.size += b.length;
    return at;
  }

  /** Makes the bytes durable and gives the file its name; returns the name (hex SHA-256). */
  finish(): string {
    fdatasyncSync(this.fd);
    closeSync(this.fd);
    const name = this.hash.digest('hex');
    renameSync(this.tmp, join(this.dir, `${name}.${this.ext}`));
    return name;
  }

  /** Drops the unfinished file (after an error). */
  abort(): void {
    closeSync(this.fd);
    rmSync(this.tmp, { force: true });
  }
}

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Hex SHA-256 of a file's bytes, read a MiB at a time. */
export function hashFile(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    const size = fstatSync(fd).size;
    for (let pos = 0; pos < size; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
