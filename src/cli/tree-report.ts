import type { FailedFile, KeptFile } from '../sync/restorer.js';
import { RESOLVE_HINT } from '../sync/restorer.js';
import { out } from './output.js';

/** How many files of one kind are named before the rest are counted. */
const NAMED = 10;

function list<T>(items: T[], line: (t: T) => string): void {
  for (const t of items.slice(0, NAMED)) out.warn(`  ${line(t)}`);
  if (items.length > NAMED) out.warn(`  … and ${items.length - NAMED} more (--json lists them all)`);
}

/**
 * What a command left alone or could not do in the tree, file by file with the reason and what
 * to do: the user's files kept, files that could not be placed, the publisher's inconsistent data.
 * `withheld`: files found inconsistent by an earlier command (said once there; counted here).
 */
export function printNotPlaced(r: { kept: KeptFile[]; failed: FailedFile[]; inconsistent: string[] }, withheld: string[] = [], inconsistentNow = true): void {
  if (r.kept.length) {
    out.warn(`${r.kept.length} of your files kept (paquete never overwrites or removes what you changed or made):`);
    list(r.kept, (k) => `${k.path}: ${k.why}`);
    if (r.kept.some((k) => !k.why.startsWith('dropped'))) out.warn(`  to resolve: ${RESOLVE_HINT}`);
  }
  if (r.failed.length) {
    out.warn(`${r.failed.length} files could not be placed (the others were):`);
    list(r.failed, (f) => `${f.path}: ${f.message} (${f.code})`);
    out.warn('  fix the cause (a shorter name fits another disk; permissions) and run paquete sync again: nothing is fetched twice');
  }
  if (r.inconsistent.length) {
    if (inconsistentNow) {
      out.warn(`${r.inconsistent.length} files cannot be had from this remote: the publisher's data is inconsistent (their chunks never add up to the SHA-256 the snapshot signs). This is the remote's fault, not yours or your link's:`);
      list(r.inconsistent, (p) => p);
      out.warn('  they are not downloaded again until a new snapshot is published; tell the publisher');
    } else {
      out.warn(`${r.inconsistent.length} files not placed: the publisher's data for them is inconsistent (not downloaded again until a new snapshot):`);
      list(r.inconsistent, (p) => p);
    }
  }
  if (withheld.length) out.warn(`${withheld.length} files withheld: the publisher's data for them is inconsistent in this snapshot (paquete status lists them)`);
}
