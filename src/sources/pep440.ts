/**
 * PEP 440 versions and specifiers, and PEP 508 requirements and environment markers: as much
 * as resolving a dependency closure needs. Pure.
 */

export interface Version {
  epoch: number;
  release: number[];
  pre?: [string, number];
  post?: number;
  dev?: number;
  local?: (string | number)[];
  text: string;
}

const VERSION_RE =
  /^\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?(?:[-_.]?(dev)[-_.]?(\d+)?)?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$/i;

export function parseVersion(text: string): Version | undefined {
  const m = VERSION_RE.exec(text);
  if (!m) return undefined;
  const preName = m[3]?.toLowerCase();
  const pre: [string, number] | undefined = preName
    ? [preName === 'alpha' ? 'a' : preName === 'beta' ? 'b' : ['c', 'pre', 'preview'].includes(preName) ? 'rc' : preName, Number(m[4] ?? 0)]
    : undefined;
  const post = m[5] !== undefined ? Number(m[5]) : m[6] ? Number(m[7] ?? 0) : undefined;
  return {
    epoch: Number(m[1] ?? 0),
    release: m[2].split('.').map(Number),
    pre,
    post,
    dev: m[8] ? Number(m[9] ?? 0) : undefined,
    local: m[10]?.toLowerCase().split(/[-_.]/).map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
    text,
  };
}

const cmpNum = (a: number, b: number) => (a < b ? -1 : a > b ? 1 : 0);

function cmpRelease(a: number[], b: number[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = cmpNum(a[i] ?? 0, b[i] ?? 0);
    if (c) return c;
  }
  return 0;
}

/** The PEP 440 order (as packaging's _cmpkey). */
export function compareVersions(a: Version, b: Version): number {
  let c = cmpNum(a.epoch, b.epoch) || cmpRelease(a.release, b.release);
  if (c) return c;
  // pre: a dev release with no pre/post sorts before any pre-release; no pre sorts after.
  const preKey = (v: Version): [number, string, number] =>
    v.pre ? [0, v.pre[0], v.pre[1]] : v.post === undefined && v.dev !== undefined ? [-1, '', 0] : [1, '', 0];
  const pa = preKey(a);
  const pb = preKey(b);
  c = cmpNum(pa[0], pb[0]) || (pa[1] < pb[1] ? -1 : pa[1] > pb[1] ? 1 : 0) || cmpNum(pa[2], pb[2]);
  if (c) return c;
  c = cmpNum(a.post ?? -1, b.post ?? -1);
  if (c) return c;
  c = cmpNum(a.dev ?? Infinity, b.dev ?? Infinity);
  if (c) return c;
  const la = a.local ?? [];
  const lb = b.local ?? [];
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    const x = la[i];
    const y = lb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') c = cmpNum(x, y);
    else if (typeof x === 'number') c = 1;
    else if (typeof y === 'number') c = -1;
    else c = x < y ? -1 : x > y ? 1 : 0;
    if (c) return c;
  }
  return 0;
}

export const isPrerelease = (v: Version): boolean => v.pre !== undefined || v.dev !== undefined;

/** One clause of a specifier set, e.g. `>=2.1` or `==1.*`. */
interface Clause {
  op: string;
  version: string;
}

export interface SpecifierSet {
  clauses: Clause[];
}

export function parseSpecifiers(text: string): SpecifierSet {
  const clauses: Clause[] = [];
  for (const part of text.split(',')) {
    const t = part.trim();
    if (!t) continue;
    const m = /^(~=|===|==|!=|<=|>=|<|>)\s*(.+)$/.exec(t);
    if (!m) throw new Error(`bad version specifier "${t}"`);
    clauses.push({ op: m[1], version: m[2].trim() });
  }
  return { clauses };
}

/** Whether the set mentions a pre-release (then pre-releases are acceptable, as pip does). */
export const allowsPrereleases = (s: SpecifierSet): boolean =>
  s.clauses.some((c) => {
    const v = parseVersion(c.version.replace(/\.\*$/, ''));
    return !!v && isPrerelease(v);
  });

const withoutLocal = (v: Version): Version => ({ ...v, local: undefined });

function matchesClause(v: Version, c: Clause): boolean {
  if (c.op === '===') return v.text.trim().toLowerCase() === c.version.toLowerCase();
  const wildcard = c.version.endsWith('.*');
  const target = parseVersion(wildcard ? c.version.slice(0, -2) : c.version);
  if (!target) return false;
  if (wildcard && (c.op === '==' || c.op === '!=')) {
    // Prefix match on the release (and epoch), ignoring what follows.
    const prefix = target.release;
    const eq = v.epoch === target.epoch && prefix.every((n, i) => (v.release[i] ?? 0) === n);
    return c.op === '==' ? eq : !eq;
  }
  const cmp = compareVersions(target.local ? v : withoutLocal(v), target);
  switch (c.op) {
    case '==':
      return cmp === 0;
    case '!=':
      return cmp !== 0;
    case '<=':
      return compareVersions(withoutLocal(v), target) <= 0;
    case '>=':
      return compareVersions(withoutLocal(v), target) >= 0;
    case '<':
      // <V does not admit pre-releases of V itself unless V is one.
      if (cmp >= 0) return false;
      return !(isPrerelease(v) && !isPrerelease(target) && cmpRelease(v.release, target.release) === 0);
    case '>':
      if (cmp <= 0) return false;
      // >V does not admit post-releases of V unless V is one.
      return !(v.post !== undefined && target.post === undefined && cmpRelease(v.release, target.release) === 0 && v.epoch === target.epoch);
    case '~=': {
      if (target.release.length < 2) return false;
      if (compareVersions(withoutLocal(v), target) < 0) return false;
      const prefix = target.release.slice(0, -1);
      return v.epoch === target.epoch && prefix.every((n, i) => (v.release[i] ?? 0) === n);
    }
  }
  return false;
}

export function satisfies(v: Version, s: SpecifierSet): boolean {
  return s.clauses.every((c) => matchesClause(v, c));
}

// ------------------------------------------------------------------------------------------------
// PEP 508 requirements and markers

export interface Requirement {
  name: string;
  extras: string[];
  specifiers: SpecifierSet;
  /** Undefined when unconditional. */
  marker?: Marker;
  /** A direct reference (`name @ url`): cannot come from an index. */
  url?: string;
}

export function parseRequirement(text: string): Requirement {
  const semi = splitMarker(text);
  const head = semi.head.trim();
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*)$/s.exec(head);
  if (!m) throw new Error(`bad requirement "${text}"`);
  let rest = m[3].trim();
  let url: string | undefined;
  if (rest.startsWith('@')) {
    url = rest.slice(1).trim();
    rest = '';
  }
  if (rest.startsWith('(') && rest.endsWith(')')) rest = rest.slice(1, -1);
  return {
    name: m[1],
    extras: (m[2] ?? '').split(',').map((e) => e.trim()).filter(Boolean),
    specifiers: parseSpecifiers(rest),
    marker: semi.marker ? parseMarker(semi.marker) : undefined,
    url,
  };
}

/** Splits `head ; marker`, not counting a `;` inside a URL (`name @ url ; marker` has a space before it). */
function splitMarker(text: string): { head: string; marker?: string } {
  const at = text.includes('@') ? text.search(/\s;/) : text.indexOf(';');
  if (at < 0) return { head: text };
  const cut = text[at] === ';' ? at : at + 1 + text.slice(at + 1).indexOf(';');
  return { head: text.slice(0, cut), marker: text.slice(cut + 1).trim() };
}

export type Marker =
  | { and: Marker[] }
  | { or: Marker[] }
  | { left: MarkerValue; op: string; right: MarkerValue };
type MarkerValue = { variable: string } | { literal: string };

/** The marker environment (PEP 508 variable → value), plus `extra`. Missing keys are unknown. */
export type MarkerEnv = Record<string, string | undefined>;

export function parseMarker(text: string): Marker {
  const tokens = text.match(/\s*(\(|\)|'[^']*'|"[^"]*"|===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b|and\b|or\b|[A-Za-z_][A-Za-z0-9_.]*)/gy);
  const rebuilt = (tokens ?? []).join('');
  if (!tokens || rebuilt.trim().length !== text.trim().length) throw new Error(`bad marker "${text}"`);
  const ts = tokens.map((t) => t.trim().replace(/\s+/g, ' '));
  let i = 0;
  const peek = () => ts[i];
  const orExpr = (): Marker => {
    const parts = [andExpr()];
    while (peek() === 'or') {
      i++;
      parts.push(andExpr());
    }
    return parts.length === 1 ? parts[0] : { or: parts };
  };
  const andExpr = (): Marker => {
    const parts = [atom()];
    while (peek() === 'and') {
      i++;
      parts.push(atom());
    }
    return parts.length === 1 ? parts[0] : { and: parts };
  };
  const value = (): MarkerValue => {
    const t = ts[i++];
    if (t === undefined) throw new Error(`bad marker "${text}": ends early`);
    if (/^['"]/.test(t)) return { literal: t.slice(1, -1) };
    return { variable: t };
  };
  const atom = (): Marker => {
    if (peek() === '(') {
      i++;
      const m = orExpr();
      if (ts[i++] !== ')') throw new Error(`bad marker "${text}": unbalanced parentheses`);
      return m;
    }
    const left = value();
    const op = ts[i++];
    if (!op || !['===', '==', '!=', '<=', '>=', '~=', '<', '>', 'in', 'not in'].includes(op)) throw new Error(`bad marker "${text}"`);
    return { left, op, right: value() };
  };
  const m = orExpr();
  if (i !== ts.length) throw new Error(`bad marker "${text}"`);
  return m;
}

const VERSION_VARIABLES = new Set(['python_version', 'python_full_version', 'implementation_version', 'platform_release']);

/**
 * Evaluates a marker. A comparison with an unknown variable counts as true: for a mirror,
 * bringing a dependency that may not be needed is cheaper than missing one.
 */
export function evaluateMarker(m: Marker, env: MarkerEnv): boolean {
  if ('and' in m) return m.and.every((x) => evaluateMarker(x, env));
  if ('or' in m) return m.or.some((x) => evaluateMarker(x, env));
  const resolve = (v: MarkerValue) => ('literal' in v ? v.literal : env[v.variable]);
  const l = resolve(m.left);
  const r = resolve(m.right);
  if (l === undefined || r === undefined) return true;
  const variable = 'variable' in m.left ? m.left.variable : 'variable' in m.right ? m.right.variable : '';
  if (variable === 'extra') {
    const a = normalizeExtra(l);
    const b = normalizeExtra(r);
    return m.op === '==' ? a === b : m.op === '!=' ? a !== b : false;
  }
  if (m.op === 'in') return r.includes(l);
  if (m.op === 'not in') return !r.includes(l);
  const lv = parseVersion(l);
  if (VERSION_VARIABLES.has(variable) && lv && m.op !== '===') {
    try {
      return satisfies(lv, parseSpecifiers(`${m.op}${r}`));
    } catch {
      /* fall through to a string comparison */
    }
  }
  switch (m.op) {
    case '==':
    case '===':
      return l === r;
    case '!=':
      return l !== r;
    case '<':
      return l < r;
    case '<=':
      return l <= r;
    case '>':
      return l > r;
    case '>=':
      return l >= r;
  }
  return false;
}

const normalizeExtra = (e: string) => e.replace(/[-_.]+/g, '-').toLowerCase();
