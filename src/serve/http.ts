import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { redactCredentials } from '../util/redact.js';

/**
 * The small HTTP pieces the server needs: content types, one byte range, sending bytes or a
 * file with Range honoured, and Accept negotiation. Node's own http module, nothing else.
 */

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  xhtml: 'application/xhtml+xml',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  json: 'application/json',
  map: 'application/json',
  xml: 'application/xml',
  txt: 'text/plain; charset=utf-8',
  md: 'text/plain; charset=utf-8',
  rst: 'text/plain; charset=utf-8',
  py: 'text/plain; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  ico: 'image/vnd.microsoft.icon',
  bmp: 'image/bmp',
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  eot: 'application/vnd.ms-fontobject',
  pdf: 'application/pdf',
  wasm: 'application/wasm',
  zip: 'application/zip',
  whl: 'application/zip',
  gz: 'application/gzip',
  tgz: 'application/gzip',
  bz2: 'application/x-bzip2',
  xz: 'application/x-xz',
  tar: 'application/x-tar',
  mp4: 'video/mp4',
  webm: 'video/webm',
  mp3: 'audio/mpeg',
  ogg: 'audio/ogg',
  metadata: 'text/plain; charset=utf-8',
};

export function contentTypeFor(path: string): string {
  const dot = path.lastIndexOf('.');
  const ext = dot >= 0 && dot > path.lastIndexOf('/') ? path.slice(dot + 1).toLowerCase() : '';
  return TYPES[ext] ?? 'application/octet-stream';
}

export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A Range header resolved against a size: one range, "none" (send all), or "unsatisfiable". */
export type RangeAsk = { start: number; end: number } | 'none' | 'unsatisfiable';

/**
 * Reads `Range: bytes=…`. One range is honoured (as every HTTP remote of ours asks); a list of
 * several is answered whole (RFC 9110 lets a server ignore Range), as is anything malformed.
 * `end` is exclusive.
 */
export function parseRange(header: string | undefined, size: number): RangeAsk {
  if (!header) return 'none';
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return 'none';
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || last < start) return 'unsatisfiable';
  return { start, end: last + 1 };
}

/** Whether If-Range (when sent) still names this representation; if not, the whole file goes. */
export function ifRangeHolds(req: IncomingMessage, etag: string | undefined): boolean {
  const v = req.headers['if-range'];
  return v === undefined || (etag !== undefined && v === etag);
}

export interface SendOptions {
  type: string;
  etag?: string;
  /** Extra headers (Cache-Control, Vary, …). */
  headers?: Record<string, string>;
}

/** Sends bytes in memory, with a single Range honoured. */
export function sendBytes(req: IncomingMessage, res: ServerResponse, body: Uint8Array, o: SendOptions): void {
  const headers: Record<string, string | number> = { 'Content-Type': o.type, 'Accept-Ranges': 'bytes', ...(o.etag ? { ETag: o.etag } : {}), ...o.headers };
  const range = writeRangeHead(req, res, body.length, o.etag, headers);
  if (!range) return;
  const { start, end } = range;
  res.end(req.method === 'HEAD' ? undefined : Buffer.from(body.buffer, body.byteOffset + start, end - start));
}

/**
 * Writes the response head for a body of `size` bytes, honouring a single Range (and If-Range):
 * 200, 206 with Content-Range, or 416 (then the response is complete and nothing is returned).
 */
function writeRangeHead(req: IncomingMessage, res: ServerResponse, size: number, etag: string | undefined, headers: Record<string, string | number>): { start: number; end: number } | undefined {
  const ask = ifRangeHolds(req, etag) ? parseRange(req.headers.range, size) : 'none';
  if (ask === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}`, 'Content-Length': 0 }).end();
    return undefined;
  }
  const { start, end } = ask === 'none' ? { start: 0, end: size } : ask;
  if (ask !== 'none') headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
  headers['Content-Length'] = end - start;
  res.writeHead(ask === 'none' ? 200 : 206, headers);
  return { start, end };
}

/** Sends a file from disk in blocks (backpressure respected), with a single Range honoured. */
/** `path`: a file's path, or a descriptor open for reading (closed here). */
export async function sendFile(req: IncomingMessage, res: ServerResponse, path: string | number, o: SendOptions): Promise<void> {
  const fd = typeof path === 'number' ? path : openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    const size = st.size;
    const etag = o.etag ?? `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const headers: Record<string, string | number> = {
      'Content-Type': o.type,
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'Last-Modified': st.mtime.toUTCString(),
      ...o.headers,
    };
    const range = writeRangeHead(req, res, size, etag, headers);
    if (!range) return;
    const { start, end } = range;
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = start; pos < end; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
      if (n === 0) break;
      pos += n;
      if (!(await write(res, Buffer.from(buf.subarray(0, n))))) return;
    }
    res.end();
  } finally {
    closeSync(fd);
  }
}

/** Writes with backpressure; false when the client went away. */
export function write(res: ServerResponse, chunk: Uint8Array): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/** A short text answer (errors, 404s); no URL's password in it (src/util/redact.ts). */
export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const safe = redactCredentials(text);
  const body = Buffer.from(safe.endsWith('\n') ? safe : safe + '\n');
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length, ...headers });
  res.end(body);
}

export function redirect(res: ServerResponse, location: string, status = 301): void {
  res.writeHead(status, { Location: location, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 0 });
  res.end();
}

/**
 * Picks the best of `offered` media types for an Accept header (q-values and wildcards); the
 * first offered when there is no header; undefined when none is acceptable (→ 406).
 */
export function negotiate(accept: string | undefined, offered: string[]): string | undefined {
  if (!accept || !accept.trim()) return offered[0];
  const ranges = accept.split(',').map((part, order) => {
    const [type, ...params] = part.trim().split(';').map((s) => s.trim());
    const q = params.find((p) => /^q=/i.test(p));
    return { type: type.toLowerCase(), q: q ? Number(q.slice(2)) : 1, order };
  });
  let best: { type: string; q: number; specificity: number; order: number } | undefined;
  for (const [i, t] of offered.entries()) {
    const [major] = t.split('/');
    // The most specific range that matches decides this type's q.
    let match: { q: number; specificity: number } | undefined;
    for (const r of ranges) {
      const spec = r.type === t ? 2 : r.type === `${major}/*` ? 1 : r.type === '*/*' ? 0 : -1;
      if (spec >= 0 && (!match || spec > match.specificity)) match = { q: Number.isFinite(r.q) ? r.q : 0, specificity: spec };
    }
    if (!match || match.q <= 0) continue;
    if (!best || match.q > best.q) best = { type: t, q: match.q, specificity: match.specificity, order: i };
  }
  return best?.type;
}

/**
 * A URL path below a mount point as safe parts: percent-decoded, none empty, `.`, `..`, or
 * holding a slash, backslash or NUL. Undefined when the path is not acceptable (→ 404).
 */
export function safeParts(rest: string): string[] | undefined {
  const raw = rest.split('/');
  const parts: string[] = [];
  for (const [i, r] of raw.entries()) {
    if (r === '' && i === raw.length - 1) continue; // a trailing slash
    let p: string;
    try {
      p = decodeURIComponent(r);
    } catch {
      return undefined;
    }
    if (p === '' || p === '.' || p === '..' || /[/\\\0]/.test(p)) return undefined;
    parts.push(p);
  }
  return parts;
}

/** Percent-encodes each part of a '/'-separated path for a URL. */
export const urlPath = (path: string): string => path.split('/').map(encodeURIComponent).join('/');
