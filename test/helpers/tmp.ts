/**
 * Test helpers: temporary directories with a cleanup registry, and a promise-based process runner.
 *
 *   const dir = await tmpDir('sync-');            // removed by cleanupAll() (or at process exit)
 *   after(cleanupAll);                             // node:test
 *
 *   const r = await runPaquete(['status', '--json'], { cwd: dir }).done;
 *   assert.equal(r.code, 0, r.stderr);
 *
 *   const p = runPaquete(['sync'], { cwd: dir });
 *   await p.waitForOutput(/chunk/);               // something happened
 *   p.kill('SIGKILL');                             // crash it
 *   const r2 = await p.done;                       // r2.signal === 'SIGKILL'
 *
 * Set PAQUETE_KEEP_TMP=1 to keep the directories for a post-mortem (their paths go to stderr).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const keepTmp = process.env.PAQUETE_KEEP_TMP === '1';
const dirs = new Set<string>();
const hooks: Array<() => void | Promise<void>> = [];

/**
 * The publisher's state (src/publish/publisher-cache.ts) of every publish a test makes, in-process
 * or by the CLI it spawns, goes to a directory of this test process, not the user's ~/.local/state.
 */
if (!process.env.PAQUETE_TEST_STATE) {
  process.env.XDG_STATE_HOME = process.env.PAQUETE_TEST_STATE = mkdtempSync(path.join(os.tmpdir(), 'paquete-state-'));
  dirs.add(process.env.XDG_STATE_HOME);
}

/** A fresh empty directory under os.tmpdir(); registered for cleanupAll(). */
export async function tmpDir(prefix = 'paquete-test-'): Promise<string> {
  const safe = prefix.replace(/[^A-Za-z0-9._-]/g, '_');
  const dir = await mkdtemp(path.join(os.tmpdir(), safe));
  dirs.add(dir);
  return dir;
}

/** Register something to run in cleanupAll() (servers to stop, …). Runs in reverse order. */
export function onCleanup(fn: () => void | Promise<void>): void {
  hooks.push(fn);
}

/** Run registered cleanup hooks (newest first), then remove every directory made by tmpDir(). */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  while (hooks.length > 0) {
    const fn = hooks.pop()!;
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  }
  for (const dir of [...dirs]) {
    dirs.delete(dir);
    if (keepTmp) {
      process.stderr.write(`PAQUETE_KEEP_TMP: kept ${dir}\n`);
      continue;
    }
    try {
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, 'cleanupAll: several cleanups failed');
}

// Last resort: a test that forgot cleanupAll() still leaves no directories behind.
process.on('exit', () => {
  if (keepTmp) return;
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // nothing more to do at exit
    }
  }
});

/**
 * How long a command may run before a test calls it hung. A guard against a hang, never a verdict
 * on speed: on CI's busy 2-core box a publish with 4 s of CPU took over 60 s of wall time (session
 * 6), so anything near the command's real duration would make the verdict depend on load.
 */
export const HANG_GUARD_MS = 600_000;

/**
 * Waits until `cond` holds, looking every 10 ms: what ends the wait is the event, not the clock;
 * HANG_GUARD_MS only turns a condition that never comes into a failure instead of a hang.
 */
export async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + HANG_GUARD_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${HANG_GUARD_MS} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RunOptions {
  cwd?: string;
  /** Added to (and overriding) process.env, unless `replaceEnv` is true. `undefined` values unset a variable. */
  env?: Record<string, string | undefined>;
  replaceEnv?: boolean;
  /** Kill the process (with `timeoutSignal`, default SIGKILL) after this many ms (default HANG_GUARD_MS); `timedOut` is then true. */
  timeoutMs?: number;
  timeoutSignal?: NodeJS.Signals;
  /** Written to stdin, which is then closed. Without it stdin is closed at once (like CI: no input). */
  input?: string | Uint8Array;
}

export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export interface Running {
  child: ChildProcess;
  pid: number | undefined;
  /** Resolves when the process has exited and its output is closed. Never rejects (spawn errors give code 127). */
  done: Promise<RunResult>;
  /** Send a signal (default SIGTERM). False if the process is already gone. */
  kill(signal?: NodeJS.Signals): boolean;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /**
   * Resolves once stdout (or stderr, or either: `stream: 'any'`, the default) matches; rejects if
   * the process exits first or `timeoutMs` (default HANG_GUARD_MS) passes.
   */
  waitForOutput(pattern: string | RegExp, opts?: { stream?: 'stdout' | 'stderr' | 'any'; timeoutMs?: number }): Promise<void>;
}

/** Spawn `cmd args` (no shell), capturing stdout/stderr. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Running {
  const env: NodeJS.ProcessEnv = opts.replaceEnv ? {} : { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const started = performance.now();
  const child = spawn(cmd, [...args], { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let timedOut = false;
  let exited = false;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    out += s;
    notify();
  });
  child.stderr!.on('data', (s: string) => {
    err += s;
    notify();
  });
  child.stdin!.on('error', () => {
    // the child may exit without reading its input (EPIPE): not our failure
  });
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else child.stdin!.end();

  const timer = setTimeout(() => {
    timedOut = true;
    child.kill(opts.timeoutSignal ?? 'SIGKILL');
  }, opts.timeoutMs ?? HANG_GUARD_MS);

  const done = new Promise<RunResult>((resolve) => {
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
    });
    // 'close' comes after 'exit' and after stdio closed, so the output is complete.
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      if (spawnError && signal === null) {
        err += `${err && !err.endsWith('\n') ? '\n' : ''}spawn ${cmd}: ${spawnError.message}\n`;
        code = 127;
      }
      notify();
      resolve({ code, signal, stdout: out, stderr: err, timedOut, durationMs: performance.now() - started });
    });
  });

  const waitForOutput: Running['waitForOutput'] = (pattern, o = {}) => {
    const stream = o.stream ?? 'any';
    const test = (): boolean => {
      const texts = stream === 'stdout' ? [out] : stream === 'stderr' ? [err] : [out, err];
      return texts.some((t) => (typeof pattern === 'string' ? t.includes(pattern) : pattern.test(t)));
    };
    return new Promise<void>((resolve, reject) => {
      if (test()) return resolve();
      const t = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`waitForOutput(${String(pattern)}): timed out after ${o.timeoutMs ?? HANG_GUARD_MS} ms\nstdout: ${out}\nstderr: ${err}`));
      }, o.timeoutMs ?? HANG_GUARD_MS);
      const check = (): void => {
        if (test()) {
          clearTimeout(t);
          listeners.delete(check);
          resolve();
        } else if (exited) {
          clearTimeout(t);
          listeners.delete(check);
          reject(new Error(`waitForOutput(${String(pattern)}): process exited first\nstdout: ${out}\nstderr: ${err}`));
        }
      };
      listeners.add(check);
    });
  };

  return {
    child,
    pid: child.pid,
    done,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => (exited ? false : child.kill(signal)),
    stdout: () => out,
    stderr: () => err,
    waitForOutput,
  };
}

/** Shorthand: run to completion. */
export function exec(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(cmd, args, opts).done;
}

/** The repository root (the directory holding paquete's package.json), found from this file. */
export const repoRoot: string = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'paquete') return dir;
      } catch {
        // keep looking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`tmp.ts: no paquete package.json above ${start}`);
    dir = up;
  }
}

/** Path of the CLI entry point, bin/paquete.js. */
export const paqueteBin: string = path.join(repoRoot, 'bin', 'paquete.js');

/** Run the paquete CLI as `node bin/paquete.js ARGS…` (with this test's node binary). */
export function runPaquete(args: readonly string[], opts: RunOptions = {}): Running {
  return run(process.execPath, [paqueteBin, ...args], opts);
}

/**
 * A `paquete(args, cwd, expectCode = 0, env = defaultEnv)` that runs the CLI and asserts its exit
 * code (null: any), printing both streams when it differs, and that no stack trace reached the
 * user (a stack trace is a bug whatever the exit code).
 */
export function paqueteExpecting(defaultEnv: Record<string, string | undefined> = {}) {
  return async (args: string[], cwd: string, expectCode: number | null = 0, env: Record<string, string | undefined> = defaultEnv): Promise<RunResult> => {
    const r = await runPaquete(args, { cwd, env }).done;
    const exited = r.timedOut ? `null (killed: still running after ${HANG_GUARD_MS} ms)` : String(r.code);
    if (expectCode !== null) assert.equal(r.code, expectCode, `paquete ${args.join(' ')} exited ${exited}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `paquete ${args.join(' ')} printed a stack trace\nstderr: ${r.stderr}`);
    return r;
  };
}
