import { gunzipSync } from 'node:zlib';
import { PaqueteError } from '../errors.js';
import { readZipDirectory, readZipMember, wheelMetadata, withZipFile, ZipInput, zipFromBytes } from './wheel.js';

/**
 * PyPI distributions as files: what their names say (project, version, tags), the PEP 503 name
 * normalization, and their core metadata (a wheel's METADATA, an sdist's PKG-INFO). Pure but for
 * the file readers at the bottom.
 *
 * Conventions of a `pypi` source (docs/GUIDE.md): any folder of wheels and sdists, flat or one
 * folder per project (a PEP 503 tree). Beside a distribution FILE:
 *   FILE.metadata  its core metadata (PEP 658); the publisher writes it when absent
 *   FILE.yanked    marks FILE yanked (PEP 592); its text, trimmed, is the reason (may be empty)
 */

export interface DistFile {
  /** The project name as the file name spells it. */
  project: string;
  /** PEP 503 normalized project name. */
  normalized: string;
  version: string;
  kind: 'wheel' | 'sdist';
  /** Wheel tags, each expanded (py2.py3 → py2, py3): [python, abi, platform] sets. */
  tags?: { python: string[]; abi: string[]; platform: string[] };
}

/** PEP 503: runs of `-`, `_`, `.` become one `-`, lower case. */
export const normalizeName = (name: string): string => name.replace(/[-_.]+/g, '-').toLowerCase();

/**
 * A project name as PEP 508 defines it: ASCII letters and digits, with `. _ -` inside. A file
 * whose name claims any other project is not a distribution here (it never reaches /simple/,
 * the catalog or a `pypi:` want), whatever a snapshot names it.
 */
export const isProjectName = (name: string): boolean => /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?$/.test(name);

const SDIST = /^(.+)-([0-9][^-]*?)\.(tar\.gz|zip|tar\.bz2|tar\.xz|tgz)$/i;

/** Parses a wheel or sdist file name; undefined for anything else (including .metadata files). */
export function parseDistFileName(fileName: string): DistFile | undefined {
  if (/\.whl$/i.test(fileName)) {
    const parts = fileName.slice(0, -4).split('-');
    if (parts.length !== 5 && parts.length !== 6) return undefined;
    const [project, version] = parts;
    const [python, abi, platform] = parts.slice(-3);
    if (!isProjectName(project) || !/^v?[0-9]/i.test(version)) return undefined;
    return {
      project,
      normalized: normalizeName(project),
      version,
      kind: 'wheel',
      tags: { python: python.split('.'), abi: abi.split('.'), platform: platform.split('.') },
    };
  }
  const m = SDIST.exec(fileName);
  if (!m || !isProjectName(m[1])) return undefined;
  return { project: m[1], normalized: normalizeName(m[1]), version: m[2], kind: 'sdist' };
}

/** Core metadata fields we use (RFC 822 style headers; the body, the description, is ignored). */
export interface CoreMetadata {
  metadataVersion?: string;
  name?: string;
  version?: string;
  summary?: string;
  requiresPython?: string;
  requiresDist: string[];
  providesExtra: string[];
}

export function parseCoreMetadata(bytes: Uint8Array): CoreMetadata {
  const text = Buffer.from(bytes).toString('utf8');
  const headers: [string, string][] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break;
    if (/^[ \t]/.test(line) && headers.length) {
      headers[headers.length - 1][1] += '\n' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon > 0) headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  const one = (k: string) => headers.find(([h]) => h === k)?.[1];
  const all = (k: string) => headers.filter(([h]) => h === k).map(([, v]) => v);
  return {
    metadataVersion: one('metadata-version'),
    name: one('name'),
    version: one('version'),
    summary: one('summary'),
    requiresPython: one('requires-python') || undefined,
    requiresDist: all('requires-dist'),
    providesExtra: all('provides-extra'),
  };
}

/** The core metadata of a distribution file on disk (wheel METADATA or sdist PKG-INFO). */
export function readDistMetadata(path: string | number, fileName: string): Uint8Array {
  const dist = parseDistFileName(fileName);
  if (!dist) throw new PaqueteError('BAD_FORMAT', `${fileName} is not a wheel or sdist name`);
  if (dist.kind === 'wheel') return withZipFile(path, (zip) => wheelMetadata(zip, `${dist.project}-${dist.version}`));
  if (/\.zip$/i.test(fileName)) return withZipFile(path, sdistZipMetadata);
  return withZipFile(path, (file) => sdistTarMetadata(fileName, file.read(0, file.size)));
}

/** The same for a distribution held in memory. */
export function distMetadataFromBytes(bytes: Uint8Array, fileName: string): Uint8Array {
  const dist = parseDistFileName(fileName);
  if (!dist) throw new PaqueteError('BAD_FORMAT', `${fileName} is not a wheel or sdist name`);
  if (dist.kind === 'wheel') return wheelMetadata(zipFromBytes(bytes), `${dist.project}-${dist.version}`);
  if (/\.zip$/i.test(fileName)) return sdistZipMetadata(zipFromBytes(bytes));
  return sdistTarMetadata(fileName, bytes);
}

function sdistZipMetadata(zip: ZipInput): Uint8Array {
  const e = readZipDirectory(zip).entries.find((x) => /^[^/]+\/PKG-INFO$/.test(x.name));
  if (!e) throw new PaqueteError('BAD_FORMAT', 'the sdist has no PKG-INFO');
  return readZipMember(zip, e);
}

/** PKG-INFO at the top folder of a .tar.gz sdist (ustar, pax and GNU long names understood). */
function sdistTarMetadata(fileName: string, bytes: Uint8Array): Uint8Array {
  if (!/\.(tar\.gz|tgz)$/i.test(fileName)) throw new PaqueteError('BAD_FORMAT', `${fileName}: only .tar.gz and .zip sdists are read`);
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes, { maxOutputLength: 1 << 30 });
  } catch (e) {
    throw new PaqueteError('BAD_FORMAT', `${fileName} does not decompress: ${(e as Error).message}`);
  }
  let longName: string | undefined;
  for (let p = 0; p + 512 <= tar.length; ) {
    const h = tar.subarray(p, p + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, n: number) => h.toString('utf8', a, a + n).replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(h[156] || 48);
    const body = tar.subarray(p + 512, p + 512 + size);
    const name = longName ?? (field(345, 155) ? `${field(345, 155)}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '');
    else if (type === 'x') {
      const m = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (m) longName = m[1];
    } else if ((type === '0' || type === '\0') && /^(\.\/)?[^/]+\/PKG-INFO$/.test(name)) {
      return Buffer.from(body);
    }
    p += 512 + Math.ceil(size / 512) * 512;
  }
  throw new PaqueteError('BAD_FORMAT', `${fileName} has no PKG-INFO`);
}

/**
 * For the publisher: a `FILE.metadata` (the core metadata, PEP 658) for every wheel and sdist of
 * a pypi source that has none beside it, so that clients can read dependencies before fetching
 * the distribution, and the index can offer PEP 658 metadata. A distribution whose metadata
 * cannot be read simply gets none.
 */
export function metadataSidecars<F extends { rel: string; abs: string; mode: number; size: number }>(files: F[]): (F & { data?: Uint8Array })[] {
  const have = new Set(files.map((f) => f.rel));
  const out: (F & { data?: Uint8Array })[] = [];
  for (const f of files) {
    const name = f.rel.slice(f.rel.lastIndexOf('/') + 1);
    if (!parseDistFileName(name) || have.has(`${f.rel}.metadata`)) continue;
    let data: Uint8Array;
    try {
      data = readDistMetadata(f.abs, name);
    } catch {
      continue;
    }
    out.push({ ...f, rel: `${f.rel}.metadata`, abs: '', mode: 0o644, size: data.length, data });
  }
  return out;
}
