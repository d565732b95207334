/**
 * Environment overrides for the keys a container or a unit file sets most often. Each is laid
 * over the file's value before validation, so the schema judges it like any other value and a
 * bad one is reported naming both the variable and the key. A reload reads the file again and
 * lays the same variables over it (a process's environment does not change), so they stay.
 * An empty variable counts as unset: Compose passes `${X}` as "" when X is not defined.
 */

/** An override: the variable, the key it sets, and how its text becomes the key's value. */
interface EnvOverride {
  name: string;
  key: string;
  /** The value, or a message saying what was expected. */
  parse: (text: string) => { value: unknown } | { problem: string };
  /** Only fill the key when the file leaves it out (instead of replacing it). */
  fallback?: boolean;
}

const port = (text: string) =>
  /^[0-9]{1,5}$/.test(text) && Number(text) <= 65535
    ? { value: Number(text) }
    : { problem: `expected a port, got ${JSON.stringify(text)}` };

const list = (text: string) => text.split(',').map((s) => s.trim());

const endpoints = (text: string) => {
  const urls = list(text).filter((s) => s !== '');
  return urls.length > 0 ? { value: urls } : { problem: 'expected comma-separated URLs' };
};

/** `id:role:sha256,id:role:sha256`: the fields of admin.tokens entries, in the order people say them. */
const tokens = (text: string) => {
  const out: { id: string; role: string; sha256: string }[] = [];
  for (const [i, entry] of list(text).entries()) {
    const parts = entry.split(':');
    if (parts.length !== 3)
      return { problem: `entry ${i + 1} is not id:role:sha256 (sluice new-token prints the sha256)` };
    const [id, role, sha256] = parts as [string, string, string];
    out.push({ id, role, sha256 });
  }
  return { value: out };
};

const text = (t: string) => ({ value: t });

export const ENV_OVERRIDES: readonly EnvOverride[] = [
  { name: 'SLUICE_LISTEN_PORT', key: 'listen.port', parse: port },
  { name: 'SLUICE_ADMIN_HOST', key: 'admin.host', parse: text },
  { name: 'SLUICE_ADMIN_PORT', key: 'admin.port', parse: port },
  { name: 'SLUICE_ADMIN_TOKENS', key: 'admin.tokens', parse: tokens },
  { name: 'SLUICE_BLUE_ENDPOINTS', key: 'pools.blue.endpoints', parse: endpoints },
  { name: 'SLUICE_GREEN_ENDPOINTS', key: 'pools.green.endpoints', parse: endpoints },
  // The contract's "fleet.redis, else $SLUICE_REDIS_URL": it fills the key only when the file has a
  // fleet without one (a fleet needs fleet.name, which only the file gives).
  { name: 'SLUICE_REDIS_URL', key: 'fleet.redis', parse: text, fallback: true },
];

export interface EnvApplied {
  /** The file's object with the overrides laid over it (a copy: the input is not changed). */
  raw: unknown;
  /** Key → the variable that set it, for the messages. */
  sources: Map<string, string>;
  /** Variables whose text could not be read at all, as `NAME (key): message`. */
  problems: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Lay the set variables of `env` over `raw` (a parsed config file). */
export function applyEnv(raw: unknown, env: Readonly<Record<string, string | undefined>>): EnvApplied {
  const sources = new Map<string, string>();
  const problems: string[] = [];
  // A file that is not a mapping is the schema's to report as it is.
  if (raw !== null && raw !== undefined && !isObject(raw)) return { raw, sources, problems };
  const root: Record<string, unknown> = isObject(raw) ? structuredClone(raw) : {};
  for (const o of ENV_OVERRIDES) {
    const t = env[o.name]?.trim();
    if (t === undefined || t === '') continue;
    const path = o.key.split('.');
    const leaf = path.pop() as string;
    if (o.fallback) {
      // Only into an object the file already has, and only where the file left the key out.
      const parent = path.reduce<unknown>((at, k) => (isObject(at) ? at[k] : undefined), root);
      if (!isObject(parent) || parent[leaf] !== undefined) continue;
    }
    const r = o.parse(t);
    if ('problem' in r) {
      problems.push(`${o.name} (${o.key}): ${r.problem}`);
      continue;
    }
    let at: Record<string, unknown> | undefined = root;
    for (const k of path) {
      if (at[k] === undefined || at[k] === null) at[k] = {};
      const next: unknown = at[k];
      // A file's scalar where an object belongs is the schema's to report; leave it alone.
      if (!isObject(next)) {
        at = undefined;
        break;
      }
      at = next;
    }
    if (at === undefined) continue;
    at[leaf] = r.value;
    sources.set(o.key, o.name);
  }
  return { raw: root, sources, problems };
}

/** The variable behind a problem's key (`admin.tokens.1.sha256` → SLUICE_ADMIN_TOKENS), if any. */
export function envSourceOf(sources: ReadonlyMap<string, string>, key: string): string | undefined {
  for (const [k, name] of sources) if (key === k || key.startsWith(`${k}.`)) return name;
  return undefined;
}
