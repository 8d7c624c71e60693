import { PaqueteError } from '../errors.js';
import { Remote } from '../remote/remote.js';
import { sha256Hex } from '../snapshot/manifest.js';
import { WorkDir } from '../workdir/workdir.js';

/** A file the signed manifest names by the SHA-256 and size of its bytes. */
export interface SignedRef {
  name: string;
  size: number;
}

/** Whether `bytes` are the file `ref` names. */
export const isSignedBytes = (ref: SignedRef, bytes: Uint8Array): boolean => bytes.length === ref.size && sha256Hex(bytes) === ref.name;

/**
 * A file the manifest names by hash (an index root, an update or offer head), kept in `.paquete/`
 * at `path`: from there when the copy is intact and `decode` accepts it, else undefined. A
 * damaged copy is never trusted, only fetched afresh by `loadSigned`.
 */
export function keptSigned<T>(work: WorkDir, path: string, ref: SignedRef, decode: (bytes: Uint8Array) => T): T | undefined {
  const bytes = work.readOptional(path);
  if (!bytes || !isSignedBytes(ref, bytes)) return undefined;
  try {
    return decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * The one way such a file is loaded: the kept copy, else fetched asking for exactly its signed
 * size (so the budget owner reserves that and a remote sending more is cut there), checked
 * against the hash before `decode` sees it, then kept (a read-only directory only reads). `what`
 * names the file in the error a tampered copy gives.
 */
export async function loadSigned<T>(
  work: WorkDir,
  remote: Remote,
  path: string,
  ref: SignedRef,
  what: string,
  decode: (bytes: Uint8Array) => T,
  opts: { signal?: AbortSignal } = {},
): Promise<T> {
  const kept = keptSigned(work, path, ref, decode);
  if (kept !== undefined) return kept;
  const bytes = await remote.get(path, { signal: opts.signal, size: ref.size });
  if (!isSignedBytes(ref, bytes)) throw new PaqueteError('BAD_SIGNATURE', `${what} ${ref.name.slice(0, 12)} does not match the signed manifest (tampered or damaged in transit)`);
  const value = decode(bytes);
  if (!work.readOnly) work.writeMeta(path, bytes);
  return value;
}
