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

/** The routing table as the request path sees it: read `current`; hear of each new one. */
export interface TableSource {
  readonly current: RoutingTable;
  /** Called with every table published from now on; returns the unsubscribe. */
  subscribe(fn: (t: RoutingTable) => void): () => void;
}

/**
 * The one place a table is published (the controller holds it; everyone else gets it as a
 * TableSource). Versions only move forward: a table older than the current one is refused, so a
 * late message can never put an old split back. A worker or another instance is one more
 * subscriber that receives the same value.
 */
export class TablePublisher implements TableSource {
  private table: RoutingTable;
  private readonly subscribers = new Set<(t: RoutingTable) => void>();

  constructor(first: RoutingTable) {
    this.table = first;
  }

  get current(): RoutingTable {
    return this.table;
  }

  publish(t: RoutingTable): void {
    if (t.version < this.table.version)
      throw new Error(`table version ${t.version} is older than the current ${this.table.version}`);
    this.table = t;
    for (const fn of this.subscribers) fn(t);
  }

  subscribe(fn: (t: RoutingTable) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
