import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Snapshot } from '../snapshot/snapshot.js';
import { GIT_BUNDLE_CHUNK, GIT_BUNDLE_DIR, GIT_REFS_FILE, GitStage, stageGitSource } from './git.js';
import { SourceSpec } from './spec.js';

/**
 * Sources whose published files are not simply the files under their path (a git repository is
 * published as bundles) are first staged: their files are written to a directory the publisher
 * lists like any tree, under the source's name. Staging lives in the remote directory, as
 * `.tmp-stage-*` (the remote layout's mark of unfinished writes), so large bundles go to the
 * disk that receives the packs, and it is removed when the publish ends.
 */
export interface StagedSources {
  /** The directory to list for a source: a staged one, or the source's own path. */
  rootOf(spec: SourceSpec): string;
  /** Snapshot paths of the previous snapshot to publish again unchanged, without reading them. */
  keep: string[];
  /** A fixed cut size for a file that shares no bytes with any other (git bundles), else undefined. */
  fixedChunkSize(path: string): number | undefined;
  /** What each git source's staging did, by source name. */
  git: Map<string, GitStage>;
  cleanup(): void;
}

export interface StageContext {
  /** The remote directory being published to; staging goes in it. */
  remoteDir: string;
  /** The latest snapshot already published there. */
  previous?: Snapshot;
  /** Reads a file of the previous snapshot (the publisher reads it back from its packs). */
  readPrevious: (path: string) => Uint8Array | undefined;
}

export async function stageSources(sources: SourceSpec[], ctx: StageContext): Promise<StagedSources> {
  const { remoteDir, previous } = ctx;
  const roots = new Map<string, string>();
  const keep: string[] = [];
  const git = new Map<string, GitStage>();
  let stageDir: string | undefined;
  const cleanup = () => {
    if (stageDir) rmSync(stageDir, { recursive: true, force: true });
  };
  try {
    for (const spec of sources) {
      if (spec.kind !== 'git') continue;
      stageDir ??= join(remoteDir, `.tmp-stage-${randomBytes(6).toString('hex')}`);
      const dir = join(stageDir, spec.name);
      mkdirSync(dir, { recursive: true });
      const wasGit = previous?.sources.some((s) => s.name === spec.name && s.kind === 'git');
      const prefix = `${spec.name}/${GIT_BUNDLE_DIR}/`;
      const previousBundles = new Map<string, { size: number; sha256: string }>();
      for (const f of wasGit ? previous!.files : []) {
        if (f.path.startsWith(prefix) && !f.path.slice(prefix.length).includes('/')) {
          previousBundles.set(f.path.slice(prefix.length), { size: f.size, sha256: Buffer.from(f.sha256).toString('hex') });
        }
      }
      const stage = await stageGitSource({
        name: spec.name,
        repo: spec.path,
        dir,
        previousRefs: wasGit ? ctx.readPrevious(`${spec.name}/${GIT_REFS_FILE}`) : undefined,
        previousBundles,
      });
      git.set(spec.name, stage);
      roots.set(spec.name, dir);
      keep.push(...stage.keep.map((p) => `${spec.name}/${p}`));
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  const fixed = [...git.keys()].map((name) => `${name}/${GIT_BUNDLE_DIR}/`);
  return {
    rootOf: (spec) => roots.get(spec.name) ?? spec.path,
    keep,
    fixedChunkSize: (path) => (fixed.some((p) => path.startsWith(p)) ? GIT_BUNDLE_CHUNK : undefined),
    git,
    cleanup,
  };
}
