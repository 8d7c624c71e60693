import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { Snapshot } from '../snapshot/snapshot.js';
import { decodePayload, decodeRecordHeader, RECORD_HEADER_SIZE } from '../store/pack.js';

/**
 * The bytes of one file of a published snapshot, read back from the remote's own packs (the
 * remote directory is local to the publisher), checked against the file's SHA-256. Undefined when
 * the snapshot has no such file. Lets a source's staging read what it published last time (a git
 * source's refs file) with no state kept anywhere but the remote.
 */
export function readPublishedFile(remoteDir: string, snapshot: Snapshot, path: string): Buffer | undefined {
  const file = snapshot.files.find((f) => f.path === path);
  if (!file) return undefined;
  const parts: Uint8Array[] = [];
  const fds = new Map<number, number>();
  try {
    for (const i of file.chunks) {
      const c = snapshot.chunks[i];
      let fd = fds.get(c.pack);
      if (fd === undefined) {
        fd = openSync(join(remoteDir, 'packs', `${snapshot.packs[c.pack]}.pack`), 'r');
        fds.set(c.pack, fd);
      }
      const record = Buffer.allocUnsafe(RECORD_HEADER_SIZE + c.storedLength);
      let done = 0;
      while (done < record.length) {
        const n = readSync(fd, record, done, record.length - done, c.offset + done);
        if (n === 0) throw new PaqueteError('DAMAGED_PACK', `pack ${snapshot.packs[c.pack]} ends inside the record of ${path}`);
        done += n;
      }
      const header = decodeRecordHeader(record);
      if (header.id !== c.id || header.storedLength !== c.storedLength) {
        throw new PaqueteError('DAMAGED_PACK', `pack ${snapshot.packs[c.pack]} does not hold the expected chunk of ${path} at offset ${c.offset}`);
      }
      parts.push(decodePayload(header, record.subarray(RECORD_HEADER_SIZE)));
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  const bytes = Buffer.concat(parts);
  if (createHash('sha256').update(bytes).digest().compare(file.sha256) !== 0) {
    throw new PaqueteError('DAMAGED_PACK', `${path} read back from the remote's packs does not match its SHA-256`);
  }
  return bytes;
}
