import { PaqueteError } from '../errors.js';

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  k: 1e3, m: 1e6, g: 1e9, t: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

const SIZE_HINT = 'write it like 300MB, 300MiB, 1.5GB or a number of bytes';

/**
 * Parses `300MB` (10^6), `300MiB` (2^20), `1.5GB`, `12345`. Pure. `what` names the value in the
 * message (`--budget`), so a script's author sees which argument was wrong; `min` is the
 * smallest value that makes sense there (a budget of 0 would spend nothing: bad input, not a
 * session stopped by its budget).
 */
export function parseSize(text: string, what = 'a size', min = 0): number {
  if (text.trim() === '') throw new PaqueteError('USAGE', `${what} needs a value`, SIZE_HINT);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    const negative = /^\s*-/.test(text) ? '; a size cannot be negative' : '';
    throw new PaqueteError('USAGE', `${what}: not a size: "${text}"${negative}`, SIZE_HINT);
  }
  const n = Math.floor(Number(m[1]) * unit);
  if (n < min) throw new PaqueteError('USAGE', `${what} must be ${min === 1 ? "more than 0" : `at least ${formatSize(min)}`}, not "${text}"`, SIZE_HINT);
  return n;
}

/** 1234567 → "1.23 MB". Decimal units, like the budget a card is sold in. */
export function formatSize(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}
