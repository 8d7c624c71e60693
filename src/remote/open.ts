import { Remote } from './remote.js';
import { createLocalRemote } from './local.js';
import { createHttpRemote } from './http.js';

export const isHttpUrl = (location: string): boolean => /^https?:\/\//i.test(location);

/** The remote for a location the user gave: an http(s) URL or a local path. */
export function openRemote(location: string): Remote {
  return isHttpUrl(location) ? createHttpRemote(location) : createLocalRemote(location);
}
