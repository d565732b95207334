/**
 * Cumulative counters as a value: what a member (the in-process data plane, a worker, later an
 * instance) has counted since it started. The control plane keeps the latest from each member
 * and adds those of members that are gone (`TotalsBook`), so exported counters never go back,
 * also across a worker restart.
 */
import { DURATION_BUCKETS, ERROR_KINDS, type ForcedCounts, type InjectedCounts } from './recorder.js';

export interface PoolTotals {
  /** [status code, count] for codes seen (0 = no response). */
  codes: [number, number][];
  /** By ERROR_KINDS index. */
  errorKinds: number[];
  /** Per Prometheus bucket (not cumulative; the last is +Inf). */
  buckets: number[];
  sumSeconds: number;
  count: number;
  forced: ForcedCounts;
  injected: InjectedCounts;
}

export interface Totals {
  pools: [PoolTotals, PoolTotals];
  /** [reason, count]: requests sluice answered or cut itself. */
  rejected: [string, number][];
  /** Canary failures sent again to stable (retry.toStable), and those the retry budget refused. */
  retried: { toStable: number; refused: number };
  /** Shadow traffic (data/mirror.ts): mirrors sent, not sent, and the pairs that mismatched, by kind. */
  shadow: ShadowTotals;
}

export interface ShadowTotals {
  mirrored: number;
  dropped: number;
  skipped: number;
  failed: number;
  status: number;
  slow: number;
}

export const SHADOW_TOTALS = ['mirrored', 'dropped', 'skipped', 'failed', 'status', 'slow'] as const;

export const emptyShadowTotals = (): ShadowTotals => ({
  mirrored: 0,
  dropped: 0,
  skipped: 0,
  failed: 0,
  status: 0,
  slow: 0,
});

export function emptyTotals(): Totals {
  const pool = (): PoolTotals => ({
    codes: [],
    errorKinds: ERROR_KINDS.map(() => 0),
    buckets: Array.from({ length: DURATION_BUCKETS.length + 1 }, () => 0),
    sumSeconds: 0,
    count: 0,
    forced: { requests: 0, errors: 0 },
    injected: { aborts: 0, delays: 0 },
  });
  return {
    pools: [pool(), pool()],
    rejected: [],
    retried: { toStable: 0, refused: 0 },
    shadow: emptyShadowTotals(),
  };
}

/** Requests answered through a pool (judged and forced), both pools. */
export function served(t: Totals): number {
  return t.pools.reduce((n, p) => n + p.count + p.forced.requests, 0);
}

/** a + b, as a new value. */
export function addTotals(a: Totals, b: Totals): Totals {
  const pool = (x: PoolTotals, y: PoolTotals): PoolTotals => ({
    codes: addPairs(x.codes, y.codes),
    errorKinds: x.errorKinds.map((v, i) => v + (y.errorKinds[i] ?? 0)),
    buckets: x.buckets.map((v, i) => v + (y.buckets[i] ?? 0)),
    sumSeconds: x.sumSeconds + y.sumSeconds,
    count: x.count + y.count,
    forced: { requests: x.forced.requests + y.forced.requests, errors: x.forced.errors + y.forced.errors },
    injected: { aborts: x.injected.aborts + y.injected.aborts, delays: x.injected.delays + y.injected.delays },
  });
  return {
    pools: [pool(a.pools[0], b.pools[0]), pool(a.pools[1], b.pools[1])],
    rejected: addPairs(a.rejected, b.rejected),
    retried: { toStable: a.retried.toStable + b.retried.toStable, refused: a.retried.refused + b.retried.refused },
    shadow: addShadow(a.shadow, b.shadow),
  };
}

function addShadow(a: ShadowTotals, b: ShadowTotals | undefined): ShadowTotals {
  const out = { ...a };
  if (b !== undefined) for (const k of SHADOW_TOTALS) out[k] += b[k];
  return out;
}

function addPairs<K extends string | number>(a: [K, number][], b: [K, number][]): [K, number][] {
  const m = new Map<K, number>(a);
  for (const [k, v] of b) m.set(k, (m.get(k) ?? 0) + v);
  return [...m].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

/**
 * The latest totals of each live member plus those of members that left. `set` replaces a
 * member's totals (they are cumulative, so a lost or repeated report changes nothing); `retire`
 * folds a member that is gone into the base.
 */
export class TotalsBook {
  private base = emptyTotals();
  private readonly live = new Map<string, Totals>();
  private cached: Totals | undefined;

  set(member: string, t: Totals): void {
    this.live.set(member, t);
    this.cached = undefined;
  }

  retire(member: string): void {
    const t = this.live.get(member);
    if (t === undefined) return;
    this.base = addTotals(this.base, t);
    this.live.delete(member);
    this.cached = undefined;
  }

  /** Everything counted so far, by every member that ever was. */
  sum(): Totals {
    this.cached ??= [...this.live.values()].reduce(addTotals, this.base);
    return this.cached;
  }
}
