/** pip with this machine's configuration (find-links, extra indexes) switched off: only our index. */
export function pipEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('PIP_')) env[k] = undefined;
  return { ...env, PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_CACHE_DIR: '1', PIP_NO_INPUT: '1', PYTHONDONTWRITEBYTECODE: '1' };
}
