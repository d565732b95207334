import { describe, expect, it } from 'vitest';
import {
  analyze,
  wilsonUpper,
  worseThanStable,
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
  maxErrorRatio: 2,
  minErrorDelta: 0.002,
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

describe('wilsonLower and zFor, to the digit', () => {
  // Reference values computed outside this code (Python: the textbook Wilson formula, and
  // statistics.NormalDist().inv_cdf for the two-sided quantile). Acklam's approximation is good to ~1e-9.
  it.each([
    [41, 850, 1.96, 0.035752936],
    [1, 50, 1.959963986, 0.003539259],
    [5, 50, 3.290526728, 0.025977511],
    [12, 60, 3.290526728, 0.082880544],
    [20, 40, 1.959963986, 0.351995269],
  ])('%i/%i at z %s → %s', (k, n, z, expected) => {
    expect(wilsonLower(k, n, z)).toBeCloseTo(expected, 8);
  });

  it('is exactly 0 without errors, also where the formula dips below 0 by rounding', () => {
    // (centre − margin) is −2e-17 here in floating point.
    expect(wilsonLower(0, 10, 1.96)).toBe(0);
    expect(wilsonLower(0, 31, 1.96)).toBe(0);
    expect(wilsonLower(0, 1000, 3.29)).toBeGreaterThanOrEqual(0);
  });

  it.each([
    [0.8, 1.281551566],
    [0.9, 1.644853627],
    [0.95, 1.959963985],
    [0.96, 2.053748911],
    [0.98, 2.326347874],
    [0.99, 2.575829304],
    [0.995, 2.807033768],
    [0.999, 3.290526731],
  ])('zFor(%s) = %s (both branches of the approximation)', (confidence, z) => {
    expect(zFor(confidence)).toBeCloseTo(z, 7);
  });
});

describe('analyze: boundaries and the exact words', () => {
  const bare = (requests: number, errors: number, p95: number): WindowStats => ({
    requests,
    errors,
    errorRate: requests ? errors / requests : 0,
    p50Ms: p95 / 2,
    p95Ms: p95,
    p99Ms: p95,
  });

  it('no healthy endpoint: says so, whatever the numbers', () => {
    expect(analyze('blue', obs(w(1000, 0)), policy).kind).toBe('pass');
    expect(analyze('blue', obs(w(1000, 0), undefined, { canaryHealthy: false }), policy)).toEqual({
      kind: 'fail',
      reason: 'blue has no healthy endpoint',
      evidence: { check: 'health' },
    });
  });

  it('waits below minRequests and judges at exactly minRequests', () => {
    expect(analyze('green', obs(w(49, 0)), policy)).toEqual({
      kind: 'inconclusive',
      reason: 'waiting for traffic: 49/50 green requests in the last 10s',
      evidence: { requests: 49, minRequests: 50 },
    });
    expect(analyze('green', obs(w(50, 0)), policy).kind).toBe('pass');
    expect(analyze('green', obs(w(50, 50)), policy).kind).toBe('fail');
  });

  it('passes with the numbers in words', () => {
    const v = analyze('green', obs(w(800, 3, 12.34)), { ...policy, maxErrorRate: 0.05 });
    expect(v).toEqual({
      kind: 'pass',
      reason: 'green healthy: error rate 0.38% (3/800), p95 12.3ms over 10s',
      evidence: { requests: 800, errors: 3, p95Ms: 12.34 },
    });
  });

  it('an error-rate failure carries its evidence', () => {
    expect(analyze('green', obs(w(850, 41)), policy).evidence).toEqual({
      check: 'errorRate',
      errors: 41,
      requests: 850,
      errorRate: 41 / 850,
      lowerBound: wilsonLower(41, 850, zFor(0.95)),
      threshold: 0.01,
      spanMs: 10_000,
    });
  });

  it('fails only on a lower bound strictly over maxErrorRate', () => {
    // The threshold alone (the comparison with stable would fail 4.8 % beside 0.1 % anyway).
    const atLimit = {
      ...policy,
      maxErrorRatio: Number.POSITIVE_INFINITY,
      maxErrorRate: wilsonLower(41, 850, zFor(0.95)),
    };
    expect(analyze('green', obs(w(850, 41)), atLimit).kind).toBe('pass');
    expect(analyze('green', obs(w(850, 41)), { ...atLimit, maxErrorRate: atLimit.maxErrorRate - 1e-9 }).kind).toBe(
      'fail',
    );
  });

  it('one error fails the whole-window check when it is significant (no minimum count there)', () => {
    // 1/50: 95 % lower bound 0.35 % > 0.1 %.
    const strict = { ...policy, maxErrorRate: 0.001 };
    expect(analyze('green', obs(w(50, 1)), strict).kind).toBe('fail');
    expect(analyze('green', obs(w(50, 0)), strict).kind).toBe('pass');
  });

  it('latency over maxP95Ms: by the lower bound, strictly over, in words', () => {
    const fast = w(1000, 0, 400, [390, 410]);
    // The bound is exactly at the limit: not over it.
    expect(analyze('green', obs(w(500, 0, 520, [500, 540]), fast), policy).kind).toBe('pass');
    const v = analyze('green', obs(w(500, 0, 700.44, [650.06, 760]), fast), policy);
    expect(v).toEqual({
      kind: 'fail',
      reason: 'green p95 700.4ms (95% lower bound 650.1ms, 500 requests) > 500ms over 10s',
      evidence: { check: 'p95', p95Ms: 700.44, lowerBoundMs: 650.06, requests: 500, thresholdMs: 500, spanMs: 10_000 },
    });
    // Without bounds the point estimate is the bound.
    expect(analyze('green', obs(bare(500, 0, 700), fast), policy).kind).toBe('fail');
    expect(analyze('green', obs(bare(500, 0, 450), fast), policy).kind).toBe('pass');
  });

  it('a canary over maxP95Ms fails though within maxP95Ratio of a stable that is under it', () => {
    // Ratio limit 2 × 410 = 820 ms is above the canary's 650 ms: only the absolute check catches it.
    expect(analyze('green', obs(w(500, 0, 700, [650, 760]), w(1000, 0, 400, [390, 410])), policy).kind).toBe('fail');
  });

  it('stable is "as slow" only when its own lower bound is over maxP95Ms', () => {
    const canary = w(500, 0, 700, [650, 760]);
    // Stable's point estimate is over 500 ms but its lower bound is not: the canary is blamed.
    expect(analyze('green', obs(canary, w(1000, 0, 510, [490, 530])), policy).kind).toBe('fail');
    // Stable's bound exactly at the limit is not over it.
    expect(analyze('green', obs(canary, w(1000, 0, 510, [500, 520])), policy).kind).toBe('fail');
    expect(analyze('green', obs(canary, w(1000, 0, 520, [501, 540])), policy).kind).toBe('pass');
    // Without bounds, stable's point estimate decides.
    expect(analyze('green', obs(canary, bare(1000, 0, 700)), policy).kind).toBe('pass');
    expect(analyze('green', obs(canary, bare(1000, 0, 480)), policy).kind).toBe('fail');
    // Stable with exactly minRequests counts as a baseline; with one fewer it does not.
    expect(analyze('green', obs(canary, w(50, 0, 700, [650, 760])), policy).kind).toBe('pass');
    expect(analyze('green', obs(canary, w(49, 0, 700, [650, 760])), policy).kind).toBe('fail');
  });

  it('the ratio limit: the larger of ratio × stable upper bound and stable upper bound + minP95DeltaMs', () => {
    const stable = w(1000, 0, 20, [19, 25]); // limit max(2 × 25, 25 + 5) = 50
    expect(analyze('green', obs(w(500, 0, 48, [45, 52]), stable), policy).kind).toBe('pass');
    expect(analyze('green', obs(w(500, 0, 52, [50, 56]), stable), policy).kind).toBe('pass'); // at the limit
    expect(analyze('green', obs(w(500, 0, 53, [50.5, 56]), stable), policy).kind).toBe('fail');
    // The ratio dominates: max(2 × 20, 20 + 5) = 40.
    const tight = w(1000, 0, 20, [19, 20]);
    expect(analyze('green', obs(w(500, 0, 32, [30, 34]), tight), policy).kind).toBe('pass');
    expect(analyze('green', obs(w(500, 0, 42, [41, 44]), tight), policy).kind).toBe('fail');
    // Without bounds on stable, its point estimate is the upper bound: 45 > 40.
    expect(analyze('green', obs(w(500, 0, 47, [45, 50]), bare(1000, 0, 20)), policy).kind).toBe('fail');
    // With exactly minRequests stable traffic the ratio is judged, with one fewer it is not.
    expect(analyze('green', obs(w(500, 0, 47, [45, 50]), w(50, 0, 20, [19, 20])), policy).kind).toBe('fail');
    expect(analyze('green', obs(w(500, 0, 47, [45, 50]), w(49, 0, 20, [19, 20])), policy).kind).toBe('pass');
  });

  it('a ratio failure says both sides and the limit', () => {
    const v = analyze('green', obs(w(500, 0, 60, [55, 66]), w(1000, 0, 20, [19, 21])), policy);
    expect(v).toEqual({
      kind: 'fail',
      reason: 'green p95 60ms (lower bound 55ms) > 2× stable p95 20ms (upper bound 21ms) over 10s',
      evidence: {
        check: 'p95Ratio',
        p95Ms: 60,
        lowerBoundMs: 55,
        stableP95Ms: 20,
        stableUpperBoundMs: 21,
        ratio: 2,
        limitMs: 42,
        spanMs: 10_000,
      },
    });
  });
});

describe('analyze: the fast check on the newest intervals', () => {
  const healthyWindow = w(2000, 0);
  const fastObs = (recent: WindowStats | undefined, extra: Partial<Observation> = {}) =>
    obs(healthyWindow, w(4000, 0), { canaryRecent: recent, stableRecent: w(400, 0), recentMs: 1500, ...extra });

  it('needs FAST_MIN_ERRORS errors: 5/50 fails, 4/50 does not though significant', () => {
    // 4/50 has a 99.9 % lower bound of 1.8 % (> 1 %), but 4 errors are too few for the fast check.
    expect(wilsonLower(4, 50, zFor(0.999))).toBeGreaterThan(policy.maxErrorRate);
    expect(analyze('green', fastObs(w(50, 4)), policy).kind).toBe('pass');
    const v = analyze('green', fastObs(w(50, 5)), policy);
    expect(v.kind).toBe('fail');
    expect(v.reason).toBe('green error rate 10% (5/50, 99.9% lower bound 2.6%) > 1% over 1.5s');
    expect(v.evidence).toMatchObject({ check: 'errorRate', spanMs: 1500 });
  });

  it('runs only on a slice of at least minRequests', () => {
    expect(analyze('green', fastObs(w(49, 20)), policy).kind).toBe('pass');
    expect(analyze('green', fastObs(w(50, 20)), policy).kind).toBe('fail');
  });

  it('runs only when the slice is shorter than the window (else the whole-window check is the same)', () => {
    expect(analyze('green', fastObs(w(60, 30), { recentMs: 10_000 }), policy).kind).toBe('pass');
    expect(analyze('green', fastObs(w(60, 30), { recentMs: 9999 }), policy).kind).toBe('fail');
  });

  it('judges latency against an empty baseline when stable was not measured in the slice', () => {
    const slow = w(100, 0, 600, [550, 650]);
    const v = analyze('green', fastObs(slow, { stableRecent: undefined }), policy);
    expect(v.kind).toBe('fail');
    expect(v.evidence).toMatchObject({ check: 'p95', spanMs: 1500 });
    expect(v.reason).toContain('99.9% lower bound 550ms');
    // A ratio needs a baseline: 40 ms against nothing measured is no failure.
    expect(analyze('green', fastObs(w(100, 0, 40, [30, 50]), { stableRecent: undefined }), policy).kind).toBe('pass');
  });
});

describe('recentSuffix: boundaries', () => {
  it('counts a suffix holding exactly min, and may need every interval available', () => {
    const perInterval = [30, 30, 30, 30];
    const recent = (k: number) => ({ requests: perInterval.slice(-k).reduce((a, b) => a + b, 0), errors: 0 });
    expect(recentSuffix(recent, 4, 120)).toBe(4);
    expect(recentSuffix(recent, 4, 121)).toBeUndefined();
    expect(recentSuffix(recent, 3, 120)).toBeUndefined();
    expect(recentSuffix(recent, 4, 60)).toBe(2);
    expect(recentSuffix(recent, 0, 1)).toBeUndefined();
  });
});

describe('compared with stable', () => {
  const at99 = { ...policy, confidence: 0.99 };
  it.each<[string, WindowStats, WindowStats, 'fail' | 'pass' | 'inconclusive', string | undefined]>([
    ['0.8 % beside a clean stable: fails (under the 1 % threshold)', w(1000, 8), w(9000, 1), 'fail', 'errorRatio'],
    ['0.8 % beside 0.6 %: not a regression (under 2×)', w(1000, 8), w(9000, 54), 'pass', undefined],
    ['0.3 % beside 0 %: under minErrorDelta', w(1000, 3), w(9000, 0), 'pass', undefined],
    [
      '0.8 % on thin stable traffic (under minRequests): not judged against it',
      w(1000, 8),
      w(40, 0),
      'pass',
      undefined,
    ],
    ['1 error in 120: not evidence', w(120, 1), w(9000, 1), 'pass', undefined],
    [
      'a burst a healthy 0.2 % canary can show (13/1944 beside 30/18056): not evidence',
      w(1944, 13),
      w(18056, 30),
      'pass',
      undefined,
    ],
  ])('%s', (_name, canary, stable, kind, check) => {
    const v = analyze('green', obs(canary, stable), at99);
    expect(v.kind).toBe(kind);
    expect(v.evidence.check).toBe(check);
    if (kind === 'fail')
      expect(v.reason).toMatch(
        /^green error rate 0\.8% \(8\/1000, 99% lower bound 0\.3\d%\) > 2× stable 0\.01% \(1\/9000, upper bound 0\.0\d%\) over 10s$/,
      );
  });

  it('worseThanStable: bounds on both sides, and nothing on equal rates (property over many counts)', () => {
    const r = worseThanStable(w(1000, 8), w(9000, 1), policy, zFor(0.99));
    expect(r?.canaryLow).toBeCloseTo(wilsonLower(8, 1000, zFor(0.99)), 9);
    expect(r?.stableHigh).toBeCloseTo(wilsonUpper(1, 9000, zFor(0.99)), 9);
    for (let n = 100; n <= 5000; n += 97)
      for (const rate of [0, 0.001, 0.01, 0.05, 0.3]) {
        const e = Math.round(n * rate);
        expect(worseThanStable(w(n, e), w(n * 9, e * 9), policy, zFor(0.99))).toBeUndefined();
      }
    expect(wilsonUpper(0, 0, 2)).toBe(1);
    expect(wilsonUpper(5, 100, 1.96)).toBeGreaterThan(0.05);
  });

  it('says when both pools fail at once (a shared dependency), in the reason and the evidence', () => {
    const v = analyze('green', obs(w(1000, 100), w(9000, 900)), policy);
    expect(v.kind).toBe('fail');
    expect(v.reason).toMatch(/^both pools failing: green error rate 10% .*, stable 10% \(900\/9000\)$/);
    expect(v.evidence.shared).toBe(true);
    expect(analyze('green', obs(w(1000, 100), w(9000, 1)), policy).evidence.shared).toBeUndefined();
    // Stable in trouble (3 %) does not shield a canary far worse still (60 %).
    expect(analyze('green', obs(w(1000, 600), w(9000, 270)), policy).evidence.shared).toBeUndefined();
  });
});
