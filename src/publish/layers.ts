import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeUpdateHead } from '../delta/update.js';
import { LayersRef, sha256Hex } from '../snapshot/manifest.js';
import { FILES_MAGIC, fileLayerBody, packLayerVia, planPieces, StreamPiece, WHERE_MAGIC, whereLayerBody } from '../snapshot/layers.js';
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
export async function writeLayers(remoteDir: string, snapshot: Snapshot, snapName: string, stream: string, compress: BrotliCompress = brotliHere): Promise<LayersRef> {
  const head = decodeUpdateHead(readFileSync(join(remoteDir, 'updates', `${stream}.upd`)));
  const frames = head.frames.map((f) => f.yields);
  const { pieces: cuts, hashed } = planPieces(snapshot, frames);
  const reader = new RemoteChunkReader(remoteDir);
  const pieces: StreamPiece[][] = [];
  try {
    frames.forEach((yields, f) => {
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
