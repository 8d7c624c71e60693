import { PaqueteError } from '../errors.js';

/**
 * A path inside a snapshot must stay inside the working directory on every platform we run on:
 * relative, '/'-separated, no '.', '..' or empty parts, no NUL or backslash, and never inside
 * our own `.paquete` directory. Checked when decoding, before anything is written.
 */
export function checkSnapshotPath(path: string): void {
  const bad = (why: string): never => {
    throw new PaqueteError('UNSAFE_PATH', `refusing file name ${JSON.stringify(path)}: ${why}`);
  };
  if (path.length === 0) bad('empty');
  if (path.length > 4096) bad('longer than 4096 characters');
  if (path.startsWith('/')) bad('absolute path');
  if (/^[A-Za-z]:/.test(path)) bad('drive letter');
  if (path.includes('\0')) bad('contains NUL');
  if (path.includes('\\')) bad('contains a backslash');
  const parts = path.split('/');
  for (const part of parts) {
    if (part === '' || part === '.') bad('empty or "." component');
    if (part === '..') bad('escapes the directory with ".."');
  }
  if (parts[0] === '.paquete') bad('inside .paquete');
}
