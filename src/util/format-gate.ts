/**
 * The one owner of "can this paquete read that format version?". Every reader of a versioned
 * file (update heads, offers, layers, snapshots, roots, packs, recipes, bundles, have-lists, the
 * manifest) asks here, so a client that meets a version newer than it knows says the same clear
 * thing everywhere: which file, which format and version it met, which versions this paquete
 * reads, and "upgrade paquete" with the release that reads them; never "not supported" or a
 * wrong answer. Pure: it throws or returns.
 */
import { createRequire } from 'node:module';
import { PaqueteError } from '../errors.js';

/** This paquete's release, from its package.json (dist/src/util → ../../../package.json). */
export const PAQUETE_RELEASE: string = (() => {
  try {
    return (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

/** "1-4", "2, 3", "4": the versions a reader knows, short. */
function versionList(reads: readonly number[]): string {
  const s = [...reads].sort((a, b) => a - b);
  const contiguous = s.length > 2 && s.every((v, i) => i === 0 || v === s[i - 1] + 1);
  return contiguous ? `${s[0]}-${s[s.length - 1]}` : s.join(', ');
}

/**
 * A version as met, for a message: whatever a hostile file put there (an object whose "toString"
 * is data, not a function, cannot become a string), shown as JSON, never thrown over.
 */
function shown(version: unknown): string {
  if (typeof version === 'number') return String(version);
  try {
    return JSON.stringify(version) ?? typeof version;
  } catch {
    return typeof version;
  }
}

/** The hint of a refused version: what to do, with the release needed. */
export const upgradeHint = (format: string, version: unknown): string =>
  `upgrade paquete: this is paquete ${PAQUETE_RELEASE}; ${format} version ${shown(version)} needs a newer release (one that reads it)`;

/**
 * Passes when `version` is one of `reads`; otherwise throws BAD_FORMAT naming `what` (the file),
 * the `format`, the version met, the versions this paquete reads, and the upgrade hint.
 */
export function requireFormat(what: string, format: string, version: unknown, reads: readonly number[]): void {
  if (typeof version === 'number' && reads.includes(version)) return;
  const older = typeof version === 'number' && version < Math.min(...reads);
  throw new PaqueteError(
    'BAD_FORMAT',
    `${what} is ${format} version ${shown(version)}, which this paquete ${PAQUETE_RELEASE} does not read (it reads ${format} ${versionList(reads)})`,
    // A version older than any this reads was written before a format change that left it behind:
    // the remote must be published again; any other (newer, or a gap such as an offer read as a head) needs a newer reader.
    older ? `publish the remote again with paquete ${PAQUETE_RELEASE}` : upgradeHint(format, version),
  );
}
