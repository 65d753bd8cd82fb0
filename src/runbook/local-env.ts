/**
 * The environment of processes persona starts on this machine (local hooks, traffic commands): only what a
 * command needs to run, never persona's own credentials (CONSUL_HTTP_TOKEN, ETCDCTL_*, PERSONA_STORE_TOKEN) or
 * whatever else the operator's shell holds.
 */
const PASSED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'] as const;

export function localEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PASSED) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
