import { PaqueteError } from '../errors.js';

const UNITS: Record<string, number> = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** Parses `30d`, `12h`, `2w` into milliseconds. Pure. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+)\s*([hdw])\s*$/i.exec(text);
  const ms = m ? Number(m[1]) * UNITS[m[2].toLowerCase()] : NaN;
  if (!m || !(ms > 0) || !Number.isSafeInteger(ms)) {
    throw new PaqueteError('USAGE', `not a duration: "${text}"`, 'write it like 12h, 30d or 2w');
  }
  return ms;
}
