import { isPaqueteError, EXIT } from '../errors.js';
import { redactCredentials as safe } from '../util/redact.js';

/**
 * Everything the CLI prints goes through here, so --json and quiet modes stay consistent, and no
 * URL's password reaches the screen or a log (src/util/redact.ts).
 */
export const out = {
  json: false,
  quiet: false,
  line(text: string): void {
    if (!this.json && !this.quiet) process.stdout.write(safe(text) + '\n');
  },
  /** Printed even in quiet mode: results a script or person must see. */
  result(text: string): void {
    if (!this.json) process.stdout.write(safe(text) + '\n');
  },
  warn(text: string): void {
    process.stderr.write(`paquete: ${safe(text)}\n`);
  },
  emitJson(value: unknown): void {
    if (this.json) process.stdout.write(safe(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v), 2)) + '\n');
  },
};

/** One line (and a hint) for the user, and the exit code; never a stack trace. */
export function reportError(e: unknown): number {
  if (isPaqueteError(e)) {
    process.stderr.write(`paquete: ${safe(e.message)}\n`);
    if (e.hint) process.stderr.write(`  ${safe(e.hint)}\n`);
    return e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError') {
    process.stderr.write('paquete: stopped; everything received so far is kept. Run the same command to go on.\n');
    return EXIT.error;
  }
  if (err?.code === 'ENOSPC') {
    process.stderr.write('paquete: the disk is full\n  free some space and run the same command again; nothing received so far is lost\n');
    return EXIT.error;
  }
  if (err?.code === 'EACCES' || err?.code === 'EPERM') {
    process.stderr.write(`paquete: permission denied: ${safe(err.path ?? err.message)}\n`);
    return EXIT.error;
  }
  process.stderr.write(`paquete: unexpected error: ${safe(err?.message ?? String(e))}\n`);
  if (process.env.PAQUETE_DEBUG) process.stderr.write(`${safe(String(err?.stack))}\n`);
  return EXIT.error;
}
