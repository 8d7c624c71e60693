/**
 * Wire byte meter for HTTP remotes: counts what crossed each TCP connection in both directions,
 * read from the sockets' own counters (`bytesWritten` / `bytesRead`), so request line, headers
 * and body, status line, headers and body are all in. Over plain HTTP this is exactly what the
 * server's access log counts (nginx: `$request_length` + `$bytes_sent`), request by request,
 * keep-alive or not; the tests check that against a real nginx.
 *
 * Differences that remain, all small and all documented here:
 * - TCP/IP framing below the socket is counted by neither side (a few % on top of everything).
 * - HTTPS: we count the TCP payload, i.e. TLS handshakes and record overhead too (the real cost
 *   on the card); nginx's `$bytes_sent` counts the plaintext, so we are higher by that overhead.
 * - A response we abandon early (the tail of a whole file from a server that ignores Range):
 *   the server counts what it pushed into the connection before our hang-up reached it; we
 *   count what we read. Up to a socket buffer or so more on the server side.
 * - A request written onto a kept-alive connection that the server had just closed: we count it,
 *   the server never logs it (a rare ~150 bytes).
 */
import http from 'node:http';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WireMeter } from './remote.js';

interface Mark {
  read: number;
  written: number;
}

/** Bytes of one socket so far. After the socket closes Node keeps the final counts. */
const countsOf = (s: Socket): Mark => ({ read: s.bytesRead ?? 0, written: s.bytesWritten ?? 0 });

export class SocketMeter implements WireMeter {
  /** Bytes of sockets that have closed. */
  private closedBytes = 0;
  private readonly live = new Set<Socket>();
  private readonly seen = new WeakSet<Socket>();
  /** Where the last finished exchange on each socket left its counters. */
  private readonly settled = new WeakMap<Socket, Mark>();
  private idleWaiters: Array<() => void> = [];

  get total(): number {
    let t = this.closedBytes;
    for (const s of this.live) {
      const c = countsOf(s);
      t += c.read + c.written;
    }
    return t;
  }

  /** Sockets still open (kept alive or busy). */
  get openSockets(): number {
    return this.live.size;
  }

  /** TLS socket → the TCP socket under it (TLS sockets count plaintext; the wire is below). */
  private readonly rawOf = new WeakMap<Socket, Socket>();

  /** The socket whose counters are the wire for `socket` (itself, or the TCP socket under TLS). */
  wireSocket(socket: Socket): Socket {
    return this.rawOf.get(socket) ?? socket;
  }

  /** Count `raw` for the TLS socket `tls` layered on it. */
  alias(tls: Socket, raw: Socket): void {
    this.rawOf.set(tls, raw);
    this.track(raw);
  }

  /** Start counting a socket (idempotent). Every socket our agents hand to a request passes here. */
  track(socket: Socket): void {
    if (this.seen.has(socket)) return;
    this.seen.add(socket);
    if (socket.destroyed) {
      const c = countsOf(socket);
      this.closedBytes += c.read + c.written;
      return;
    }
    this.live.add(socket);
    socket.once('close', () => {
      if (!this.live.delete(socket)) return;
      const c = countsOf(socket);
      this.closedBytes += c.read + c.written;
      if (this.live.size === 0) {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
    });
  }

  /** Whether an exchange already ran on this socket (a kept-alive one: it may have gone stale). */
  wasUsed(socket: Socket): boolean {
    return this.settled.has(socket);
  }

  /** Where a new exchange on `socket` starts counting: where the previous one ended (or 0). */
  baseline(socket: Socket): Mark {
    return this.settled.get(socket) ?? { read: 0, written: 0 };
  }

  /**
   * Mark the end of an exchange on `socket`. Must run before the socket carries the next request:
   * call it from the response's 'end' event (Node hands the socket on only on a later tick).
   */
  settle(socket: Socket): void {
    this.settled.set(socket, countsOf(socket));
  }

  /** Resolves when every socket has closed (after the agent was destroyed). */
  whenIdle(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** The bytes of one request/response exchange on one socket. */
export class Exchange {
  private socket: Socket | undefined;
  private base: Mark = { read: 0, written: 0 };
  private finalCounts: Mark | undefined;
  /** True when the socket had carried an exchange before (kept alive). */
  reused = false;

  constructor(private readonly meter: SocketMeter) {}

  attach(socket0: Socket): void {
    if (this.socket) return;
    const socket = this.meter.wireSocket(socket0);
    this.meter.track(socket);
    this.socket = socket;
    this.reused = this.meter.wasUsed(socket);
    this.base = this.meter.baseline(socket);
  }

  /** Bytes sent so far in this exchange. */
  get sent(): number {
    const c = this.finalCounts ?? (this.socket ? countsOf(this.socket) : this.base);
    return c.written - this.base.written;
  }

  /** Bytes received so far in this exchange. */
  get received(): number {
    const c = this.finalCounts ?? (this.socket ? countsOf(this.socket) : this.base);
    return c.read - this.base.read;
  }

  get wire(): number {
    return this.sent + this.received;
  }

  /** The response ended normally: the socket may carry the next request. */
  settle(): void {
    if (!this.socket || this.finalCounts) return;
    this.finalCounts = countsOf(this.socket);
    this.meter.settle(this.socket);
  }

  /** The exchange is over (ended or abandoned); freeze its numbers. */
  finish(): void {
    if (!this.socket || this.finalCounts) return;
    this.finalCounts = countsOf(this.socket);
    // A socket that is still open here was not handed back to the pool before this point
    // (we destroyed it, or the response ended and settle() already ran).
    if (this.socket.destroyed) this.meter.settle(this.socket);
  }
}

/**
 * Keep-alive agents whose every connection is counted by `meter` from the moment it is made
 * (a TLS handshake that fails still cost bytes). For HTTPS the TCP socket is made here and TLS
 * is layered on it, so the meter sees ciphertext, handshakes and record overhead included.
 */
export function meteredAgents(
  meter: SocketMeter,
  options: http.AgentOptions,
  tls: Pick<https.AgentOptions, 'ca' | 'rejectUnauthorized'> = {},
): { http: http.Agent; https: https.Agent } {
  class MeteredHttpAgent extends http.Agent {
    override createConnection(
      opts: http.ClientRequestArgs,
      cb?: (err: Error | null, stream: Duplex) => void,
    ): Duplex | null | undefined {
      const s = super.createConnection(opts, cb);
      if (s instanceof net.Socket) meter.track(s);
      return s;
    }
  }
  class MeteredHttpsAgent extends https.Agent {
    override createConnection(
      opts: https.RequestOptions,
      cb?: (err: Error | null, stream: Duplex) => void,
    ): Duplex | null | undefined {
      const raw = net.connect({
        host: opts.host ?? opts.hostname ?? 'localhost',
        port: Number(opts.port ?? 443),
        family: opts.family,
        localAddress: opts.localAddress,
        lookup: opts.lookup,
      } as net.NetConnectOpts);
      meter.track(raw);
      const s = super.createConnection({ ...opts, socket: raw } as https.RequestOptions, cb);
      if (s instanceof net.Socket) meter.alias(s, raw);
      return s;
    }
  }
  return { http: new MeteredHttpAgent(options), https: new MeteredHttpsAgent({ ...options, ...tls }) };
}
