/**
 * An interval snapshot: what the request path measured per pool over one analysis interval, as a
 * value (STYLE.md 15). The recorder hands one over on each tick (`Recorder.takeInterval`) and
 * keeps writing to fresh histograms; the window, the analysis and the status are computed from
 * snapshots only. A snapshot encodes to plain JSON (HDR's compressed base64) and merges exactly,
 * so one taken in a worker thread or another instance crosses to the controller unchanged.
 */
import * as hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/** One pool over one interval. `hist` holds latencies in µs; the counts exclude forced requests. */
export interface PoolInterval {
  readonly hist: Histogram;
  readonly requests: number;
  readonly errors: number;
}

export interface IntervalSnapshot {
  /** Indexed by PoolId: 0 blue, 1 green. */
  readonly pools: readonly [PoolInterval, PoolInterval];
}

/** The same as JSON: what a worker or an instance sends. */
export interface EncodedInterval {
  readonly pools: readonly { hist: string; requests: number; errors: number }[];
}

export function encodeInterval(s: IntervalSnapshot): EncodedInterval {
  return {
    pools: s.pools.map((p) => ({
      hist: hdr.encodeIntoCompressedBase64(p.hist),
      requests: p.requests,
      errors: p.errors,
    })),
  };
}

/** Decode what `encodeInterval` made; throws on anything else (a crossing is checked, not trusted). */
export function decodeInterval(e: EncodedInterval): IntervalSnapshot {
  if (e.pools.length !== 2) throw new Error(`an interval has two pools, not ${e.pools.length}`);
  const pool = (i: 0 | 1): PoolInterval => {
    const p = e.pools[i] as EncodedInterval['pools'][number];
    if (!Number.isInteger(p.requests) || !Number.isInteger(p.errors) || p.errors < 0 || p.errors > p.requests)
      throw new Error(`bad counts in pool ${i}: ${p.requests} requests, ${p.errors} errors`);
    return { hist: hdr.decodeFromCompressedBase64(p.hist, 32, false), requests: p.requests, errors: p.errors };
  };
  return { pools: [pool(0), pool(1)] };
}

/**
 * Several members' snapshots of the same interval as one: counts summed, histograms added
 * (exact: HDR buckets add). `into` receives the merged histograms, reset first.
 */
export function mergeIntervals(
  parts: readonly IntervalSnapshot[],
  into: readonly [Histogram, Histogram],
): IntervalSnapshot {
  const pool = (i: 0 | 1): PoolInterval => {
    const hist = into[i];
    hist.reset();
    let requests = 0;
    let errors = 0;
    for (const s of parts) {
      const p = s.pools[i];
      requests += p.requests;
      errors += p.errors;
      if (p.hist.totalCount > 0) hist.add(p.hist);
    }
    return { hist, requests, errors };
  };
  return { pools: [pool(0), pool(1)] };
}
