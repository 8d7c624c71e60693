import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPaqueteError, PaqueteError } from '../errors.js';
import { Remote } from '../remote/remote.js';
import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import { SOURCE_KINDS } from '../sources/spec.js';
import { markerEnvFor, PythonTarget, resolvePypi } from '../sources/pypi-wants.js';
import { distMetadataFromBytes } from '../sources/pypi.js';
import { WorkDir } from '../workdir/workdir.js';
import { Restorer } from './restorer.js';
import { fetchRanges } from './fetcher.js';
import { planSession } from './planner.js';

/**
 * Turns `--want` entries that name sources by kind into path globs for the planner:
 *   `docs:NAME`, `tree:NAME`, `git:NAME`  the whole source NAME (when it is of that kind)
 *   `pypi:REQUIREMENT`                     the project's files for the target Python and those of
 *                                          its dependency closure (src/sources/pypi-wants.ts)
 * Anything else is a glob and passes unchanged. Resolving pypi wants reads the FILE.metadata
 * files the publisher put beside each distribution: from the tree, from the store, or fetched
 * here first (a few kB each, within the budget) and placed like any other file.
 */
export interface PypiTargetOptions {
  /** Python version to resolve for ("3.12"); default: this machine's python3. */
  python?: string;
  /** Platform tag ("manylinux_2_28_x86_64", "win_amd64", "macosx_11_0_arm64"); default: this machine's. */
  platform?: string;
}

export interface ExpandContext {
  work: WorkDir;
  remote: Remote;
  snapshot: Snapshot;
  /** Wire bytes the session has left (the remote reserves each request from the session's budget). */
  budget: number;
  signal?: AbortSignal;
  pypi?: PypiTargetOptions;
  onNote?: (message: string) => void;
}

export async function expandWants(wants: string[], ctx: ExpandContext): Promise<string[]> {
  const out: string[] = [];
  const requirements: string[] = [];
  let pypiAt = -1;
  for (const w of wants) {
    const m = /^([a-z]+):(.+)$/s.exec(w);
    if (!m || !(SOURCE_KINDS as readonly string[]).includes(m[1])) {
      out.push(w);
      continue;
    }
    const [, kind, rest] = m;
    if (kind === 'pypi') {
      if (pypiAt < 0) pypiAt = out.length;
      requirements.push(rest.trim());
      continue;
    }
    const src = ctx.snapshot.sources.find((s) => s.name === rest);
    if (!src || src.kind !== kind) {
      const other = ctx.snapshot.sources.find((s) => s.name === rest);
      throw new PaqueteError('USAGE', `the mirror has no ${kind} source named ${rest}${other ? ` (it has ${other.kind}:${rest})` : ''}`, 'paquete status lists the sources');
    }
    out.push(rest);
  }
  if (requirements.length === 0) return out;
  const target = pythonTarget(ctx.pypi);
  const res = await resolvePypi(requirements, ctx.snapshot, target, (paths) => readMetadata(paths, ctx));
  for (const p of res.problems) ctx.onNote?.(p);
  if (res.paths.length === 0) ctx.onNote?.(`nothing in the mirror fits ${requirements.map((r) => `pypi:${r}`).join(' ')}`);
  out.splice(pypiAt, 0, ...res.paths);
  // Wants that all came to nothing must not fall back to "everything": NUL is in no path.
  return out.length ? out : [NOTHING];
}

/** The metadata bytes of each path: a FILE.metadata as is, a wheel's METADATA extracted. */
async function readMetadata(paths: string[], ctx: ExpandContext): Promise<Map<string, Uint8Array>> {
  const { work, snapshot } = ctx;
  const byPath = new Map(snapshot.files.map((f) => [f.path, f]));
  const files = paths.map((p) => byPath.get(p)).filter((f): f is FileEntry => !!f);
  const state = work.treeState();
  const restorer = new Restorer(work, snapshot, state);
  const missing = files.filter((f) => restorer.look(f).is === 'free');
  if (missing.length) {
    try {
      await bring(missing, restorer, ctx);
    } catch (e) {
      // Out of budget (or link) while fetching metadata: resolve with what came; the main plan
      // then reports the budget.
      if (!isPaqueteError(e)) throw e;
      ctx.onNote?.(`could not fetch all package metadata: ${e.message}`);
    } finally {
      work.saveTreeState(state);
    }
  }
  const out = new Map<string, Uint8Array>();
  for (const f of files) {
    if (!restorer.isInPlace(f)) continue;
    const bytes = readFileSync(join(work.root, f.path));
    try {
      out.set(f.path, f.path.endsWith('.metadata') ? bytes : distMetadataFromBytes(bytes, f.path.slice(f.path.lastIndexOf('/') + 1)));
    } catch (e) {
      ctx.onNote?.(`${f.path}: ${(e as Error).message}`);
    }
  }
  return out;
}

/** Fetches and places `files` (small ones: metadata), spending from the session's budget. */
async function bring(files: FileEntry[], restorer: Restorer, ctx: ExpandContext): Promise<void> {
  const { work, remote, snapshot } = ctx;
  const present = snapshot.chunks.idsOf(await work.store.heldIn(snapshot.chunks.idWords));
  const rangesHonoured = remote.rangeSupport !== 'no';
  const packPath = `packs/${snapshot.packs[0] ?? ''}.pack`;
  const plan = planSession({
    snapshot,
    present,
    complete: new Set(),
    wants: files.map((f) => f.path),
    budget: ctx.budget,
    requestCost: (n) => remote.requestCost(packPath, n),
    rangesHonoured,
  });
  await fetchRanges(remote, snapshot, plan.ranges, work.store, { signal: ctx.signal });
  for (const f of files) {
    const have = await work.store.hasMany(f.chunks.map((i) => snapshot.chunks.id(i)));
    if (f.chunks.every((i) => have.has(snapshot.chunks.id(i)))) await restorer.place(f);
  }
}

/** A want no path matches (snapshot paths never contain NUL). */
const NOTHING = '\0';

let detected: PythonTarget | null | undefined;

/**
 * The Python to resolve for: the options given, else this machine's python3 (its exact wheel
 * tags and marker environment, asked from pip's own packaging), else any Python 3.
 */
export function pythonTarget(opts: PypiTargetOptions = {}): PythonTarget {
  if (opts.python || opts.platform) {
    const local = opts.platform ? undefined : detectPython();
    const version = opts.python ?? local?.version;
    const env = { ...(local?.env ?? {}), ...markerEnvFor(version, opts.platform) };
    return { version, platform: opts.platform ?? local?.platform, env };
  }
  return detectPython() ?? { env: markerEnvFor(undefined, undefined) };
}

function detectPython(): PythonTarget | undefined {
  if (detected !== undefined) return detected ?? undefined;
  const script = [
    'import json, sys, platform',
    'try:',
    '    from packaging import tags, markers',
    'except ImportError:',
    '    from pip._vendor.packaging import tags, markers',
    'print(json.dumps({"tags": [str(t) for t in tags.sys_tags()], "env": markers.default_environment(), "platform": next(iter(tags.platform_tags()), None)}))',
  ].join('\n');
  try {
    const r = spawnSync(process.env.PAQUETE_PYTHON ?? 'python3', ['-c', script], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) throw new Error(r.stderr);
    const j = JSON.parse(r.stdout) as { tags: string[]; env: Record<string, string>; platform?: string };
    detected = { version: j.env.python_full_version, tags: j.tags, platform: j.platform ?? undefined, env: j.env };
  } catch {
    detected = null;
  }
  return detected ?? undefined;
}
