/**
 * The appliance's environment file (/etc/postback/postback.env, written by Ansible, read by
 * pm2.config.cjs for every process): KEY=VALUE lines. The operator CLI reads it too, so `postback-ctl`
 * run as root on the server sees the settings the workers see without anything exported.
 *
 * Same reading as pm2.config.cjs: a line is `NAME=value` (spaces around `=` allowed, `export ` before
 * the name allowed), a value wrapped in matching single or double quotes loses them, and nothing else
 * is interpreted (no escapes, no `$VAR` expansion). Comments (`#`), blank and other lines are ignored.
 */

export const DEFAULT_ENV_FILE = '/etc/postback/postback.env';

/** KEY=VALUE lines -> { KEY: VALUE }. The last definition of a name wins. Pure. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    let value = m[2]!;
    if (value.length >= 2 && /^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    env[m[1]!] = value;
  }
  return env;
}

/**
 * The settings to use: the file's, overridden by every variable set in the environment (even to '').
 * Pure.
 */
export function mergeEnv(
  fromFile: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = { ...fromFile };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}
