import { resolve } from 'node:path';
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
 * Runs `fn` on the working directory, always releasing its lock and flushing its store. What
 * opening the store mended on its own is said first, as warnings.
 */
export async function withWorkDir<T>(argv: GlobalArgs, command: string, fn: (w: WorkDir) => Promise<T>, options?: WorkDirOptions): Promise<T> {
  const work = await WorkDir.open(baseDir(argv), command, options);
  for (const m of work.store.mended) out.warn(`store mended: ${m}`);
  try {
    return await fn(work);
  } finally {
    await work.close();
  }
}
