/**
 * A small TCP proxy on 127.0.0.1 between an HTTP client and an upstream (nginx), with
 * programmable faults, for tests of a park hotspot: dropped links, stalls, a slow link, a
 * captive portal.
 *
 *   const proxy = await startFaultProxy(nginx.url);
 *   proxy.cutAfterBytes(10_000);           // every response is cut after 10 000 bytes
 *   ... client uses proxy.url ...
 *   proxy.reset();                         // transparent again
 *   await proxy.close();
 *
 * How it decides, so tests are deterministic:
 * - The client→upstream direction is parsed just enough to find request boundaries (request head
 *   up to CRLFCRLF, body by Content-Length; no pipelining, as Node's and got's clients do). The
 *   mode (transparent / portal / redirect / down) is read at the start of *each request*, so rules
 *   set between two requests apply to the second one even on a reused keep-alive connection.
 * - Faults on the upstream→client direction (cut, stall, throttle) read the current rules on every
 *   piece of data. Byte counts start at zero when a rule is set, and are kept per `scope`:
 *     'request'    (default) response bytes since the current request started on that connection
 *     'connection' response bytes on that connection (all its requests)
 *     'total'      response bytes across all connections; the rule fires once, then is removed
 * - A cut sends exactly the allowed bytes and then closes the client connection with FIN
 *   (`end()`), so the client sees exactly n bytes and then EOF; `{ reset: true }` sends an RST
 *   instead (the client then sees an error; bytes still in flight may be lost to it).
 * - Locally generated answers (portal, redirect) carry `Connection: close` and close the
 *   connection after them; they never contact the upstream.
 */
import net from 'node:net';

export type Scope = 'request' | 'connection' | 'total';

export const PROXY_PORTAL_HTML =
  '<!DOCTYPE html><html><head><title>Hotspot Login</title></head><body>' +
  '<h1>Hotspot</h1><p>Buy a card to get online.</p><form method="post" action="/login">' +
  '<input name="user"><input name="password" type="password"><button>Log in</button></form></body></html>\n';

export interface ProxyStats {
  /** Client connections accepted. */
  connections: number;
  /** Request heads seen. */
  requests: number;
  /** Requests answered locally (portal/redirect), never sent upstream. */
  localAnswers: number;
  bytesFromClient: number;
  bytesToUpstream: number;
  bytesFromUpstream: number;
  /** Everything written to clients, local answers included. */
  bytesToClient: number;
}

interface CountRule {
  n: number;
  scope: Scope;
  total: number;
  perConn: WeakMap<Conn, number>;
  perReq: WeakMap<Conn, { req: number; count: number }>;
}
interface CutRule extends CountRule {
  kind: 'cut';
  reset: boolean;
}
interface StallRule extends CountRule {
  kind: 'stall';
  ms: number;
  firedTotal: boolean;
  firedConn: WeakSet<Conn>;
  firedReq: WeakMap<Conn, number>;
}

interface Conn {
  id: number;
  client: net.Socket;
  upstream: net.Socket | null;
  dead: boolean;
  /** Index of the current request on this connection (1-based; 0 before the first). */
  req: number;
  // request parsing
  head: Buffer;
  bodyLeft: number;
  raw: boolean; // unparseable traffic: pass everything through from here on
  // response pump
  queue: Buffer[];
  pumping: boolean;
  upstreamEnded: boolean;
}

export interface CutOptions {
  scope?: Scope;
  /** Close with RST instead of FIN. */
  reset?: boolean;
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT/ */
  url: string;
  port: number;
  readonly stats: ProxyStats;
  /** Close the client connection after forwarding n response bytes (counted per `scope`). */
  cutAfterBytes(n: number, opts?: CutOptions): void;
  /** After n response bytes (per `scope`), stop forwarding for ms (Infinity: until reset()/close()). Once per scope unit. */
  stallAfterBytes(n: number, ms: number, opts?: { scope?: Scope }): void;
  /** Limit responses to about bytesPerSec, shared by all connections. */
  throttle(bytesPerSec: number): void;
  /** Answer every request with 200 and an HTML login page, without contacting upstream. */
  portal(html?: string): void;
  /** Answer every request with 302 to http://127.0.0.1:PORT/login (this proxy), which serves the portal page. */
  redirectToPortal(location?: string): void;
  /** Network gone: close every open connection now and every new one at once, without a byte. */
  down(): void;
  /** Close every open connection now (a momentary drop); rules stay as they are. */
  dropConnections(): void;
  /** Back to transparent: removes every rule and releases stalls. Counters are kept. */
  reset(): void;
  /** Zero the stats counters. */
  resetStats(): void;
  /**
   * Bytes counted in `bytesToClient` that are still in this process's write buffers, not yet
   * handed to the kernel (a client that dies now never gets them, though they were counted).
   */
  unsentBytes(): number;
  /** Resolves once no client connection is open (a killed client's sockets are all closed). */
  whenIdle(): Promise<void>;
  /** Stop listening and destroy every socket. */
  close(): Promise<void>;
}

type Mode = { kind: 'transparent' } | { kind: 'portal'; html: string } | { kind: 'redirect'; location: string } | { kind: 'down' };

const HEAD_LIMIT = 64 * 1024;

export async function startFaultProxy(
  upstream: string | number | { host?: string; port: number },
  opts: { port?: number } = {},
): Promise<FaultProxy> {
  let upHost = '127.0.0.1';
  let upPort: number;
  if (typeof upstream === 'number') upPort = upstream;
  else if (typeof upstream === 'string') {
    const u = new URL(upstream);
    upHost = u.hostname;
    upPort = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  } else {
    upHost = upstream.host ?? upHost;
    upPort = upstream.port;
  }

  const stats: ProxyStats = {
    connections: 0,
    requests: 0,
    localAnswers: 0,
    bytesFromClient: 0,
    bytesToUpstream: 0,
    bytesFromUpstream: 0,
    bytesToClient: 0,
  };
  const conns = new Set<Conn>();
  let nextId = 1;
  let mode: Mode = { kind: 'transparent' };
  let cut: CutRule | undefined;
  let stall: StallRule | undefined;
  let bytesPerSec: number | undefined;
  let nextSlot = 0; // throttle: when the link is free again (ms, performance.now())
  let closed = false;
  let port = 0;

  // Waits that reset()/close() can end early.
  const waiters = new Set<{ timer?: NodeJS.Timeout; resolve: () => void }>();
  const wait = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const w: { timer?: NodeJS.Timeout; resolve: () => void } = { resolve };
      const done = (): void => {
        if (w.timer) clearTimeout(w.timer);
        waiters.delete(w);
        resolve();
      };
      w.resolve = done;
      if (Number.isFinite(ms)) w.timer = setTimeout(done, Math.max(0, ms));
      waiters.add(w);
    });
  const releaseWaits = (): void => {
    for (const w of [...waiters]) w.resolve();
  };

  const newCount = (n: number, scope: Scope) => ({
    n: Math.max(0, Math.floor(n)),
    scope,
    total: 0,
    perConn: new WeakMap<Conn, number>(),
    perReq: new WeakMap<Conn, { req: number; count: number }>(),
  });
  const used = (r: CountRule, c: Conn): number => {
    if (r.scope === 'total') return r.total;
    if (r.scope === 'connection') return r.perConn.get(c) ?? 0;
    const e = r.perReq.get(c);
    return e && e.req === c.req ? e.count : 0;
  };
  const add = (r: CountRule, c: Conn, n: number): void => {
    if (r.scope === 'total') r.total += n;
    else if (r.scope === 'connection') r.perConn.set(c, (r.perConn.get(c) ?? 0) + n);
    else r.perReq.set(c, { req: c.req, count: used(r, c) + n });
  };
  const stallFired = (r: StallRule, c: Conn): boolean =>
    r.scope === 'total' ? r.firedTotal : r.scope === 'connection' ? r.firedConn.has(c) : r.firedReq.get(c) === c.req;
  const markStall = (r: StallRule, c: Conn): void => {
    if (r.scope === 'total') r.firedTotal = true;
    else if (r.scope === 'connection') r.firedConn.add(c);
    else r.firedReq.set(c, c.req);
  };

  const kill = (c: Conn): void => {
    if (c.dead) return;
    c.dead = true;
    c.queue = [];
    c.client.destroy();
    c.upstream?.destroy();
  };

  const doCut = (c: Conn, r: CutRule): void => {
    if (r.scope === 'total' && cut === r) cut = undefined; // fires once
    c.dead = true;
    c.queue = [];
    c.upstream?.destroy();
    if (r.reset) {
      // Let the written bytes reach the kernel first, then RST.
      c.client.write(Buffer.alloc(0), () => c.client.resetAndDestroy());
    } else {
      c.client.end();
    }
  };

  const writeClient = (c: Conn, b: Buffer): boolean => {
    stats.bytesToClient += b.length;
    return c.client.write(b);
  };

  /** Forward one upstream chunk to the client, applying the current rules. */
  const sendDown = async (c: Conn, buf: Buffer): Promise<void> => {
    let off = 0;
    while (off < buf.length) {
      if (c.dead || closed) return;
      let n = buf.length - off;
      const cr = cut;
      if (cr) {
        const left = cr.n - used(cr, c);
        if (left <= 0) return doCut(c, cr);
        n = Math.min(n, left);
      }
      const sr = stall;
      if (sr && !stallFired(sr, c)) {
        const left = sr.n - used(sr, c);
        if (left <= 0) {
          markStall(sr, c);
          await wait(sr.ms);
          continue;
        }
        n = Math.min(n, left);
      }
      const bps = bytesPerSec;
      if (bps !== undefined) {
        n = Math.min(n, Math.max(1, Math.min(16384, Math.floor(bps / 20))));
        const now = performance.now();
        const start = Math.max(now, nextSlot);
        nextSlot = start + (n * 1000) / bps;
        if (start > now + 1) await wait(start - now);
        if (c.dead || closed) return;
      }
      const piece = buf.subarray(off, off + n);
      off += n;
      if (cr) add(cr, c, n);
      if (sr) add(sr, c, n);
      const ok = writeClient(c, piece);
      // Cut right when the limit is reached, even if no more data ever comes.
      if (cr && cut === cr && used(cr, c) >= cr.n) return doCut(c, cr);
      if (!ok && !c.dead) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            c.client.off('drain', done);
            c.client.off('close', done);
            resolve();
          };
          c.client.on('drain', done);
          c.client.on('close', done);
        });
      }
    }
  };

  const pump = async (c: Conn): Promise<void> => {
    if (c.pumping) return;
    c.pumping = true;
    c.upstream?.pause();
    try {
      while (c.queue.length > 0 && !c.dead) {
        await sendDown(c, c.queue.shift()!);
      }
    } finally {
      c.pumping = false;
    }
    if (c.dead) return;
    if (c.upstreamEnded) c.client.end(); // upstream finished (or went away): pass on what came, then EOF
    else c.upstream?.resume();
  };

  const connectUpstream = (c: Conn): net.Socket => {
    const up = net.connect({ host: upHost, port: upPort, noDelay: true });
    up.unref(); // see server.unref() below
    c.upstream = up;
    up.on('data', (b: Buffer) => {
      stats.bytesFromUpstream += b.length;
      if (c.dead) return;
      c.queue.push(b);
      void pump(c);
    });
    up.on('end', () => {
      c.upstreamEnded = true;
      if (!c.pumping && !c.dead) c.client.end();
    });
    up.on('error', () => {
      // e.g. ECONNREFUSED, or a reset: the client gets what was already queued, then EOF
      c.upstreamEnded = true;
    });
    up.on('close', () => {
      c.upstreamEnded = true;
      if (!c.pumping && !c.dead) c.client.end();
    });
    return up;
  };

  const toUpstream = (c: Conn, b: Buffer): void => {
    if (b.length === 0 || c.dead) return;
    const up = c.upstream ?? connectUpstream(c);
    stats.bytesToUpstream += b.length;
    up.write(b);
  };

  const answerLocally = (c: Conn, m: Mode, method: string, target: string): void => {
    stats.localAnswers++;
    let pathOnly = target;
    try {
      pathOnly = new URL(target, 'http://x').pathname;
    } catch {
      // keep the raw target
    }
    const portalPage = m.kind === 'portal' || (m.kind === 'redirect' && pathOnly === '/login');
    let head: string;
    let body = '';
    if (portalPage) {
      body = m.kind === 'portal' ? m.html : PROXY_PORTAL_HTML;
      head =
        'HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
    } else {
      const location = m.kind === 'redirect' ? m.location : '/login';
      body = `<html><body><a href="${location}">Log in</a></body></html>\n`;
      head =
        `HTTP/1.1 302 Found\r\nLocation: ${location}\r\nContent-Type: text/html\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
    }
    const bytes = Buffer.from(method === 'HEAD' ? head : head + body);
    c.dead = true; // nothing more from this connection goes anywhere
    c.upstream?.destroy();
    stats.bytesToClient += bytes.length;
    c.client.end(bytes);
  };

  /** Client→upstream: split into requests, deciding each request's fate when its head is complete. */
  const fromClient = (c: Conn, data: Buffer): void => {
    stats.bytesFromClient += data.length;
    while (data.length > 0 && !c.dead) {
      if (c.raw) return toUpstream(c, data);
      if (c.bodyLeft > 0) {
        const take = Math.min(c.bodyLeft, data.length);
        toUpstream(c, data.subarray(0, take));
        c.bodyLeft -= take;
        data = data.subarray(take);
        continue;
      }
      c.head = c.head.length ? Buffer.concat([c.head, data]) : data;
      data = Buffer.alloc(0);
      const end = c.head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (c.head.length > HEAD_LIMIT) {
          c.raw = true;
          const h = c.head;
          c.head = Buffer.alloc(0);
          toUpstream(c, h);
        }
        return;
      }
      const headBytes = c.head.subarray(0, end + 4);
      data = c.head.subarray(end + 4);
      c.head = Buffer.alloc(0);
      const text = headBytes.toString('latin1');
      const [requestLine = '', ...headerLines] = text.split('\r\n');
      const [method = '', target = '/'] = requestLine.split(' ');
      let contentLength = 0;
      for (const line of headerLines) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const name = line.slice(0, i).trim().toLowerCase();
        const value = line.slice(i + 1).trim();
        if (name === 'content-length') contentLength = Number(value) || 0;
        if (name === 'transfer-encoding' && /chunked/i.test(value)) c.raw = true;
        if (name === 'upgrade') c.raw = true;
      }
      c.req++;
      stats.requests++;
      const m = mode;
      if (m.kind === 'down') return kill(c);
      if (m.kind === 'portal' || m.kind === 'redirect') return answerLocally(c, m, method, target);
      toUpstream(c, headBytes);
      c.bodyLeft = c.raw ? 0 : contentLength;
    }
  };

  const server = net.createServer((client) => {
    stats.connections++;
    const c: Conn = {
      id: nextId++,
      client,
      upstream: null,
      dead: false,
      req: 0,
      head: Buffer.alloc(0),
      bodyLeft: 0,
      raw: false,
      queue: [],
      pumping: false,
      upstreamEnded: false,
    };
    if (closed || mode.kind === 'down') {
      client.destroy();
      return;
    }
    conns.add(c);
    // A relay forwards each piece as it comes, as a hotspot's router does: Nagle would hold a
    // response's short tail back for the client's delayed ACK (40 ms a request on loopback).
    client.setNoDelay(true);
    client.unref();
    client.on('data', (b: Buffer) => fromClient(c, b));
    client.on('end', () => {
      if (!c.dead) c.upstream?.end();
    });
    client.on('error', () => kill(c));
    client.on('close', () => {
      conns.delete(c);
      if (!c.dead) {
        c.dead = true;
        c.upstream?.destroy();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // The proxy only ever acts for a client that holds its own ref'd handle (a socket in this
  // process, or a child process), so it keeps nothing alive by itself: a test that forgets
  // close() exits instead of hanging. close() refs the server again while it waits.
  server.unref();
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('faultproxy: no address');
  port = addr.port;

  const proxy: FaultProxy = {
    url: `http://127.0.0.1:${port}/`,
    port,
    stats,
    cutAfterBytes(n, o = {}) {
      cut = { kind: 'cut', reset: o.reset ?? false, ...newCount(n, o.scope ?? 'request') };
    },
    stallAfterBytes(n, ms, o = {}) {
      stall = {
        kind: 'stall',
        ms,
        firedTotal: false,
        firedConn: new WeakSet<Conn>(),
        firedReq: new WeakMap<Conn, number>(),
        ...newCount(n, o.scope ?? 'request'),
      };
    },
    throttle(bps) {
      if (!(bps > 0)) throw new RangeError('throttle: bytesPerSec must be > 0');
      bytesPerSec = bps;
    },
    portal(html = PROXY_PORTAL_HTML) {
      mode = { kind: 'portal', html };
    },
    redirectToPortal(location = `http://127.0.0.1:${port}/login`) {
      mode = { kind: 'redirect', location };
    },
    down() {
      mode = { kind: 'down' };
      for (const c of [...conns]) kill(c);
    },
    dropConnections() {
      for (const c of [...conns]) kill(c);
    },
    reset() {
      mode = { kind: 'transparent' };
      cut = undefined;
      stall = undefined;
      bytesPerSec = undefined;
      nextSlot = 0;
      releaseWaits();
    },
    resetStats() {
      for (const k of Object.keys(stats) as Array<keyof ProxyStats>) stats[k] = 0;
    },
    unsentBytes() {
      let n = 0;
      for (const c of conns) if (!c.client.destroyed) n += c.client.writableLength;
      return n;
    },
    async whenIdle() {
      while (conns.size > 0) await new Promise((r) => setTimeout(r, 10));
    },
    async close() {
      if (closed) return;
      closed = true;
      releaseWaits();
      server.ref();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of [...conns]) kill(c);
      conns.clear();
      await done;
    },
  };
  return proxy;
}

/**
 * Resolves once `bytes` more have gone through the proxy to the client (or the process ended):
 * faults land mid-transfer whatever the machine's load does to start-up time.
 */
export async function whenBytesFlow(proxy: FaultProxy, bytes: number, exit: Promise<unknown>): Promise<void> {
  let exited = false;
  void exit.then(() => (exited = true));
  const target = proxy.stats.bytesToClient + bytes;
  while (!exited && proxy.stats.bytesToClient < target) await new Promise((r) => setTimeout(r, 10));
}
