import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeUpdateHead } from '../delta/update.js';
import { LayersRef, sha256Hex } from '../snapshot/manifest.js';
import { decodeFileLayer, FileLayer, FILES_MAGIC, fileLayerBody, packLayerVia, planPieces, StreamPiece, WHERE_MAGIC, whereLayerBody } from '../snapshot/layers.js';
import { BrotliCompress, brotliHere } from '../util/brotli.js';
import { Snapshot } from '../snapshot/snapshot.js';
import { writeFileAtomic } from '../util/fsx.js';
import { RemoteChunkReader } from './published-file.js';

export const filesLayerPath = (name: string): string => `layers/${name}.files`;
export const whereLayerPath = (name: string): string => `layers/${name}.where`;

/**
 * Writes snapshot `snapName`'s two index layers (src/snapshot/layers.ts) for its update from
 * nothing (`stream`, the head's name): the stream's pieces hashed from the chunks as the remote's
 * packs hold them, read in the stream's order. Without a stream there is nothing to derive from,
 * so no layers (a newcomer reads the `.snap`). Both are compressed by `compress` (a publish's
 * worker threads) side by side.
 */
export async function writeLayers(
  remoteDir: string,
  snapshot: Snapshot,
  snapName: string,
  stream: string,
  compress: BrotliCompress = brotliHere,
  hashes?: StreamPieceHashes,
  previousLayers?: LayersRef,
): Promise<LayersRef> {
  const head = decodeUpdateHead(readFileSync(join(remoteDir, 'updates', `${stream}.upd`)));
  const frames = head.frames.map((f) => f.yields);
  const { pieces: cuts, hashed } = hashes?.planFor(frames) ?? planPieces(snapshot, frames);
  const previous = hashes?.keeps() && previousLayers ? previousFileLayer(remoteDir, previousLayers) : undefined;
  const reader = new RemoteChunkReader(remoteDir);
  const pieces: StreamPiece[][] = [];
  try {
    frames.forEach((yields, f) => {
      // Hashed while the stream was compressed: its chunks are not read a second time.
      const known = hashes?.piecesOf(f) ?? hashes?.keptOf(f, cuts[f], previous);
      if (known) return void pieces.push(known);
      let j = 0;
      pieces.push(
        cuts[f].map((n) => {
          const h = createHash('sha256');
          for (const end = j + n; j < end; j++) h.update(reader.read(snapshot, yields[j]));
          return { yields: n, sha256: h.digest() };
        }),
      );
    });
  } finally {
    reader.close();
  }
  mkdirSync(join(remoteDir, 'layers'), { recursive: true });
  const [files, where] = await Promise.all([
    packLayerVia(FILES_MAGIC, fileLayerBody(snapshot, snapName, hashed, stream, pieces), compress),
    packLayerVia(WHERE_MAGIC, whereLayerBody(snapshot, snapName), compress),
  ]);
  const ref: LayersRef = { files: { name: sha256Hex(files), size: files.length }, where: { name: sha256Hex(where), size: where.length } };
  writeFileAtomic(join(remoteDir, filesLayerPath(ref.files.name)), files);
  writeFileAtomic(join(remoteDir, whereLayerPath(ref.where.name)), where);
  return ref;
}

/** The previous snapshot's file layer, whose pieces a kept segment's frames still have; undefined if it does not read. */
function previousFileLayer(remoteDir: string, ref: LayersRef): FileLayer | undefined {
  try {
    const data = readFileSync(join(remoteDir, filesLayerPath(ref.files.name)));
    return sha256Hex(data) === ref.files.name ? decodeFileLayer(data) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The layers' piece hashes taken as the update from nothing reads its frames' chunks to compress
 * them (src/publish/updates.ts writeStream), so writeLayers reads only the chunks of kept
 * segments: at 30k files the second read of every chunk from the packs was 1.3 s of a publish.
 * The pieces are planned on the stream's frames first; chunks then come in, frame after frame
 * in `order`, each in its yields' order. Anything else (a chunk not the one expected) stops the
 * hashing, and writeLayers reads those frames from the packs as before: the bytes never depend on it.
 */
export class StreamPieceHashes {
  private frames: number[][] = [];
  private planned?: ReturnType<typeof planPieces>;
  private order: number[] = [];
  private next = 0;
  private readonly done = new Map<number, StreamPiece[]>();
  private broken = false;
  private cur = -1;
  private j = 0;
  private inPiece = 0;
  private acc: StreamPiece[] = [];
  private hash = createHash('sha256');

  private kept?: { stream: string; frames: Map<number, number> };

  /**
   * The stream's frames (head order) and which of them will be read, in the order they will be;
   * `kept`: the previous stream (its head's name) and, for each frame of a segment kept from it,
   * that frame's number there (its pieces are in the previous file layer, hashed already).
   */
  plan(s: Snapshot, frames: number[][], order: number[], kept?: { stream: string; frames: Map<number, number> }): void {
    this.frames = frames;
    this.planned = planPieces(s, frames);
    this.order = order;
    this.kept = kept && kept.frames.size ? kept : undefined;
  }

  /** Whether some frames are a kept segment's. */
  keeps(): boolean {
    return this.kept !== undefined;
  }

  /**
   * Frame `f`'s pieces from the previous file layer, when `f` is a kept segment's frame, that
   * layer cuts the previous stream, and cut it as `cuts` (the same chunks in the same order: the
   * same bytes, so the same hashes).
   */
  keptOf(f: number, cuts: number[], previous: FileLayer | undefined): StreamPiece[] | undefined {
    if (this.broken || !this.kept || !previous || previous.stream !== this.kept.stream) return undefined;
    const pf = this.kept.frames.get(f);
    const old = pf === undefined ? undefined : previous.pieces[pf];
    if (!old || old.length !== cuts.length || old.some((p, k) => p.yields !== cuts[k])) return undefined;
    return old;
  }

  /** The pieces as planned, when `frames` are the ones planned (the head written). */
  planFor(frames: number[][]): ReturnType<typeof planPieces> | undefined {
    const same = frames.length === this.frames.length && frames.every((y, f) => y.length === this.frames[f].length && y.every((i, k) => i === this.frames[f][k]));
    if (!same) this.broken = true;
    return same ? this.planned : undefined;
  }

  /** Chunk `index` of the stream's target, as read for its frame. */
  feed(index: number, bytes: Uint8Array): void {
    if (this.broken || !this.planned) return;
    if (this.cur < 0) {
      while (this.next < this.order.length && this.frames[this.order[this.next]].length === 0) this.done.set(this.order[this.next++], []);
      if (this.next >= this.order.length) return void (this.broken = true);
      this.cur = this.order[this.next++];
      this.j = 0;
      this.inPiece = 0;
      this.acc = [];
    }
    const yields = this.frames[this.cur];
    if (yields[this.j] !== index) return void (this.broken = true);
    this.hash.update(bytes);
    this.j++;
    const cuts = this.planned.pieces[this.cur];
    if (++this.inPiece === cuts[this.acc.length]) {
      this.acc.push({ yields: this.inPiece, sha256: this.hash.digest() });
      this.hash = createHash('sha256');
      this.inPiece = 0;
    }
    if (this.j === yields.length) {
      this.done.set(this.cur, this.acc);
      this.cur = -1;
    }
  }

  /** Frame `f`'s pieces with their hashes, if it was read whole while hashing held. */
  piecesOf(f: number): StreamPiece[] | undefined {
    return this.broken ? undefined : this.done.get(f);
  }
}
