import { createHash } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isInside, realPathInMirror } from './contained.js';
import { isPaqueteError } from '../errors.js';
import { gitServeDir } from '../sources/git.js';
import { decodeGitRefs, GitRefs } from '../sources/git-refs.js';
import { normalizeName } from '../sources/pypi.js';
import { formatSize } from '../util/size.js';
import { redactCredentials } from '../util/redact.js';
import { WorkDir } from '../workdir/workdir.js';
import { catalogPage } from './catalog-page.js';
import { contentTypeFor, escapeHtml, negotiate, redirect, safeParts, sendBytes, sendFile, sendText, urlPath } from './http.js';
import { MirrorState, MirrorView } from './mirror.js';
import { VirtualPacks } from './packs.js';
import { ServedGenerations } from './generations.js';
import { notIndexedHere, notYetHere, notYetHereText, syncCommand } from './missing.js';
import { projectHtml, projectJson, rootHtml, rootJson, SIMPLE_JSON, SIMPLE_TYPES, simpleAccept } from './simple.js';

/**
 * `paquete serve`: the working directory at home, offline, for the ordinary tools.
 *
 *   /                          catalog page: every source, versions, sizes, complete or missing
 *   /simple/, /simple/NAME/    PyPI simple API (PEP 503 HTML / PEP 691 JSON by Accept)
 *   /packages/SOURCE/PATH      the distributions, and PATH.metadata (PEP 658)
 *   /docs/NAME/…               docs sources as a static site (index.html for folders)
 *   /files/NAME/…              any other source's files, with folder listings
 *   /git/NAME.git/…            git sources for git's dumb HTTP protocol (git clone URL)
 *   /remote/…                  the remote layout, so a LAN peer can `paquete init URL/remote/`
 *
 * Read only: nothing a request does changes the tree or the store (the metadata cache and the
 * git repository kept under .paquete are derived data). It takes no lock: a sync may run beside
 * it, and each connection is answered from one generation (src/serve/generations.ts).
 */
export interface ServeOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1 (this machine only); 0.0.0.0 for the LAN. */
  host?: string;
  /** Problems worth a line on the terminal (a git repository served older than its refs, a 500). */
  onWarning?: (message: string) => void;
}

export interface RunningServer {
  /** http://host:port, the address to show the user. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startServer(work: WorkDir, opts: ServeOptions = {}): Promise<RunningServer> {
  const generations = await ServedGenerations.open(work);
  const server = createServer((req, res) => {
    generations
      .forRequest(req)
      .then((g) => new Handler(work, g.view, g.packs, opts).handle(req, res))
      .catch((e) => {
      opts.onWarning?.(redactCredentials(`${req.method} ${req.url}: ${(e as Error).message}`));
      if (!res.headersSent) sendText(res, 500, `paquete serve: ${isPaqueteError(e) ? e.message : 'internal error'}`);
      else res.destroy();
    });
  });
  // A peer syncing a large pack reads for a long time: no request timeout, but idle sockets go.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 10_000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    close: () => closeServer(server).finally(() => generations.close()),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

class Handler {
  constructor(
    private readonly work: WorkDir,
    private readonly view: MirrorView,
    private readonly packs: VirtualPacks,
    private readonly opts: ServeOptions,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'only GET and HEAD', { Allow: 'GET, HEAD' });
    const url = new URL(req.url ?? '/', 'http://paquete.invalid');
    const path = url.pathname;
    if (path === '/' || path === '/index.html') return this.catalog(req, res);
    if (path === '/simple') return redirect(res, '/simple/');
    if (path.startsWith('/simple/')) return this.simple(req, res, path.slice('/simple/'.length));
    if (path.startsWith('/packages/')) return this.packageFile(req, res, path.slice('/packages/'.length));
    const mount = /^\/(docs|files)\/([^/]+)(\/.*)?$/.exec(path);
    if (mount) return this.sourceTree(req, res, mount[1] as 'docs' | 'files', mount[2], mount[3]);
    const git = /^\/git\/([^/]+)\.git(\/.*)?$/.exec(path);
    if (git) return this.git(req, res, git[1], git[2] ?? '/');
    if (path.startsWith('/remote/')) return this.remote(req, res, path.slice('/remote/'.length));
    return sendText(res, 404, `nothing at ${path}; the catalog is at /`);
  }

  private async catalog(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const state = await this.view.current();
    const gitRefs = new Map<string, GitRefs>();
    for (const src of state.snapshot?.sources ?? []) {
      if (src.kind !== 'git' || !state.completeness?.complete.has(`${src.name}/refs`)) continue;
      const bytes = this.view.read(`${src.name}/refs`);
      try {
        if (bytes) gitRefs.set(src.name, decodeGitRefs(bytes.toString('utf8'), `${src.name}/refs`));
      } catch {
        // a refs file changed under us or unreadable: the catalog just shows no refs for it
      }
    }
    const html = catalogPage(state, { origin: originOf(req), root: this.work.root, remote: redactCredentials(this.work.config.remotes[0]?.location ?? ''), gitRefs });
    sendBytes(req, res, Buffer.from(html), { type: 'text/html; charset=utf-8', headers: { 'Cache-Control': 'no-cache' } });
  }

  // ----------------------------------------------------------------------------------------------
  // PyPI

  private async simple(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    const state = await this.view.current();
    const type = negotiate(simpleAccept(req.headers.accept), SIMPLE_TYPES);
    if (!type) return sendText(res, 406, `acceptable: ${SIMPLE_TYPES.join(', ')}`);
    const send = (html: string, json: string) =>
      sendBytes(req, res, Buffer.from(type === SIMPLE_JSON ? json : html), {
        type: type === SIMPLE_JSON ? SIMPLE_JSON : `${type}; charset=utf-8`,
        headers: { Vary: 'Accept', 'Cache-Control': 'no-cache' },
      });
    if (rest === '') {
      const names = [...state.projects.keys()].sort();
      return send(rootHtml(names), rootJson(names));
    }
    const m = /^([^/]+)(\/?)$/.exec(rest);
    if (!m) return sendText(res, 404, 'no such page');
    let raw: string;
    try {
      raw = decodeURIComponent(m[1]);
    } catch {
      return sendText(res, 404, 'no such project');
    }
    const name = normalizeName(raw);
    // PEP 503: one URL per project, normalized, with its trailing slash.
    if (name !== raw || !m[2]) return redirect(res, `/simple/${encodeURIComponent(name)}/`);
    const dists = state.projects.get(name);
    if (!dists) {
      if (state.allDists.has(name)) {
        return sendText(res, 404, `not synced yet: no file of ${name} is in this copy of the mirror yet.\nTo bring it with its dependencies, for this machine's Python (where there is internet):\n\n  ${syncCommand(this.work.root, `pypi:${name}`)}\n`);
      }
      return sendText(res, 404, `no project named ${name} in this mirror`);
    }
    const files = dists.map((dist) => ({ dist, meta: this.view.projectMetadata(dist, state) }));
    return send(projectHtml(name, files), projectJson(name, files));
  }

  private async packageFile(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    const parts = safeParts(rest);
    if (!parts || parts.length < 2) return sendText(res, 404, 'no such file');
    const state = await this.view.current();
    const path = parts.join('/');
    const dist = this.findDist(state, path) ?? (path.endsWith('.metadata') ? this.findDist(state, path.slice(0, -'.metadata'.length)) : undefined);
    if (!dist) {
      const missing = state.snapshot && state.completeness ? notYetHere(state.snapshot, state.completeness, path, false) ?? notIndexedHere(state.notIndexed, path, false, state.snapshot.sources) : undefined;
      if (missing) return sendText(res, 404, notYetHereText(missing, this.work.root));
      return sendText(res, 404, `${path} is not a distribution in this mirror`);
    }
    if (dist.file.path !== path) {
      const meta = this.view.coreMetadata(dist, state);
      if (!meta) return sendText(res, 404, `no metadata could be read from ${dist.fileName}`);
      return sendBytes(req, res, meta.bytes, { type: 'text/plain; charset=utf-8', etag: `"${meta.sha256}"` });
    }
    const fd = this.view.open(path);
    if (fd === undefined) return sendText(res, 404, `${path} is not a complete distribution in this mirror`);
    return sendFile(req, res, fd, { type: contentTypeFor(path), etag: `"${dist.sha256}"` });
  }

  private findDist(state: MirrorState, path: string) {
    return state.byPath.get(path);
  }

  // ----------------------------------------------------------------------------------------------
  // Static trees: docs and other sources

  private async sourceTree(req: IncomingMessage, res: ServerResponse, mount: 'docs' | 'files', encodedName: string, rest: string | undefined): Promise<void> {
    const state = await this.view.current();
    let name: string;
    try {
      name = decodeURIComponent(encodedName);
    } catch {
      return sendText(res, 404, 'no such source');
    }
    const src = state.snapshot?.sources.find((s) => s.name === name);
    const fits = src && (mount === 'docs' ? src.kind === 'docs' : src.kind !== 'git');
    if (!src || !fits) return sendText(res, 404, `no ${mount === 'docs' ? 'docs ' : ''}source named ${name} in this mirror`);
    if (rest === undefined) return redirect(res, `/${mount}/${encodeURIComponent(name)}/`);
    const parts = safeParts(rest.slice(1));
    if (!parts) return sendText(res, 404, 'no such file');
    // Not here yet (the whole source, a folder, a page, a folder's index.html): say so and how to get it.
    const asked = [name, ...parts].join('/');
    const folder = rest.endsWith('/');
    const missing =
      state.snapshot && state.completeness
        ? (folder && mount === 'docs' ? notYetHere(state.snapshot, state.completeness, `${asked}/index.html`, false) : undefined) ??
          notYetHere(state.snapshot, state.completeness, asked, folder || parts.length === 0) ??
          (folder ? undefined : notYetHere(state.snapshot, state.completeness, asked, true)) ??
          notIndexedHere(state.notIndexed, asked, folder || parts.length === 0, state.snapshot.sources)
        : undefined;
    if (missing && !existsSync(join(this.work.root, asked, folder && mount === 'docs' ? 'index.html' : ''))) {
      return sendText(res, 404, notYetHereText(missing, this.work.root));
    }
    // The source's folder itself must be inside the mirror: its name came from a snapshot.
    const base = realPathInMirror(this.work.root, name);
    if (!base) return sendText(res, 404, 'no such file');
    // A file this generation placed is read as it placed it (a sync may be replacing it).
    const placed = (rel: string[]) => {
      const path = [name, ...rel].join('/');
      return this.view.generation.state.files[path] ? (this.view.open(path) ?? null) : undefined;
    };
    await serveStatic(req, res, base, parts, rest.endsWith('/'), mount === 'files' || src.kind !== 'docs' ? 'list' : 'index-or-list', undefined, placed);
  }

  // ----------------------------------------------------------------------------------------------
  // git (dumb HTTP: static files of a bare repository kept current by src/sources/git.ts)

  private async git(req: IncomingMessage, res: ServerResponse, encodedName: string, rest: string): Promise<void> {
    const state = await this.view.current();
    const parts = safeParts(`${encodedName}${rest}`);
    if (!parts) return sendText(res, 404, 'no such repository');
    const name = parts.shift()!;
    const src = state.snapshot?.sources.find((s) => s.name === name && s.kind === 'git');
    if (!src) return sendText(res, 404, `no git source named ${name} in this mirror`);
    if (parts.length === 0) return sendText(res, 404, `clone it: git clone ${originOf(req)}/git/${name}.git`);
    let dir: string;
    try {
      const generation = this.view.generation;
      dir = await gitServeDir(this.work.root, name, { onWarning: this.opts.onWarning, fileOf: (rel) => generation.pathOf(rel, realPathInMirror(this.work.root, rel)) });
    } catch (e) {
      if (isPaqueteError(e)) return sendText(res, 503, e.message);
      throw e;
    }
    await serveStatic(req, res, dir, parts, false, 'none', 'application/octet-stream');
  }

  // ----------------------------------------------------------------------------------------------
  // The remote layout, for LAN peers

  private async remote(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    if (rest === 'manifest.json') {
      const bytes = this.view.generation.manifest;
      if (!bytes) return sendText(res, 404, 'nothing synced yet: no manifest');
      // The manifest is the one file that changes: no caching, and an ETag of its bytes.
      return sendBytes(req, res, bytes, { type: 'application/json', etag: `"${hashHex(bytes)}"`, headers: { 'Cache-Control': 'no-cache' } });
    }
    let m = /^snapshots\/([0-9a-f]{64})\.snap$/.exec(rest);
    if (m) {
      const bytes = this.work.readOptional(`snapshots/${m[1]}.snap`);
      if (!bytes) return sendText(res, 404, 'this mirror has no such snapshot');
      return sendBytes(req, res, bytes, { type: 'application/octet-stream', etag: `"${m[1]}"`, headers: { 'Cache-Control': 'public, max-age=31536000, immutable' } });
    }
    m = /^packs\/([0-9a-f]{64})\.pack$/.exec(rest);
    if (m) return this.packs.serve(req, res, m[1]);
    return sendText(res, 404, 'not part of the remote layout');
  }
}

const hashHex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function originOf(req: IncomingMessage): string {
  const host = req.headers.host && /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host) ? req.headers.host : 'localhost';
  return `http://${host}`;
}

/**
 * Serves a file under `base` named by safe parts. The resolved path must stay inside `base`
 * even through symlinks (a symlink in a synced tree could point anywhere on the disk).
 */
async function serveStatic(
  req: IncomingMessage,
  res: ServerResponse,
  base: string,
  parts: string[],
  trailingSlash: boolean,
  folders: 'index-or-list' | 'list' | 'none',
  type?: string,
  /**
   * The bytes a generation placed at `parts` below `base`: a descriptor, null when they are gone,
   * undefined when the generation placed nothing there (then the tree's file is served).
   */
  placed?: (parts: string[]) => number | null | undefined,
): Promise<void> {
  let real: string;
  let realBase: string;
  try {
    realBase = realpathSync(base);
    real = realpathSync(join(base, ...parts));
  } catch {
    // Gone from the tree (a sync removed it) but still this generation's: kept.
    const fd = placed?.(parts);
    if (typeof fd === 'number') return sendFile(req, res, fd, { type: type ?? contentTypeFor(parts.join('/')) });
    return sendText(res, 404, 'no such file');
  }
  if (!isInside(real, realBase)) return sendText(res, 404, 'no such file');
  const st = statSync(real);
  if (st.isDirectory()) {
    if (folders === 'none') return sendText(res, 404, 'a folder');
    const here = new URL(req.url ?? '/', 'http://x').pathname;
    if (!trailingSlash) return redirect(res, `${here}/`);
    if (folders === 'index-or-list') {
      const index = join(real, 'index.html');
      const fd = placed?.([...parts, 'index.html']);
      if (fd === null) return sendText(res, 404, 'no such file');
      if (fd !== undefined) return sendFile(req, res, fd, { type: contentTypeFor(index) });
      try {
        if (statSync(index).isFile()) return sendFile(req, res, index, { type: contentTypeFor(index) });
      } catch {
        /* no index: list the folder */
      }
    }
    return sendBytes(req, res, Buffer.from(listing(real, here)), { type: 'text/html; charset=utf-8' });
  }
  if (!st.isFile()) return sendText(res, 404, 'not a file');
  const fd = placed?.(parts);
  if (fd === null) return sendText(res, 404, 'no such file');
  return sendFile(req, res, fd ?? real, { type: type ?? contentTypeFor(real) });
}

function listing(dir: string, urlDir: string): string {
  const rows = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() || d.isFile())
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((d) => {
      const size = d.isFile() ? formatSize(statSync(join(dir, d.name)).size) : '';
      const href = urlPath(d.name) + (d.isDirectory() ? '/' : '');
      return `<tr><td><a href="${escapeHtml(href)}">${escapeHtml(d.name)}${d.isDirectory() ? '/' : ''}</a></td><td>${escapeHtml(size)}</td></tr>`;
    });
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(urlDir)}</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:1.5em}td{padding:.15em 1em .15em 0}</style></head>
<body><h1>${escapeHtml(decodeURIComponent(urlDir))}</h1><p><a href="../">../</a> · <a href="/">catalog</a></p>
<table>${rows.join('\n')}</table></body></html>
`;
}
