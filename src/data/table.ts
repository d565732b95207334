/**
 * The routing table: the one immutable object the request path reads. The controller builds a
 * new one and swaps it whole (one writer, many readers). A request that already picked its pool
 * keeps going on it; the next request reads the new table.
 */
import type { PoolName } from '../core/config.js';

/** 0 = blue, 1 = green: array indexes on the request path, names everywhere else. */
export type PoolId = 0 | 1;
export const poolIdOf = (name: PoolName): PoolId => (name === 'blue' ? 0 : 1);
export const poolNameOf = (id: PoolId): PoolName => (id === 0 ? 'blue' : 'green');
export const otherPool = (id: PoolId): PoolId => (id === 0 ? 1 : 0);

export interface Weights {
  readonly blue: number;
  readonly green: number;
}

export interface RoutingTable {
  /** Increases on every change of weights, roles or phase. */
  readonly version: number;
  readonly stable: PoolId;
  readonly canary: PoolId;
  /** The canary owns buckets [0, canaryBuckets). */
  readonly canaryBuckets: number;
  readonly weights: Weights;
}

/** Build a table; canary weight in percent with at most two decimals. */
export function makeTable(version: number, stable: PoolName, weights: Weights): RoutingTable {
  const s = poolIdOf(stable);
  const c = otherPool(s);
  const canaryWeight = c === 0 ? weights.blue : weights.green;
  return Object.freeze({
    version,
    stable: s,
    canary: c,
    canaryBuckets: Math.round(canaryWeight * 100),
    weights: Object.freeze({ ...weights }),
  });
}

/** A cell holding the current table: `data/` reads `.current`, only the controller assigns it. */
export class TableCell {
  constructor(public current: RoutingTable) {}
}
