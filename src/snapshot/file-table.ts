/** One file of a snapshot, as an object: what code taking one file at a time reads (FileTable.entry makes it). */
export interface FileEntry {
  /** '/'-separated, relative; the first part is the source name. */
  path: string;
  /** POSIX permission bits (regular files only). */
  mode: number;
  /** Bytes of its chunks, end to end. */
  size: number;
  /** SHA-256 of the file as placed (for a rebuilt file: of the file it rebuilds, not of its chunks). */
  sha256: Uint8Array;
  /**
   * Set when the chunks are a rebuild stream (a wheel or sdist as its contents plus a recipe,
   * src/rebuild/recipe.ts): the size of the file they rebuild. Such a snapshot is version 3.
   */
  rebuiltSize?: number;
  /** Indices into Snapshot.chunks, in file order. */
  chunks: number[];
}

/** No rebuilt size: the file is its chunks. */
const NOT_REBUILT = -1;

/**
 * A snapshot's files as columns, indexed by file number: every path's UTF-8 in one buffer with
 * offsets, one typed array per number, every SHA-256 in one buffer, every file's chunk list end to
 * end in one Uint32Array. No object per file: 1M files as FileEntry objects held ~350 MB and took
 * most of a 10M-chunk index's decode (issue 15); as columns they are their bytes plus ~40 bytes a
 * file. The decoder fills one (FileTableBuilder); the planner, completeness and status read it;
 * `entry(i)` makes an object for code that takes one file at a time.
 */
export class FileTable {
  constructor(
    readonly length: number,
    /** Every path's UTF-8, end to end. */
    readonly pathBytes: Buffer,
    /** Path i is pathBytes[pathStart[i], pathStart[i + 1]). */
    readonly pathStart: Uint32Array,
    /** POSIX permission bits. */
    readonly mode: Uint16Array,
    /** Bytes of its chunks, end to end. */
    readonly size: Float64Array,
    /** The size of the file its chunks rebuild, or -1 when they are the file. */
    readonly rebuilt: Float64Array,
    /** SHA-256 of file i at 32i (a Buffer, so each file's is one too, as entries always had). */
    readonly hashes: Buffer,
    /** File i's chunks are chunkList[chunkStart[i], chunkStart[i + 1]). */
    readonly chunkStart: Uint32Array,
    /** Indices into the snapshot's ChunkTable, file by file, in file order. */
    readonly chunkList: Uint32Array,
  ) {}

  static of(entries: readonly FileEntry[]): FileTable {
    const b = new FileTableBuilder(entries.length, entries.reduce((n, f) => n + f.chunks.length, 0));
    for (const f of entries) {
      const path = Buffer.from(f.path, 'utf8');
      b.add(path, 0, path.length, f.mode, f.size, f.rebuiltSize, f.sha256, 0);
      for (const c of f.chunks) b.chunk(c);
    }
    return b.finish();
  }

  path(i: number): string {
    return this.pathBytes.toString('utf8', this.pathStart[i], this.pathStart[i + 1]);
  }

  /** The first path component: the source the file belongs to. */
  sourceName(i: number): string {
    const start = this.pathStart[i];
    const slash = this.pathBytes.indexOf(0x2f, start);
    return this.pathBytes.toString('utf8', start, slash < 0 || slash >= this.pathStart[i + 1] ? this.pathStart[i + 1] : slash);
  }

  /** The size as placed in the tree (and served): the rebuilt size for a rebuilt file. */
  placedSize(i: number): number {
    return this.rebuilt[i] === NOT_REBUILT ? this.size[i] : this.rebuilt[i];
  }

  rebuiltSize(i: number): number | undefined {
    return this.rebuilt[i] === NOT_REBUILT ? undefined : this.rebuilt[i];
  }

  sha256(i: number): Uint8Array {
    return this.hashes.subarray(32 * i, 32 * i + 32);
  }

  /** File i's chunk indices, a view (not a copy). */
  chunks(i: number): Uint32Array {
    return this.chunkList.subarray(this.chunkStart[i], this.chunkStart[i + 1]);
  }

  chunkCount(i: number): number {
    return this.chunkStart[i + 1] - this.chunkStart[i];
  }

  get anyRebuilt(): boolean {
    for (let i = 0; i < this.length; i++) if (this.rebuilt[i] !== NOT_REBUILT) return true;
    return false;
  }

  entry(i: number): FileEntry {
    const rebuiltSize = this.rebuiltSize(i);
    return { path: this.path(i), mode: this.mode[i], size: this.size[i], sha256: this.sha256(i), chunks: Array.from(this.chunks(i)), ...(rebuiltSize !== undefined ? { rebuiltSize } : {}) };
  }

  /** Every file as an object: for code that wants an array, not for a mirror's hot paths. */
  entries(): FileEntry[] {
    const out: FileEntry[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.entry(i);
    return out;
  }
}

/**
 * Fills a FileTable file by file (the decoder's, and FileTable.of's): the file count and chunk
 * references are known up front (the index says them), path bytes are collected in a buffer that
 * grows by doubling.
 */
export class FileTableBuilder {
  private n = 0;
  private chunksIn = 0;
  private pathBytes: Buffer;
  private pathEnd = 0;
  private readonly pathStart: Uint32Array;
  private readonly mode: Uint16Array;
  private readonly size: Float64Array;
  private readonly rebuilt: Float64Array;
  private readonly hashes: Buffer;
  private readonly chunkStart: Uint32Array;
  private chunkList: Uint32Array;

  constructor(
    private readonly count: number,
    chunkRefs = count * 4,
  ) {
    this.pathBytes = Buffer.allocUnsafe(Math.max(64, count * 48));
    this.pathStart = new Uint32Array(count + 1);
    this.mode = new Uint16Array(count);
    this.size = new Float64Array(count);
    this.rebuilt = new Float64Array(count);
    this.hashes = Buffer.alloc(32 * count);
    this.chunkStart = new Uint32Array(count + 1);
    this.chunkList = new Uint32Array(Math.max(16, chunkRefs));
  }

  /** Adds a file whose path is from[start, end) and whose SHA-256 is hash[at, at + 32). */
  add(from: Uint8Array, start: number, end: number, mode: number, size: number, rebuiltSize: number | undefined, hash: Uint8Array, at: number): void {
    const i = this.n++;
    const len = end - start;
    if (this.pathEnd + len > this.pathBytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.pathBytes.length, this.pathEnd + len));
      this.pathBytes.copy(grown, 0, 0, this.pathEnd);
      this.pathBytes = grown;
    }
    // Byte by byte: a subarray per file (for set()) was a third of adding it.
    const paths = this.pathBytes;
    for (let k = 0, to = this.pathEnd; k < len; k++) paths[to + k] = from[start + k];
    this.pathEnd += len;
    this.pathStart[i + 1] = this.pathEnd;
    this.mode[i] = mode;
    this.size[i] = size;
    this.rebuilt[i] = rebuiltSize ?? NOT_REBUILT;
    const hashes = this.hashes;
    for (let k = 0, to = 32 * i; k < 32; k++) hashes[to + k] = hash[at + k];
    this.chunkStart[i] = this.chunksIn;
    this.chunkStart[i + 1] = this.chunksIn;
  }

  /** Adds a chunk index to the file added last. */
  chunk(index: number): void {
    if (this.chunksIn === this.chunkList.length) {
      const grown = new Uint32Array(2 * this.chunkList.length);
      grown.set(this.chunkList);
      this.chunkList = grown;
    }
    this.chunkList[this.chunksIn++] = index;
    this.chunkStart[this.n] = this.chunksIn;
  }

  /** The path of file i as added (for the decoder's checks). */
  samePath(i: number, from: Uint8Array, start: number, end: number): boolean {
    const a = this.pathStart[i];
    const len = this.pathStart[i + 1] - a;
    if (len !== end - start) return false;
    for (let k = 0; k < len; k++) if (this.pathBytes[a + k] !== from[start + k]) return false;
    return true;
  }

  finish(): FileTable {
    if (this.n !== this.count) throw new Error(`FileTableBuilder: ${this.n} files added of ${this.count}`);
    // Trimmed to what was used: the slack of a doubling buffer is not kept for the table's life.
    const paths = Buffer.from(this.pathBytes.subarray(0, this.pathEnd));
    const list = this.chunksIn === this.chunkList.length ? this.chunkList : this.chunkList.slice(0, this.chunksIn);
    return new FileTable(this.count, paths, this.pathStart, this.mode, this.size, this.rebuilt, this.hashes, this.chunkStart, list);
  }
}
