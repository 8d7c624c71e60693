import { resolve } from 'node:path';
import { Remote } from './remote.js';
import { createLocalRemote } from './local.js';
import type { HttpRemoteOptions } from './http.js';
import type { WireBudget } from './budget.js';

export const isHttpUrl = (location: string): boolean => /^https?:\/\//i.test(location);

/** A location as stored in the config: a URL ending in '/', or an absolute path. */
export const normalizeLocation = (text: string, base: string): string => (isHttpUrl(text) ? text.replace(/\/?$/, '/') : resolve(base, text));

/**
 * Link settings from the environment, for links worse (or tests faster) than the defaults:
 * PAQUETE_CONNECT_TIMEOUT and PAQUETE_STALL_TIMEOUT in seconds, PAQUETE_RETRIES a count,
 * PAQUETE_BACKOFF the first back-off in seconds, PAQUETE_RATE_WINDOW the window in seconds over
 * which the minimum rate is judged, PAQUETE_OUTSTANDING the bytes every request asks for
 * (a fixed piece instead of the growing PieceRule of src/remote/outstanding.ts).
 */
function linkSettings(env: NodeJS.ProcessEnv): HttpRemoteOptions {
  const seconds = (v: string | undefined) => (v && Number(v) > 0 ? Number(v) * 1000 : undefined);
  const o: HttpRemoteOptions = { timeouts: { connect: seconds(env.PAQUETE_CONNECT_TIMEOUT), stall: seconds(env.PAQUETE_STALL_TIMEOUT) } };
  if (env.PAQUETE_RETRIES && Number(env.PAQUETE_RETRIES) >= 0) o.retries = Number(env.PAQUETE_RETRIES);
  const backoff = seconds(env.PAQUETE_BACKOFF);
  if (backoff) o.backoffMs = backoff;
  const window = seconds(env.PAQUETE_RATE_WINDOW);
  if (window) o.rateWindowMs = window;
  if (env.PAQUETE_OUTSTANDING && Number(env.PAQUETE_OUTSTANDING) >= 1) o.outstanding = Number(env.PAQUETE_OUTSTANDING);
  return o;
}

/**
 * The remote for a location the user gave: an http(s) URL or a local path. The HTTP client is
 * loaded only when needed: it is a third of every command's start-up time.
 */
export async function openRemote(
  location: string,
  opts: Pick<HttpRemoteOptions, 'onRetry' | 'retries' | 'minRate' | 'facts' | 'outstanding'> & { budget?: WireBudget; free?: boolean } = {},
): Promise<Remote> {
  if (!isHttpUrl(location)) return createLocalRemote(location, opts.free === false ? opts.budget : undefined);
  const { createHttpRemote } = await import('./http.js');
  const settings: HttpRemoteOptions = { ...linkSettings(process.env), onRetry: opts.onRetry, budget: opts.budget, free: opts.free, minRate: opts.minRate, facts: opts.facts };
  if (opts.outstanding !== undefined) settings.outstanding ??= opts.outstanding;
  if (opts.retries !== undefined) settings.retries = opts.retries;
  return createHttpRemote(location, settings);
}
