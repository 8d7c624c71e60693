import { createHash } from 'node:crypto';
import { closeSync, fstatSync, readSync } from 'node:fs';
import { realPathInMirror } from './contained.js';
import type { ChunkStore } from '../store/store.js';
import type { Generation } from '../workdir/generation.js';
import { cachedLatest } from '../sync/catalog.js';
import { notIndexed } from '../sync/shard-cache.js';
import { assessCompleteness, Completeness } from '../sync/completeness.js';
import { keptToFetch, ToFetch } from '../sync/forecast.js';
import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { ManifestSnapshot } from '../snapshot/manifest.js';
import { compareVersions, parseVersion } from '../sources/pep440.js';
import { DistFile, parseCoreMetadata, parseDistFileName, readDistMetadata } from '../sources/pypi.js';
import { WorkDir } from '../workdir/workdir.js';

/**
 * What the server shows of one generation (src/workdir/generation.ts), with no network: its
 * snapshot, which of its files can be read whole, and the PyPI projects those files make.
 * Rebuilt when older than `maxAgeMs` (the user may delete or edit a file under a running
 * server), so a page never lists a file that is not there whole. A sync under way changes
 * nothing here: it makes a new generation, which serve answers new connections from.
 */
export interface DistInfo {
  file: FileEntry;
  dist: DistFile;
  /** The source the file belongs to. */
  source: string;
  fileName: string;
  sha256: string;
  /** `true`, or the reason, when FILE.yanked is beside it. */
  yanked: false | true | string;
}

export interface ProjectMetadata {
  requiresPython?: string;
  /** SHA-256 of the core metadata served at FILE.metadata (wheels only). */
  metadataSha256?: string;
}

export interface MirrorState {
  entry?: ManifestSnapshot;
  serial?: number;
  snapshot?: Snapshot;
  completeness?: Completeness;
  /** What a sync would spend now and complete, as the last sync, dry run or status kept it for this snapshot (src/sync/forecast.ts). */
  toFetch?: ToFetch;
  /** Normalized project name → complete distributions (pypi sources only). */
  projects: Map<string, DistInfo[]>;
  /** Every distribution in the snapshot, complete or not (the catalog shows what is missing). */
  allDists: Map<string, DistInfo[]>;
  /** Complete distributions by snapshot path. */
  byPath: Map<string, DistInfo>;
  /** A partial index (sync --want): what its shards not held list, per source name (src/sync/shard-cache.ts). */
  notIndexed?: Map<string, { files: number; bytes: number }>;
  builtAt: number;
}

export class MirrorView {
  private state?: MirrorState;
  private building?: Promise<MirrorState>;
  /** Extracted metadata, by the SHA-256 of the distribution. */
  private metadata = new Map<string, { bytes: Uint8Array; sha256: string } | null>();

  constructor(
    readonly work: WorkDir,
    readonly generation: Generation,
    /** The store as this generation knows it (a reader's copy of the index). */
    readonly store: ChunkStore,
    private readonly maxAgeMs = 3000,
  ) {}

  async current(): Promise<MirrorState> {
    if (this.state && Date.now() - this.state.builtAt < this.maxAgeMs) return this.state;
    this.building ??= this.build().finally(() => (this.building = undefined));
    this.state = await this.building;
    return this.state;
  }

  /**
   * Opens the bytes this generation has at `rel` (a snapshot path), from the tree while the file
   * there is the one placed, else from what the sync kept (see Generation.open); undefined when
   * gone. The descriptor keeps them whatever a sync does next.
   */
  open(rel: string): number | undefined {
    return this.generation.open(rel, realPathInMirror(this.work.root, rel));
  }

  /** The whole of `rel` as this generation has it (small files: yanked markers, metadata, git refs). */
  read(rel: string): Buffer | undefined {
    const fd = this.open(rel);
    if (fd === undefined) return undefined;
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const n = readSync(fd, buf, done, size - done, done);
        if (n === 0) return undefined;
        done += n;
      }
      return buf;
    } finally {
      closeSync(fd);
    }
  }

  private async build(): Promise<MirrorState> {
    const latest = this.generation.manifest ? cachedLatest(this.work, this.generation.manifest) : undefined;
    const projects = new Map<string, DistInfo[]>();
    const allDists = new Map<string, DistInfo[]>();
    const byPath = new Map<string, DistInfo>();
    if (!latest) return { projects, allDists, byPath, builtAt: Date.now() };
    const { snapshot } = latest;
    const completeness = await assessCompleteness(this.work, snapshot, { gen: this.generation, store: this.store });
    const pypiSources = new Set(snapshot.sources.filter((s) => s.kind === 'pypi').map((s) => s.name));
    for (const f of snapshot.files) {
      const source = f.path.split('/')[0];
      if (!pypiSources.has(source)) continue;
      const fileName = f.path.slice(f.path.lastIndexOf('/') + 1);
      const dist = parseDistFileName(fileName);
      if (!dist) continue;
      const info: DistInfo = { file: f, dist, source, fileName, sha256: Buffer.from(f.sha256).toString('hex'), yanked: this.yankOf(f.path, completeness) };
      push(allDists, dist.normalized, info);
      if (completeness.complete.has(f.path)) {
        push(projects, dist.normalized, info);
        byPath.set(f.path, info);
      }
    }
    const byVersion = (a: DistInfo, b: DistInfo) => {
      const va = parseVersion(a.dist.version);
      const vb = parseVersion(b.dist.version);
      return (va && vb ? compareVersions(va, vb) : 0) || (a.fileName < b.fileName ? -1 : 1);
    };
    for (const list of [...projects.values(), ...allDists.values()]) list.sort(byVersion);
    const toFetch = keptToFetch(this.work, latest.entry.name);
    const notIndexedHere = latest.partial ? notIndexed(latest.partial) : undefined;
    return { entry: latest.entry, serial: latest.manifest.body.serial, snapshot, completeness, toFetch, projects, allDists, byPath, notIndexed: notIndexedHere, builtAt: Date.now() };
  }

  private yankOf(path: string, c: Completeness): false | true | string {
    const marker = `${path}.yanked`;
    if (!c.complete.has(marker)) return false;
    const bytes = this.read(marker);
    if (!bytes) return false;
    return bytes.toString('utf8').trim() || true;
  }

  /**
   * The core metadata of a complete distribution: the FILE.metadata beside it when complete,
   * else read out of the file once and kept in .paquete/pypi-metadata/<sha256>.metadata.
   */
  coreMetadata(d: DistInfo, state: MirrorState): { bytes: Uint8Array; sha256: string } | undefined {
    const cached = this.metadata.get(d.sha256);
    if (cached !== undefined) return cached ?? undefined;
    let bytes: Uint8Array | undefined;
    const sidecar = `${d.file.path}.metadata`;
    if (state.completeness?.complete.has(sidecar)) bytes = this.read(sidecar);
    const cacheName = `pypi-metadata/${d.sha256}.metadata`;
    bytes ??= this.work.readOptional(cacheName);
    if (!bytes) {
      const fd = this.open(d.file.path);
      try {
        bytes = fd === undefined ? undefined : readDistMetadata(fd, d.fileName);
        if (bytes) this.work.writeCache(cacheName, bytes);
      } catch {
        bytes = undefined;
      }
    }
    const result = bytes ? { bytes, sha256: createHash('sha256').update(bytes).digest('hex') } : null;
    this.metadata.set(d.sha256, result);
    return result ?? undefined;
  }

  projectMetadata(d: DistInfo, state: MirrorState): ProjectMetadata {
    const m = this.coreMetadata(d, state);
    if (!m) return {};
    return {
      requiresPython: parseCoreMetadata(m.bytes).requiresPython,
      // PEP 658 metadata is offered for wheels only: an sdist's PKG-INFO may be incomplete.
      metadataSha256: d.dist.kind === 'wheel' ? m.sha256 : undefined,
    };
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}
