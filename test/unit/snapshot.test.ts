/**
 * Edges of the interval snapshot encoding and merge (stats/snapshot.ts) and of the window ring
 * (stats/window.ts): large histograms, refusals, reuse of the histograms given, percentile bounds
 * to the sample. Values are recorded by hand; no clock.
 */
import type { Histogram } from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import { rng } from '../helpers/sim.js';
import { newHistogram } from '../../src/stats/recorder.js';
import {
  addBuckets,
  decodeInterval,
  type EncodedInterval,
  encodeBuckets,
  encodeInterval,
  type IntervalSnapshot,
  intervalJSON,
  mergeIntervals,
} from '../../src/stats/snapshot.js';
import { WindowRing } from '../../src/stats/window.js';

const hist = (values: number[]): Histogram => {
  const h = newHistogram();
  for (const v of values) h.recordValue(v);
  return h;
};

const snap = (a: number[], b: number[], errors: [number, number] = [0, 0]): IntervalSnapshot => ({
  pools: [
    { hist: hist(a), requests: a.length, errors: errors[0] },
    { hist: hist(b), requests: b.length, errors: errors[1] },
  ],
});

const PERCENTILES = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100];
const percentiles = (h: Histogram) => PERCENTILES.map((q) => h.getValueAtPercentile(q));

/** The number of buckets of a newHistogram (its highest bucket index + 1). */
const COUNTS = (newHistogram() as unknown as { countsArrayLength: number }).countsArrayLength;

describe('encodeBuckets / addBuckets', () => {
  it('encodes only non-empty buckets, ascending, and adds them back to the same histogram', () => {
    const h = hist([100, 100, 5000, 7, 3_000_000]);
    const e = encodeBuckets(h);
    expect(e).toBeInstanceOf(Float64Array);
    expect(e.length).toBe(8);
    const idx = Array.from(e).filter((_, i) => i % 2 === 0);
    expect(idx).toEqual([...idx].sort((x, y) => x - y));
    expect(Array.from(e).filter((_, i) => i % 2 === 1)).toEqual([1, 2, 1, 1]);
    const back = newHistogram();
    addBuckets(e, back);
    expect(back.totalCount).toBe(5);
    expect(percentiles(back)).toEqual(percentiles(h));
    // Its lowest and highest values are known again: it encodes to the same buckets.
    expect(Array.from(encodeBuckets(back))).toEqual(Array.from(e));
    expect(encodeBuckets(newHistogram()).length).toBe(0);
  });

  it('encodes a histogram with more non-empty buckets than its first buffer holds (5,000+)', () => {
    const values = Array.from({ length: 20_000 }, (_, i) => i + 1);
    const h = hist(values);
    const e = encodeBuckets(h);
    expect(e.length / 2).toBeGreaterThan(5000);
    const back = newHistogram();
    addBuckets(e, back);
    expect(back.totalCount).toBe(20_000);
    for (const q of [0.001, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 100])
      expect(back.getValueAtPercentile(q)).toBe(h.getValueAtPercentile(q));
    // The buffer is reused: what an earlier call returned does not change with the next one.
    const small = encodeBuckets(hist([42]));
    expect(Array.from(e.subarray(0, 2))).toEqual([1, 1]);
    expect(small.length).toBe(2);
  });

  it('adds into a histogram that already holds values', () => {
    const into = hist([10, 20]);
    addBuckets(encodeBuckets(hist([30, 40_000])), into);
    expect(into.totalCount).toBe(4);
    expect(percentiles(into)).toEqual(percentiles(hist([10, 20, 30, 40_000])));
    expect(Array.from(encodeBuckets(into))).toEqual(Array.from(encodeBuckets(hist([10, 20, 30, 40_000]))));
    addBuckets([], into);
    expect(into.totalCount).toBe(4);
  });

  it.each<[string, number[]]>([
    ['an odd length', [5, 1, 6]],
    ['a fractional index', [5.5, 1]],
    ['a repeated index', [5, 1, 5, 1]],
    ['descending indexes', [9, 1, 5, 1]],
    ['a negative index', [-1, 1]],
    ['an index past the last bucket', [COUNTS, 1]],
    ['a zero count', [5, 0]],
    ['a negative count', [5, -2]],
    ['a fractional count', [5, 1.5]],
    ['a NaN index', [Number.NaN, 1]],
  ])('refuses %s, before changing anything', (_name, buckets) => {
    const into = hist([10, 20, 30]);
    expect(() => addBuckets(buckets, into)).toThrow(/bad bucket|pairs/);
    // A good pair before the bad one is not added either.
    expect(() => addBuckets([0, 1, ...buckets.map((x, i) => (i % 2 === 0 && x >= 0 ? x + 1 : x))], into)).toThrow(
      /bad bucket|pairs/,
    );
    expect(into.totalCount).toBe(3);
    expect(percentiles(into)).toEqual(percentiles(hist([10, 20, 30])));
  });

  it('takes the last bucket there is', () => {
    const into = newHistogram();
    addBuckets([COUNTS - 1, 1], into);
    expect(into.totalCount).toBe(1);
  });
});

describe('decodeInterval', () => {
  const good = () => encodeInterval(snap([100, 200, 300], [5000], [1, 1]));

  it('decodes into the histograms given, reset first', () => {
    const into: [Histogram, Histogram] = [hist([1, 2, 3, 4]), hist([9])];
    const s = decodeInterval(intervalJSON(good()), into);
    expect(s.pools[0].hist).toBe(into[0]);
    expect(s.pools[1].hist).toBe(into[1]);
    expect(s.pools.map((p) => [p.requests, p.errors, p.hist.totalCount])).toEqual([
      [3, 1, 3],
      [1, 1, 1],
    ]);
    expect(percentiles(s.pools[0].hist)).toEqual(percentiles(hist([100, 200, 300])));
    // Without `into`, fresh histograms.
    const fresh = decodeInterval(good());
    expect(fresh.pools[0].hist).not.toBe(into[0]);
    expect(percentiles(fresh.pools[1].hist)).toEqual(percentiles(hist([5000])));
  });

  it.each<[string, Partial<EncodedInterval['pools'][number]>, RegExp]>([
    ['negative errors', { errors: -1 }, /bad counts in pool 0/],
    ['fractional errors', { errors: 0.5 }, /bad counts in pool 0/],
    ['more errors than requests', { errors: 4 }, /bad counts in pool 0/],
    ['buckets that are an object', { buckets: { length: 0 } }, /pool 0 has no buckets/],
    ['buckets that are a string', { buckets: '1' as unknown as number[] }, /pool 0 has no buckets/],
    ['a count that is not the latencies', { requests: 2 }, /pool 0: 2 requests but 3 latencies/],
  ])('refuses %s', (_name, over, message) => {
    const e = good();
    expect(() => decodeInterval({ pools: [{ ...e.pools[0]!, ...over }, e.pools[1]!] })).toThrow(message);
  });

  it('accepts all requests as errors, and no requests', () => {
    const s = decodeInterval(encodeInterval(snap([100, 200], [], [2, 0])));
    expect(s.pools.map((p) => [p.requests, p.errors])).toEqual([
      [2, 2],
      [0, 0],
    ]);
    expect(() =>
      decodeInterval({ pools: [...good().pools, good().pools[0]!] as unknown as EncodedInterval['pools'] }),
    ).toThrow(/two pools, not 3/);
  });

  it('intervalJSON turns the typed arrays into plain arrays, the rest unchanged', () => {
    const e = good();
    const j = intervalJSON(e);
    expect(Array.isArray(j.pools[0]!.buckets)).toBe(true);
    expect(j.pools.map((p) => [Array.from(p.buckets), p.requests, p.errors])).toEqual(
      e.pools.map((p) => [Array.from(p.buckets), p.requests, p.errors]),
    );
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });
});

describe('mergeIntervals', () => {
  it('resets the histograms it merges into, and returns them', () => {
    const into: [Histogram, Histogram] = [hist([1, 1, 1]), hist([2])];
    const m = mergeIntervals([snap([10], [20]), encodeInterval(snap([30], []))], into);
    expect(m.pools[0].hist).toBe(into[0]);
    expect(m.pools.map((p) => [p.requests, p.hist.totalCount])).toEqual([
      [2, 2],
      [1, 1],
    ]);
    expect(percentiles(m.pools[0].hist)).toEqual(percentiles(hist([10, 30])));
    expect(Array.from(encodeBuckets(m.pools[0].hist))).toEqual(Array.from(encodeBuckets(hist([10, 30]))));
  });

  it('sums counts from live and encoded parts, an empty part changing nothing', () => {
    const m = mergeIntervals(
      [
        snap([], []),
        encodeInterval(snap([], [])),
        snap([5, 6], [7], [1, 0]),
        encodeInterval(snap([8], [9, 10], [1, 2])),
      ],
      [newHistogram(), newHistogram()],
    );
    expect(m.pools.map((p) => [p.requests, p.errors])).toEqual([
      [3, 2],
      [3, 2],
    ]);
    expect(percentiles(m.pools[1].hist)).toEqual(percentiles(hist([7, 9, 10])));
  });

  it('refuses a part whose counts do not match its latencies', () => {
    const bad: IntervalSnapshot = { pools: [{ hist: hist([1, 2]), requests: 3, errors: 0 }, snap([], []).pools[1]] };
    expect(() => mergeIntervals([bad], [newHistogram(), newHistogram()])).toThrow(/pool 0: 3 requests but 2 latencies/);
  });

  it('property: merged encoded parts hold exactly the buckets of one histogram of all the values', () => {
    for (let seed = 1; seed <= 15; seed++) {
      const r = rng(seed);
      const parts: IntervalSnapshot[] = [];
      const all: number[] = [];
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++) {
        const xs = Array.from({ length: Math.floor(r() * 200) }, () => 1 + Math.floor(Math.exp(r() * 18)));
        all.push(...xs);
        parts.push(snap(xs, []));
      }
      const m = mergeIntervals(
        parts.map((p, i) => (i % 2 === 0 ? encodeInterval(p) : p)),
        [newHistogram(), newHistogram()],
      );
      expect(Array.from(encodeBuckets(m.pools[0].hist))).toEqual(Array.from(encodeBuckets(hist(all))));
    }
  });
});

/** The exact value at percentile q of `xs`, as HDR defines it (the smallest value with ≥ q % at or below). */
function exactPercentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((q / 100) * s.length));
  return s[rank - 1] as number;
}

describe('WindowRing: edges', () => {
  it('gives no spare until full, then the oldest interval’s histograms', () => {
    const w = new WindowRing(2);
    expect(w.spare()).toEqual([undefined, undefined]);
    const first = snap([1], [2]);
    w.push(first);
    expect(w.spare()).toEqual([undefined, undefined]);
    w.push(snap([3], [4]));
    expect(w.spare()[0]).toBe(first.pools[0].hist);
    expect(w.spare()[1]).toBe(first.pools[1].hist);
    const third = snap([5], []);
    w.push(third);
    expect(w.length).toBe(2);
    expect(w.spare()[0]).not.toBe(first.pools[0].hist);
    expect(w.query(0).requests).toBe(2);
  });

  it('a window of one interval holds the newest only', () => {
    const w = new WindowRing(1);
    w.push(snap([1000, 1000], [], [1, 0]));
    w.push(snap([2000], []));
    expect(w.length).toBe(1);
    expect(w.query(0)).toMatchObject({ requests: 1, errors: 0, p50Ms: 2 });
  });

  it('queries the newest intervals only, counts and percentiles alike', () => {
    const w = new WindowRing(3);
    w.push(snap(Array(10).fill(90_000), [], [10, 0])); // slow and failing, oldest
    w.push(snap(Array(10).fill(1000), [], [1, 0]));
    w.push(snap(Array(10).fill(2000), [], [2, 0]));
    expect(w.query(0, { intervals: 2 })).toMatchObject({ requests: 20, errors: 3, p99Ms: 2 });
    expect(w.query(0, { intervals: 3 })).toMatchObject({ requests: 30, errors: 13 });
    expect(w.query(0, { intervals: 99 })).toMatchObject({ requests: 30, errors: 13 });
    expect(w.query(0, { intervals: 0 })).toMatchObject({ requests: 0, errors: 0, p99Ms: 0 });
    expect(w.query(0).p99Ms).toBeCloseTo(90, 1);
    expect(w.recent(0, 0)).toEqual({ requests: 0, errors: 0 });
    expect(w.recent(0, 2)).toEqual({ requests: 20, errors: 3 });
    expect(w.recent(1, 3)).toEqual({ requests: 0, errors: 0 });
  });

  it('rounds: error rate to 4 decimals, latencies to the µs', () => {
    const w = new WindowRing(2);
    w.push(snap([1234, 1234, 1234], [1], [1, 0]));
    expect(w.query(0)).toEqual({ requests: 3, errors: 1, errorRate: 0.3333, p50Ms: 1.234, p95Ms: 1.234, p99Ms: 1.234 });
    w.push(snap([1234, 1234, 1234], [], [1, 0]));
    expect(w.query(0).errorRate).toBe(0.3333);
    expect(w.query(1)).toEqual({ requests: 1, errors: 0, errorRate: 0, p50Ms: 0.001, p95Ms: 0.001, p99Ms: 0.001 });
    const two = new WindowRing(1);
    two.push(snap([10, 10, 10], [], [2, 0]));
    expect(two.query(0).errorRate).toBe(0.6667);
  });

  it('gives no p95 bounds without samples, even when asked', () => {
    const w = new WindowRing(2);
    w.push(snap([], [100]));
    expect(w.query(0, { z: 2 })).toEqual({ requests: 0, errors: 0, errorRate: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0 });
    expect(w.query(1, { z: 2 }).p95LowMs).toBe(0.1);
  });

  it('property: p95 bounds are the sample values at 95 ∓ z·√(0.95·0.05/n) percent', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const r = rng(seed);
      const n = 30 + Math.floor(r() * 2000);
      const z = 1 + r() * 2.5;
      // Distinct values (µs) in random order, in two intervals.
      const xs = Array.from({ length: n }, (_, i) => 10 * (i + 1)).sort(() => r() - 0.5);
      const w = new WindowRing(4);
      w.push(snap(xs.slice(0, n >> 1), []));
      w.push(snap(xs.slice(n >> 1), []));
      const q = w.query(0, { z });
      const half = z * Math.sqrt((0.95 * 0.05) / n) * 100;
      const near = (ms: number, percentile: number) => {
        const exact = exactPercentile(xs, Math.min(100, Math.max(0, percentile))) / 1000;
        expect(Math.abs(ms - exact)).toBeLessThanOrEqual(exact * 0.001 + 0.001);
      };
      near(q.p95Ms, 95);
      near(q.p95LowMs!, 95 - half);
      near(q.p95HighMs!, 95 + half);
      near(q.p50Ms, 50);
      near(q.p99Ms, 99);
    }
  });

  it('clamps the bounds to the sample: a single sample bounds itself', () => {
    const w = new WindowRing(1);
    w.push(snap([10_000], []));
    const q = w.query(0, { z: 5 }); // 95 ∓ 109 percent
    expect(q.p95LowMs).toBe(10);
    expect(q.p95HighMs).toBeGreaterThanOrEqual(10);
    expect(q.p95HighMs).toBeLessThan(10.01);
  });
});
