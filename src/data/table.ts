/**
 * The routing table: the one immutable object the request path reads. The controller builds a
 * new one and swaps it whole (one writer, many readers). A request that already picked its pool
 * keeps going on it; the next request reads the new table.
 */
import type { PoolName } from '../core/config.js';
import type { SequentialLimit } from '../stats/sequential.js';

/** 0 = blue, 1 = green: array indexes on the request path, names everywhere else. */
export type PoolId = 0 | 1;
export const poolIdOf = (name: PoolName): PoolId => (name === 'blue' ? 0 : 1);
export const poolNameOf = (id: PoolId): PoolName => (id === 0 ? 'blue' : 'green');
export const otherPool = (id: PoolId): PoolId => (id === 0 ? 1 : 0);

export interface Weights {
  readonly blue: number;
  readonly green: number;
}

/** Whether an endpoint may take traffic, as the control plane decided (index = config order). */
export interface EndpointState {
  /** Active health: false after `unhealthyAfter` failed checks (true when none are configured). */
  readonly up: boolean;
  /** Passively ejected until this time (ms, the shared clock); 0 when not ejected. */
  readonly ejectedUntil: number;
}

export interface RoutingTable {
  /** The rollout state's version: increases on every change of weights, roles or phase. */
  readonly version: number;
  /** Increases on every change of endpoint availability (health checks, ejections). */
  readonly health: number;
  /** Per pool (by PoolId), per endpoint. */
  readonly endpoints: readonly [readonly EndpointState[], readonly EndpointState[]];
  readonly stable: PoolId;
  readonly canary: PoolId;
  /** The canary owns buckets [0, canaryBuckets). */
  readonly canaryBuckets: number;
  readonly weights: Weights;
  /** Maintenance mode: answer 503 to every client outside `allowFrom`; null when off. */
  readonly maintenance: TableMaintenance | null;
  /** A shadow: stable's requests in buckets [0, shadowBuckets) are mirrored to the canary; 0: none. */
  readonly shadowBuckets: number;
  /** Fault injection for rehearsals; null when none is set or the config does not enable it. */
  readonly faults: TableFaults | null;
  /**
   * The sequential check's critical line for the canary (stats/sequential.ts), while the canary
   * is guarded; null otherwise. Six numbers, computed once per policy by the controller.
   */
  readonly sequential: SequentialLimit | null;
}

export interface TableMaintenance {
  readonly message: string | null;
  /** Retry-After, in whole seconds. */
  readonly retryAfterSec: number;
  readonly allowFrom: readonly string[];
}

/** A fault on one pool's requests, in the request path's terms: shares per 10,000, drawn apart. */
export interface TableFaults {
  readonly pool: PoolId;
  readonly abortPer10k: number;
  readonly abortStatus: number;
  readonly delayPer10k: number;
  readonly delayMs: number;
}

/** Endpoint availability: which endpoints the control plane lets take traffic. */
export interface Availability {
  readonly health: number;
  readonly endpoints: RoutingTable['endpoints'];
}

/** Every endpoint up and none ejected: for `counts` endpoints per pool. */
export function allUp(counts: readonly [number, number]): Availability {
  const up = (n: number) => Array.from({ length: n }, () => ({ up: true, ejectedUntil: 0 }));
  return { health: 0, endpoints: [up(counts[0]), up(counts[1])] };
}

/** What a table carries besides the split: each off when not given. */
export interface TableExtras {
  maintenance?: { enabled: boolean; message: string | null; retryAfter: number; allowFrom: readonly string[] };
  /** Fault injection (null: none, or the config does not enable it). */
  faults?: FaultsInput | null;
  /** A shadow's percent of stable's requests mirrored to the canary (0: none). */
  shadowPercent?: number;
  /** The sequential check's line, while the canary is guarded. */
  sequential?: SequentialLimit | null;
}

/** Build a table; canary weight in percent with at most two decimals. */
export function makeTable(
  version: number,
  stable: PoolName,
  weights: Weights,
  avail: Availability = { health: 0, endpoints: [[], []] },
  extras: TableExtras = {},
): RoutingTable {
  const { maintenance, faults = null, shadowPercent = 0, sequential = null } = extras;
  const s = poolIdOf(stable);
  const c = otherPool(s);
  const canaryWeight = c === 0 ? weights.blue : weights.green;
  return Object.freeze({
    version,
    health: avail.health,
    endpoints: avail.endpoints,
    stable: s,
    canary: c,
    canaryBuckets: Math.round(canaryWeight * 100),
    weights: Object.freeze({ ...weights }),
    maintenance:
      maintenance?.enabled === true
        ? Object.freeze({
            message: maintenance.message,
            retryAfterSec: Math.max(1, Math.ceil(maintenance.retryAfter / 1000)),
            allowFrom: Object.freeze([...maintenance.allowFrom]),
          })
        : null,
    // Any shadow mirrors at least one bucket: a share too small to round to one would mirror nothing.
    shadowBuckets: shadowPercent > 0 ? Math.max(1, Math.round(shadowPercent * 100)) : 0,
    faults: faults === null ? null : tableFaults(faults),
    sequential,
  });
}

/** A fault spec as the controller holds it (percent with two decimals, pool by name). */
export interface FaultsInput {
  pool: PoolName;
  abortPercent: number;
  abortStatus: number;
  delayPercent: number;
  delayMs: number;
}

function tableFaults(f: FaultsInput): TableFaults | null {
  const abortPer10k = Math.round(f.abortPercent * 100);
  const delayPer10k = f.delayMs > 0 ? Math.round(f.delayPercent * 100) : 0;
  if (abortPer10k === 0 && delayPer10k === 0) return null;
  return Object.freeze({
    pool: poolIdOf(f.pool),
    abortPer10k,
    abortStatus: f.abortStatus,
    delayPer10k,
    delayMs: f.delayMs,
  });
}

/** Whether `t` may replace `cur`: neither the rollout's nor the health's version goes back. */
export function isNewer(t: RoutingTable, cur: RoutingTable): boolean {
  return t.version >= cur.version && t.health >= cur.health;
}

/** The routing table as the request path sees it: read `current`; hear of each new one. */
export interface TableSource {
  readonly current: RoutingTable;
  /** Called with every table published from now on; returns the unsubscribe. */
  subscribe(fn: (t: RoutingTable) => void): () => void;
}

/**
 * The one place a table is published (the controller holds it; everyone else gets it as a
 * TableSource), and its copy in each worker. Versions only move forward: a table older than the
 * current one is refused, so a late message can never put an old split back. A worker or another
 * instance is one more subscriber that receives the same value.
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
    if (!isNewer(t, this.table))
      throw new Error(
        `table ${t.version}/${t.health} is older than the current ${this.table.version}/${this.table.health}`,
      );
    this.table = t;
    for (const fn of this.subscribers) fn(t);
  }

  subscribe(fn: (t: RoutingTable) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
