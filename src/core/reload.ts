/**
 * What a reload may change (pure). A new config is compared with the running one key by key:
 * keys the listeners, the threads, the state's home or undici's pools were built from need a
 * restart, and a reload that touches any of them is refused whole, naming them; everything else
 * takes effect at once. Arrays are compared whole (a list of endpoints is one change).
 */
import { createHash } from 'node:crypto';
import type { Config } from './config.js';

/** Keys (and every key under them) that only a restart applies. */
export const RESTART_KEYS: readonly string[] = [
  'listen',
  'admin.host',
  'admin.port',
  'admin.allowedHosts',
  'workers',
  'stateFile',
  'fleet',
  'audit',
  'stable',
  'upstream',
  // undici's pools hold these per endpoint connection pool.
  'timeouts.connect',
  'timeouts.response',
  'timeouts.idle',
  // The listener's parser and its per-client counting are set up when it is made.
  'limits.maxHeaderBytes',
  'limits.maxConnectionsPerClient',
  // The window's size in intervals.
  'rollout.analysis.interval',
  'rollout.analysis.window',
];

/** Under a restart key, what a reload applies all the same: certificates (read again each time). */
export const RELOADABLE_KEYS: readonly string[] = ['listen.tls.certificates'];

export interface ReloadPlan {
  /** Keys whose value differs, as dotted paths (leaves, or whole arrays). */
  changed: string[];
  /** Those of them that need a restart. */
  restart: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function diff(a: unknown, b: unknown, path: string, out: string[]): void {
  if (isObject(a) && isObject(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
      diff(a[k], b[k], path === '' ? k : `${path}.${k}`, out);
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(path);
}

export function reloadPlan(running: Config, next: Config): ReloadPlan {
  const changed: string[] = [];
  diff(running, next, '', changed);
  const under = (k: string, keys: readonly string[]) => keys.some((r) => k === r || k.startsWith(`${r}.`));
  const restart = changed.filter((k) => under(k, RESTART_KEYS) && !under(k, RELOADABLE_KEYS));
  return { changed, restart };
}

/** How a reload ended: `applied` (with the keys that changed), or why not. */
export interface ReloadResult {
  result: 'applied' | 'unchanged' | 'refused' | 'invalid';
  changed: string[];
  /** refused: the keys that need a restart; invalid: each problem as `path.to.key: message`. */
  problems: string[];
  /** The hash of the config in force after it. */
  hash: string;
}

/** The config's endpoint lists, as the `base` an endpoint override was set against. */
export function poolsBase(c: Pick<Config, 'pools'>): string {
  return createHash('sha256')
    .update(JSON.stringify([c.pools.blue.endpoints, c.pools.green.endpoints]))
    .digest('hex')
    .slice(0, 16);
}

/** The config's identity for the status document: the same settings give the same hash. */
export function configHash(c: Config): string {
  return createHash('sha256').update(JSON.stringify(c)).digest('hex').slice(0, 16);
}
