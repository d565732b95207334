/**
 * The recorder's interval snapshots, their encoding and exact merge, and the window ring built
 * from them (stats/recorder.ts, snapshot.ts, window.ts). Values are recorded by hand; no clock.
 */
import { describe, expect, it } from 'vitest';
import { rng } from '../helpers/sim.js';
import { newHistogram, Recorder } from '../../src/stats/recorder.js';
import {
  decodeInterval,
  encodeInterval,
  intervalJSON,
  type IntervalSnapshot,
  mergeIntervals,
} from '../../src/stats/snapshot.js';
import { WindowRing } from '../../src/stats/window.js';

/** The exact value at percentile q of `xs`, as HDR defines it (the smallest value with ≥ q % at or below). */
function exactPercentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((q / 100) * s.length));
  return s[rank - 1] as number;
}

/** One interval of `n` values per pool (µs), the first `errors` of them errors. */
function interval(rec: Recorder, values: [number[], number[]], errors: [number, number] = [0, 0]): void {
  for (const id of [0, 1] as const) {
    for (const [i, v] of values[id].entries()) rec.record(id, i < errors[id] ? 503 : 200, v, undefined);
  }
}

describe('Recorder.takeInterval', () => {
  it('hands over the interval whole and starts a fresh one, recycling what it is given', () => {
    const rec = new Recorder();
    interval(rec, [[100, 200, 300], [1000]], [1, 0]);
    const a = rec.takeInterval();
    expect(a.pools.map((p) => [p.requests, p.errors, p.hist.totalCount])).toEqual([
      [3, 1, 3],
      [1, 0, 1],
    ]);
    // The request path writes to a fresh histogram: the snapshot does not change.
    interval(rec, [[5], []]);
    expect(a.pools[0].hist.totalCount).toBe(3);
    const spare = newHistogram();
    spare.recordValue(42);
    const b = rec.takeInterval([spare, undefined]);
    expect(b.pools[0].requests).toBe(1);
    // The recycled histogram is reset and now the recorder's.
    expect(rec.pools[0].interval).toBe(spare);
    expect(spare.totalCount).toBe(0);
  });

  it('keeps forced requests out of the interval', () => {
    const rec = new Recorder();
    rec.recordForced(1, 503, undefined);
    rec.record(1, 200, 10, undefined);
    const s = rec.takeInterval();
    expect(s.pools[1]).toMatchObject({ requests: 1, errors: 0 });
    expect(rec.pools[1].forced).toEqual({ requests: 1, errors: 1 });
  });
});

describe('interval snapshots cross as JSON and merge exactly', () => {
  it('encodes and decodes to the same counts and percentiles', () => {
    const rec = new Recorder();
    const r = rng(7);
    interval(
      rec,
      [Array.from({ length: 5000 }, () => 1 + Math.floor(r() * 50_000)), Array.from({ length: 40 }, () => 900)],
      [17, 40],
    );
    const s = rec.takeInterval();
    const back = decodeInterval(JSON.parse(JSON.stringify(intervalJSON(encodeInterval(s)))));
    for (const id of [0, 1] as const) {
      expect(back.pools[id].requests).toBe(s.pools[id].requests);
      expect(back.pools[id].errors).toBe(s.pools[id].errors);
      for (const q of [50, 95, 99, 99.9])
        expect(back.pools[id].hist.getValueAtPercentile(q)).toBe(s.pools[id].hist.getValueAtPercentile(q));
    }
  });

  it('refuses what is not an interval', () => {
    const good = encodeInterval(new Recorder().takeInterval());
    expect(() => decodeInterval({ pools: [good.pools[0]!] })).toThrow(/two pools/);
    expect(() => decodeInterval({ pools: [{ ...good.pools[0]!, errors: 5 }, good.pools[1]!] })).toThrow(/bad counts/);
    expect(() => decodeInterval({ pools: [{ ...good.pools[0]!, requests: 1.5 }, good.pools[1]!] })).toThrow(
      /bad counts/,
    );
  });

  it('merges members into what one recorder seeing all of it would hold', () => {
    const r = rng(11);
    const all = new Recorder();
    const members = [new Recorder(), new Recorder(), new Recorder()];
    for (let i = 0; i < 3000; i++) {
      const v = 1 + Math.floor(r() * 20_000);
      const pool = r() < 0.3 ? 1 : 0;
      const status = r() < 0.05 ? 502 : 200;
      all.record(pool, status, v, undefined);
      (members[i % 3] as Recorder).record(pool, status, v, undefined);
    }
    const merged = mergeIntervals(
      members.map((m) => m.takeInterval()),
      [newHistogram(), newHistogram()],
    );
    const one = all.takeInterval();
    for (const id of [0, 1] as const) {
      expect(merged.pools[id].requests).toBe(one.pools[id].requests);
      expect(merged.pools[id].errors).toBe(one.pools[id].errors);
      for (const q of [50, 95, 99])
        expect(merged.pools[id].hist.getValueAtPercentile(q)).toBe(one.pools[id].hist.getValueAtPercentile(q));
    }
  });
});

/** A window fed by hand: each push is one interval. */
function ring(slots: number) {
  const rec = new Recorder();
  const w = new WindowRing(slots);
  // One tick: the interval that leaves gives its histograms back to the recorder.
  const rotate = () => w.push(rec.takeInterval(w.spare()));
  return { rec, w, rotate };
}

describe('WindowRing', () => {
  it('holds exactly `slots` intervals: the oldest leaves when a new one joins', () => {
    const { rec, w, rotate } = ring(3);
    for (let k = 1; k <= 5; k++) {
      interval(rec, [Array(k * 10).fill(100), []], [k, 0]);
      rotate();
      expect(w.length).toBe(Math.min(k, 3));
    }
    // Intervals 3, 4 and 5 remain: 30 + 40 + 50 requests, 3 + 4 + 5 errors.
    expect(w.query(0)).toMatchObject({ requests: 120, errors: 12, errorRate: 0.1 });
    expect(w.recent(0, 1)).toEqual({ requests: 50, errors: 5 });
    expect(w.recent(0, 2)).toEqual({ requests: 90, errors: 9 });
    expect(w.recent(0, 10)).toEqual({ requests: 120, errors: 12 });
    expect(w.query(0, { intervals: 1 })).toMatchObject({ requests: 50, errors: 5 });
    expect(w.query(1)).toMatchObject({ requests: 0, errors: 0, errorRate: 0, p95Ms: 0 });
  });

  it('recycles the histograms of the interval that leaves into the recorder', () => {
    const { rec, w, rotate } = ring(1);
    interval(rec, [[100], [200]]);
    rotate();
    const first = rec.pools[0].interval;
    interval(rec, [[300], [400]]);
    rotate();
    // The first interval's histogram left the window and came back to the recorder, reset.
    const back = rec.pools[0].interval;
    expect(back).not.toBe(first);
    expect(back.totalCount).toBe(0);
    expect(w.query(0).p50Ms).toBeCloseTo(0.3, 2);
  });

  it('reports percentiles in ms, and p95 bounds that widen with fewer samples only when asked', () => {
    const { rec, w, rotate } = ring(2);
    interval(rec, [
      Array.from({ length: 1000 }, (_, i) => (i + 1) * 10),
      // The same spread (10 µs to 10 ms), sampled 50 times more thinly.
      Array.from({ length: 20 }, (_, i) => (i + 1) * 500),
    ]);
    rotate();
    const many = w.query(0, { z: 2.326 });
    const few = w.query(1, { z: 2.326 });
    expect(many.p50Ms).toBeCloseTo(5, 1);
    expect(many.p95Ms).toBeCloseTo(9.5, 1);
    expect(many.p99Ms).toBeCloseTo(9.9, 1);
    expect(w.query(0).p95LowMs).toBeUndefined();
    expect(many.p95LowMs!).toBeLessThan(many.p95Ms);
    expect(many.p95HighMs!).toBeGreaterThan(many.p95Ms);
    // The bound is 95 ∓ z·√(0.95·0.05/n) percent: at n = 1000, about ±1.6 points (±0.16 ms here).
    expect(many.p95HighMs! - many.p95LowMs!).toBeGreaterThan(0.25);
    expect(many.p95HighMs! - many.p95LowMs!).toBeLessThan(0.4);
    // With 20 samples the same confidence spans much more of the distribution (83.7 to 100 %).
    expect(few.p95HighMs! - few.p95LowMs!).toBeGreaterThan(3 * (many.p95HighMs! - many.p95LowMs!));
    expect(few.p95LowMs!).toBeLessThan(few.p95Ms);
  });

  it('property: the window p95 is within the histogram precision (0.1 %) of the exact p95 of the same samples', () => {
    for (let seed = 1; seed <= 25; seed++) {
      const r = rng(seed);
      const { rec, w, rotate } = ring(10);
      const all: number[] = [];
      const intervals = 1 + Math.floor(r() * 12);
      for (let k = 0; k < intervals; k++) {
        const n = Math.floor(r() * 400);
        const xs = Array.from({ length: n }, () => 1 + Math.floor(Math.exp(r() * 14)));
        interval(rec, [xs, []]);
        rotate();
        if (k >= intervals - 10) all.push(...xs);
      }
      const p95 = w.query(0).p95Ms * 1000;
      if (all.length === 0) {
        expect(p95).toBe(0);
        continue;
      }
      const exact = exactPercentile(all, 95);
      // HDR with 3 significant digits: a value is reported within 0.1 % (plus the ms rounding).
      expect(Math.abs(p95 - exact)).toBeLessThanOrEqual(exact * 0.001 + 1);
    }
  });

  it('takes a merged source as it takes a recorder (a second member is just another snapshot)', () => {
    const a = new Recorder();
    const b = new Recorder();
    const spare: IntervalSnapshot['pools'][number]['hist'][] = [newHistogram(), newHistogram()];
    const w = new WindowRing(5);
    const rotate = () => w.push(mergeIntervals([a.takeInterval(), b.takeInterval()], [spare[0]!, spare[1]!]));
    interval(a, [[10, 20], [30]], [1, 0]);
    interval(b, [[40], []], [0, 0]);
    rotate();
    expect(w.query(0)).toMatchObject({ requests: 3, errors: 1 });
    expect(w.query(1)).toMatchObject({ requests: 1, errors: 0 });
  });
});

describe('the bucket encoding', () => {
  it('refuses buckets that are not buckets, and latencies that do not match the count', () => {
    const rec = new Recorder();
    interval(rec, [[100, 200, 300], []]);
    const good = encodeInterval(rec.takeInterval());
    const p0 = good.pools[0]!;
    const bad = (buckets: ArrayLike<number>, requests = p0.requests) =>
      decodeInterval({ pools: [{ ...p0, buckets, requests }, good.pools[1]!] });
    expect(() => bad([...Array.from(p0.buckets), 7])).toThrow(/pairs/);
    expect(() => bad([9, 1, 5, 1], 2)).toThrow(/bad bucket 5/);
    expect(() => bad([-1, 1])).toThrow(/bad bucket/);
    expect(() => bad([10_000_000, 1])).toThrow(/bad bucket/);
    expect(() => bad([5, 0])).toThrow(/bad bucket/);
    expect(() => bad([5, 1.5])).toThrow(/bad bucket/);
    expect(() => bad(p0.buckets, 4)).toThrow(/4 requests but 3 latencies/);
    // An empty histogram encodes to no buckets at all.
    expect(encodeInterval(new Recorder().takeInterval()).pools[0]!.buckets.length).toBe(0);
  });

  it('property: encoded parts merge to exactly what the live histograms add to', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = rng(seed);
      const recs = [new Recorder(), new Recorder(), new Recorder()];
      for (const rec of recs)
        interval(rec, [
          Array.from({ length: Math.floor(r() * 300) }, () => 1 + Math.floor(Math.exp(r() * 20))),
          Array.from({ length: Math.floor(r() * 50) }, () => 1 + Math.floor(r() * 5000)),
        ]);
      const snaps = recs.map((x) => x.takeInterval());
      const live = mergeIntervals(snaps, [newHistogram(), newHistogram()]);
      const wire = mergeIntervals(
        snaps.map((s, i) => (i === 0 ? s : JSON.parse(JSON.stringify(intervalJSON(encodeInterval(s)))))),
        [newHistogram(), newHistogram()],
      );
      for (const id of [0, 1] as const) {
        expect(wire.pools[id].requests).toBe(live.pools[id].requests);
        expect(wire.pools[id].hist.totalCount).toBe(live.pools[id].hist.totalCount);
        for (const q of [1, 50, 95, 99, 100])
          expect(wire.pools[id].hist.getValueAtPercentile(q)).toBe(live.pools[id].hist.getValueAtPercentile(q));
      }
    }
  });
});
