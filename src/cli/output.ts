import { isPaqueteError, EXIT, ErrorCode } from '../errors.js';
import { redactCredentials as safe } from '../util/redact.js';
import { exitForSignal, interruptedBy } from './interrupt.js';

/** Version of the JSON objects `--json` prints (docs/JSON.md): bumped when a field changes meaning or goes. */
export const JSON_SCHEMA = 'paquete/1';

/**
 * Everything the CLI prints goes through here, so --json and quiet modes stay consistent:
 *   line    progress notes and advice: not with -q or --json
 *   result  what a command did (its summary): not with -q (like rsync -q) or --json
 *   progress what is under way ("contacting …"), on stderr: not with -q or --json
 *   answer  what a command exists to show (status, remote list, what verify found damaged):
 *           printed with -q, not with --json
 *   warn    on stderr always; with --json also collected into the object's `warnings`
 * With --json a command ends with emitJson(value, exit): ONE object on stdout, or, when the
 * command fails first, the error object reportError writes. No URL's password reaches the screen,
 * a log or the JSON (src/util/redact.ts): every sink below passes its text through `safe`.
 */
export const out = {
  json: false,
  quiet: false,
  /** The command being run, as the JSON object names it (null before one is known). */
  command: null as string | null,
  /** Whether this run's one JSON object is written. */
  emitted: false,
  warnings: [] as string[],
  line(text: string): void {
    if (!this.json && !this.quiet) process.stdout.write(safe(text) + '\n');
  },
  result(text: string): void {
    if (!this.json && !this.quiet) process.stdout.write(safe(text) + '\n');
  },
  /** What is under way ("contacting …"), on stderr like a progress bar: not with -q or --json. */
  progress(text: string): void {
    if (!this.json && !this.quiet) process.stderr.write(safe(text) + '\n');
  },
  answer(text: string): void {
    if (!this.json) process.stdout.write(safe(text) + '\n');
  },
  warn(text: string): void {
    process.stderr.write(`paquete: ${safe(text)}\n`);
    if (this.json) this.warnings.push(text);
  },
  /** The command's outcome; sets the exit code, and with --json writes the one object. */
  /** `value` may be a function: then it is called only when the JSON is written (a sync's plan of 100k files cost ~0.1 s to list for nobody). */
  emitJson(value: object | (() => object), exit: number = EXIT.ok): void {
    process.exitCode = exit;
    if (!this.json || this.emitted) return;
    this.write(typeof value === 'function' ? value() : { ...value }, exit);
  },
  write(value: object, exit: number): void {
    if (!this.json || this.emitted) return;
    this.emitted = true;
    const envelope = { schema: JSON_SCHEMA, command: this.command, ok: exit === EXIT.ok, exit, ...value, ...(this.warnings.length ? { warnings: this.warnings } : {}) };
    process.stdout.write(safe(JSON.stringify(envelope, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v), 2)) + '\n');
  },
};

export interface ErrorReport {
  code: ErrorCode;
  message: string;
  hint?: string;
  exit: number;
}

/** What went wrong, as one code, one line, a hint and an exit code; never a stack trace. */
export function describeError(e: unknown): ErrorReport {
  const sig = interruptedBy();
  // Whatever a command throws while it winds down after Ctrl-C is that interruption.
  if (sig) return interruption(sig);
  if (isPaqueteError(e)) return { code: e.code, message: e.message, hint: e.hint, exit: e.exitCode };
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC') return { code: 'DISK_FULL', message: 'the disk is full', hint: 'free some space and run the same command again; nothing received so far is lost', exit: EXIT.error };
  if (err?.code === 'EACCES' || err?.code === 'EPERM' || err?.code === 'EROFS') return { code: 'IO', message: `permission denied: ${err.path ?? err.message}`, exit: EXIT.error };
  return { code: 'INTERNAL', message: `unexpected error: ${err?.message ?? String(e)}`, exit: EXIT.error };
}

/** The report of a run stopped by `sig`: sync keeps what it received, so it says how to go on. */
export function interruption(sig: NodeJS.Signals): ErrorReport {
  const goOn = out.command === 'sync';
  return {
    code: 'INTERRUPTED',
    message: `interrupted (${sig})${goOn ? '; everything received so far is kept' : ''}`,
    hint: goOn ? 'run the same command again to go on' : undefined,
    exit: exitForSignal(sig),
  };
}

/** Prints a failure (one line and a hint on stderr; with --json the error object on stdout) and gives its exit code. */
export function reportError(e: unknown): number {
  const r = describeError(e);
  printError(r);
  if (r.code === 'INTERNAL' && process.env.PAQUETE_DEBUG) process.stderr.write(`${safe(String((e as Error)?.stack))}\n`);
  return r.exit;
}

export function printError(r: ErrorReport): void {
  process.stderr.write(`paquete: ${safe(r.message)}\n`);
  if (r.hint) process.stderr.write(`  ${safe(r.hint)}\n`);
  out.write({ error: { code: r.code, message: r.message, hint: r.hint ?? null } }, r.exit);
}
