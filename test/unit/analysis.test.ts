import { describe, expect, it } from 'vitest';
import {
  analyze,
  recentSuffix,
  wilsonLower,
  zFor,
  type AnalysisPolicy,
  type Observation,
} from '../../src/control/analysis.js';
import type { WindowStats } from '../../src/stats/window.js';

const policy: AnalysisPolicy = {
  minRequests: 50,
  maxErrorRate: 0.01,
  maxP95Ms: 500,
  maxP95Ratio: 2,
  minP95DeltaMs: 5,
  confidence: 0.95,
  fastConfidence: 0.999,
};

const w = (requests: number, errors: number, p95 = 10, bounds: [number, number] = [p95, p95]): WindowStats => ({
  requests,
  errors,
  errorRate: requests ? errors / requests : 0,
  p50Ms: p95 / 2,
  p95Ms: p95,
  p99Ms: p95 * 1.5,
  p95LowMs: bounds[0],
  p95HighMs: bounds[1],
});

const obs = (canary: WindowStats, stable: WindowStats = w(1000, 1), extra: Partial<Observation> = {}): Observation => ({
  canary,
  stable,
  canaryRecent: undefined,
  canaryHealthy: true,
  windowMs: 10_000,
  recentMs: 0,
  ...extra,
});

describe('wilsonLower', () => {
  it.each([
    [0, 100, 0, 0.0001],
    [41, 850, 0.0356, 0.036],
    [6, 30, 0.095, 0.096],
    [1, 50, 0.0035, 0.0036],
  ])('%i/%i → about %s', (k, n, lo, hi) => {
    const v = wilsonLower(k, n, 1.96);
    expect(v).toBeGreaterThanOrEqual(lo);
    expect(v).toBeLessThanOrEqual(hi);
  });

  it('is below the raw rate and tightens with more data', () => {
    expect(wilsonLower(5, 100, 1.96)).toBeLessThan(0.05);
    expect(wilsonLower(50, 1000, 1.96)).toBeGreaterThan(wilsonLower(5, 100, 1.96));
    expect(wilsonLower(0, 0, 1.96)).toBe(0);
  });

  it('maps confidence levels to z', () => {
    expect(zFor(0.95)).toBeCloseTo(1.96, 2);
    expect(zFor(0.9)).toBeCloseTo(1.645, 2);
    expect(zFor(0.99)).toBeCloseTo(2.576, 2);
  });
});

describe('analyze', () => {
  it.each([
    ['no traffic: inconclusive, never a failure', obs(w(0, 0)), 'inconclusive'],
    ['49 requests all failing: still inconclusive (below minRequests)', obs(w(49, 49)), 'inconclusive'],
    ['healthy canary: pass', obs(w(500, 1)), 'pass'],
    ['error rate 4.8% on 850: fail', obs(w(850, 41)), 'fail'],
    ['1.2% raw but not significant on 250: pass', obs(w(250, 3)), 'pass'],
    ['p95 bound over maxP95Ms: fail', obs(w(500, 0, 700, [650, 760])), 'fail'],
    [
      'p95 point over maxP95Ms but bound under: pass',
      obs(w(60, 0, 520, [450, 600]), w(1000, 0, 400, [390, 410])),
      'pass',
    ],
    ['p95 3x stable: fail', obs(w(500, 0, 60, [55, 66]), w(1000, 0, 20, [19, 21])), 'fail'],
    [
      'p95 3x stable but sub-ms (under minP95DeltaMs): pass',
      obs(w(500, 0, 0.9, [0.85, 1]), w(1000, 0, 0.3, [0.29, 0.31])),
      'pass',
    ],
    [
      'ratio test skipped when stable has too little traffic',
      obs(w(500, 0, 60, [55, 66]), w(10, 0, 20, [19, 21])),
      'pass',
    ],
    ['no healthy canary endpoint: fail', obs(w(0, 0), undefined, { canaryHealthy: false }), 'fail'],
  ])('%s', (_name, o, kind) => {
    expect(analyze('green', o, policy).kind).toBe(kind);
  });

  it('says why in words with the numbers', () => {
    const v = analyze('green', obs(w(850, 41)), policy);
    expect(v.reason).toBe('green error rate 4.82% (41/850, 95% lower bound 3.58%) > 1% over 10s');
    expect(v.evidence).toMatchObject({ check: 'errorRate', errors: 41, requests: 850 });
  });

  it('fails fast on the newest intervals before the whole window turns', () => {
    // Window: 300 healthy + 60 new with 12 errors → 12/330 is not yet significant over 10 s,
    // but the newest 2 s (12/60) clearly is.
    const o = obs(w(330, 12), undefined, { canaryRecent: w(60, 12), stableRecent: w(200, 0), recentMs: 2000 });
    const v = analyze('green', o, policy);
    expect(v.kind).toBe('fail');
    expect(v.reason).toContain('over 2s');
  });

  it('judges latency on the fast slice only against stable measured over the same slice', () => {
    const slowSlice = w(100, 0, 40, [30, 50]);
    // Stable had traffic earlier in the window but none in the slice (canary at 100 %): no ratio.
    expect(
      analyze(
        'green',
        obs(w(1000, 0, 10, [9, 11]), w(1000, 0, 10, [9, 11]), {
          canaryRecent: slowSlice,
          stableRecent: w(0, 0),
          recentMs: 1000,
        }),
        policy,
      ).kind,
    ).toBe('pass');
    // Stable was measured in the same slice and is fast: the canary is the slow one.
    expect(
      analyze(
        'green',
        obs(w(1000, 0, 10, [9, 11]), w(1000, 0, 10, [9, 11]), {
          canaryRecent: slowSlice,
          stableRecent: w(100, 0, 10, [9, 11]),
          recentMs: 1000,
        }),
        policy,
      ).kind,
    ).toBe('fail');
  });

  it('does not blame the canary for a p95 over maxP95Ms that stable shows too (a slow machine)', () => {
    const slow = (n: number) => w(n, 0, 700, [650, 760]);
    expect(analyze('green', obs(slow(500), slow(1000)), policy).kind).toBe('pass');
    expect(analyze('green', obs(slow(500), w(1000, 0, 100, [95, 105])), policy).kind).toBe('fail');
    // Without stable traffic, the absolute limit stands on its own.
    expect(analyze('green', obs(slow(500), w(0, 0)), policy).kind).toBe('fail');
  });

  it('tells the wait apart from a pass', () => {
    expect(analyze('green', obs(w(12, 0)), policy).reason).toBe(
      'waiting for traffic: 12/50 green requests in the last 10s',
    );
  });
});

describe('recentSuffix', () => {
  it('finds the fewest newest intervals holding minRequests', () => {
    const perInterval = [5, 30, 30, 30]; // oldest … newest
    const recent = (k: number) => ({ requests: perInterval.slice(-k).reduce((a, b) => a + b, 0), errors: 0 });
    expect(recentSuffix(recent, 4, 50)).toBe(2);
    expect(recentSuffix(recent, 4, 30)).toBe(1);
    expect(recentSuffix(recent, 4, 1000)).toBeUndefined();
  });
});
