/**
 * Measuring for the wire benchmarks (bench/wire.ts, bench/stale.ts): commands timed with their
 * CPU, and bytes counted from nginx's access log (test/helpers/nginx.ts), every request.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { LogEntry, NginxServer } from '../test/helpers/nginx.js';

const run = promisify(execFile);

export interface Ran {
  stdout: string;
  stderr: string;
  wall: number;
  cpu: number;
}

/**
 * Runs a command and measures its CPU time (user + system, its own and that of the children it
 * waited for) with bash's `times`, printed to stderr after the command's own output.
 */
export async function timedRun(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<Ran> {
  const t0 = process.hrtime.bigint();
  const { stdout, stderr } = await run('bash', ['-c', '"$@"; rc=$?; times 1>&2; exit $rc', 'bash', cmd, ...args], {
    cwd: opts.cwd,
    maxBuffer: 256 << 20,
    env: { ...process.env, LC_ALL: 'C' },
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const lines = stderr.trimEnd().split('\n');
  const children = lines[lines.length - 1] ?? '';
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(children.trim());
  const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
  return { stdout, stderr: lines.slice(0, -2).join('\n'), wall, cpu };
}

export function sumRan(rs: Ran[]): { cpu: number; wall: number } {
  return { cpu: rs.reduce((s, r) => s + r.cpu, 0), wall: rs.reduce((s, r) => s + r.wall, 0) };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The access log once nginx has written every line (a line is written when a request ends). */
export async function settledLog(ng: NginxServer): Promise<LogEntry[]> {
  let prev = -1;
  for (;;) {
    await sleep(120);
    const entries = await ng.accessLog();
    if (entries.length === prev) return entries;
    prev = entries.length;
  }
}

export function wireOf(entries: LogEntry[]): { bytes: number; requests: number } {
  return { bytes: entries.reduce((s, e) => s + e.bytesSent + e.requestLength, 0), requests: entries.length };
}

/** Runs `fn` with an empty access log; returns its result and the requests it made. */
export async function counted<T>(ng: NginxServer, fn: () => Promise<T>): Promise<{ value: T; entries: LogEntry[] }> {
  await settledLog(ng);
  await ng.clearLog();
  const value = await fn();
  const entries = await settledLog(ng);
  return { value, entries };
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return 'n/a';
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} KB`;
  return `${(n / 1e6).toFixed(2)} MB`;
}

export function ratio(n: number | undefined, floor: number | undefined): string {
  if (n === undefined || !floor) return 'n/a';
  const r = n / floor;
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : `${r.toFixed(2)}x`;
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Regular files under dir: relative path → size:sha256. */
export function treeDigest(dir: string, skipTop: string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (rel === '' && skipTop.includes(e.name)) continue;
      const p = path.join(d, e.name);
      const r = rel + e.name;
      if (e.isDirectory()) walk(p, r + '/');
      else if (e.isFile()) out.set(r, sha256File(p));
    }
  };
  walk(dir, '');
  return out;
}

export function sameTree(a: string, b: string, skipTop: string[] = []): boolean {
  const x = treeDigest(a);
  const y = treeDigest(b, skipTop);
  if (x.size !== y.size) return false;
  for (const [k, v] of x) if (y.get(k) !== v) return false;
  return true;
}

export function treeBytes(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        bytes += fs.statSync(p).size;
        files++;
      }
    }
  };
  walk(dir);
  return { bytes, files };
}
