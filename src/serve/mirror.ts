import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { realPathInMirror } from './contained.js';
import { cachedLatest } from '../sync/catalog.js';
import { assessCompleteness, Completeness } from '../sync/completeness.js';
import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { ManifestSnapshot } from '../snapshot/manifest.js';
import { compareVersions, parseVersion } from '../sources/pep440.js';
import { DistFile, parseCoreMetadata, parseDistFileName, readDistMetadata } from '../sources/pypi.js';
import { WorkDir } from '../workdir/workdir.js';

/**
 * What the server shows, read from the working directory with no network: the snapshot last
 * synced, which of its files are complete in the tree, and the PyPI projects those files make.
 * Rebuilt when older than `maxAgeMs` (the tree can change under a running server: the user
 * deletes or edits a file), so a page never lists a file that is not there whole.
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
  /** Normalized project name → complete distributions (pypi sources only). */
  projects: Map<string, DistInfo[]>;
  /** Every distribution in the snapshot, complete or not (the catalog shows what is missing). */
  allDists: Map<string, DistInfo[]>;
  /** Complete distributions by snapshot path. */
  byPath: Map<string, DistInfo>;
  builtAt: number;
}

export class MirrorView {
  private state?: MirrorState;
  private building?: Promise<MirrorState>;
  /** Extracted metadata, by the SHA-256 of the distribution. */
  private metadata = new Map<string, { bytes: Uint8Array; sha256: string } | null>();

  constructor(
    readonly work: WorkDir,
    private readonly maxAgeMs = 3000,
  ) {}

  /** Sizes and mtimes of the files a sync rewrites when it changes what is here. */
  private stamp(): string {
    return ['manifest.json', 'tree.json']
      .map((f) => {
        try {
          const st = statSync(join(this.work.meta, f));
          return `${st.size}:${st.mtimeMs}`;
        } catch {
          return '-';
        }
      })
      .join('/');
  }

  private builtStamp = '';

  async current(): Promise<MirrorState> {
    // Kept for maxAgeMs, but not past a sync that changed the manifest or what is placed: a page
    // the catalog just told the user to sync must be there once the sync is done.
    const stamp = this.stamp();
    if (this.state && Date.now() - this.state.builtAt < this.maxAgeMs && stamp === this.builtStamp) return this.state;
    this.builtStamp = stamp;
    this.building ??= this.build().finally(() => (this.building = undefined));
    this.state = await this.building;
    return this.state;
  }

  private async build(): Promise<MirrorState> {
    const latest = cachedLatest(this.work);
    const projects = new Map<string, DistInfo[]>();
    const allDists = new Map<string, DistInfo[]>();
    const byPath = new Map<string, DistInfo>();
    if (!latest) return { projects, allDists, byPath, builtAt: Date.now() };
    const { snapshot } = latest;
    const completeness = await assessCompleteness(this.work, snapshot);
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
    return { entry: latest.entry, serial: latest.manifest.body.serial, snapshot, completeness, projects, allDists, byPath, builtAt: Date.now() };
  }

  /** A file of the tree, read only where serve may read (src/serve/contained.ts); throws otherwise. */
  private inMirror(rel: string): string {
    const real = realPathInMirror(this.work.root, rel);
    if (!real) throw new Error(`${rel} is not inside the mirror`);
    return real;
  }

  private yankOf(path: string, c: Completeness): false | true | string {
    const marker = `${path}.yanked`;
    if (!c.complete.has(marker)) return false;
    try {
      const reason = readFileSync(this.inMirror(marker), 'utf8').trim();
      return reason || true;
    } catch {
      return false;
    }
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
    if (state.completeness?.complete.has(sidecar)) {
      try {
        bytes = readFileSync(this.inMirror(sidecar));
      } catch {
        bytes = undefined;
      }
    }
    const cacheName = `pypi-metadata/${d.sha256}.metadata`;
    bytes ??= this.work.readOptional(cacheName);
    if (!bytes) {
      try {
        bytes = readDistMetadata(this.inMirror(d.file.path), d.fileName);
        this.work.writeMeta(cacheName, bytes);
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
