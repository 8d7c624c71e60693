import { PaqueteError } from '../errors.js';

/**
 * The refs file of a published git repository (`NAME/refs`): which bundles make the repository,
 * in the order they are applied, and exactly which refs it has. Text, so a person can read it in
 * the working tree; one encoder and one decoder, side by side. Layout in docs/FORMATS.md §Git
 * repositories.
 */
export const GIT_REFS_MAGIC = 'paquete-git 1';

export type ObjectFormat = 'sha1' | 'sha256';

export interface GitBundleEntry {
  /** File name under NAME/bundles/. */
  file: string;
  size: number;
  /** Lowercase hex SHA-256 of the bundle file. */
  sha256: string;
}

export interface GitRef {
  /** Full ref name: refs/heads/… or refs/tags/…. */
  name: string;
  /** Object id (hex) the ref points at: a commit, or a tag object for annotated tags. */
  oid: string;
}

export interface GitRefs {
  objectFormat: ObjectFormat;
  /** The branch HEAD names (refs/heads/…), when the repository has one. */
  head?: string;
  /**
   * Size of a full bundle of the repository when the publisher last measured one. The publisher
   * compares the chain's size with it to decide when to start a fresh chain.
   */
  fullSize: number;
  /** Applied in this order: the first is a full bundle, each next one needs the ones before. */
  bundles: GitBundleEntry[];
  /** Sorted by name (byte order). */
  refs: GitRef[];
}

const REF_RE = /^refs\/(heads|tags)\/[^\s\\~^:?*[\x00-\x1f\x7f]+$/;
const FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\.bundle$/;
const oidLength = (f: ObjectFormat) => (f === 'sha1' ? 40 : 64);

/** Only branches and tags are mirrored; names git itself would refuse are refused here too. */
export function isMirroredRefName(name: string): boolean {
  if (!REF_RE.test(name)) return false;
  return !name.includes('..') && !name.includes('//') && !name.includes('@{') && !name.endsWith('/') && !name.endsWith('.') && !/\.lock(\/|$)/.test(name) && !/\/\./.test(name);
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Encodes deterministically: the same repository state gives the same bytes. Pure. */
export function encodeGitRefs(r: GitRefs): string {
  checkGitRefs(r, 'refs to encode');
  const lines = [GIT_REFS_MAGIC, `object-format ${r.objectFormat}`];
  if (r.head) lines.push(`head ${r.head}`);
  lines.push(`full-size ${r.fullSize}`);
  for (const b of r.bundles) lines.push(`bundle ${b.file} ${b.size} ${b.sha256}`);
  for (const ref of [...r.refs].sort((a, b) => byteOrder(a.name, b.name))) lines.push(`${ref.oid} ${ref.name}`);
  return lines.join('\n') + '\n';
}

/** Decodes and checks a refs file; `what` names it in errors. Pure. */
export function decodeGitRefs(text: string, what: string): GitRefs {
  const fail = (msg: string): never => {
    throw new PaqueteError('BAD_FORMAT', `${what}: ${msg}`);
  };
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  else fail('does not end with a newline (truncated?)');
  if (lines[0] !== GIT_REFS_MAGIC) {
    if (lines[0]?.startsWith('paquete-git ')) fail(`is format "${lines[0]}", which this paquete does not read; upgrade paquete`);
    fail('is not a paquete git refs file');
  }
  const r: GitRefs = { objectFormat: 'sha1', fullSize: 0, bundles: [], refs: [] };
  let sawFormat = false;
  let sawFull = false;
  for (const line of lines.slice(1)) {
    const words = line.split(' ');
    const [key] = words;
    if (key === 'object-format' && words.length === 2 && !sawFormat && r.bundles.length === 0) {
      if (words[1] !== 'sha1' && words[1] !== 'sha256') fail(`unknown object format ${words[1]}`);
      r.objectFormat = words[1] as ObjectFormat;
      sawFormat = true;
    } else if (key === 'head' && words.length === 2 && r.head === undefined) {
      r.head = words[1];
    } else if (key === 'full-size' && words.length === 2 && !sawFull) {
      r.fullSize = decimal(words[1], fail);
      sawFull = true;
    } else if (key === 'bundle' && words.length === 4) {
      r.bundles.push({ file: words[1], size: decimal(words[2], fail), sha256: words[3] });
    } else if (/^[0-9a-f]+$/.test(key) && words.length === 2) {
      r.refs.push({ oid: key, name: words[1] });
    } else {
      fail(`cannot read the line "${line.slice(0, 80)}"`);
    }
  }
  if (!sawFormat || !sawFull) fail('lacks its object-format or full-size line');
  checkGitRefs(r, what);
  return r;
}

function decimal(s: string, fail: (m: string) => never): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s) || !Number.isSafeInteger(Number(s))) fail(`"${s}" is not a size`);
  return Number(s);
}

function checkGitRefs(r: GitRefs, what: string): void {
  const fail = (msg: string): never => {
    throw new PaqueteError('BAD_FORMAT', `${what}: ${msg}`);
  };
  const n = oidLength(r.objectFormat);
  const seenRefs = new Set<string>();
  for (const ref of r.refs) {
    if (!isMirroredRefName(ref.name)) fail(`"${ref.name}" is not a branch or tag name`);
    if (ref.oid.length !== n || !/^[0-9a-f]+$/.test(ref.oid)) fail(`${ref.name} points at "${ref.oid}", not a ${r.objectFormat} id`);
    if (seenRefs.has(ref.name)) fail(`${ref.name} is listed twice`);
    seenRefs.add(ref.name);
  }
  if (r.head !== undefined && !(r.head.startsWith('refs/heads/') && isMirroredRefName(r.head))) fail(`HEAD names "${r.head}", not a branch`);
  if (r.refs.length > 0 && r.bundles.length === 0) fail('has refs but no bundle');
  const seenFiles = new Set<string>();
  for (const b of r.bundles) {
    if (!FILE_RE.test(b.file)) fail(`"${b.file}" cannot name a bundle file`);
    if (!/^[0-9a-f]{64}$/.test(b.sha256)) fail(`bundle ${b.file} has no SHA-256`);
    if (seenFiles.has(b.file)) fail(`bundle ${b.file} is listed twice`);
    seenFiles.add(b.file);
  }
  if (!Number.isSafeInteger(r.fullSize) || r.fullSize < 0) fail('full-size is not a size');
}
