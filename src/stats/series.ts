/**
 * The recent past, per interval: what the live page draws and `GET /api/v1/series` returns, so a
 * page opened during an incident shows how it got there. One point per pool per tick, from the
 * merged interval (percentiles read once per tick from the interval's histogram, never on the
 * request path), kept for `spanMs` (15 minutes) in columns that are cheap to slice and to send.
 */
import type { PoolId } from '../data/table.js';
import type { IntervalSnapshot } from './snapshot.js';

/** One pool's points, oldest first, as columns: `at[i]` (ms) goes with `requests[i]`... */
export interface PoolSeries {
  at: number[];
  requests: number[];
  errors: number[];
  p50Ms: number[];
  p95Ms: number[];
  p99Ms: number[];
}

const COLUMNS = ['at', 'requests', 'errors', 'p50Ms', 'p95Ms', 'p99Ms'] as const;

const empty = (): PoolSeries => ({ at: [], requests: [], errors: [], p50Ms: [], p95Ms: [], p99Ms: [] });

const ms = (micros: number) => Math.round(micros) / 1000;

export class SeriesRing {
  private readonly pools: [PoolSeries, PoolSeries] = [empty(), empty()];
  /** Index of the oldest point still kept (the arrays are compacted now and then, not per tick). */
  private head = 0;

  constructor(readonly spanMs = 15 * 60_000) {}

  /** Add the interval that ended at `at`. */
  push(at: number, s: IntervalSnapshot): void {
    for (const id of [0, 1] as const) {
      const p = s.pools[id];
      const out = this.pools[id];
      out.at.push(at);
      out.requests.push(p.requests);
      out.errors.push(p.errors);
      const h = p.hist;
      const has = h.totalCount > 0;
      out.p50Ms.push(has ? ms(h.getValueAtPercentile(50)) : 0);
      out.p95Ms.push(has ? ms(h.getValueAtPercentile(95)) : 0);
      out.p99Ms.push(has ? ms(h.getValueAtPercentile(99)) : 0);
    }
    const at0 = this.pools[0].at;
    while (this.head < at0.length && (at0[this.head] as number) <= at - this.spanMs) this.head++;
    if (this.head > 1024) {
      for (const p of this.pools) for (const c of COLUMNS) p[c].splice(0, this.head);
      this.head = 0;
    }
  }

  /** The points after `since` (ms; 0: all kept), per pool. */
  since(since = 0): { blue: PoolSeries; green: PoolSeries } {
    const at0 = this.pools[0].at;
    let from = this.head;
    while (from < at0.length && (at0[from] as number) <= since) from++;
    const slice = (id: PoolId): PoolSeries => {
      const p = this.pools[id];
      const out = empty();
      for (const c of COLUMNS) out[c] = p[c].slice(from);
      return out;
    };
    return { blue: slice(0), green: slice(1) };
  }
}
