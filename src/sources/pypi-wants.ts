import { FileEntry, Snapshot } from '../snapshot/snapshot.js';
import {
  allowsPrereleases, compareVersions, evaluateMarker, isPrerelease, MarkerEnv, parseRequirement, parseSpecifiers, parseVersion,
  Requirement, satisfies, SpecifierSet, Version,
} from './pep440.js';
import { DistFile, normalizeName, parseCoreMetadata, parseDistFileName, CoreMetadata } from './pypi.js';

/**
 * `--want pypi:REQUIREMENT`: the files a project needs, with its dependency closure, for one
 * Python (version, platform). Pure but for `readMetadata`, which the sync session supplies: it
 * brings the small `FILE.metadata` files the publisher put beside each distribution (cheap: a
 * few kB each) and hands back their bytes, one round per level of the dependency tree.
 *
 * The resolution is greedy, as a mirror can afford: for each name, the newest version that
 * satisfies every constraint seen so far, has a file for the target and whose Requires-Python
 * admits it; no backtracking. When a later constraint rules out the version already chosen, a
 * newer pick is made and both stay wanted (a superset costs bytes, never correctness: pip at
 * home still picks from what is there). Pre-releases only when asked for or when nothing else
 * fits. Limits: no backtracking, direct URL requirements are reported and skipped.
 */

export interface PythonTarget {
  /** Full Python version, e.g. "3.11.7"; undefined admits any Requires-Python. */
  version?: string;
  /** Supported wheel tags ("cp311-cp311-manylinux_2_28_x86_64", …), most preferred first. */
  tags?: string[];
  /** A platform tag (manylinux_2_28_x86_64, win_amd64, macosx_11_0_arm64, any) when tags are not known. */
  platform?: string;
  /** PEP 508 marker environment; missing variables count as unknown (the dependency is kept). */
  env: MarkerEnv;
}

export interface PypiFile {
  entry: FileEntry;
  dist: DistFile;
  /** Path of the FILE.metadata beside it in the snapshot, when there is one. */
  metadataPath?: string;
  yanked: boolean;
}

export interface PypiRelease {
  version: Version;
  files: PypiFile[];
}

/** Every distribution of the snapshot's pypi sources: normalized name → releases, newest first. */
export function pypiReleases(snapshot: Snapshot): Map<string, PypiRelease[]> {
  const pypiSources = new Set(snapshot.sources.filter((s) => s.kind === 'pypi').map((s) => s.name));
  const paths = new Set(snapshot.files.map((f) => f.path));
  const byName = new Map<string, Map<string, PypiRelease>>();
  for (const entry of snapshot.files) {
    if (!pypiSources.has(entry.path.split('/')[0])) continue;
    const dist = parseDistFileName(entry.path.slice(entry.path.lastIndexOf('/') + 1));
    const version = dist && parseVersion(dist.version);
    if (!dist || !version) continue;
    const releases = byName.get(dist.normalized) ?? new Map<string, PypiRelease>();
    byName.set(dist.normalized, releases);
    const key = versionKey(version);
    const rel = releases.get(key) ?? { version, files: [] };
    releases.set(key, rel);
    rel.files.push({
      entry,
      dist,
      metadataPath: paths.has(`${entry.path}.metadata`) ? `${entry.path}.metadata` : undefined,
      yanked: paths.has(`${entry.path}.yanked`),
    });
  }
  const out = new Map<string, PypiRelease[]>();
  for (const [name, rels] of byName) out.set(name, [...rels.values()].sort((a, b) => compareVersions(b.version, a.version)));
  return out;
}

/** A key equal for versions PEP 440 calls equal (1.0 and 1.0.0). */
const versionKey = (v: Version) => {
  const r = [...v.release];
  while (r.length > 1 && r[r.length - 1] === 0) r.pop();
  return JSON.stringify([v.epoch, r, v.pre ?? null, v.post ?? null, v.dev ?? null, v.local ?? null]);
};

// ------------------------------------------------------------------------------------------------
// Wheel tags against a target

const MANYLINUX_ALIASES: Record<string, [number, number]> = { manylinux1: [2, 5], manylinux2010: [2, 12], manylinux2014: [2, 17] };

function parsePlatform(tag: string): { os: string; major: number; minor: number; arch: string } | undefined {
  let m = /^manylinux_(\d+)_(\d+)_(.+)$/.exec(tag);
  if (m) return { os: 'manylinux', major: +m[1], minor: +m[2], arch: m[3] };
  m = /^(manylinux1|manylinux2010|manylinux2014)_(.+)$/.exec(tag);
  if (m) return { os: 'manylinux', major: MANYLINUX_ALIASES[m[1]][0], minor: MANYLINUX_ALIASES[m[1]][1], arch: m[2] };
  m = /^musllinux_(\d+)_(\d+)_(.+)$/.exec(tag);
  if (m) return { os: 'musllinux', major: +m[1], minor: +m[2], arch: m[3] };
  m = /^macosx_(\d+)_(\d+)_(.+)$/.exec(tag);
  if (m) return { os: 'macosx', major: +m[1], minor: +m[2], arch: m[3] };
  m = /^linux_(.+)$/.exec(tag);
  if (m) return { os: 'linux', major: 0, minor: 0, arch: m[1] };
  return undefined;
}

/** Whether a wheel built for `tag` runs on a machine of platform `target`. */
export function platformCompatible(tag: string, target: string): boolean {
  if (tag === 'any' || tag === target) return true;
  const t = parsePlatform(tag);
  const h = parsePlatform(target);
  if (!t || !h) return false;
  const archOk = t.arch === h.arch || (t.os === 'macosx' && t.arch === 'universal2' && ['arm64', 'x86_64'].includes(h.arch));
  if (!archOk) return false;
  if (h.os === 'manylinux' || h.os === 'linux') {
    if (t.os === 'linux') return true;
    return t.os === 'manylinux' && (h.os === 'linux' || t.major < h.major || (t.major === h.major && t.minor <= h.minor));
  }
  if (t.os !== h.os) return false;
  return t.major < h.major || (t.major === h.major && t.minor <= h.minor);
}

/** Preference of a file for the target: lower is better; undefined when it does not fit. */
export function fileRank(dist: DistFile, target: PythonTarget): number | undefined {
  if (dist.kind === 'sdist') return 1e6; // builds anywhere, but only when no wheel fits
  const t = dist.tags!;
  if (target.tags) {
    let best: number | undefined;
    const rank = tagRanks(target.tags);
    for (const py of t.python) for (const abi of t.abi) for (const plat of t.platform) {
      const r = rank.get(`${py}-${abi}-${plat}`);
      if (r !== undefined && (best === undefined || r < best)) best = r;
    }
    return best;
  }
  const [maj, min] = (target.version ?? '').split('.').map(Number);
  const pyOk = t.python.some((py) => {
    if (!target.version) return /^(py|cp)3/.test(py) || py === 'py2.py3';
    if (py === `py${maj}` || py === `py${maj}${min}` || py === `cp${maj}${min}`) return true;
    const cp = /^cp(\d)(\d+)$/.exec(py);
    return !!cp && t.abi.includes('abi3') && +cp[1] === maj && +cp[2] <= min;
  });
  if (!pyOk) return undefined;
  if (target.platform && !t.platform.some((p) => platformCompatible(p, target.platform!))) return undefined;
  return t.platform.includes('any') ? 10 : 0;
}

const rankCache = new WeakMap<string[], Map<string, number>>();
function tagRanks(tags: string[]): Map<string, number> {
  let m = rankCache.get(tags);
  if (!m) {
    m = new Map(tags.map((t, i) => [t, i]));
    rankCache.set(tags, m);
  }
  return m;
}

/** The marker environment implied by a platform tag and a Python version (when not detected). */
export function markerEnvFor(python: string | undefined, platform: string | undefined): MarkerEnv {
  const env: MarkerEnv = { implementation_name: 'cpython', platform_python_implementation: 'CPython' };
  if (python) {
    const parts = python.split('.');
    env.python_version = parts.slice(0, 2).join('.');
    env.python_full_version = parts.length >= 3 ? python : `${env.python_version}.0`;
    env.implementation_version = env.python_full_version;
  }
  const p = platform && parsePlatform(platform);
  if (platform?.startsWith('win')) Object.assign(env, { sys_platform: 'win32', platform_system: 'Windows', os_name: 'nt', platform_machine: platform === 'win32' ? 'x86' : platform === 'win_arm64' ? 'ARM64' : 'AMD64' });
  else if (p && p.os === 'macosx') Object.assign(env, { sys_platform: 'darwin', platform_system: 'Darwin', os_name: 'posix', platform_machine: p.arch === 'universal2' ? undefined : p.arch });
  else if (p) Object.assign(env, { sys_platform: 'linux', platform_system: 'Linux', os_name: 'posix', platform_machine: p.arch });
  return env;
}

// ------------------------------------------------------------------------------------------------
// Resolution

export interface PypiResolution {
  /** Snapshot paths to want, in priority order (the requested projects first). */
  paths: string[];
  chosen: { name: string; version: string; files: string[] }[];
  /** What could not be satisfied, one line each, for the user. */
  problems: string[];
}

/** Bytes of the metadata at each requested path (a FILE.metadata, or a wheel when none), when they could be had. */
export type ReadMetadata = (paths: string[]) => Promise<Map<string, Uint8Array>>;

export async function resolvePypi(requirements: string[], snapshot: Snapshot, target: PythonTarget, readMetadata: ReadMetadata): Promise<PypiResolution> {
  const releases = pypiReleases(snapshot);
  const constraints = new Map<string, SpecifierSet[]>();
  const extrasOf = new Map<string, Set<string>>();
  const chosen = new Map<string, { release: PypiRelease; files: PypiFile[]; meta?: CoreMetadata; extrasDone: Set<string> }>();
  const order: string[] = [];
  const rejected = new Map<string, Set<PypiRelease>>();
  const problems: string[] = [];
  let pending: Requirement[] = [];
  for (const text of requirements) {
    try {
      pending.push(parseRequirement(text));
    } catch (e) {
      problems.push((e as Error).message);
    }
  }

  const depsOf = (meta: CoreMetadata | undefined, extras: Iterable<string>): Requirement[] => {
    const out: Requirement[] = [];
    for (const line of meta?.requiresDist ?? []) {
      let r: Requirement;
      try {
        r = parseRequirement(line);
      } catch {
        problems.push(`cannot read the requirement "${line}"`);
        continue;
      }
      const envs = ['', ...extras].map((extra) => ({ ...target.env, extra }));
      // Judged here, with the parent's extras; the marker has done its job once the edge is kept.
      if (!r.marker || envs.some((env) => evaluateMarker(r.marker!, env))) out.push({ ...r, marker: undefined });
    }
    return out;
  };

  const pick = (name: string): { release: PypiRelease; files: PypiFile[] } | undefined => {
    const sets = constraints.get(name) ?? [];
    const pre = sets.some(allowsPrereleases);
    const fitting = (releases.get(name) ?? []).filter((r) => !rejected.get(name)?.has(r) && sets.every((s) => satisfies(r.version, s)));
    const withFiles = fitting
      .map((release) => ({ release, files: filesFor(release, target) }))
      .filter((c) => c.files.length > 0);
    const notYanked = withFiles.filter((c) => c.files.some((f) => !f.yanked));
    const pool = notYanked.length ? notYanked : withFiles;
    return pool.find((c) => pre || !isPrerelease(c.release.version)) ?? pool[0];
  };

  for (let round = 0; pending.length && round < 1000; round++) {
    const batch = pending;
    pending = [];
    const picks = new Map<string, { release: PypiRelease; files: PypiFile[] }>();
    for (const req of batch) {
      const name = normalizeName(req.name);
      if (req.marker && !evaluateMarker(req.marker, { ...target.env, extra: '' })) continue;
      if (req.url) {
        problems.push(`${req.name} is required by URL (${req.url}); an index cannot provide it`);
        continue;
      }
      if (!releases.has(name)) {
        if (!problems.some((p) => p.startsWith(`${name}:`))) problems.push(`${name}: not in the mirror`);
        continue;
      }
      if (req.specifiers.clauses.length) constraints.set(name, [...(constraints.get(name) ?? []), req.specifiers]);
      const extras = extrasOf.get(name) ?? new Set<string>();
      extrasOf.set(name, extras);
      for (const e of req.extras) extras.add(e);
      const cur = chosen.get(name);
      if (cur && (constraints.get(name) ?? []).every((s) => satisfies(cur.release.version, s))) {
        const fresh = [...extras].filter((e) => !cur.extrasDone.has(e));
        if (fresh.length) {
          fresh.forEach((e) => cur.extrasDone.add(e));
          pending.push(...depsOf(cur.meta, fresh));
        }
        continue;
      }
      const p = pick(name);
      if (!p) {
        const have = (releases.get(name) ?? []).map((r) => r.version.text).join(', ');
        problems.push(`${name}: no version fits ${(constraints.get(name) ?? []).map((s) => s.clauses.map((c) => c.op + c.version).join(',')).join(' and ') || 'the target'} (the mirror has ${have})`);
        continue;
      }
      picks.set(name, p);
    }
    if (picks.size === 0) continue;
    const sourceOf = (p: { files: PypiFile[] }) => {
      const best = p.files[0];
      return best.metadataPath ?? (best.dist.kind === 'wheel' ? best.entry.path : undefined);
    };
    const wanted = [...picks.values()].map(sourceOf).filter((x): x is string => !!x);
    const got = wanted.length ? await readMetadata([...new Set(wanted)]) : new Map<string, Uint8Array>();
    for (const [name, p] of picks) {
      const src = sourceOf(p);
      const bytes = src ? got.get(src) : undefined;
      const meta = bytes ? parseCoreMetadata(bytes) : undefined;
      if (meta?.requiresPython && target.version) {
        const v = parseVersion(target.version);
        let ok = true;
        try {
          ok = !v || satisfies(v, parseSpecifiers(meta.requiresPython));
        } catch {
          /* an unreadable Requires-Python does not rule the version out */
        }
        if (!ok) {
          rejected.set(name, new Set([...(rejected.get(name) ?? []), p.release]));
          pending.push({ name, extras: [], specifiers: { clauses: [] } });
          continue;
        }
      }
      if (!meta) problems.push(`${name} ${p.release.version.text}: its dependencies are unknown (no metadata could be read)`);
      const extras = extrasOf.get(name) ?? new Set<string>();
      chosen.set(name, { ...p, meta, extrasDone: new Set(extras) });
      order.push(name);
      pending.push(...depsOf(meta, extras));
    }
  }

  const paths: string[] = [];
  const seen = new Set<string>();
  const all = new Set(snapshot.files.map((f) => f.path));
  const add = (p: string) => {
    if (all.has(p) && !seen.has(p)) {
      seen.add(p);
      paths.push(p);
    }
  };
  const result: PypiResolution['chosen'] = [];
  for (const name of order) {
    const c = chosen.get(name)!;
    for (const f of c.files) {
      add(f.entry.path);
      add(`${f.entry.path}.metadata`);
      add(`${f.entry.path}.yanked`);
    }
    result.push({ name, version: c.release.version.text, files: c.files.map((f) => f.entry.path) });
  }
  return { paths, chosen: result, problems };
}

/** The files of a release to bring for the target: every wheel that fits, else the sdists. */
export function filesFor(release: PypiRelease, target: PythonTarget): PypiFile[] {
  const ranked = release.files
    .map((f) => ({ f, rank: fileRank(f.dist, target) }))
    .filter((x): x is { f: PypiFile; rank: number } => x.rank !== undefined)
    .sort((a, b) => a.rank - b.rank);
  const wheels = ranked.filter((x) => x.f.dist.kind === 'wheel');
  return (wheels.length ? wheels : ranked).map((x) => x.f);
}
