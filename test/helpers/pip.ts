import { HANG_GUARD_MS } from './tmp.js';

/**
 * pip with this machine's configuration (find-links, extra indexes) switched off: only our index.
 * pip gives up on a page after 15 s by default and then reports "no matching distribution": on a
 * busy 2-core box serve can take that long, so the verdict would be the load's (HANG_GUARD_MS).
 */
export function pipEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('PIP_')) env[k] = undefined;
  return { ...env, PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_CACHE_DIR: '1', PIP_NO_INPUT: '1', PYTHONDONTWRITEBYTECODE: '1', PIP_TIMEOUT: String(HANG_GUARD_MS / 1000) };
}
