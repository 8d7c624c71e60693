import { resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { parseSize } from '../util/size.js';
import { WorkDir, WorkDirOptions } from '../workdir/workdir.js';
import { out } from './output.js';

export interface GlobalArgs {
  C?: string;
  json?: boolean;
  quiet?: boolean;
}

/** The directory a command works from: -C DIR, like git, or the current directory. */
export const baseDir = (argv: GlobalArgs): string => resolve(argv.C ?? '.');

export function applyOutputMode(argv: GlobalArgs): void {
  out.json = !!argv.json;
  out.quiet = !!argv.quiet;
}

/**
 * A yargs `coerce` for a SIZE option: checked while the command line is parsed, so a bad size
 * fails before any work, with the option's name in the message (`--budget needs a value`).
 */
export const sizeOption =
  (flag: string, min = 0) =>
  (v: unknown): number => {
    try {
      if (Array.isArray(v)) throw new PaqueteError('USAGE', `give ${flag} once (it was given ${v.length} times)`);
      return parseSize(typeof v === 'string' ? v : String(v ?? ''), flag, min);
    } catch (e) {
      if (e instanceof PaqueteError) rejected.set(e.message, e);
      throw e;
    }
  };

/** yargs passes on only the message of a `coerce` error: the typed error (code, hint) is kept here. */
const rejected = new Map<string, PaqueteError>();

/** The typed error an option's `coerce` threw, given the message yargs kept of it. */
export const optionError = (message: string): PaqueteError | undefined => rejected.get(message);

/**
 * Runs `fn` on the working directory, always releasing its lock and flushing its store. What
 * opening the store mended on its own is said first, as warnings.
 */
export async function withWorkDir<T>(argv: GlobalArgs, command: string, fn: (w: WorkDir) => Promise<T>, options?: WorkDirOptions): Promise<T> {
  const work = await WorkDir.open(baseDir(argv), command, {
    ...options,
    onStoreOpen: (store) => {
      for (const m of store.mended) out.warn(`store mended: ${m}`);
      options?.onStoreOpen?.(store);
    },
  });
  try {
    return await fn(work);
  } finally {
    await work.close();
  }
}
