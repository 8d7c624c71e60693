import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { IdSet } from './id-set.js';

/**
 * The store's held-id set kept on disk beside its index (docs/FORMATS.md §Held-id file): read in
 * one go instead of walking every chunk key of LevelDB, which took most of a dry run's time at
 * 10M held chunks (docs/DESIGN-REMOTE-V3.md decision 6).
 *
 * Trusted only when it is whole (its SHA-256 matches) and when its stamp is the index's: every
 * batch that changes a chunk entry writes a new random token into the index in the same batch,
 * and the file records the token (and the index's chunk count) it was written for. A kill -9
 * after any batch leaves the file naming an older token: it is then ignored and the set built
 * from the index again. Written to a temporary name and renamed, so a torn write is never read.
 */
export const HELD_FILE = 'held.ids';
const MAGIC = Buffer.from('PQHI', 'ascii');
const VERSION = 1;
const HEADER = 48;
const HASH = 32;

/** What ties a held file to one state of the index: its token and its count entry, as stored. */
export interface HeldStamp {
  token: Uint8Array;
  count: Uint8Array;
}

export const newToken = (): Buffer => randomBytes(8);

// The slots are written as the machine holds them: little-endian only (every machine paquete
// runs on); elsewhere the file is neither written nor read.
const USABLE = endianness() === 'LE';

const stampBytes = (s: HeldStamp): Buffer => {
  const b = Buffer.alloc(24);
  b.set(s.token.subarray(0, 8), 0);
  b.set(s.count.subarray(0, 16), 8);
  return b;
};

/** Writes the set for `stamp` (replacing any file there). */
export function writeHeldFile(dir: string, set: IdSet, stamp: HeldStamp): void {
  if (!USABLE || stamp.token.length !== 8 || stamp.count.length !== 16) return;
  const { slots, count, zero } = set.state();
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head[4] = VERSION;
  stampBytes(stamp).copy(head, 8);
  head.writeUInt32LE(slots.length / 2, 32);
  head.writeUInt32LE(count, 36);
  head[40] = zero ? 1 : 0;
  const body = Buffer.from(slots.buffer, slots.byteOffset, slots.byteLength);
  const hash = createHash('sha256').update(head).update(body).digest();
  const tmp = join(dir, `${HELD_FILE}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    for (const part of [head, body, hash]) for (let at = 0; at < part.length; ) at += writeSync(fd, part, at, part.length - at);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, HELD_FILE));
}

/** The set the file holds when it is whole and written for `stamp`; undefined otherwise. */
export function readHeldFile(dir: string, stamp: HeldStamp): IdSet | undefined {
  if (!USABLE) return undefined;
  const path = join(dir, HELD_FILE);
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return undefined;
  }
  if (size < HEADER + HASH) return undefined;
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(HEADER);
    if (readSync(fd, head, 0, HEADER, 0) !== HEADER) return undefined;
    if (!MAGIC.equals(head.subarray(0, 4)) || head[4] !== VERSION || !stampBytes(stamp).equals(head.subarray(8, 32))) return undefined;
    const capacity = head.readUInt32LE(32);
    // A power of two of slots, each two words: anything else is not a file this wrote.
    if (capacity < 1 || (capacity & (capacity - 1)) !== 0 || HEADER + 8 * capacity + HASH !== size) return undefined;
    const slots = new Uint32Array(2 * capacity);
    const body = Buffer.from(slots.buffer);
    for (let at = 0; at < body.length; ) {
      const n = readSync(fd, body, at, body.length - at, HEADER + at);
      if (n === 0) return undefined;
      at += n;
    }
    const hash = Buffer.alloc(HASH);
    if (readSync(fd, hash, 0, HASH, HEADER + body.length) !== HASH) return undefined;
    if (!createHash('sha256').update(head).update(body).digest().equals(hash)) return undefined;
    return IdSet.ofState(slots, head.readUInt32LE(36), head[40] === 1);
  } finally {
    closeSync(fd);
  }
}

/** Removes the file (a store whose index is rebuilt). */
export const dropHeldFile = (dir: string): void => rmSync(join(dir, HELD_FILE), { force: true });
