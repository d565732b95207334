/**
 * The sliding window: a ring of interval snapshots (stats/snapshot.ts) per pool. On each tick the
 * controller asks for `spare()` (the histograms of the interval about to leave, for reuse), gets
 * the next interval from the data plane (the recorder, or the merge of several members'
 * snapshots) and `push`es it, which drops the oldest slot. `query()` merges the ring: percentile
 * math happens here, once per tick, never on the request path.
 */
import type { Histogram } from 'hdr-histogram-js';
import type { PoolId } from '../data/table.js';
import { newHistogram } from './recorder.js';
import type { IntervalSnapshot } from './snapshot.js';

/** Histograms the window is about to give up, per pool, for the next interval to reuse. */
export type Spare = readonly [Histogram | undefined, Histogram | undefined];

/** One pool's numbers over a span of time. */
export interface WindowStats {
  requests: number;
  errors: number;
  errorRate: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /**
   * Confidence bounds on the true p95 (order statistics, normal approximation): the values at
   * percentiles 95 ∓ z·√(0.95·0.05/n). Set when `query` is given a z.
   */
  p95LowMs?: number;
  p95HighMs?: number;
}

/** Counts of the newest intervals, for fast detection before the whole window fills. */
export interface RecentStats {
  requests: number;
  errors: number;
}

interface Slot {
  hist: Histogram;
  requests: number;
  errors: number;
}

/** The source of window statistics the controller reads; a fleet mode can merge several. */
export interface WindowSource {
  /** The oldest slot's histograms when the window is full (they leave on the next push). */
  spare(): Spare;
  /** Add an interval as the newest, dropping the oldest past the window's size. */
  push(s: IntervalSnapshot): void;
  /**
   * A pool's numbers over the whole window, or over its newest `intervals` only. With `z`, the
   * p95 confidence bounds are computed too.
   */
  query(pool: PoolId, opts?: { intervals?: number; z?: number }): WindowStats;
  /** Request and error counts of the newest `intervals` intervals (no percentiles: cheap). */
  recent(pool: PoolId, intervals: number): RecentStats;
  /** Intervals currently held (grows to the window's size after start). */
  readonly length: number;
}

export class WindowRing implements WindowSource {
  private readonly rings: [Slot[], Slot[]] = [[], []];
  private readonly merged = newHistogram();

  /** `slots`: how many intervals the window covers (window / interval, rounded up). */
  constructor(readonly slots: number) {}

  spare(): Spare {
    if (this.rings[0].length < this.slots) return [undefined, undefined];
    return [this.rings[0][0]?.hist, this.rings[1][0]?.hist];
  }

  push(s: IntervalSnapshot): void {
    for (const id of [0, 1] as const) {
      const ring = this.rings[id];
      while (ring.length >= this.slots) ring.shift();
      const p = s.pools[id];
      ring.push({ hist: p.hist, requests: p.requests, errors: p.errors });
    }
  }

  get length(): number {
    return this.rings[0].length;
  }

  query(pool: PoolId, opts: { intervals?: number; z?: number } = {}): WindowStats {
    const ring = this.rings[pool];
    const from = opts.intervals === undefined ? 0 : Math.max(0, ring.length - opts.intervals);
    let requests = 0;
    let errors = 0;
    const m = this.merged;
    m.reset();
    for (let i = from; i < ring.length; i++) {
      const s = ring[i] as Slot;
      requests += s.requests;
      errors += s.errors;
      if (s.hist.totalCount > 0) m.add(s.hist);
    }
    const n = m.totalCount;
    const at = (q: number) => (n === 0 ? 0 : round3(m.getValueAtPercentile(Math.min(100, Math.max(0, q))) / 1000));
    const out: WindowStats = {
      requests,
      errors,
      errorRate: requests === 0 ? 0 : round4(errors / requests),
      p50Ms: at(50),
      p95Ms: at(95),
      p99Ms: at(99),
    };
    if (opts.z !== undefined && n > 0) {
      const half = opts.z * Math.sqrt((0.95 * 0.05) / n) * 100;
      out.p95LowMs = at(95 - half);
      out.p95HighMs = at(95 + half);
    }
    return out;
  }

  recent(pool: PoolId, intervals: number): RecentStats {
    const ring = this.rings[pool];
    let requests = 0;
    let errors = 0;
    for (let i = Math.max(0, ring.length - intervals); i < ring.length; i++) {
      requests += (ring[i] as Slot).requests;
      errors += (ring[i] as Slot).errors;
    }
    return { requests, errors };
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
const round4 = (x: number) => Math.round(x * 10000) / 10000;
