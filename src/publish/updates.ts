import { join } from 'node:path';
import { encodeFrames, planDeltaFrames, planSolidFrames } from '../delta/build.js';
import { encodeUpdateHead, FrameEntry, framesHeader } from '../delta/update.js';
import { FrameCompressor } from '../delta/zstd.js';
import { ManifestSnapshot, sha256Hex, UpdateRef } from '../snapshot/manifest.js';
import { encodeSnapshotBody, Snapshot, snapshotVersion } from '../snapshot/snapshot.js';
import { ContentNamedFile, fsyncPath, writeFileAtomic } from '../util/fsx.js';
import { readRemoteSnapshot, RemoteChunkReader } from './published-file.js';

/**
 * Writes a new snapshot's updates into the remote: `frames/<sha256>.frames`, then the head
 * `updates/<sha256>.upd` that names it, each durable before the next and all before the manifest
 * that names the heads, so a crash leaves only files nothing names yet.
 */

/** zstd level of index deltas: the index is small next to the frames, and crosses the paid link on every update. */
const INDEX_DELTA_LEVEL = 19;

export interface UpdatesOptions {
  /** zstd level of the frames (1–22). */
  level: number;
  /** Write the update from nothing. */
  solid: boolean;
  /** Write delta updates from at most this many of the newest earlier snapshots. */
  updatesFrom: number;
  /** Called after each frame is compressed (an update from nothing at level 19 takes minutes). */
  onProgress?: (p: UpdateProgress) => void;
}

export interface UpdateProgress {
  phase: 'updates';
  /** The base snapshot's name; "" for the update from nothing. */
  from: string;
  /** Content bytes compressed so far, of this update's total. */
  bytesDone: number;
  bytesTotal: number;
}

export interface UpdateWritten extends UpdateRef {
  frames: number;
  framesBytes: number;
  /** Wall time spent building this update. */
  ms: number;
}

interface Named {
  name: string;
  snapshot: Snapshot;
  body: Uint8Array;
}

/**
 * The update from nothing and the delta updates from the newest `updatesFrom` earlier snapshots
 * of `earlier` (manifest order, oldest first) whose index can be read; a base that cannot be
 * read (deleted, damaged) is passed over: it only costs its clients a larger download.
 */
export function writeUpdates(remoteDir: string, target: { name: string; snapshot: Snapshot }, earlier: ManifestSnapshot[], opts: UpdatesOptions): UpdateWritten[] {
  const n: Named = { ...target, body: encodeSnapshotBody(target.snapshot) };
  const io: UpdateIO = { remoteDir, reader: new RemoteChunkReader(remoteDir), compressor: new FrameCompressor(), level: opts.level, onProgress: opts.onProgress };
  const written: UpdateWritten[] = [];
  try {
    if (opts.solid) written.push(writeUpdate(io, n, undefined));
    const newestFirst = opts.updatesFrom > 0 ? earlier.slice(-opts.updatesFrom).reverse() : [];
    const seen = new Set<string>();
    for (const entry of newestFirst) {
      if (seen.has(entry.name)) continue;
      seen.add(entry.name);
      let snapshot: Snapshot;
      try {
        snapshot = readRemoteSnapshot(remoteDir, entry);
      } catch {
        continue;
      }
      written.push(writeUpdate(io, n, { name: entry.name, snapshot, body: encodeSnapshotBody(snapshot) }));
    }
  } finally {
    io.reader.close();
  }
  return written;
}

/** What every update of one publish shares: one compression context (see FrameCompressor), open packs. */
interface UpdateIO {
  remoteDir: string;
  reader: RemoteChunkReader;
  compressor: FrameCompressor;
  level: number;
  onProgress?: (p: UpdateProgress) => void;
}

function writeUpdate({ remoteDir, reader, compressor, level, onProgress }: UpdateIO, target: Named, base: Named | undefined): UpdateWritten {
  const started = performance.now();
  const plan = base ? planDeltaFrames(target.snapshot, base.snapshot) : planSolidFrames(target.snapshot);
  const contentOf = (f: (typeof plan)[number]) => f.yields.reduce((n, i) => n + target.snapshot.chunks[i].rawLength, 0);
  const bytesTotal = plan.reduce((n, f) => n + contentOf(f), 0);
  let bytesDone = 0;
  let frameNo = 0;
  const from = base?.name ?? '';
  onProgress?.({ phase: 'updates', from, bytesDone, bytesTotal });
  const framesDir = join(remoteDir, 'frames');
  const file = new ContentNamedFile(framesDir, 'frames');
  let frames: FrameEntry[];
  try {
    file.write(framesHeader());
    frames = encodeFrames(plan, {
      target: target.snapshot,
      base: base?.snapshot,
      readChunk: (s, i) => reader.read(s, i),
      level,
      write: (frame) => {
        file.write(frame);
        bytesDone += contentOf(plan[frameNo++]);
        onProgress?.({ phase: 'updates', from, bytesDone, bytesTotal });
      },
      compressor,
    });
  } catch (e) {
    file.abort();
    throw e;
  }
  const framesSize = file.size;
  const framesFile = file.finish();
  fsyncPath(framesDir);
  const head = encodeUpdateHead({
    target: target.name,
    base: base?.name ?? null,
    framesFile,
    framesSize,
    // The index as a delta too: at 11 bytes a chunk it is most of a small update otherwise.
    indexDelta: base ? compressor.compress(target.body, { level: INDEX_DELTA_LEVEL, dictionary: base.body }) : new Uint8Array(0),
    indexBodySize: base ? target.body.length : 0,
    indexVersion: snapshotVersion(target.snapshot),
    frames,
  });
  const name = sha256Hex(head);
  writeFileAtomic(join(remoteDir, 'updates', `${name}.upd`), head);
  return { from: base?.name ?? '', name, size: head.length, frames: frames.length, framesBytes: framesSize, ms: performance.now() - started };
}
