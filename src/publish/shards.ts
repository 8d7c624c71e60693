import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../snapshot/manifest.js';
import { encodeSnapshotBody, Snapshot, snapshotBody, snapshotFileOfBodyVia, snapshotVersion } from '../snapshot/snapshot.js';
import { decodeRootBody, encodeRootBody, packRoot, Root, rootBody, rootDeltaPath, ShardDelta, ShardRef, splitSnapshot } from '../snapshot/shards.js';
import { RootDeltaRef } from '../snapshot/manifest.js';
import { compressFrame, CompressOptions } from '../delta/zstd.js';
import { BrotliCompress, brotliHere } from '../util/brotli.js';
import { parseRequirement } from '../sources/pep440.js';
import { normalizeName, parseCoreMetadata } from '../sources/pypi.js';
import { writeFileAtomic } from '../util/fsx.js';
import { RemoteChunkReader } from './published-file.js';

/**
 * Writing a snapshot's sharded index (src/snapshot/shards.ts, docs/FORMATS.md §Root and shards):
 * the shards that are new (an unchanged shard has the same bytes, so the same name, and is not
 * written again), a delta from the previous snapshot's shard of the same key for each changed one,
 * and the root naming them all.
 */
export interface ShardsWritten {
  name: string;
  size: number;
  /** SHA-256 and length of the root's uncompressed body. */
  body: string;
  bodyLength: number;
  /** The root as a delta from the previous snapshot's root, when that is smaller than the root file. */
  delta?: RootDeltaRef;
  root: Root;
  /** Shards written by this publish (the others were already there), and their bytes. */
  newShards: number;
  newBytes: number;
}

const rootPath = (dir: string, name: string) => join(dir, 'roots', `${name}.root`);

/** The previous snapshot's root: its file's name, decoded, and its uncompressed body (a root delta's base). */
export interface PreviousRoot {
  name: string;
  root: Root;
  body: Uint8Array;
}
export const shardPath = (name: string): string => `shards/${name}.shard`;
export const shardDeltaPath = (name: string): string => `shards/${name}.sd`;

/** The previous snapshot's root, when it has one (written before roots existed: none). */
export function readPreviousRoot(remoteDir: string, ref: { name: string } | undefined): PreviousRoot | undefined {
  if (!ref || !existsSync(rootPath(remoteDir, ref.name))) return undefined;
  try {
    const body = rootBody(readFileSync(rootPath(remoteDir, ref.name)));
    return { name: ref.name, root: decodeRootBody(body), body };
  } catch {
    return undefined; // a damaged root only costs this publish its deltas and kept cuts
  }
}

/**
 * Where a publish compresses: its worker threads (src/delta/compress-pool.ts), or this thread.
 * The shards and their deltas are compressed side by side; the bytes are the same either way.
 */
export interface Compressors {
  brotli: BrotliCompress;
  zstd: (content: Uint8Array, opts: CompressOptions) => Promise<Uint8Array>;
}

const here: Compressors = { brotli: brotliHere, zstd: async (content, opts) => compressFrame(content, opts) };

export async function writeShards(
  remoteDir: string,
  snapshot: Snapshot,
  previousRoot: PreviousRoot | undefined,
  opts: { level?: number; compress?: Compressors } = {},
): Promise<ShardsWritten> {
  const compress = opts.compress ?? here;
  const previous = previousRoot?.root;
  mkdirSync(join(remoteDir, 'shards'), { recursive: true });
  mkdirSync(join(remoteDir, 'roots'), { recursive: true });
  const keyOf = (r: Root, s: ShardRef) => `${r.sources[s.source].name}\0${s.key}`;
  const before = new Map((previous?.shards ?? []).map((s) => [keyOf(previous!, s), s]));
  const previousKeys = new Map<string, Set<string>>();
  for (const s of previous?.shards ?? []) {
    const src = previous!.sources[s.source].name;
    if (!previousKeys.has(src)) previousKeys.set(src, new Set());
    previousKeys.get(src)!.add(s.key);
  }
  const parts = splitSnapshot(snapshot, previousKeys);
  let newShards = 0;
  let newBytes = 0;
  const refs: ShardRef[] = await Promise.all(parts.map(async (p) => {
    const body = encodeSnapshotBody(p.snapshot);
    const name = sha256Hex(body);
    const path = join(remoteDir, shardPath(name));
    // A shard is named by its body, so one already there is this one: not compressed again
    // (brotli is most of a shard's cost, and most shards of a small change are unchanged).
    let size: number;
    if (existsSync(path)) size = statSync(path).size;
    else {
      const file = await snapshotFileOfBodyVia(body, snapshotVersion(p.snapshot), compress.brotli);
      writeFileAtomic(path, file);
      size = file.length;
      newShards++;
      newBytes += file.length;
    }
    const old = before.get(`${snapshot.sources[p.source].name}\0${p.key}`);
    const deltas: ShardDelta[] = [];
    if (old && old.name !== name) {
      const delta = await shardDelta(remoteDir, old, body, opts.level ?? 19, compress);
      if (delta && delta.length < size) {
        const deltaName = sha256Hex(delta);
        const dpath = join(remoteDir, shardDeltaPath(deltaName));
        if (!existsSync(dpath)) writeFileAtomic(dpath, delta);
        deltas.push({ from: old.name, name: deltaName, size: delta.length });
      }
    }
    return {
      source: p.source, key: p.key, name, size, version: snapshotVersion(p.snapshot), bodyLength: body.length,
      files: p.snapshot.files.length,
      bytes: p.snapshot.files.reduce((n, f) => n + (f.rebuiltSize ?? f.size), 0),
      chunks: p.snapshot.chunks.length, deps: [], deltas,
    };
  }));
  linkDependencies(remoteDir, snapshot, parts, refs, previous);
  const root: Root = { params: snapshot.params, created: snapshot.created, sources: snapshot.sources, shards: refs };
  const body = encodeRootBody(root);
  const bytes = packRoot(body);
  const name = sha256Hex(bytes);
  writeFileAtomic(rootPath(remoteDir, name), bytes);
  // The root lists every shard, so it grows with the mirror; an unchanged shard's entry keeps its
  // bytes, so against the previous root only what changed costs a --want client anything.
  let delta: RootDeltaRef | undefined;
  if (previousRoot && previousRoot.name !== name) {
    const frame = await compress.zstd(body, { level: opts.level ?? 19, dictionary: previousRoot.body });
    if (frame.length < bytes.length) {
      delta = { from: previousRoot.name, name: sha256Hex(frame), size: frame.length };
      const dpath = join(remoteDir, rootDeltaPath(delta.name));
      if (!existsSync(dpath)) writeFileAtomic(dpath, frame);
    }
  }
  return { name, size: bytes.length, body: sha256Hex(body), bodyLength: body.length, ...(delta ? { delta } : {}), root, newShards, newBytes };
}

/** A zstd frame of a shard's new body against the old shard's body (a raw-content dictionary), or undefined without the old one. */
async function shardDelta(remoteDir: string, old: ShardRef, body: Uint8Array, level: number, compress: Compressors): Promise<Uint8Array | undefined> {
  const path = join(remoteDir, shardPath(old.name));
  if (!existsSync(path)) return undefined;
  try {
    return await compress.zstd(body, { level, dictionary: snapshotBody(readFileSync(path)) });
  } catch {
    return undefined;
  }
}

/**
 * Each PyPI project shard's dependencies: the projects its FILE.metadata files name in
 * Requires-Dist (every version, extra and marker: a client's resolver decides, this only says
 * which shards it may need). Read back from the remote's packs; a shard whose name is unchanged
 * keeps the previous root's list.
 */
function linkDependencies(remoteDir: string, snapshot: Snapshot, parts: ReturnType<typeof splitSnapshot>, refs: ShardRef[], previous: Root | undefined): void {
  const byProject = new Map<string, number[]>();
  refs.forEach((r, i) => {
    if (snapshot.sources[r.source].kind !== 'pypi' || r.key === '') return;
    byProject.set(r.key, [...(byProject.get(r.key) ?? []), i]);
  });
  const previousByName = new Map((previous?.shards ?? []).map((s) => [s.name, s]));
  const reader = new RemoteChunkReader(remoteDir);
  try {
    refs.forEach((r, i) => {
      if (!byProject.has(r.key) || !byProject.get(r.key)!.includes(i)) return;
      const kept = previousByName.get(r.name);
      let names: Set<string>;
      if (kept) names = new Set(kept.deps.map((d) => previous!.shards[d].key));
      else {
        names = new Set();
        const shard = parts[i].snapshot;
        for (const f of shard.files) {
          if (!f.path.endsWith('.metadata')) continue;
          let meta;
          try {
            meta = parseCoreMetadata(Buffer.concat(f.chunks.map((c) => reader.read(shard, c))));
          } catch {
            continue; // a metadata file that does not read names no dependency
          }
          for (const line of meta.requiresDist) {
            try {
              names.add(normalizeName(parseRequirement(line).name));
            } catch {
              // a line the client's resolver will report too
            }
          }
        }
      }
      names.delete(r.key);
      r.deps = [...names].flatMap((n) => byProject.get(n) ?? []).sort((a, b) => a - b);
    });
  } finally {
    reader.close();
  }
}
