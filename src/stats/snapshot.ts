/**
 * An interval snapshot: what the request path measured per pool over one analysis interval, as a
 * value (STYLE.md 15). The recorder hands one over on each tick (`Recorder.takeInterval`) and
 * keeps writing to fresh histograms; the window, the analysis and the status are computed from
 * snapshots only. A snapshot encodes to plain JSON and merges exactly, so one taken in a worker
 * thread or another instance crosses to the controller unchanged.
 *
 * The encoding is the histogram's non-empty buckets as [index, count] pairs. Every member builds
 * its histograms with the same settings (newHistogram), so an index means the same bucket
 * everywhere and adding counts is exact. HDR's standard compressed base64 (deflate) cost ~0.5 ms
 * to encode and ~0.9 ms to decode and add for one worker's second at 10k req/s here
 * (`node bench/workers.mjs`); pairs cost a small fraction of that.
 */
import type { Histogram } from 'hdr-histogram-js';
import { newHistogram } from './recorder.js';

/** One pool over one interval. `hist` holds latencies in µs; the counts exclude forced requests. */
export interface PoolInterval {
  readonly hist: Histogram;
  readonly requests: number;
  readonly errors: number;
}

export interface IntervalSnapshot {
  /** Indexed by PoolId: 0 blue, 1 green. */
  readonly pools: readonly [PoolInterval, PoolInterval];
  /** Shadow traffic over the interval (data/mirror.ts); absent when nothing was mirrored. */
  readonly shadow?: ShadowTally | undefined;
}

/** One mismatching pair, as an example for the verdict (a few per interval at most). */
export interface ShadowSample {
  kind: 'failed' | 'status' | 'slow';
  method: string;
  path: string;
  requestId: string;
  stable: number;
  canary: number;
  stableMs: number;
  canaryMs: number;
}

/**
 * What the shadow saw over an interval. A pair is one request answered by stable (for the client)
 * and by its mirror on the canary: `failed` stable answered and the canary failed (5xx, no
 * answer); `status` another status class; `slow` the canary much slower (rollout.shadow.slowRatio).
 */
export interface ShadowTally {
  mirrored: number;
  /** Not sent: rollout.shadow.maxInFlight reached, or no free canary connection. */
  dropped: number;
  /** Not sent: a body too large or streamed. */
  skipped: number;
  pairs: number;
  failed: number;
  status: number;
  slow: number;
  samples: ShadowSample[];
}

/** Samples kept per tally: enough to name a few failing paths, never a log of them. */
export const MAX_SHADOW_SAMPLES = 5;

export const emptyTally = (): ShadowTally => ({
  mirrored: 0,
  dropped: 0,
  skipped: 0,
  pairs: 0,
  failed: 0,
  status: 0,
  slow: 0,
  samples: [],
});

const TALLY_COUNTS = ['mirrored', 'dropped', 'skipped', 'pairs', 'failed', 'status', 'slow'] as const;

/** `into` plus `t` (counts summed, samples up to MAX_SHADOW_SAMPLES); `into` is changed and returned. */
export function addTally(into: ShadowTally, t: ShadowTally | undefined): ShadowTally {
  if (t === undefined) return into;
  for (const k of TALLY_COUNTS) into[k] += t[k];
  for (const x of t.samples) if (into.samples.length < MAX_SHADOW_SAMPLES) into.samples.push(x);
  return into;
}

/** A tally that crossed from a worker or an instance: checked, not trusted. */
function checkTally(t: unknown): ShadowTally {
  const o = t as ShadowTally;
  if (typeof o !== 'object' || o === null) throw new Error('a shadow tally is an object');
  for (const k of TALLY_COUNTS)
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`bad shadow count ${k}: ${String(o[k])}`);
  if (!Array.isArray(o.samples) || o.samples.length > MAX_SHADOW_SAMPLES) throw new Error('bad shadow samples');
  return o;
}

/**
 * What a worker or an instance sends. `buckets`: [index, count, index, count, ...], ascending
 * indexes; a Float64Array between threads (cloned as one block: a 4,000-pair array cost ~0.44 ms
 * to clone as numbers, ~0.05 ms as a typed array), a plain array in JSON (`intervalJSON`).
 */
export interface EncodedInterval {
  readonly pools: readonly { buckets: ArrayLike<number>; requests: number; errors: number }[];
  readonly shadow?: ShadowTally | undefined;
}

/** What the encoding reads and writes of hdr-histogram-js's JsHistogram (public members of the class). */
interface Buckets {
  readonly countsArrayLength: number;
  readonly minNonZeroValue: number;
  readonly maxValue: number;
  getCountAtIndex(i: number): number;
  addToCountAtIndex(i: number, count: number): void;
  addToTotalCount(count: number): void;
  updateMinAndMax(value: number): void;
  countsArrayIndex(value: number): number;
  valueFromIndex(i: number): number;
}

let scratch = new Float64Array(8192);

/** The non-empty buckets of `h`, scanning only between its lowest and highest recorded values. */
export function encodeBuckets(h: Histogram): Float64Array {
  if (h.totalCount === 0) return new Float64Array(0);
  const b = h as unknown as Buckets;
  const last = Math.min(b.countsArrayLength - 1, b.countsArrayIndex(b.maxValue));
  let n = 0;
  for (let i = b.countsArrayIndex(b.minNonZeroValue); i <= last; i++) {
    const c = b.getCountAtIndex(i);
    if (c === 0) continue;
    if (n + 2 > scratch.length) {
      const bigger = new Float64Array(scratch.length * 2);
      bigger.set(scratch);
      scratch = bigger;
    }
    scratch[n++] = i;
    scratch[n++] = c;
  }
  return scratch.slice(0, n);
}

/**
 * Add encoded buckets into `into` (a newHistogram): counts straight into its array, as its own
 * `add` does (recording each bucket's value again cost ~25× more). Throws on pairs that are not
 * buckets, before changing anything.
 */
export function addBuckets(buckets: ArrayLike<number>, into: Histogram): void {
  const b = into as unknown as Buckets;
  const n = buckets.length;
  if (n % 2 !== 0) throw new Error('buckets come in [index, count] pairs');
  let total = 0;
  let prev = -1;
  for (let k = 0; k < n; k += 2) {
    const i = buckets[k] as number;
    const c = buckets[k + 1] as number;
    if (!Number.isInteger(i) || i <= prev || i >= b.countsArrayLength || !Number.isInteger(c) || c <= 0)
      throw new Error(`bad bucket ${i}: ${c}`);
    prev = i;
    total += c;
  }
  if (n === 0) return;
  for (let k = 0; k < n; k += 2) b.addToCountAtIndex(buckets[k] as number, buckets[k + 1] as number);
  b.addToTotalCount(total);
  b.updateMinAndMax(b.valueFromIndex(buckets[0] as number));
  b.updateMinAndMax(b.valueFromIndex(buckets[n - 2] as number));
}

/** An encoded interval as plain JSON (arrays, not typed arrays): for a crossing that is text. */
export function intervalJSON(e: EncodedInterval): EncodedInterval {
  return {
    pools: e.pools.map((p) => ({ ...p, buckets: Array.from(p.buckets) })),
    ...(e.shadow === undefined ? {} : { shadow: e.shadow }),
  };
}

export function encodeInterval(s: IntervalSnapshot): EncodedInterval {
  return {
    pools: s.pools.map((p) => ({ buckets: encodeBuckets(p.hist), requests: p.requests, errors: p.errors })),
    ...(s.shadow === undefined ? {} : { shadow: s.shadow }),
  };
}

/**
 * Decode what `encodeInterval` made, into `into` (reset first) or new histograms; throws on
 * anything else (a crossing is checked, not trusted).
 */
export function decodeInterval(e: EncodedInterval, into?: readonly [Histogram, Histogram]): IntervalSnapshot {
  if (e.pools.length !== 2) throw new Error(`an interval has two pools, not ${e.pools.length}`);
  const pool = (i: 0 | 1): PoolInterval => {
    const p = e.pools[i] as EncodedInterval['pools'][number];
    if (!Number.isInteger(p.requests) || !Number.isInteger(p.errors) || p.errors < 0 || p.errors > p.requests)
      throw new Error(`bad counts in pool ${i}: ${p.requests} requests, ${p.errors} errors`);
    if (!Array.isArray(p.buckets) && !(p.buckets instanceof Float64Array)) throw new Error(`pool ${i} has no buckets`);
    const hist = into?.[i] ?? newHistogram();
    hist.reset();
    addBuckets(p.buckets, hist);
    if (hist.totalCount !== p.requests)
      throw new Error(`pool ${i}: ${p.requests} requests but ${hist.totalCount} latencies`);
    return { hist, requests: p.requests, errors: p.errors };
  };
  const pools: IntervalSnapshot['pools'] = [pool(0), pool(1)];
  return e.shadow === undefined ? { pools } : { pools, shadow: checkTally(e.shadow) };
}

/**
 * Several members' snapshots of the same interval as one: counts summed, histograms added
 * (exact: HDR buckets add). A part may be live (in this thread) or still encoded (from a worker:
 * its buckets are added straight in, never decoded into a histogram of their own). `into`
 * receives the merged histograms, reset first.
 */
export function mergeIntervals(
  parts: readonly (IntervalSnapshot | EncodedInterval)[],
  into: readonly [Histogram, Histogram],
): IntervalSnapshot {
  const pool = (i: 0 | 1): PoolInterval => {
    const hist = into[i];
    hist.reset();
    let requests = 0;
    let errors = 0;
    for (const s of parts) {
      const p = s.pools[i] as PoolInterval | EncodedInterval['pools'][number];
      requests += p.requests;
      errors += p.errors;
      if ('buckets' in p) addBuckets(p.buckets, hist);
      else if (p.hist.totalCount > 0) hist.add(p.hist);
    }
    if (hist.totalCount !== requests)
      throw new Error(`pool ${i}: ${requests} requests but ${hist.totalCount} latencies`);
    return { hist, requests, errors };
  };
  const pools: IntervalSnapshot['pools'] = [pool(0), pool(1)];
  let shadow: ShadowTally | undefined;
  for (const s of parts) if (s.shadow !== undefined) shadow = addTally(shadow ?? emptyTally(), checkTally(s.shadow));
  return shadow === undefined ? { pools } : { pools, shadow };
}
