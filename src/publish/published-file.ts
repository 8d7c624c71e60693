import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { PaqueteError } from '../errors.js';
import { checkSnapshotBytes, ManifestSnapshot } from '../snapshot/manifest.js';
import { decodeSnapshot, Snapshot } from '../snapshot/snapshot.js';
import { decodePayload, decodeRecordHeader, RECORD_HEADER_SIZE } from '../store/pack.js';

/**
 * Reading back what the publisher wrote: snapshot indexes and raw chunks from the remote's own
 * packs (the remote directory is local to the publisher). This is how publishing keeps no state
 * anywhere but the remote: a git source reads its last refs file, updates read old and new chunks.
 */

/** A snapshot index of the remote, checked against its manifest entry. */
export function readRemoteSnapshot(remoteDir: string, entry: ManifestSnapshot): Snapshot {
  const bytes = readFileSync(join(remoteDir, 'snapshots', `${entry.name}.snap`));
  checkSnapshotBytes(entry, bytes);
  return decodeSnapshot(bytes);
}

/** Raw chunk bytes from the remote's packs; keeps each pack open until close(). */
export class RemoteChunkReader {
  private readonly fds = new Map<string, number>();

  constructor(private readonly remoteDir: string) {}

  /** The raw bytes of chunk `index` of `snapshot`, checked to be the chunk the index names. */
  read(snapshot: Snapshot, index: number): Uint8Array {
    const c = snapshot.chunks.entry(index);
    const pack = snapshot.packs[c.pack];
    let fd = this.fds.get(pack);
    if (fd === undefined) {
      fd = openSync(join(this.remoteDir, 'packs', `${pack}.pack`), 'r');
      this.fds.set(pack, fd);
    }
    const record = Buffer.allocUnsafe(RECORD_HEADER_SIZE + c.storedLength);
    let done = 0;
    while (done < record.length) {
      const n = readSync(fd, record, done, record.length - done, c.offset + done);
      if (n === 0) throw new PaqueteError('DAMAGED_PACK', `pack ${pack} ends inside the record at offset ${c.offset}`);
      done += n;
    }
    const header = decodeRecordHeader(record);
    if (header.id !== c.id || header.storedLength !== c.storedLength) {
      throw new PaqueteError('DAMAGED_PACK', `pack ${pack} does not hold the expected chunk at offset ${c.offset}`);
    }
    return decodePayload(header, record.subarray(RECORD_HEADER_SIZE));
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * The bytes of one file of a published snapshot, checked against the file's SHA-256. Undefined
 * when the snapshot has no such file.
 */
export function readPublishedFile(remoteDir: string, snapshot: Snapshot, path: string): Buffer | undefined {
  const file = snapshot.files.find((f) => f.path === path);
  if (!file) return undefined;
  const reader = new RemoteChunkReader(remoteDir);
  let bytes: Buffer;
  try {
    bytes = Buffer.concat(file.chunks.map((i) => reader.read(snapshot, i)));
  } finally {
    reader.close();
  }
  if (createHash('sha256').update(bytes).digest().compare(file.sha256) !== 0) {
    throw new PaqueteError('DAMAGED_PACK', `${path} read back from the remote's packs does not match its SHA-256`);
  }
  return bytes;
}
