import { resolve } from 'node:path';
import { Remote } from './remote.js';
import { createLocalRemote } from './local.js';
import type { HttpRemoteOptions } from './http.js';

export const isHttpUrl = (location: string): boolean => /^https?:\/\//i.test(location);

/** A location as stored in the config: a URL ending in '/', or an absolute path. */
export const normalizeLocation = (text: string, base: string): string => (isHttpUrl(text) ? text.replace(/\/?$/, '/') : resolve(base, text));

/**
 * Link settings from the environment, for links worse (or tests faster) than the defaults:
 * PAQUETE_CONNECT_TIMEOUT and PAQUETE_STALL_TIMEOUT in seconds, PAQUETE_RETRIES a count,
 * PAQUETE_BACKOFF the first back-off in seconds.
 */
function linkSettings(env: NodeJS.ProcessEnv): HttpRemoteOptions {
  const seconds = (v: string | undefined) => (v && Number(v) > 0 ? Number(v) * 1000 : undefined);
  const o: HttpRemoteOptions = { timeouts: { connect: seconds(env.PAQUETE_CONNECT_TIMEOUT), stall: seconds(env.PAQUETE_STALL_TIMEOUT) } };
  if (env.PAQUETE_RETRIES && Number(env.PAQUETE_RETRIES) >= 0) o.retries = Number(env.PAQUETE_RETRIES);
  const backoff = seconds(env.PAQUETE_BACKOFF);
  if (backoff) o.backoffMs = backoff;
  return o;
}

/**
 * The remote for a location the user gave: an http(s) URL or a local path. The HTTP client is
 * loaded only when needed: it is a third of every command's start-up time.
 */
export async function openRemote(location: string, opts: Pick<HttpRemoteOptions, 'onRetry' | 'retries'> = {}): Promise<Remote> {
  if (!isHttpUrl(location)) return createLocalRemote(location);
  const { createHttpRemote } = await import('./http.js');
  const settings: HttpRemoteOptions = { ...linkSettings(process.env), onRetry: opts.onRetry };
  if (opts.retries !== undefined) settings.retries = opts.retries;
  return createHttpRemote(location, settings);
}
