/**
 * A real nginx (/usr/sbin/nginx) serving a directory as static files, for end-to-end tests.
 *
 * Each instance has its own prefix in a temp dir (config, pid, logs, temp paths), runs in the
 * foreground as our child (`daemon off;`, master + 1 worker in their own process group), listens
 * on 127.0.0.1 on a free port, and writes a JSON access log line per request with the exact wire
 * counts: $bytes_sent (status line + headers + body) and $request_length (request line + headers
 * + body). Install nginx with scripts/ensure-system-deps.sh.
 *
 *   const ng = await startNginx(remoteDir);
 *   ... fetch ng.url + 'manifest.json' ...
 *   await ng.waitForRequests(3);
 *   const bytes = await ng.wireBytes();
 *   await ng.stop();
 *
 * Built-in test locations (they shadow files of the same name in rootDir):
 *   GET /__test/portal    200 text/html captive-portal login page (PORTAL_HTML)
 *   GET /__test/redirect  302 to http://127.0.0.1:PORT/__test/portal
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HANG_GUARD_MS } from './tmp.js';

export const NGINX_BIN = '/usr/sbin/nginx';

export const PORTAL_HTML =
  '<!DOCTYPE html><html><head><title>Park WiFi - Login</title></head><body>' +
  '<h1>Welcome to Park WiFi</h1><form method="post" action="/login">' +
  '<input name="code" placeholder="Access code"><button>Connect</button></form></body></html>\n';

export interface NginxOptions {
  /** Port to listen on; default: a free one. */
  port?: number;
  /** Answer Range requests with 200 and the whole file (`max_ranges 0;`), like some servers do. */
  ignoreRange?: boolean;
  /** `max_ranges N;`: a request with more ranges than N gets 200 and the whole file. ignoreRange wins. */
  maxRanges?: number;
  /** Raw nginx directives inserted in the server block, before the catch-all `location /`. */
  extraConfig?: string;
}

export interface LogEntry {
  method: string;
  /** Normalized, decoded path ($uri). */
  uri: string;
  status: number;
  /** $bytes_sent: every byte sent to the client for this request, status line and headers included. */
  bytesSent: number;
  /** $body_bytes_sent: the body part of bytesSent. */
  bodyBytesSent: number;
  /** $request_length: request line + headers + body as received. */
  requestLength: number;
  /** The Range header, or null without one. */
  range: string | null;
  /** nginx's connection serial number and the request's index on that connection (1-based). */
  connection: number;
  connectionRequests: number;
  /** Seconds since the epoch (ms precision) at log time. */
  msec: number;
}

export interface NginxServer {
  /** http://127.0.0.1:PORT/ */
  url: string;
  port: number;
  /** The private prefix directory (config, logs, temp). Removed by stop(). */
  prefix: string;
  rootDir: string;
  pid: number;
  /** Parsed access log, oldest first. nginx writes a line when a request ends. */
  accessLog(): Promise<LogEntry[]>;
  /** Poll the access log until it has at least n entries (default timeout 5 s); returns them. */
  waitForRequests(n: number, timeoutMs?: number): Promise<LogEntry[]>;
  /** Sum of bytesSent + requestLength over the log: every byte on the wire, both directions. */
  wireBytes(): Promise<number>;
  /** Empty the access log (nginx appends, so this is safe between requests). */
  clearLog(): Promise<void>;
  /** The error log, for failure messages. */
  errorLog(): Promise<string>;
  /** Stop nginx (TERM, then KILL of its process group after 5 s), wait for exit, remove the prefix. */
  stop(): Promise<void>;
}

export class NginxMissingError extends Error {
  constructor() {
    super(`nginx not found at ${NGINX_BIN}: run scripts/ensure-system-deps.sh (as root) to install it`);
    this.name = 'NginxMissingError';
  }
}

/** Throws NginxMissingError unless /usr/sbin/nginx is there. */
export function requireNginx(): void {
  if (!existsSync(NGINX_BIN)) throw new NginxMissingError();
}

/** A port that was free a moment ago (bind 127.0.0.1:0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: no address'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

const LOG_FORMAT =
  '{"method":"$request_method","uri":"$uri","status":$status,"bytes_sent":$bytes_sent,' +
  '"body_bytes_sent":$body_bytes_sent,"request_length":$request_length,"range":"$http_range",' +
  '"has_range":"${http_range}x","connection":$connection,"connection_requests":$connection_requests,"msec":$msec}';

function configText(o: { prefix: string; rootDir: string; port: number; opts: NginxOptions }): string {
  const { prefix, rootDir, port, opts } = o;
  const q = (s: string): string => JSON.stringify(s); // nginx accepts double-quoted strings with \" escapes
  const lines: string[] = [];
  lines.push('daemon off;', 'master_process on;', 'worker_processes 1;');
  // As root, workers would otherwise drop to `nobody` and could not read a 0700 temp dir.
  if (typeof process.getuid === 'function' && process.getuid() === 0) lines.push('user root;');
  lines.push(
    `pid ${q(path.join(prefix, 'nginx.pid'))};`,
    `error_log ${q(path.join(prefix, 'logs', 'error.log'))} info;`,
    'events { worker_connections 512; }',
    'http {',
  );
  if (existsSync('/etc/nginx/mime.types')) lines.push('  include /etc/nginx/mime.types;');
  lines.push(
    '  default_type application/octet-stream;',
    `  log_format paquete escape=json '${LOG_FORMAT}';`,
    `  access_log ${q(path.join(prefix, 'logs', 'access.log'))} paquete;`,
    `  client_body_temp_path ${q(path.join(prefix, 'tmp', 'client_body'))};`,
    `  proxy_temp_path ${q(path.join(prefix, 'tmp', 'proxy'))};`,
    `  fastcgi_temp_path ${q(path.join(prefix, 'tmp', 'fastcgi'))};`,
    `  uwsgi_temp_path ${q(path.join(prefix, 'tmp', 'uwsgi'))};`,
    `  scgi_temp_path ${q(path.join(prefix, 'tmp', 'scgi'))};`,
    '  sendfile on;',
    '  etag on;',
    '  keepalive_timeout 30s;',
    '  keepalive_requests 10000;',
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    server_name localhost;',
    `    root ${q(rootDir)};`,
  );
  if (opts.ignoreRange) lines.push('    max_ranges 0;');
  else if (opts.maxRanges !== undefined) lines.push(`    max_ranges ${Math.max(0, Math.floor(opts.maxRanges))};`);
  lines.push(
    `    location = /__test/portal { default_type text/html; add_header Cache-Control no-store; return 200 ${q(PORTAL_HTML)}; }`,
    `    location = /__test/redirect { return 302 http://127.0.0.1:${port}/__test/portal; }`,
  );
  if (opts.extraConfig) lines.push(opts.extraConfig);
  lines.push('    location / { }', '  }', '}', '');
  return lines.join('\n');
}

function parseLog(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line being written right now; the next read gets it whole
    }
    out.push({
      method: String(j.method),
      uri: String(j.uri),
      status: Number(j.status),
      bytesSent: Number(j.bytes_sent),
      bodyBytesSent: Number(j.body_bytes_sent),
      requestLength: Number(j.request_length),
      range: j.has_range === 'x' ? null : String(j.range),
      connection: Number(j.connection),
      connectionRequests: Number(j.connection_requests),
      msec: Number(j.msec),
    });
  }
  return out;
}

// Last resort if a test forgets stop(): kill the process groups and remove the prefixes at exit.
const live = new Set<ChildProcess>();
const prefixes = new Set<string>();
process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
  for (const p of prefixes) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // nothing more to do at exit
    }
  }
});

let hooked = false;
/** On SIGINT/SIGTERM/SIGHUP kill the nginx groups (they are detached, so they would not get it), then let the signal act. */
function installSignalHooks(): void {
  if (hooked) return;
  hooked = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const child of live) killGroup(child, 'SIGKILL');
      for (const p of prefixes) {
        try {
          rmSync(p, { recursive: true, force: true });
        } catch {
          // best effort
        }
      }
      // Nobody else handles it: die of the signal as we would have without this hook.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.once(sig, onSignal);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startNginx(rootDir: string, opts: NginxOptions = {}): Promise<NginxServer> {
  requireNginx();
  const root = path.resolve(rootDir);
  let lastError = '';
  // A port picked by binding :0 can be taken again before nginx binds it: retry a few times.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = opts.port ?? (await freePort());
    const prefix = await mkdtemp(path.join(os.tmpdir(), 'paquete-nginx-'));
    try {
      const server = await tryStart(prefix, root, port, opts);
      return server;
    } catch (err) {
      await rm(prefix, { recursive: true, force: true });
      lastError = (err as Error).message;
      if (opts.port !== undefined || !/Address already in use/i.test(lastError)) break;
    }
  }
  throw new Error(`startNginx failed: ${lastError}`);
}

async function tryStart(prefix: string, rootDir: string, port: number, opts: NginxOptions): Promise<NginxServer> {
  await mkdir(path.join(prefix, 'logs'), { recursive: true });
  await mkdir(path.join(prefix, 'tmp'), { recursive: true });
  const confPath = path.join(prefix, 'nginx.conf');
  const pidPath = path.join(prefix, 'nginx.pid');
  const accessPath = path.join(prefix, 'logs', 'access.log');
  const errorPath = path.join(prefix, 'logs', 'error.log');
  await writeFile(confPath, configText({ prefix, rootDir, port, opts }));
  await writeFile(accessPath, '');

  // -e: the error log before the config is read (else nginx tries /var/log/nginx/error.log).
  // Its stdout/stderr go to a file, not a pipe, so the child can be unref()'d: a test that forgets
  // stop() does not hang its process; the 'exit' hook above kills nginx then.
  const outPath = path.join(prefix, 'logs', 'stdout.log');
  const outFd = openSync(outPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(NGINX_BIN, ['-p', prefix + '/', '-c', confPath, '-e', errorPath], {
      stdio: ['ignore', outFd, outFd],
      detached: true, // own process group: stop() can kill master and worker together
    });
  } finally {
    closeSync(outFd);
  }
  live.add(child);
  installSignalHooks();
  let spawnError = '';
  const output = async (): Promise<string> =>
    `${spawnError}${await readFile(outPath, 'utf8').catch(() => '')}${await readFile(errorPath, 'utf8').catch(() => '')}`.trim();
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.on('exit', () => {
      exited = true;
      live.delete(child);
      resolve();
    });
    child.on('error', (e) => {
      spawnError = `spawn error: ${e.message}\n`;
      exited = true;
      live.delete(child);
      resolve();
    });
  });

  // nginx writes its pid file after binding the listening socket; then make sure it accepts.
  const deadline = Date.now() + HANG_GUARD_MS;
  for (;;) {
    if (exited) {
      throw new Error(`nginx exited at start (port ${port}): ${await output()}`);
    }
    if (existsSync(pidPath) && (await canConnect(port))) break;
    if (Date.now() > deadline) {
      killGroup(child, 'SIGKILL');
      await exitPromise;
      throw new Error(`nginx did not start within 10 s on port ${port}: ${await output()}`);
    }
    await sleep(20);
  }
  // The probe connection above sends no request, so it leaves no access-log line.
  child.unref();

  let stopped = false;
  const accessLog = async (): Promise<LogEntry[]> => parseLog(await readFile(accessPath, 'utf8'));
  const server: NginxServer = {
    url: `http://127.0.0.1:${port}/`,
    port,
    prefix,
    rootDir,
    pid: child.pid!,
    accessLog,
    async waitForRequests(n: number, timeoutMs = HANG_GUARD_MS): Promise<LogEntry[]> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const entries = await accessLog();
        if (entries.length >= n) return entries;
        if (Date.now() > end) {
          throw new Error(`nginx: expected ${n} requests in the access log, found ${entries.length} after ${timeoutMs} ms`);
        }
        await sleep(10);
      }
    },
    async wireBytes(): Promise<number> {
      return (await accessLog()).reduce((s, e) => s + e.bytesSent + e.requestLength, 0);
    },
    async clearLog(): Promise<void> {
      await truncate(accessPath, 0);
    },
    async errorLog(): Promise<string> {
      return readFile(errorPath, 'utf8').catch(() => '');
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      if (!exited) {
        child.ref(); // keep the process alive until nginx has exited
        killGroup(child, 'SIGTERM'); // fast shutdown
        const t = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
        await exitPromise;
        clearTimeout(t);
        // The master waits for its worker on TERM; after a KILL make sure the worker is gone too.
        killGroup(child, 'SIGKILL');
      }
      await rm(prefix, { recursive: true, force: true });
      prefixes.delete(prefix);
    },
  };
  prefixes.add(prefix);
  return server;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // group already gone
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
