/**
 * The split: a client key → its pool, exactly as the contract's Routing section says.
 * MurmurHash2 of the key onto 10,000 buckets; the canary owns [0, canaryWeight × 100). Raising the
 * canary weight only ever moves keys from stable to canary. An override header or cookie forces a
 * pool. A pool with no available endpoint gets no traffic while the other has one.
 */
import type { TrustedSet } from '../core/net.js';
import { bucketOf } from './murmur.js';
import { cookieValue, soleCookieValue, type ScannedRequest } from './headers.js';
import type { PoolId, RoutingTable } from './table.js';

export type SplitKey = { kind: 'ip' } | { kind: 'header'; name: string } | { kind: 'cookie'; name: string };

export function parseSplitKey(spec: string): SplitKey {
  if (spec.startsWith('header:')) return { kind: 'header', name: spec.slice(7).toLowerCase() };
  if (spec.startsWith('cookie:')) return { kind: 'cookie', name: spec.slice(7) };
  return { kind: 'ip' };
}

/** Pool forced by an override value, or -1. Values are `blue` or `green`, case-insensitive. */
export function overridePool(value: string | undefined): PoolId | -1 {
  if (value === undefined) return -1;
  const v = value.trim().toLowerCase();
  return v === 'blue' ? 0 : v === 'green' ? 1 : -1;
}

/** The pool a bucket belongs to under a table. */
export function poolForBucket(table: RoutingTable, bucket: number): PoolId {
  return bucket < table.canaryBuckets ? table.canary : table.stable;
}

/** Strip the IPv4-mapped prefix so one client has one key on dual-stack listeners. */
export function normalizeIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') && ip.indexOf('.') > 0 ? ip.slice(7) : ip;
}

/**
 * The client address: the peer, or when the peer is trusted, the right-most X-Forwarded-For entry
 * that is not itself trusted (nginx real_ip_recursive on).
 */
export function clientIp(peer: string, peerTrusted: boolean, xff: string | undefined, trusted: TrustedSet): string {
  if (!peerTrusted || xff === undefined) return peer;
  const parts = xff.split(',');
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = normalizeIp((parts[i] as string).trim());
    if (p === '') continue;
    if (i === 0 || !trusted.has(p)) return p;
  }
  return peer;
}

export interface Selector {
  key: SplitKey;
  overrideCookie: string | undefined;
  /** Client addresses that may force a pool (split.override.allowFrom); undefined: anyone. */
  overrideFrom?: TrustedSet | undefined;
}

/**
 * Set in choosePool's answer when the override placed the request: such a request is served but
 * never judged (a client must not be able to roll a canary back or dilute its errors).
 */
export const FORCED = 2;
/** choosePool's answer: a PoolId, with FORCED set when the override chose it. */
export type PoolChoice = number;

/** The routing key of a request: header / cookie value when configured and present, else the IP. */
export function routingKey(sel: Selector, scanned: ScannedRequest, ip: string): string {
  const k = sel.key;
  if (k.kind === 'header') {
    const v = scanned.keyHeader;
    if (v !== undefined && v !== '') return v;
  } else if (k.kind === 'cookie') {
    const v = cookieValue(scanned.cookie, k.name);
    if (v !== undefined && v !== '') return v;
  }
  return ip;
}

/**
 * Choose the pool for a request: its PoolId (`choice & 1`), with FORCED set when the override
 * placed it. `available(id)` says whether a pool has an endpoint that may take traffic now.
 */
export function choosePool(
  table: RoutingTable,
  sel: Selector,
  scanned: ScannedRequest,
  ip: string,
  available: (id: PoolId) => boolean,
): PoolChoice {
  let pool = overridePool(scanned.override);
  if (pool === -1 && sel.overrideCookie !== undefined && scanned.cookie !== undefined)
    pool = overridePool(soleCookieValue(scanned.cookie, sel.overrideCookie));
  let forced = 0;
  if (pool !== -1 && (sel.overrideFrom === undefined || sel.overrideFrom.has(ip))) forced = FORCED;
  else pool = poolForBucket(table, bucketOf(routingKey(sel, scanned, ip)));
  if (!available(pool)) {
    const other: PoolId = pool === 0 ? 1 : 0;
    if (available(other)) return other | forced;
  }
  return pool | forced;
}
