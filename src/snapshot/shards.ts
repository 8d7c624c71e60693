import { brotliCompressSync, brotliDecompressSync, constants as zc } from 'node:zlib';
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { ChunkParams } from '../chunk/params.js';
import { parseDistFileName } from '../sources/pypi.js';
import { ChunkTable, FileEntry, INDEX_VERSIONS, readIndexHead, Snapshot, SourceEntry, writeIndexHead } from './snapshot.js';

/**
 * The sharded index (docs/DESIGN-REMOTE-V3.md decision 1; layout in docs/FORMATS.md §Root and
 * shards). A snapshot's *root* names *shards*, each a snapshot index (the PQSN layout, decoded by
 * decodeSnapshot) of one slice of one source: one PyPI project (PEP 503 name), or a path range of
 * any other source. A client that wants one project fetches the root and that project's shards
 * (and its dependencies'), not the whole index; a shard that did not change keeps its name and
 * costs a client that holds it nothing. `mergeShards` is the one place shards become the one
 * Snapshot the planner and every reader use.
 */
export const ROOT_MAGIC = Buffer.from('PQRT', 'ascii');
export const ROOT_VERSION = 1;
/** Where a root delta (a manifest entry's `root.delta`) lies in a remote. */
export const rootDeltaPath = (name: string): string => `roots/${name}.rd`;

export interface ShardDelta {
  /** Name (body SHA-256) of the older shard of the same key that the delta starts from. */
  from: string;
  /** Hex SHA-256 of the delta file, found at shards/<name>.sd. */
  name: string;
  size: number;
}

export interface ShardRef {
  /** Index into Root.sources. */
  source: number;
  /** "" for a whole source or its first range; a PEP 503 project name; the first relative path of a range. */
  key: string;
  /**
   * Hex SHA-256 of the shard's uncompressed index body; the file (brotli) is shards/<name>.shard.
   * Named by its body, so a shard rebuilt from a delta and one fetched whole check alike.
   */
  name: string;
  /** Bytes of the shard file. */
  size: number;
  /** The shard's index version (PQSN byte 4: 2, or 3 with rebuilt files): how its body decodes. */
  version: number;
  /** Bytes of the uncompressed body (the most a shard file may inflate to). */
  bodyLength: number;
  files: number;
  bytes: number;
  chunks: number;
  /** PyPI: shards of the projects this project's metadata names in Requires-Dist (any version, any marker). */
  deps: number[];
  deltas: ShardDelta[];
}

export interface Root {
  params: ChunkParams;
  created: number;
  sources: SourceEntry[];
  /** Sorted by source, then by key bytes. */
  shards: ShardRef[];
}

/**
 * A non-PyPI source is cut into path ranges of about this many chunk references (and each
 * range kept where the previous snapshot cut, so unchanged ranges keep their names). 64k chunks
 * is ~800 kB of brotli index: a 1% update of a big tree pays for the ranges it touches.
 */
export const RANGE_CHUNKS = 65536;

const compareBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** The shard key of a file of a source: for PyPI its project (a distribution or a companion of one), else "". */
export function projectKeyOf(kind: string, rel: string): string {
  if (kind !== 'pypi') return '';
  const base = rel.slice(rel.lastIndexOf('/') + 1).replace(/\.(metadata|yanked)$/, '');
  return parseDistFileName(base)?.normalized ?? '';
}

/** The index into root.shards of the shard that holds (or would hold) `path`, or -1 (a source the root lacks). */
export const shardOfPath = (root: Root, path: string): number => shardLocator(root)(path);

const locators = new WeakMap<Root, (path: string) => number>();

/**
 * shardOfPath for the many paths of an index: per source its PyPI projects by key, or its range
 * keys searched by halves (the root lists a source's shards together, sorted by key bytes), made
 * once per root instead of a scan of every shard for each path.
 */
export function shardLocator(root: Root): (path: string) => number {
  let locate = locators.get(root);
  if (locate) return locate;
  const bySource = new Map<string, { source: number; kind: string; first: number; keys: Buffer[]; projects: Map<string, number> }>();
  root.sources.forEach((src, source) => bySource.set(src.name, { source, kind: src.kind, first: -1, keys: [], projects: new Map() }));
  root.shards.forEach((sh, i) => {
    const o = bySource.get(root.sources[sh.source].name)!;
    if (o.first < 0) o.first = i;
    o.keys.push(Buffer.from(sh.key));
    o.projects.set(sh.key, i);
  });
  locate = (path: string): number => {
    const cut = path.indexOf('/');
    const o = cut < 0 ? undefined : bySource.get(path.slice(0, cut));
    if (!o || o.first < 0) return -1;
    const rel = path.slice(cut + 1);
    if (o.kind === 'pypi') return o.projects.get(projectKeyOf(o.kind, rel)) ?? -1;
    // The last range of the source whose first path is not after this one.
    const at = Buffer.from(rel);
    let lo = 0;
    let hi = o.keys.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(o.keys[mid], at) <= 0) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? -1 : o.first + found;
  };
  locators.set(root, locate);
  return locate;
}

/** One slice of a snapshot, before it is named. */
export interface ShardPart {
  source: number;
  key: string;
  snapshot: Snapshot;
}

/**
 * Cuts a snapshot into shards (the publisher's choice; a reader takes any cut the root lists):
 * PyPI sources by project, others into path ranges of about RANGE_CHUNKS chunk references, cut
 * again where `previousKeys` (the last snapshot's range keys, by source name) cut when the range
 * there has at least a quarter of that, so one changed file moves no range boundary.
 */
export function splitSnapshot(s: Snapshot, previousKeys: Map<string, Set<string>> = new Map(), rangeChunks = RANGE_CHUNKS): ShardPart[] {
  const parts: { source: number; key: string; files: FileEntry[] }[] = [];
  const sourceIndex = new Map(s.sources.map((src, i) => [src.name, i]));
  // Files are sorted by path, so a source's files lie together.
  let current: { source: number; key: string; files: FileEntry[]; refs: number } | undefined;
  const byProject = new Map<string, { source: number; key: string; files: FileEntry[] }>();
  for (const f of s.files) {
    const cut = f.path.indexOf('/');
    const source = sourceIndex.get(f.path.slice(0, cut))!;
    const { kind, name } = s.sources[source];
    const rel = f.path.slice(cut + 1);
    if (kind === 'pypi') {
      const key = projectKeyOf(kind, rel);
      const id = `${source}\0${key}`;
      let p = byProject.get(id);
      if (!p) byProject.set(id, (p = { source, key, files: [] }));
      p.files.push(f);
      continue;
    }
    const before = previousKeys.get(name);
    const cutHere =
      current !== undefined &&
      current.source === source &&
      (before?.has(rel) ? current.refs >= rangeChunks / 4 : current.refs >= (before ? 2 * rangeChunks : rangeChunks));
    if (!current || current.source !== source || cutHere) {
      current = { source, key: current?.source === source ? rel : '', files: [], refs: 0 };
      parts.push(current);
    }
    current.files.push(f);
    current.refs += f.chunks.length;
  }
  parts.push(...byProject.values());
  // Sources that list no file still get one (empty) shard: the root then says what each source holds.
  for (let i = 0; i < s.sources.length; i++) if (!parts.some((p) => p.source === i)) parts.push({ source: i, key: '', files: [] });
  parts.sort((a, b) => a.source - b.source || compareBytes(a.key, b.key));
  return parts.map((p) => ({ source: p.source, key: p.key, snapshot: subSnapshot(s, s.sources[p.source], p.files) }));
}

/** The index of some of a snapshot's files (of one source): its packs and chunks, renumbered, in the same order. */
export function subSnapshot(s: Snapshot, source: SourceEntry, files: FileEntry[]): Snapshot {
  const used = [...new Set(files.flatMap((f) => f.chunks))].sort((a, b) => a - b);
  const chunkIndex = new Map(used.map((c, i) => [c, i]));
  const packsUsed = [...new Set(used.map((c) => s.chunks.pack[c]))].sort((a, b) => a - b);
  const packIndex = new Map(packsUsed.map((p, i) => [p, i]));
  const chunks = s.chunks.select(used);
  for (let j = 0; j < chunks.length; j++) chunks.pack[j] = packIndex.get(chunks.pack[j])!;
  return {
    params: s.params,
    // The root says when: a shard whose files did not change keeps its bytes, so its name.
    created: 0,
    sources: [source],
    packs: packsUsed.map((p) => s.packs[p]),
    chunks,
    files: files.map((f) => ({ ...f, chunks: f.chunks.map((c) => chunkIndex.get(c)!) })),
  };
}

/**
 * The one Snapshot of the shards a client holds: packs and chunks united (each chunk once,
 * sorted by pack name and offset, as the publisher lays out a whole index) and files in path
 * order. Given every shard of a root, it is the snapshot's whole index, byte for byte once
 * encoded (its body hashes to the manifest's `body`). Checks that each shard is the slice the
 * root says: its source, the root's chunking, and no path or chunk location claimed twice.
 */
export function mergeShards(root: Root, shards: { ref: ShardRef; snapshot: Snapshot }[]): Snapshot {
  const bad = (why: string): never => {
    throw new PaqueteError('BAD_FORMAT', `index shards do not fit their root: ${why}`);
  };
  const packs = [...new Set(shards.flatMap((s) => s.snapshot.packs))].sort();
  const packIndex = new Map(packs.map((p, i) => [p, i]));
  // Each chunk location once: (pack in the merged list) × 2^32 + offset (packs stay below 4 GiB).
  const byPlace = new Map<number, number>();
  const from: { shard: number; at: number; pack: number }[] = [];
  const remaps: Uint32Array[] = [];
  shards.forEach(({ ref, snapshot }, k) => {
    const src = root.sources[ref.source];
    if (snapshot.sources.length !== 1 || snapshot.sources[0].name !== src.name || snapshot.sources[0].kind !== src.kind) bad(`shard ${ref.name.slice(0, 12)} is not of source ${src.name}`);
    const p = snapshot.params;
    if (p.minSize !== root.params.minSize || p.avgSize !== root.params.avgSize || p.maxSize !== root.params.maxSize) bad(`shard ${ref.name.slice(0, 12)} has other chunking parameters`);
    const t = snapshot.chunks;
    const remap = new Uint32Array(t.length);
    for (let j = 0; j < t.length; j++) {
      const pack = packIndex.get(snapshot.packs[t.pack[j]])!;
      const place = pack * 2 ** 32 + t.offset[j];
      const seen = byPlace.get(place);
      if (seen !== undefined) {
        const o = from[seen];
        const ot = shards[o.shard].snapshot.chunks;
        const same = ot.idWords[2 * o.at] === t.idWords[2 * j] && ot.idWords[2 * o.at + 1] === t.idWords[2 * j + 1] && ot.repr[o.at] === t.repr[j] && ot.rawLength[o.at] === t.rawLength[j] && ot.storedLength[o.at] === t.storedLength[j];
        if (!same) bad(`two chunks at offset ${t.offset[j]} of pack ${packs[pack].slice(0, 12)}`);
        remap[j] = seen;
        continue;
      }
      byPlace.set(place, from.length);
      remap[j] = from.length;
      from.push({ shard: k, at: j, pack });
    }
    remaps.push(remap);
  });
  // Sorted as the publisher sorts a whole index: by pack (names sorted), then offset.
  const offsetOf = (u: number) => shards[from[u].shard].snapshot.chunks.offset[from[u].at];
  const order = from.map((_, i) => i).sort((a, b) => from[a].pack - from[b].pack || offsetOf(a) - offsetOf(b));
  const finalIndex = new Uint32Array(from.length);
  const chunks = new ChunkTable(from.length);
  order.forEach((u, i) => {
    finalIndex[u] = i;
    chunks.copyFrom(i, shards[from[u].shard].snapshot.chunks, from[u].at);
    chunks.pack[i] = from[u].pack;
  });
  const files: FileEntry[] = [];
  shards.forEach(({ snapshot }, k) => {
    for (const f of snapshot.files) {
      if (!f.path.startsWith(root.sources[shards[k].ref.source].name + '/')) bad(`${f.path} is outside its shard's source`);
      files.push({ ...f, chunks: f.chunks.map((c) => finalIndex[remaps[k][c]]) });
    }
  });
  files.sort((a, b) => compareBytes(a.path, b.path));
  const paths = new Set<string>();
  for (const f of files) {
    if (paths.has(f.path)) bad(`${f.path} listed twice`);
    paths.add(f.path);
  }
  for (const f of files) {
    for (let cut = f.path.indexOf('/'); cut > 0; cut = f.path.indexOf('/', cut + 1)) {
      if (paths.has(f.path.slice(0, cut))) bad(`${JSON.stringify(f.path.slice(0, cut))} is both a file and a directory`);
    }
  }
  return { params: root.params, created: root.created, sources: root.sources, packs, chunks, files };
}

/** The root's uncompressed body (what a root delta rebuilds and `IndexRootRef.body` hashes). */
export function encodeRootBody(root: Root): Uint8Array {
  const w = new ByteWriter(1 << 12);
  writeIndexHead(w, root);
  w.varint(root.shards.length);
  for (const s of root.shards) {
    w.varint(s.source).string(s.key);
    w.bytes(Buffer.from(s.name, 'hex')).varint(s.size).u8(s.version);
    w.varint(s.bodyLength);
    w.varint(s.files).varint(s.bytes).varint(s.chunks);
    w.varint(s.deps.length);
    for (const d of s.deps) w.varint(d);
    w.varint(s.deltas.length);
    for (const d of s.deltas) w.bytes(Buffer.from(d.from, 'hex')).bytes(Buffer.from(d.name, 'hex')).varint(d.size);
  }
  return w.finish();
}

/** The root file of a body from encodeRootBody: the 8-byte header, then the body at brotli quality 11. */
export function packRoot(body: Uint8Array): Uint8Array {
  const packed = brotliCompressSync(body, { params: { [zc.BROTLI_PARAM_QUALITY]: 11, [zc.BROTLI_PARAM_SIZE_HINT]: body.length } });
  return Buffer.concat([ROOT_MAGIC, Buffer.from([ROOT_VERSION, 2, 0, 0]), packed]);
}

export const encodeRoot = (root: Root): Uint8Array => packRoot(encodeRootBody(root));

/** A root file's uncompressed body, its header checked (a root delta's base is this). */
export function rootBody(data: Uint8Array): Uint8Array {
  const what = 'index root';
  if (data.length < 8 || !ROOT_MAGIC.equals(data.subarray(0, 4))) throw new PaqueteError('BAD_FORMAT', `not a paquete ${what} (bad magic)`);
  requireFormat(what, 'index root', data[4], [ROOT_VERSION]);
  if (data[5] !== 2) throw new PaqueteError('BAD_FORMAT', `${what} uses unknown compression ${data[5]}`);
  try {
    return brotliDecompressSync(data.subarray(8), { maxOutputLength: 1 << 28 });
  } catch (e) {
    throw new PaqueteError('BAD_FORMAT', `damaged ${what}: ${(e as Error).message}`);
  }
}

export const decodeRoot = (data: Uint8Array): Root => decodeRootBody(rootBody(data));

export function decodeRootBody(body: Uint8Array): Root {
  const what = 'index root';
  const r = new ByteReader(body, what);
  const { params, created, sources } = readIndexHead(r, what);
  const hex = (n: number) => Buffer.from(r.bytes(n)).toString('hex');
  const shards: ShardRef[] = [];
  const nShards = r.count(45, 'shard');
  for (let i = 0; i < nShards; i++) {
    const source = r.varint();
    if (source >= sources.length) r.fail(`shard ${i} names source ${source} of ${sources.length}`);
    const key = r.string();
    const name = hex(32);
    const size = r.varint();
    const version = r.u8();
    requireFormat(`shard ${i} of the ${what}`, 'snapshot index', version, INDEX_VERSIONS);
    const bodyLength = r.varint();
    const files = r.varint();
    const bytes = r.varint();
    const chunks = r.varint();
    const deps: number[] = [];
    for (let n = r.count(1, 'dependency'); n > 0; n--) {
      const d = r.varint();
      if (d >= nShards) r.fail(`shard ${i} depends on shard ${d} of ${nShards}`);
      deps.push(d);
    }
    const deltas: ShardDelta[] = [];
    for (let n = r.count(65, 'shard delta'); n > 0; n--) deltas.push({ from: hex(32), name: hex(32), size: r.varint() });
    const prev = shards[i - 1];
    if (prev && (prev.source > source || (prev.source === source && compareBytes(prev.key, key) >= 0))) r.fail(`shard ${i} is out of order`);
    shards.push({ source, key, name, size, version, bodyLength, files, bytes, chunks, deps, deltas });
  }
  r.end();
  return { params, created, sources, shards };
}
