/**
 * A remote served over HTTP(S) as static files: nginx, a CDN, an S3 bucket, `paquete serve` on a
 * LAN box. Built for a paid, flaky hotspot:
 *
 * - every byte on the wire is counted (`meter`: socket counters, headers included);
 * - one single-range request at a time per call (S3 and some CDNs refuse multi-range);
 * - resume-aware retries: after a cut, a range continues from the first byte the sink has not
 *   had; nothing is delivered twice and nothing that arrived is fetched again;
 * - bodies are read at the link's pace: each piece goes to the sink in the turn its socket read
 *   brought it, and a sink that lands it in a file is not waited for (so a kill -9 takes at most
 *   the read under way, not stream buffers that filled while a slow sink held the reading up);
 * - a stall timer (no bytes for N ms) and a connect timeout;
 * - captive portals (a 200 with a login page, a redirect to a login host, a 511) are reported as
 *   CAPTIVE_PORTAL and none of their bytes reach a sink;
 * - servers that ignore Range (answer 200 with the whole file) still work: the wanted slice is cut
 *   out of the stream and the download stopped as soon as it is complete; `rangeSupport` tells
 *   the planner so it can fetch whole files from such a server. get() asks with `Range: bytes=0-`
 *   (a 206 of the whole file where Range works), so reading the manifest already tells, for
 *   ~50 bytes; `probeRangeSupport()` asks for one byte when that is not enough;
 * - immutable files are pinned by their first-seen ETag (or Last-Modified, and size): a file
 *   that changed is REMOTE_CHANGED, never a mix of bytes. Later requests carry If-Range until the
 *   server has shown that it puts an ETag on its 206 answers (nginx, S3 and CDNs do): from then on
 *   the ETag of each 206 is checked before a byte of it is used, which is as safe and cheaper
 *   (no If-Range header on every request, and a changed file costs the range, not a 200 with the
 *   whole new file).
 *
 * got is used with its own retry, cache, redirect-following and decompression off: retries and
 * redirects are done here (a got retry restarts from byte 0; redirects need the portal check).
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import got, { type Got, type Request as GotRequest } from 'got';
import { PaqueteError } from '../errors.js';
import { MAX_GET_BYTES, type ByteRange, type FetchOptions, type LinkFacts, type Remote } from './remote.js';
import { Exchange, SocketMeter, meteredAgents } from './meter.js';
import { Hold, PUSH_ALLOWANCE, WireBudget } from './budget.js';
import { PIECES_CLEAN, pieceSize, piecesFor, type PieceRule } from './outstanding.js';

export type RangeSupport = 'unknown' | 'yes' | 'no';

export interface RetryInfo {
  /** The remote path being fetched. */
  path: string;
  /** 1-based number of this failure in a row without progress. */
  attempt: number;
  /** The most failures in a row allowed before giving up. */
  retries: number;
  /** How long we wait before trying again. */
  delayMs: number;
  error: Error;
  /** Bytes of this call already handed on (to the sink, or buffered by get). */
  delivered: number;
}

export interface ExchangeInfo {
  url: string;
  /** HTTP status, when a response head arrived. */
  status?: number;
  /** Bytes we wrote on the connection for this exchange (request line + headers). */
  sent: number;
  /** Bytes we read for this exchange (status line + headers + body, as far as we read it). */
  received: number;
  /** True when we stopped reading before the response ended (the server may have sent more). */
  aborted: boolean;
}

export interface HttpRemoteOptions {
  timeouts?: {
    /** ms to get a TCP (and TLS) connection up. Default 15 000. */
    connect?: number;
    /** ms without a single byte (before the response head or between body chunks). Default 30 000. */
    stall?: number;
  };
  /**
   * Failures in a row (connection errors, timeouts, 5xx) tolerated per call before giving up
   * with NETWORK. A try that got at least one new byte through resets the count: a link that
   * drops every minute but moves data in between still finishes. Default 5.
   */
  retries?: number;
  /** First back-off delay in ms; doubles after each failure in a row. Default 1000. */
  backoffMs?: number;
  /** Cap on one back-off delay. Default 30 000. */
  maxBackoffMs?: number;
  /** Sent as user-agent. Default `paquete/0.1`. Keep it short: it is paid for on every request. */
  userAgent?: string;
  onRetry?: (info: RetryInfo) => void;
  /** Extra certificate authorities to trust for https (a LAN box with its own certificate). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Default true. */
  rejectUnauthorized?: boolean;
  /** Called after every HTTP exchange (redirect hops included) with its wire bytes. */
  onExchange?: (info: ExchangeInfo) => void;
  /**
   * The session's budget (src/remote/budget.ts): every exchange reserves from it before its
   * request is written. Without one nothing is limited.
   */
  budget?: WireBudget;
  /**
   * Reading this remote costs nothing (a LAN peer): only hops that a redirect takes to another
   * host are reserved from `budget` (a free mirror pointing at a paid one is paid from there on).
   */
  free?: boolean;
  /** What an earlier session learned of this server's heads and Range (see LinkFacts); answers seen now refine it. */
  facts?: LinkFacts;
  /**
   * The slowest link worth paying for, in body bytes per second, judged over `rateWindowMs`
   * (time our own sink spends storing is left out). A link under it fails the call with NETWORK
   * at once, no retries: everything received is kept. 0 turns it off. Default MIN_RATE.
   */
  minRate?: number;
  /** Default 30 000. */
  rateWindowMs?: number;
  /**
   * How many body bytes one ranged request asks for (a longer range goes piece after piece):
   * what a kill -9 can lose to the network. A number: always that many. Default PIECES_CLEAN
   * (src/sync/kill-risk.ts chooses PIECES_AFTER_KILL after a kill).
   */
  outstanding?: number | PieceRule;
}

// Where they are defined: kill-risk.ts (on every sync's path) reads them without loading got.
export { OUTSTANDING_MAX, PIECES_AFTER_KILL, PIECES_CLEAN, pieceSize, piecesFor, type PieceRule } from './outstanding.js';

/**
 * Default minimum rate: 1 kB/s. Under it a 300 MB card would take three and a half days; a link
 * that trickles (a hotspot at the edge of its range, a throttled card) sends a byte now and
 * then, which resets a stall timer forever.
 */
export const MIN_RATE = 1000;
const RATE_WINDOW_MS = 30_000;

export interface HttpRemote extends Remote {
  /** Whether the server honours Range, as last observed ('unknown' before any evidence). */
  readonly rangeSupport: RangeSupport;
  readonly meter: SocketMeter;
  /**
   * Ask for byte 0 of `path` (default manifest.json) to learn whether Range is honoured, before
   * a big file is asked for in pieces. Costs one small exchange (~0.5 KB on nginx).
   */
  probeRangeSupport(path?: string, opts?: FetchOptions): Promise<RangeSupport>;
}

const MANIFEST = 'manifest.json';
const MAX_REDIRECTS = 5;
/** At most this many body bytes are read and thrown away to keep a connection alive. */
const DRAIN_LIMIT = 4096;
/** Bytes looked at to tell a web page from a file. */
const SNIFF_BYTES = 64;
/** Response head of a 206 assumed before we have seen one from this server. */
const DEFAULT_206_HEAD = 640;
/** Added to the request head we compute (Node writes exactly it; this covers a header it might add). */
const REQUEST_SLACK = 32;
/** Kept back when an ask is sized to what the budget has left: a redirect's hop has a longer head. */
const REDIRECT_SLACK = 256;
/** Added on top of the largest 206 head seen (content-type, ETag and digits vary a little). */
const HEAD_SLACK = 32;

const PORTAL_HINT =
  'open a browser, log in to the hotspot (or accept its terms), then run the same command again';
const GONE_HINT = 'progress is saved; run the same command again when the link is back';
const CHANGED_HINT = 'the publisher replaced files on the remote; run the same command again to read the new index';

/** A failure worth trying again (connection trouble, a timeout, a 5xx). */
class Transient extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'Transient';
  }
}

/** An error thrown by the caller's sink: passed through untouched, never retried. */
class SinkFailure {
  constructor(readonly error: unknown) {}
}

interface Validator {
  etag?: string;
  lastModified?: string;
  size?: number;
}

interface Opened {
  url: URL;
  stream: GotRequest;
  res: http.IncomingMessage;
  status: number;
  exchange: Exchange;
  /** Content-Length of the response body, when given. */
  length: number | undefined;
  /** Size of the status line + headers as Node parsed them. */
  headBytes: number;
  /** This exchange's reservation, when it is paid for. */
  hold: Hold | undefined;
  /** The body this hop asked for (less than the call's when the budget made it shrink). */
  body: number;
}

/** What one exchange may bring: the body asked for, and what a server ignoring Range may push on top. */
interface Ask {
  body: number;
  push: number;
  /** The ask may shrink to what the budget has left when a hop is paid (the range header is rewritten). */
  fit?: boolean;
}

/** One try of one call: the stream in flight, its stall timer, why it was stopped. */
class Attempt {
  stream: GotRequest | undefined;
  reason: unknown;
  /** Report each exchange of this try (idempotent); run when the try is over. */
  readonly reports: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private stallMs = 0;
  private rateTimer: NodeJS.Timeout | undefined;
  private sinkMs = 0;
  private sinkSince: number | undefined;

  /** Stop the current stream with `reason` (the first reason wins). */
  fail(reason: unknown): void {
    if (this.reason === undefined) this.reason = reason;
    this.disarm();
    this.end();
    const s = this.stream;
    if (s && !s.destroyed) {
      hungUp.add(s);
      s.destroy(reason instanceof Error ? reason : new Error(String(reason)));
    }
  }

  /**
   * From the first request of the try on: every `windowMs`, the bytes that came on its
   * connections (`linkBytes`: response heads too, so a trickle inside a head is judged as one
   * inside a body) must reach `minRate` per second of the time the link had (the time our sink
   * spent storing is not the link's).
   */
  watchRate(minRate: number, windowMs: number, tooSlow: (bytes: number) => Error): void {
    if (!(minRate > 0) || this.rateTimer) return;
    let seen = this.linkBytes();
    this.rateTimer = setInterval(() => {
      const now = performance.now();
      if (this.sinkSince !== undefined) {
        this.sinkMs += now - this.sinkSince;
        this.sinkSince = now;
      }
      const linkMs = windowMs - this.sinkMs;
      const came = this.linkBytes() - seen;
      seen += came;
      if (linkMs >= windowMs / 2 && came < (minRate * linkMs) / 1000) this.fail(tooSlow(came));
      this.sinkMs = 0;
    }, windowMs);
    this.rateTimer.unref?.();
  }

  /** Bytes received on the exchanges of this try so far (for the rate). */
  readonly exchanges: Exchange[] = [];
  private linkBytes(): number {
    return this.exchanges.reduce((n, x) => n + x.received, 0);
  }

  sinkBusy(busy: boolean): void {
    const now = performance.now();
    if (busy) this.sinkSince = now;
    else if (this.sinkSince !== undefined) {
      this.sinkMs += now - this.sinkSince;
      this.sinkSince = undefined;
    }
  }

  /** The try is over: no more timers. */
  end(): void {
    if (this.rateTimer) clearInterval(this.rateTimer);
    this.rateTimer = undefined;
  }

  arm(ms: number): void {
    this.disarm();
    this.stallMs = ms;
    this.timer = setTimeout(() => {
      this.fail(new Transient(`no data for ${fmtMs(this.stallMs)}`));
    }, ms);
    this.timer.unref?.();
  }

  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Streams we destroyed ourselves (the server may have had more to send: see PUSH_ALLOWANCE). */
const hungUp = new WeakSet<GotRequest>();

/** Stop reading `s` and close its connection. */
function hangUp(s: GotRequest): void {
  if (s.destroyed || s.readableEnded) return;
  hungUp.add(s);
  s.destroy();
}

const fmtMs = (ms: number): string => (ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${ms} ms`);

const digits = (n: number): number => String(Math.max(0, Math.floor(n))).length;

const sleep = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(interrupted(signal));
    const t = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort(): void {
      clearTimeout(t);
      reject(interrupted(signal!));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** What an aborted call rejects with: the signal's reason (an AbortError unless one was given). */
function interrupted(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error('the operation was aborted', { cause: r });
  e.name = 'AbortError';
  return e;
}

/** Does `head` look like a web page? `strict`: any '<' first (for JSON files). */
export function looksLikeHtml(head: Uint8Array, strict: boolean): boolean {
  let i = 0;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) i = 3;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  if (i >= head.length || head[i] !== 0x3c) return false;
  if (strict) return true;
  const text = Buffer.from(head.subarray(i, i + 16)).toString('latin1').toLowerCase();
  return ['<!doctype', '<html', '<head', '<body', '<?xml', '<script', '<meta', '<title', '<!--'].some((p) =>
    text.startsWith(p),
  );
}

const isHtmlType = (ct: string | undefined): boolean =>
  !!ct && /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(ct);

function parseContentRange(v: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = v && /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v);
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]) + 1, total: m[3] === '*' ? undefined : Number(m[3]) };
}

function unsatisfiedTotal(v: string | undefined): number | undefined {
  const m = v && /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(v);
  return m ? Number(m[1]) : undefined;
}

const CERT_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Is `e` the kind of failure a new try may fix? */
function isTransient(e: unknown): boolean {
  if (e instanceof Transient) return true;
  if (e instanceof PaqueteError || e instanceof SinkFailure) return false;
  // Everything else comes from got / Node: resets, refusals, DNS, timeouts, cut bodies.
  return e instanceof Error;
}

function describe(e: unknown): string {
  if (e instanceof Transient) return e.message;
  if (e instanceof Error) {
    const code = (e as { code?: string }).code;
    const msg = e.message || String(e);
    return code && !msg.includes(code) ? `${msg} (${code})` : msg;
  }
  return String(e);
}

export function createHttpRemote(baseUrl: string, opts: HttpRemoteOptions = {}): HttpRemote {
  return new HttpRemoteImpl(baseUrl, opts);
}

class HttpRemoteImpl implements HttpRemote {
  readonly location: string;
  readonly free: boolean;
  readonly meter = new SocketMeter();
  private readonly budget: WireBudget | undefined;
  private readonly pieces: PieceRule;
  /** Body bytes of ranges handed to sinks so far: what the pieces grow with (see PieceRule). */
  private received = 0;
  private readonly minRate: number;
  private readonly rateWindowMs: number;
  private support: RangeSupport = 'unknown';
  private readonly base: URL;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly client: Got;
  private readonly connectMs: number;
  private readonly stallMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly userAgent: string;
  /** First-seen validators of immutable files (every path but the manifest). */
  private readonly validators = new Map<string, Validator>();
  /** Largest response head seen on a 206, without the parts that vary with the range (see noteHead). */
  private head206Base: number | undefined;
  /** Largest 200 head seen, as a guess for a 206 until a 206 is seen. */
  private head200Guess: number | undefined;
  private closed = false;
  /** The server puts a strong ETag on its 206 answers: checking it replaces If-Range. */
  private etagOn206 = false;

  constructor(
    baseUrl: string,
    private readonly opts: HttpRemoteOptions,
  ) {
    this.location = baseUrl;
    this.free = opts.free ?? false;
    this.budget = opts.budget;
    this.minRate = opts.minRate ?? MIN_RATE;
    const o = opts.outstanding ?? PIECES_CLEAN;
    this.pieces = typeof o === 'number' ? { floor: Math.max(1, o), share: Infinity } : o;
    this.rateWindowMs = opts.rateWindowMs ?? RATE_WINDOW_MS;
    let base: URL;
    try {
      base = new URL(baseUrl);
    } catch {
      throw new PaqueteError('USAGE', `not a URL: ${baseUrl}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new PaqueteError('USAGE', `not an http(s) URL: ${baseUrl}`);
    }
    base.search = '';
    base.hash = '';
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base;
    this.connectMs = opts.timeouts?.connect ?? 15_000;
    this.stallMs = opts.timeouts?.stall ?? 30_000;
    this.retries = opts.retries ?? 5;
    this.backoffMs = opts.backoffMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.userAgent = opts.userAgent ?? 'paquete/0.1';
    this.support = opts.facts?.support ?? 'unknown';
    this.head206Base = opts.facts?.head206;
    this.head200Guess = opts.facts?.head200;
    this.etagOn206 = opts.facts?.etagOn206 ?? false;
    // Keep-alive saves a TCP (and TLS) handshake per request. 'lifo' reuses the most recently
    // used connection, the least likely to have been closed by the server's idle timeout; idle
    // connections are dropped after 30 s (nginx closes them after 75 s by default).
    const agents = meteredAgents(
      this.meter,
      { keepAlive: true, scheduling: 'lifo', timeout: 30_000, maxSockets: 16 },
      { ca: opts.ca, rejectUnauthorized: opts.rejectUnauthorized },
    );
    this.httpAgent = agents.http;
    this.httpsAgent = agents.https;
    this.client = got.extend({
      agent: { http: this.httpAgent, https: this.httpsAgent },
      http2: false,
      decompress: false,
      cache: false,
      followRedirect: false,
      throwHttpErrors: false,
      retry: { limit: 0 },
      timeout: { lookup: this.connectMs, connect: this.connectMs, secureConnect: this.connectMs },
      headers: { 'user-agent': this.userAgent },
    });
  }

  get rangeSupport(): RangeSupport {
    return this.support;
  }

  linkFacts(): LinkFacts {
    return {
      ...(this.support !== 'unknown' ? { support: this.support } : {}),
      ...(this.head206Base !== undefined ? { head206: this.head206Base } : {}),
      ...(this.head200Guess !== undefined ? { head200: this.head200Guess } : {}),
      ...(this.etagOn206 ? { etagOn206: true } : {}),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // URLs

  private urlOf(path: string): URL {
    if (typeof path !== 'string' || path === '' || path.startsWith('/')) {
      throw new PaqueteError('UNSAFE_PATH', `bad remote path: ${JSON.stringify(path)}`);
    }
    const parts = path.split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\'))) {
      throw new PaqueteError('UNSAFE_PATH', `bad remote path: ${JSON.stringify(path)}`);
    }
    return new URL(parts.map(encodeURIComponent).join('/'), this.base);
  }

  /** Where a redirect may go without being a portal: any host, but the path must end in ours. */
  private redirectLooksRight(to: URL, path: string): boolean {
    if (to.protocol !== 'http:' && to.protocol !== 'https:') return false;
    const want = '/' + path.split('/').map(encodeURIComponent).join('/');
    let got: string;
    try {
      got = '/' + decodeURIComponent(to.pathname).split('/').filter(Boolean).map(encodeURIComponent).join('/');
    } catch {
      return false;
    }
    return got.endsWith(want);
  }

  // ---------------------------------------------------------------------------------------------
  // Cost model

  /** Bytes of the request head we send (what Node writes for our got request). */
  private requestHeadBytes(url: URL, headers: Record<string, string>): number {
    let n = `GET ${url.pathname}${url.search} HTTP/1.1\r\n`.length;
    const all: Record<string, string> = { 'user-agent': this.userAgent, ...headers, Host: url.host, Connection: 'keep-alive' };
    for (const [k, v] of Object.entries(all)) n += Buffer.byteLength(`${k}: ${v}\r\n`, 'latin1');
    return n + 2;
  }

  requestCost(path: string, bodyBytes: number): number {
    const body = Math.max(0, Math.ceil(bodyBytes));
    // One request per piece (one from a server that ignores Range), each with the heads of the
    // largest piece (`requestCost(path, 0)`: one request's).
    const { count: pieces, largest: piece } = this.support === 'no' ? { count: 1, largest: body } : piecesFor(this.pieces, this.received, body);
    const url = this.urlOf(path);
    const v = this.validators.get(path);
    // Offsets are unknown here: assume the largest the file allows (or 12 digits).
    const d = v?.size !== undefined ? digits(v.size) : 12;
    const headers: Record<string, string> = { range: `bytes=${'9'.repeat(d)}-${'9'.repeat(d)}` };
    if (!this.etagOn206) {
      const ifRange = v ? this.ifRangeOf(v) : '"' + 'f'.repeat(30) + '"';
      if (ifRange) headers['if-range'] = ifRange;
    }
    const req = this.requestHeadBytes(url, headers) + REQUEST_SLACK;
    return pieces * (req + this.responseHeadCap(path, piece)) + body + (this.support === 'no' ? this.pushPast(path, body) : 0);
  }

  /** What a server that ignores Range may push past byte `end` of `path` before our hang-up reaches it. */
  private pushPast(path: string, end: number): number {
    const size = this.validators.get(path)?.size;
    return size === undefined ? PUSH_ALLOWANCE : Math.max(0, Math.min(PUSH_ALLOWANCE, size - end));
  }

  /** The most a response head for `body` bytes of `path` is expected to take. */
  private responseHeadCap(path: string, body: number): number {
    const v = this.validators.get(path);
    const d = v?.size !== undefined ? digits(v.size) : 12;
    // Content-Length digits + Content-Range "bytes S-E/T".
    const varying = digits(body) + `bytes ${'9'.repeat(d)}-${'9'.repeat(d)}/${'9'.repeat(d)}`.length;
    if (this.head206Base !== undefined) return this.head206Base + varying + HEAD_SLACK;
    if (this.head200Guess !== undefined) return Math.max(this.head200Guess + varying + HEAD_SLACK, 0);
    return DEFAULT_206_HEAD;
  }

  /** Whether exchanges with `url` are paid: always for a paid remote, off its own host for a free one. */
  private paidAt(url: URL): boolean {
    return this.budget !== undefined && (!this.free || url.origin !== this.base.origin);
  }

  /**
   * Body bytes a request for `path` may ask for within what the budget has left (Infinity: no
   * limit). `orRedirected`: shape the ask for a free remote too, in case a redirect makes it paid
   * (the manifest, asked up to a cap far above its real size), and keep REDIRECT_SLACK back.
   */
  private roomFor(path: string, headers: Record<string, string>, want: number, orRedirected = false): number {
    if (!this.budget?.limited || (!this.paidAt(this.base) && !orRedirected)) return Infinity;
    const overhead = this.requestHeadBytes(this.urlOf(path), headers) + REQUEST_SLACK + this.responseHeadCap(path, want);
    return this.budget.left - overhead - (orRedirected ? REDIRECT_SLACK : 0);
  }

  /** Learn the size of this server's 206 heads, without the parts that vary with the range. */
  private noteHead(status: number, res: http.IncomingMessage, headBytes: number): void {
    const cl = res.headers['content-length'];
    const cr = res.headers['content-range'];
    if (status === 206) {
      const base = headBytes - (cl ? cl.length : 0) - (cr ? cr.length : 0);
      this.head206Base = Math.max(this.head206Base ?? 0, base);
    } else if (status === 200) {
      // A 206 head is a 200 head + "Content-Range: …\r\n" and "Partial Content" for "OK".
      const base = headBytes - (cl ? cl.length : 0) + 'Content-Range: \r\n'.length + 13;
      this.head200Guess = Math.max(this.head200Guess ?? 0, base);
    }
  }

  private ifRangeOf(v: Validator): string | undefined {
    if (v.etag && !v.etag.startsWith('W/')) return v.etag;
    if (v.lastModified) return v.lastModified;
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // One exchange (following redirects)

  private async open(path: string, headers0: Record<string, string>, att: Attempt, ask0: Ask): Promise<Opened> {
    let url = this.urlOf(path);
    let headers = headers0;
    let ask = ask0;
    // A hop away from a free remote's host is paid, and so is every hop after it.
    let paid = this.paidAt(url);
    for (let hop = 0; ; hop++) {
      if (att.reason !== undefined) throw att.reason;
      paid ||= this.paidAt(url);
      const exchange = new Exchange(this.meter);
      // Reserved before a byte is written: the request head, the response head, the body asked for.
      const overhead = () => this.requestHeadBytes(url, headers) + REQUEST_SLACK + this.responseHeadCap(path, ask.body);
      if (paid && ask.fit && this.budget!.limited && overhead() + ask.body + ask.push > this.budget!.left) {
        // A hop that made the call paid, or a redirect that took some of the budget: ask for less.
        const from = Number(/^bytes=(\d+)-/.exec(headers.range ?? '')?.[1] ?? 0);
        const body = Math.max(1, this.budget!.left - overhead() - ask.push);
        ask = { ...ask, body };
        headers = { ...headers, range: `bytes=${from}-${from + body - 1}` };
      }
      const hold = paid
        ? this.budget!.reserve(overhead() + ask.body + ask.push, `${hop ? `a redirect hop to ${url.host} for ` : ''}${path}`)
        : undefined;
      if (hold) hold.live = () => exchange.wire;
      let stream: GotRequest;
      try {
        stream = this.client.stream(url, { headers });
      } catch (e) {
        hold?.settle(0);
        throw e;
      }
      att.stream = stream;
      att.exchanges.push(exchange);
      att.watchRate(this.minRate, this.rateWindowMs, (n) => this.tooSlow(n));
      // got re-emits errors on the stream; whoever reads it sees them, this only keeps an
      // unread error from crashing the process.
      stream.on('error', () => {});
      let status: number | undefined;
      let aborted = true;
      let announced: number | undefined; // body bytes the answer said it has
      let headBytes = 0;
      const hopUrl = url.href;
      let reported = false;
      const report = (): void => {
        if (reported) return;
        reported = true;
        exchange.finish();
        // We hung up on an answer with bytes still to come: the server counts what it pushed
        // before our hang-up reached it.
        const unread = announced === undefined ? PUSH_ALLOWANCE : Math.max(0, announced - (exchange.received - headBytes));
        const pushed = aborted && hungUp.has(stream) && status !== undefined ? Math.min(PUSH_ALLOWANCE, unread) : 0;
        hold?.settle(exchange.wire, pushed);
        this.opts.onExchange?.({ url: hopUrl, status, sent: exchange.sent, received: exchange.received, aborted });
      };
      att.reports.push(report);
      stream.once('request', (req: http.ClientRequest) => {
        req.once('socket', (s: Socket) => exchange.attach(s));
        // 'close' comes when the response ended (the socket back in the pool) or was abandoned;
        // the end of the try reports whatever is still open (see withRetries).
        req.once('close', report);
      });
      att.arm(this.connectMs + this.stallMs);
      let res: http.IncomingMessage;
      try {
        res = await new Promise<http.IncomingMessage>((resolve, reject) => {
          stream.once('response', (r: http.IncomingMessage) => {
            // Registered at once (got emits 'response' inside Node's own): the socket must be
            // settled before Node hands it to the next request, which happens a tick after 'end'.
            r.once('end', () => {
              aborted = false;
              exchange.settle();
            });
            resolve(r);
          });
          stream.once('error', reject);
        });
      } catch (e) {
        if (att.reason !== undefined) throw att.reason;
        // A kept-alive connection the server had closed: say so, it is not the link's fault.
        if (exchange.reused && exchange.received === 0) throw new StaleSocket(describe(e));
        throw e;
      }
      att.arm(this.stallMs);
      status = res.statusCode ?? 0;
      headBytes = headSize(res);
      const cl = res.headers['content-length'];
      const length = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
      announced = length;
      const opened: Opened = { url, stream, res, status, exchange, length, headBytes, hold, body: ask.body };

      if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
        let to: URL;
        try {
          to = new URL(res.headers.location, url);
        } catch {
          throw this.portal(path, url, `redirected to ${res.headers.location}`);
        }
        if (!this.redirectLooksRight(to, path)) {
          throw this.portal(path, url, `redirected to ${to.origin}${to.pathname}`);
        }
        if (hop >= MAX_REDIRECTS) {
          throw new PaqueteError('NETWORK', `too many redirects fetching ${url.href}`, 'check the remote URL');
        }
        await this.discard(opened, att);
        report(); // its reservation is settled before the next hop reserves its own
        url = to;
        continue;
      }
      if (status === 511) throw this.portal(path, url, 'answered 511 Network Authentication Required');
      const ce = res.headers['content-encoding'];
      if (ce && ce.toLowerCase() !== 'identity' && status >= 200 && status < 300) {
        throw new PaqueteError('NETWORK', `${url.href} came back encoded (${ce}) though we asked for raw bytes`, 'the server or a proxy on the way rewrites files; use another remote URL');
      }
      return opened;
    }
  }

  private tooSlow(bytes: number): PaqueteError {
    const s = this.rateWindowMs / 1000;
    return new PaqueteError(
      'NETWORK',
      `the link is too slow to be worth paying for: ${bytes} bytes in ${s} s from ${this.location}, under the minimum of ${this.minRate} bytes/s`,
      'everything received is kept; run the same command again on a better link (or lower --min-rate)',
    );
  }

  /** Read and drop a small body so the connection can be reused; drop the connection otherwise. */
  private async discard(op: Opened, att: Attempt): Promise<void> {
    const rest = op.length === undefined ? Infinity : op.length - (op.exchange.received - op.headBytes);
    if (op.length !== undefined && op.length <= DRAIN_LIMIT && (!op.hold || rest <= op.hold.room)) {
      await this.pump(op, att, { skip: 0, take: undefined, deliver: () => {} });
    } else {
      hangUp(op.stream);
    }
  }

  private portal(path: string, url: URL, what: string): PaqueteError {
    const kind = path === MANIFEST || path.endsWith('.json') ? 'the remote index' : 'the file';
    return new PaqueteError(
      'CAPTIVE_PORTAL',
      `the network wants you to log in (${url.href} ${what.startsWith('redirected') || what.startsWith('answered') ? what : `answered with ${what}`} instead of ${kind})`,
      PORTAL_HINT,
    );
  }

  private checkPortalHead(path: string, op: Opened): void {
    if (isHtmlType(op.res.headers['content-type'])) throw this.portal(path, op.url, 'a web page');
  }

  private httpFailure(path: string, op: Opened): Error {
    const { status, url } = op;
    const text = `${status} ${op.res.statusMessage ?? http.STATUS_CODES[status] ?? ''}`.trim();
    if (status >= 500 || status === 408 || status === 429) return new Transient(`${url.href} answered ${text}`, status);
    if ((status === 404 || status === 410) && path === MANIFEST) {
      return new PaqueteError(
        'NOT_A_REMOTE',
        `no paquete remote at ${this.location} (${url.href} answered ${text})`,
        'check the URL: a remote made by `paquete publish` has manifest.json at its top',
      );
    }
    if (status === 404 || status === 410) {
      return new PaqueteError('REMOTE_CHANGED', `${path} is gone from ${this.location} (${text})`, CHANGED_HINT);
    }
    return new PaqueteError('NETWORK', `${url.href} answered ${text}`, 'check the remote URL and that the server lets you read it');
  }

  private changed(path: string, why: string): PaqueteError {
    return new PaqueteError('REMOTE_CHANGED', `${path} changed on ${this.location} (${why})`, CHANGED_HINT);
  }

  /**
   * Compare a response's validators with the first ones seen for this immutable file (recording
   * them the first time). Returns why the file is not the same one, or undefined.
   * `ifRangeSent`: the request carried If-Range, so a 200 means the validator did not match.
   */
  private validatorProblem(path: string, res: http.IncomingMessage, size: number | undefined, ifRangeSent = false): string | undefined {
    if (path === MANIFEST) return undefined;
    const etag = res.headers.etag;
    const lastModified = res.headers['last-modified'];
    const known = this.validators.get(path);
    if (!known) {
      this.validators.set(path, { etag, lastModified, size });
      return undefined;
    }
    if (known.etag && (etag || ifRangeSent) && known.etag !== etag) return `ETag ${known.etag} became ${etag ?? 'none'}`;
    if (known.size !== undefined && size !== undefined && known.size !== size) return `size ${known.size} became ${size}`;
    if (!known.etag && !etag && known.lastModified && (lastModified || ifRangeSent) && known.lastModified !== lastModified) {
      return `Last-Modified ${known.lastModified} became ${lastModified ?? 'none'}`;
    }
    if (known.size === undefined && size !== undefined) known.size = size;
    if (!known.etag && etag) known.etag = etag;
    if (!known.lastModified && lastModified) known.lastModified = lastModified;
    return undefined;
  }

  private checkValidators(path: string, res: http.IncomingMessage, size: number | undefined): void {
    const why = this.validatorProblem(path, res, size);
    if (why) throw this.changed(path, why);
  }

  // ---------------------------------------------------------------------------------------------
  // Reading a body

  /**
   * Read the body of `op`: drop `skip` bytes, hand the next `take` (all, when undefined) to
   * `deliver`, then stop (reading a small rest to keep the connection, when its reservation
   * covers it, else hanging up). `sniff` sees the first bytes before anything is delivered and
   * may throw. `max`: a body longer than this is hung up on as soon as it shows (`tooLong`).
   *
   * `deliver` is called in the same turn as the socket read that brought its bytes (readEach):
   * a sink that lands them on disk there and returns nothing has the connection read on at the
   * link's pace, so a kill -9 finds nothing of the body in this process but the one socket read
   * it was in the middle of. Only a sink that returns a promise holds the reading up meanwhile.
   */
  private async pump(
    op: Opened,
    att: Attempt,
    spec: {
      skip: number;
      take: number | undefined;
      deliver: (b: Buffer) => void | Promise<void>;
      sniff?: (head: Buffer) => void;
      max?: number;
      tooLong?: () => Error;
    },
  ): Promise<void> {
    const { skip, take, deliver } = spec;
    const stop = take === undefined ? Infinity : skip + take;
    let p = 0; // body bytes seen
    let held: Buffer[] | undefined = spec.sniff ? [] : undefined;
    let heldLen = 0;
    let done = take === 0;
    let seen = 0; // body bytes read off the stream
    let over = false; // stop reading: the wanted bytes are all in and the rest is not worth it

    /** Hands the wanted part of `chunk` on; a promise when the sink holds the reading up. */
    const handle = (chunk: Buffer): Promise<void> | undefined => {
      const from = p;
      p += chunk.length;
      if (done) return undefined;
      const a = Math.max(0, skip - from);
      const b = Math.min(chunk.length, stop - from);
      if (p >= stop) done = true;
      if (b <= a) return undefined;
      let r: void | Promise<void>;
      try {
        r = deliver(a === 0 && b === chunk.length ? chunk : chunk.subarray(a, b));
      } catch (e) {
        throw new SinkFailure(e);
      }
      if (!r) return undefined;
      att.disarm(); // a slow sink is not a stalled link
      att.sinkBusy(true);
      return r.then(
        () => {
          att.sinkBusy(false);
          if (att.reason !== undefined) throw att.reason;
          att.arm(this.stallMs);
        },
        (e) => {
          att.sinkBusy(false);
          throw new SinkFailure(e);
        },
      );
    };

    const flushHeld = (): Promise<void> | undefined => {
      if (!held) return undefined;
      const head = Buffer.concat(held);
      held = undefined;
      spec.sniff!(head);
      return head.length ? handle(head) : undefined;
    };

    const each = (chunk: Buffer): Promise<void> | undefined => {
      att.arm(this.stallMs);
      seen += chunk.length;
      if (spec.max !== undefined && seen > spec.max) throw spec.tooLong!();
      let r: Promise<void> | undefined;
      if (held) {
        held.push(chunk);
        heldLen += chunk.length;
        if (heldLen >= SNIFF_BYTES) r = flushHeld();
      } else {
        r = handle(chunk);
      }
      const check = (): void => {
        if (!done) return;
        // Hang up unless the rest is small and its reservation covers it (reading it keeps
        // the connection for the next request).
        const rest = op.length === undefined ? Infinity : op.length - p;
        if (rest > DRAIN_LIMIT || (op.hold && rest > op.hold.room)) {
          if (rest > 0) hungUp.add(op.stream);
          over = true;
        }
      };
      // A body longer than asked ends at `take` (getRange) or `max` (get); a response head far
      // bigger than any this server sent before only shows in the budget's count.
      if (r) return r.then(check);
      check();
      return undefined;
    };

    try {
      await readEach(op.stream, each, () => over);
      const r = flushHeld();
      if (r) await r;
    } catch (e) {
      if (e instanceof SinkFailure || e instanceof PaqueteError) {
        hungUp.add(op.stream);
        att.fail(e);
        throw e;
      }
      throw att.reason ?? e;
    } finally {
      att.disarm();
      hangUp(op.stream);
    }
    if (att.reason !== undefined) throw att.reason;
    if (take !== undefined && p < stop) {
      // The body ended before the bytes we wanted (no Content-Length to tell got it was cut).
      throw new Transient(`${op.url.href}: the answer ended after ${p} bytes`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Retry loop

  private async withRetries<T>(
    path: string,
    opts: FetchOptions | undefined,
    progress: () => number,
    once: (att: Attempt) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw new PaqueteError('NETWORK', `the connection to ${this.location} was closed`);
    const signal = opts?.signal;
    if (signal?.aborted) throw interrupted(signal);
    let failures = 0;
    let staleRetries = 0;
    for (;;) {
      const att = new Attempt();
      const onAbort = (): void => att.fail(interrupted(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      const before = progress();
      const endTry = (): void => {
        att.disarm();
        signal?.removeEventListener('abort', onAbort);
        att.end();
        if (att.stream) hangUp(att.stream);
        for (const report of att.reports) report();
      };
      try {
        return await once(att);
      } catch (e0) {
        endTry();
        const e = e0 instanceof SinkFailure ? e0 : (att.reason ?? e0);
        if (e instanceof SinkFailure) throw e.error;
        if (signal?.aborted) throw interrupted(signal);
        if (e instanceof StaleSocket && staleRetries < 2) {
          staleRetries++; // a dead kept-alive connection: try at once on a new one
          continue;
        }
        const code = (e as { code?: string }).code;
        if (code && CERT_ERRORS.has(code)) {
          throw new PaqueteError(
            'NETWORK',
            `the certificate of ${this.base.host} is not valid (${code}): ${describe(e)}`,
            'a hotspot that wants you to log in can cause this: log in with a browser and run the same command again; a server with its own certificate needs its CA',
          );
        }
        if (!isTransient(e)) throw e;
        if (progress() > before) failures = 0;
        failures++;
        if (failures > this.retries) {
          throw new PaqueteError('NETWORK', `the network is gone: ${describe(e)} (fetching ${path} from ${this.location}; ${this.retries} retries)`, GONE_HINT);
        }
        const delayMs = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (failures - 1));
        this.opts.onRetry?.({ path, attempt: failures, retries: this.retries, delayMs, error: e as Error, delivered: progress() });
        await sleep(delayMs, signal);
      } finally {
        endTry();
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Remote

  async get(path: string, opts?: FetchOptions): Promise<Uint8Array> {
    const parts: Buffer[] = [];
    let have = 0;
    let validator: string | undefined; // If-Range for resuming this download
    let etagOfBody: string | undefined;
    let firstSize: number | undefined;
    let notModified = false;
    const limit = opts?.size ?? opts?.limit ?? MAX_GET_BYTES;
    const strict = path === MANIFEST || path.endsWith('.json');
    const keep = opts?.size !== undefined && path !== MANIFEST ? opts.resume : undefined;
    if (keep && keep.prefix.length <= limit) {
      parts.push(Buffer.from(keep.prefix.buffer, keep.prefix.byteOffset, keep.prefix.byteLength));
      have = keep.prefix.length;
      // Landed whole by a session killed before it used them: nothing to ask.
      if (have === limit) return keep.prefix;
    } else keep?.restart();
    const deliver = (b: Buffer): void => {
      keep?.land(b);
      parts.push(b);
      have += b.length;
    };
    const reset = (): void => {
      parts.length = 0;
      have = 0;
      keep?.restart();
    };
    let first = true; // no answer seen yet in this call (a landed prefix may come before it)
    // Hung up on before its body: longer than its signed size (a hotspot rewrote it), or than
    // the cap of what it is (the manifest's: a remote serving that is broken or hostile).
    const tooBig = (url: URL, size: number | string) =>
      opts?.size !== undefined
        ? new PaqueteError(
            'NETWORK',
            `${url.href} answered ${size} bytes for ${path}, more than the ${limit} it can be (its signed size); hung up`,
            'a hotspot or proxy on the way may be rewriting answers: log in with a browser if it wants that, then run the same command again',
          )
        : new PaqueteError('BAD_FORMAT', `${url.href} offers ${size} bytes for ${path}, more than the ${limit} a ${path === MANIFEST ? 'manifest' : 'file'} may have: refusing it`);

    await this.withRetries(path, opts, () => have, async (att) => {
      // "bytes=N-M" asks for no more than the file may have, and no more than the budget has
      // left: a server that honours Range then cannot overrun either. A 206 also tells us, for
      // free, that Range works; a server that ignores it answers 200.
      // A resumed download needs a validator, or a mutable file could come back half old, half new.
      if (have > 0 && !validator && path === MANIFEST) reset();
      const headers: Record<string, string> = {};
      if (have > 0 && validator) headers['if-range'] = validator;
      if (have === 0 && opts?.ifNoneMatch) headers['if-none-match'] = opts.ifNoneMatch.etag;
      const want = limit - have;
      headers.range = `bytes=${have}-${have + want - 1}`;
      const room = this.roomFor(path, headers, want, opts?.size === undefined);
      if (room < (opts?.size !== undefined ? want : 1)) {
        // A file of known size must come whole; one of unknown size (the manifest) needs at least
        // its first byte: name that, not the cap (a 100-byte budget "did not cover 16 MB").
        if (opts?.size === undefined) throw this.budget!.refusal(this.budget!.left - room + 1, `even the request for ${path}`);
        throw this.budget!.refusal(this.requestCost(path, want) - (this.support === 'no' ? this.pushPast(path, want) : 0), path);
      }
      headers.range = `bytes=${have}-${have + Math.max(Math.min(want, room), 1) - 1}`;
      const op = await this.open(path, headers, att, { body: Math.min(want, room), push: 0, fit: opts?.size === undefined });
      const body = op.body;
      const { status, res } = op;
      if (status === 304 && have === 0 && opts?.ifNoneMatch) {
        // Unchanged since we fetched it: a few hundred bytes of headers instead of the file.
        await this.discard(op, att);
        notModified = true;
        return;
      }
      if (status === 416 && have === 0) {
        const total = unsatisfiedTotal(res.headers['content-range']);
        if (total === 0) {
          this.support = 'yes';
          this.checkValidators(path, res, 0);
          await this.discard(op, att);
          return;
        }
      }
      if (status !== 200 && status !== 206) {
        const err = this.httpFailure(path, op);
        await this.discard(op, att);
        throw err;
      }
      this.noteHead(status, res, op.headBytes);
      this.checkPortalHead(path, op);
      let skip = 0;
      let size: number | undefined;
      if (status === 206) {
        const cr = parseContentRange(res.headers['content-range']);
        if (cr && cr.total !== undefined && cr.total > limit) {
          hangUp(op.stream);
          throw tooBig(op.url, cr.total);
        }
        if (cr && cr.total !== undefined && cr.end < cr.total) {
          // More than the budget let us ask for.
          hangUp(op.stream);
          throw this.budget!.refusal(cr.total - have, `${path} (${cr.total} bytes)`);
        }
        if (!cr || cr.start > have || (cr.total !== undefined && cr.end !== cr.total)) {
          throw new Transient(`${op.url.href} answered a range we did not ask for (${res.headers['content-range'] ?? 'no Content-Range'})`);
        }
        const etag = res.headers.etag;
        if (
          have > 0 &&
          ((firstSize !== undefined && cr.total !== undefined && cr.total !== firstSize) ||
            (etagOfBody !== undefined && etag !== undefined && etag !== etagOfBody))
        ) {
          reset();
          throw new Transient(`${path} changed while it was downloading; starting over`);
        }
        if (etag && !etag.startsWith('W/')) this.etagOn206 = true;
        this.support = 'yes';
        skip = have - cr.start;
        size = cr.total;
      } else {
        size = op.length;
        if (have > 0 && op.res.headers.etag !== undefined && op.res.headers.etag === etagOfBody && etagOfBody && !etagOfBody.startsWith('W/')) {
          skip = have; // same file, server ignores Range: drop what we already have
          this.support = 'no';
        } else {
          if (have === 0) this.support = 'no';
          reset(); // a new (or unknown) version: start over
        }
        // The whole file, whatever we asked: hang up at once on one bigger than it can be or
        // than the budget covers (nothing of its body read yet).
        if (size !== undefined && size > limit) {
          hangUp(op.stream);
          throw tooBig(op.url, size);
        }
        if (size !== undefined && size - skip > body) {
          hangUp(op.stream);
          throw this.budget!.refusal(size, `${path} (${size} bytes, from a server that ignores Range)`);
        }
      }
      // A 200 may be a login page: judge that by its first bytes before calling the file changed.
      const why = this.validatorProblem(path, res, size);
      if (why && status === 206) throw this.changed(path, why);
      if (have === 0 || first) {
        first = false;
        firstSize = size;
        etagOfBody = res.headers.etag;
        validator = etagOfBody && !etagOfBody.startsWith('W/') ? etagOfBody : res.headers['last-modified'];
      }
      await this.pump(op, att, {
        skip,
        take: undefined,
        deliver,
        // An answer of unknown length is cut off where the file or the budget ends.
        max: skip + body,
        tooLong: () => (body < want ? this.budget!.refusal(want, path) : tooBig(op.url, `more than ${limit}`)),
        sniff: have === 0 || why ? (head) => {
          if (have === 0 && looksLikeHtml(head, strict)) throw this.portal(path, op.url, 'a web page');
          if (why) throw this.changed(path, why);
        } : undefined,
      });
    });
    if (notModified) {
      opts?.onEtag?.(opts.ifNoneMatch!.etag);
      return opts!.ifNoneMatch!.cached;
    }
    opts?.onEtag?.(etagOfBody);
    const out = Buffer.concat(parts, have);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  async getRange(
    path: string,
    range: ByteRange,
    sink: (bytes: Uint8Array) => void | Promise<void>,
    opts?: FetchOptions,
  ): Promise<void> {
    const { start, end } = range;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new PaqueteError('USAGE', `bad byte range ${start}-${end} for ${path}`);
    }
    if (end === start) return;
    let pos = start; // first byte the sink has not had
    let stopAt = end; // where this request stops: its piece's end, or the prefix the budget pays for
    let cutByBudget = false;
    // Called in the turn its bytes were read (see pump): a sink that lands them returns nothing.
    const deliver = (b: Buffer): void | Promise<void> => {
      pos += b.length;
      this.received += b.length;
      return sink(b);
    };

    // One request per piece (see PieceRule): what a kill -9 can lose is the rest of the piece
    // under way. The call goes on piece after piece.
    while (pos < end && !cutByBudget) {
      await this.withRetries(path, opts, () => pos - start, (att) =>
        this.rangePiece(path, att, opts, pos, end, deliver, (to, cut) => {
          stopAt = to;
          cutByBudget = cut;
        }),
      );
      if (pos < stopAt) break;
    }
    if (pos < end) throw this.budget!.refusal(this.requestCost(path, end - pos), `the rest of ${path} (bytes ${pos}-${end - 1})`);
  }

  /**
   * One try at the next piece of a getRange call: bytes `pos` up to at most one piece more,
   * short of `end` (all of it from a server that ignores Range: it sends the file from byte 0
   * whatever is asked). `stop` is told where the request stops and whether the budget cut it.
   */
  private async rangePiece(
    path: string,
    att: Attempt,
    opts: FetchOptions | undefined,
    pos: number,
    end: number,
    deliver: (b: Buffer) => void | Promise<void>,
    stop: (stopAt: number, cutByBudget: boolean) => void,
  ): Promise<void> {
    const pieceEnd = this.support === 'no' ? end : Math.min(end, pos + pieceSize(this.pieces, this.received));
    let stopAt = pieceEnd;
    const known = this.validators.get(path);
    const headers: Record<string, string> = { range: `bytes=${pos}-${pieceEnd - 1}` };
    const ifRange = known && !this.etagOn206 ? this.ifRangeOf(known) : undefined;
    if (ifRange) headers['if-range'] = ifRange;
    // A server that ignores Range sends the file from byte 0, and pushes past our hang-up.
    const ignores = this.support === 'no';
    const room = this.roomFor(path, headers, ignores ? pieceEnd : pieceEnd - pos) - (ignores ? this.pushPast(path, pieceEnd) + pos : 0);
    if (room < pieceEnd - pos) {
      if (!opts?.prefixOk || ignores || room < 1) throw this.budget!.refusal(this.requestCost(path, (ignores ? pieceEnd : end - pos)), `${path} bytes ${pos}-${end - 1}`);
      stopAt = pos + room; // the prefix that fits; whole records of it are kept
      headers.range = `bytes=${pos}-${stopAt - 1}`;
      stop(stopAt, true);
    } else {
      stop(stopAt, false);
    }
    const op = await this.open(path, headers, att, { body: ignores ? stopAt : stopAt - pos, push: ignores ? this.pushPast(path, stopAt) : 0 });
    const { status, res } = op;
    if (status === 416) {
      const total = unsatisfiedTotal(res.headers['content-range']);
      await this.discard(op, att);
      throw this.changed(path, `it is ${total ?? 'no longer'} bytes long, shorter than the ${end} expected`);
    }
    if (status !== 200 && status !== 206) {
      const err = this.httpFailure(path, op);
      await this.discard(op, att);
      throw err;
    }
    this.noteHead(status, res, op.headBytes);
    let skip: number;
    let size: number | undefined;
    let sniff: ((head: Buffer) => void) | undefined;
    if (status === 206) {
      const cr = parseContentRange(res.headers['content-range']);
      if (!cr) {
        throw new PaqueteError('NETWORK', `${op.url.href} answered 206 without a usable Content-Range (${res.headers['content-range'] ?? 'none'})`, 'the server is broken; use another remote URL');
      }
      size = cr.total;
      this.checkValidators(path, res, size);
      const etag = res.headers.etag;
      if (etag && !etag.startsWith('W/')) this.etagOn206 = true;
      if (size !== undefined && size < end) throw this.changed(path, `it is ${size} bytes long, shorter than the ${end} expected`);
      if (cr.start > pos || cr.end < stopAt) {
        throw new PaqueteError('NETWORK', `${op.url.href} answered bytes ${cr.start}-${cr.end - 1} when asked for ${pos}-${stopAt - 1}`, 'the server is broken; use another remote URL');
      }
      if (op.length !== undefined && op.length !== cr.end - cr.start) {
        throw new PaqueteError('NETWORK', `${op.url.href} answered a Content-Length that does not match its Content-Range`, 'the server is broken; use another remote URL');
      }
      this.support = 'yes';
      skip = pos - cr.start;
    } else {
      // 200: the whole file. Either a login page, a file that changed (If-Range failed), or a
      // server that ignores Range. A login page is told by its type or its first bytes, so
      // look at those before calling the file changed.
      this.checkPortalHead(path, op);
      size = op.length;
      const why =
        this.validatorProblem(path, res, size, !!ifRange) ??
        (size !== undefined && size < end ? `it is ${size} bytes long, shorter than the ${end} expected` : undefined);
      skip = pos;
      if (op.hold && !ignores && pos > 0) {
        // Not what was reserved: the bytes before `pos` would come again. Hang up before
        // its body; the planner fetches whole files from a server like this.
        this.support = 'no';
        hangUp(op.stream);
        throw new Transient(`${op.url.href} ignores Range; asking again with that in mind`);
      }
      sniff = (head) => {
        if (looksLikeHtml(head, false)) throw this.portal(path, op.url, 'a web page');
        if (why) throw this.changed(path, why);
        this.support = 'no';
      };
    }
    await this.pump(op, att, { skip, take: stopAt - pos, deliver, sniff });
  }

  async probeRangeSupport(path = MANIFEST, opts?: FetchOptions): Promise<RangeSupport> {
    await this.withRetries(path, opts, () => 0, async (att) => {
      const headers = { range: 'bytes=0-0' };
      const op = await this.open(path, headers, att, { body: 1, push: 0 });
      const { status, res } = op;
      if (status === 416) {
        this.support = 'yes'; // an empty file, but Range is understood
        await this.discard(op, att);
        return;
      }
      if (status !== 200 && status !== 206) {
        const err = this.httpFailure(path, op);
        await this.discard(op, att);
        throw err;
      }
      this.noteHead(status, res, op.headBytes);
      if (status === 200) this.checkPortalHead(path, op);
      if (status === 206) {
        const cr = parseContentRange(res.headers['content-range']);
        if (!cr || cr.start !== 0) throw new Transient(`${op.url.href} answered a range we did not ask for`);
        this.checkValidators(path, res, cr.total);
        this.support = 'yes';
        await this.pump(op, att, { skip: 0, take: undefined, deliver: () => {} });
      } else {
        // Whole file: read it when small (keeps the connection), else hang up after a peek
        // (what the server pushed by then is charged to the budget).
        this.checkValidators(path, res, op.length);
        await this.pump(op, att, {
          skip: 0,
          take: op.length !== undefined && op.length <= DRAIN_LIMIT ? undefined : SNIFF_BYTES,
          deliver: () => {},
          sniff: (head) => {
            if (looksLikeHtml(head, path.endsWith('.json'))) throw this.portal(path, op.url, 'a web page');
          },
        });
        this.support = 'no';
      }
    });
    return this.support;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.meter.whenIdle(), new Promise<void>((resolve) => (t = setTimeout(resolve, 2000)))]);
    clearTimeout(t);
  }
}

/** A kept-alive connection that turned out dead before any answer (retried at once). */
class StaleSocket extends Transient {}

/**
 * Calls `each` with every chunk of `stream` in flowing mode: in the same turn as the socket read
 * that brought it, with nothing buffered between the two while `each` returns nothing. When it
 * returns a promise the stream is paused until that settles (chunks that still come meanwhile
 * wait their turn). Resolves when the stream ends or `stopped()` turns true after a chunk;
 * rejects on a stream error, a cut, or a throw from `each`.
 */
function readEach(stream: GotRequest, each: (chunk: Buffer) => Promise<void> | undefined, stopped: () => boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let finished = false;
    /** A promise of `each` is being waited for; chunks that come meanwhile queue up. */
    let draining = false;
    const queue: Buffer[] = [];
    let ended = false;
    /** A failure that came while draining: reported once the sink is done (never two at once). */
    let failure: { e: unknown } | undefined;
    const finish = (e?: unknown): void => {
      if (finished) return;
      finished = true;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (e === undefined) resolve();
      else reject(e);
    };
    const fail = (e: unknown): void => {
      if (draining) failure ??= { e };
      else finish(e);
    };
    const drain = async (first: Promise<void>): Promise<void> => {
      draining = true;
      stream.pause();
      try {
        await first;
        while (!failure && !stopped() && queue.length) {
          const r = each(queue.shift()!);
          if (r) await r;
        }
      } catch (e) {
        failure ??= { e };
      }
      draining = false;
      if (failure) return finish(failure.e);
      if (stopped() || ended) return finish();
      stream.resume();
    };
    const onData = (chunk: Buffer): void => {
      if (finished || failure) return;
      if (draining) {
        queue.push(chunk);
        return;
      }
      let r: Promise<void> | undefined;
      try {
        r = each(chunk);
      } catch (e) {
        return finish(e);
      }
      if (r) void drain(r);
      else if (stopped()) finish();
    };
    const onEnd = (): void => {
      ended = true;
      if (!draining) finish();
    };
    const onError = (e: Error): void => fail(e);
    const onClose = (): void => {
      if (!ended && !stream.readableEnded) fail(Object.assign(new Error('the answer was cut short'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    if (stream.errored) return finish(stream.errored);
    if (stream.readableEnded) return finish();
    if (stream.destroyed) return onClose();
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/** Status line + headers as received (nginx writes them canonically: "Name: value\r\n"). */
function headSize(res: http.IncomingMessage): number {
  let n = `HTTP/${res.httpVersion} ${res.statusCode} ${res.statusMessage ?? ''}\r\n`.length;
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) n += Buffer.byteLength(`${raw[i]}: ${raw[i + 1]}\r\n`, 'latin1');
  return n + 2;
}
