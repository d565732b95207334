/**
 * The sequential check between ticks (stats/sequential.ts): its critical counts, the recorder's
 * alarm on the request path, its verdict (control/analysis.ts sequentialVerdict), and the exact
 * chance of a false alarm in one interval, for the SPRT and for the Wilson bound checked after
 * every request (the alternative it was chosen over).
 */
import { describe, expect, it } from 'vitest';
import {
  binomialTail,
  severeBreach,
  analyze,
  FAST_MIN_ERRORS,
  sequentialVerdict,
  wilsonLower,
  zFor,
  type AnalysisPolicy,
  type Observation,
} from '../../src/control/analysis.js';
import { policyOf } from '../../src/control/controller.js';
import { parseConfig } from '../../src/core/config.js';
import { makeTable } from '../../src/data/table.js';
import { Recorder } from '../../src/stats/recorder.js';
import { criticalErrors, crossesLimit, type SequentialLimit, sequentialLimit } from '../../src/stats/sequential.js';
import type { WindowStats } from '../../src/stats/window.js';
import { rng, simulate, type PoolBehaviour } from '../helpers/sim.js';
import { ob, win } from '../helpers/rollout-state.js';

const limit = sequentialLimit(0.01, 0.001, FAST_MIN_ERRORS) as SequentialLimit;

/**
 * The exact chance that a Bernoulli(p) stream of `n` requests crosses `crosses(k, i)` after some
 * request i ≤ n (an error at i with k errors so far), by dynamic programming over (i, k): the
 * probability mass of every path that has not crossed yet.
 */
function everCrosses(p: number, n: number, crosses: (k: number, i: number) => boolean): number {
  let mass = new Float64Array(n + 2);
  mass[0] = 1;
  let hit = 0;
  for (let i = 1; i <= n; i++) {
    const next = new Float64Array(n + 2);
    for (let k = 0; k < i; k++) {
      const m = mass[k] as number;
      if (m === 0) continue;
      next[k]! += m * (1 - p);
      if (crosses(k + 1, i)) hit += m * p;
      else next[k + 1]! += m * p;
    }
    mass = next;
  }
  return hit;
}

describe('critical error counts', () => {
  it.each([
    // requests → the fewest errors that cross (1 % max error rate, α 0.1 %, 5 errors at least)
    [1, 5],
    [5, 5],
    [10, 5],
    [50, 5],
    [100, 7],
    [300, 15],
    [1000, 43],
    [10_000, 401],
  ])('for %i requests: %i errors', (n, k) => {
    expect(criticalErrors(limit, n)).toBe(k);
    expect(crossesLimit(limit, k, n)).toBe(true);
    expect(crossesLimit(limit, k - 1, n)).toBe(false);
  });

  it('a canary failing every request crosses at its fifth error (10 times the threshold is the alternative)', () => {
    for (const confidence of [0.8, 0.9, 0.95, 0.99, 0.999]) {
      const p = policyOf(parseConfig({ ...pools, rollout: { analysis: { confidence } } }));
      let k = 0;
      while (!crossesLimit(p.sequential as SequentialLimit, k, k)) k++;
      expect(k).toBe(5);
    }
  });

  it('property: monotone in the requests, never below the minimum, over random policies', () => {
    const r = rng(42);
    for (let run = 0; run < 100; run++) {
      const p0 = r() < 0.1 ? 0 : 10 ** (-4 + 3.5 * r()); // 0, or 0.01 % … 32 %
      const alpha = 10 ** (-5 + 3.5 * r());
      const l = sequentialLimit(p0, alpha, 1 + Math.floor(r() * 8)) as SequentialLimit;
      let prev = 0;
      for (let n = 1; n <= 3000; n += 1 + Math.floor(r() * 20)) {
        const k = criticalErrors(l, n);
        expect(k).toBeGreaterThanOrEqual(prev);
        expect(k).toBeGreaterThanOrEqual(l.minErrors);
        // The comparison and the table agree on both sides of the line.
        expect(crossesLimit(l, k, n)).toBe(true);
        if (k > l.minErrors) expect(crossesLimit(l, k - 1, n)).toBe(false);
        prev = k;
      }
    }
  });

  it('no check when no error rate can exceed the threshold; every error is evidence at 0', () => {
    expect(sequentialLimit(1, 0.001, 5)).toBeNull();
    const zero = sequentialLimit(0, 0.001, 5) as SequentialLimit;
    expect(criticalErrors(zero, 1_000_000)).toBe(5);
  });

  it('is computed once per policy, from analysis.maxErrorRate and confidence', () => {
    const p = policyOf(parseConfig({ ...pools, rollout: { analysis: { maxErrorRate: 0.05, confidence: 0.95 } } }));
    expect(p.sequential).toMatchObject({ p0: 0.05, p1: 0.5, minErrors: 5 });
    expect(p.sequential?.alpha).toBeCloseTo(0.005, 12);
    expect(Object.isFrozen(p.sequential)).toBe(true);
  });
});

describe('false alarms in one interval, exactly', () => {
  const z = zFor(0.999);
  const sprt = (k: number, i: number) => crossesLimit(limit, k, i);
  const wilson = (k: number, i: number) => k >= FAST_MIN_ERRORS && wilsonLower(k, i, z) > 0.01;

  it.each([100, 1000, 3000])(
    'a canary at exactly maxErrorRate (1 percent), %i requests in the interval: the SPRT under α (0.1 percent), Wilson after every request well above',
    (n) => {
      const s = everCrosses(0.01, n, sprt);
      const w = everCrosses(0.01, n, wilson);
      console.log(
        `p = 1 %, ${n} requests: SPRT ${(s * 100).toFixed(4)} %, Wilson per request ${(w * 100).toFixed(3)} %`,
      );
      expect(s).toBeLessThan(limit.alpha);
      if (n >= 1000) expect(w).toBeGreaterThan(20 * s);
    },
  );

  it.each([0.002, 0.005, 0.009])('a canary below maxErrorRate (%s) alarms even less', (p) => {
    const s = everCrosses(p, 3000, sprt);
    expect(s).toBeLessThan(everCrosses(0.01, 3000, sprt));
    expect(s).toBeLessThan(limit.alpha);
  });
});

describe('the recorder: the check on the request path', () => {
  it('alarms once per interval, for the guarded canary only, and never for forced requests', () => {
    const rec = new Recorder();
    let alarms = 0;
    rec.onAlarm = () => alarms++;
    const t = makeTable(1, 'blue', { blue: 90, green: 10 }, undefined, { sequential: limit });
    rec.guard(t.canary, t.sequential);
    for (let i = 0; i < 20; i++) rec.recordForced(1, 503, undefined);
    for (let i = 0; i < 20; i++) rec.record(0, 503, 1000, undefined); // stable: not checked
    expect(alarms).toBe(0);
    for (let i = 0; i < 4; i++) rec.record(1, 503, 1000, undefined);
    expect(alarms).toBe(0);
    rec.record(1, 502, 1000, undefined);
    expect(alarms).toBe(1);
    for (let i = 0; i < 20; i++) rec.record(1, 0, 1000, 'reset');
    expect(alarms).toBe(1);
    rec.takeInterval();
    for (let i = 0; i < 5; i++) rec.record(1, 500, 1000, undefined);
    expect(alarms).toBe(2);
  });

  it('disarmed while the canary is not guarded (no sequential line in the table)', () => {
    const rec = new Recorder();
    let alarms = 0;
    rec.onAlarm = () => alarms++;
    const t = makeTable(2, 'blue', { blue: 100, green: 0 });
    rec.guard(t.canary, t.sequential);
    for (let i = 0; i < 50; i++) rec.record(1, 503, 1000, undefined);
    expect(alarms).toBe(0);
  });

  it('needs the critical count: errors among many good requests do not cross', () => {
    const rec = new Recorder();
    let alarms = 0;
    rec.onAlarm = () => alarms++;
    rec.guard(1, limit);
    for (let i = 0; i < 1000; i++) rec.record(1, i % 25 === 0 ? 503 : 200, 1000, undefined); // 4 %: 40 errors
    expect(alarms).toBe(0);
    for (let i = 0; i < 5; i++) rec.record(1, 503, 1000, undefined); // 45 in 1005
    expect(alarms).toBe(1);
  });
});

const pools = { pools: { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } } };

describe('the verdict', () => {
  const policy: AnalysisPolicy = {
    minRequests: 50,
    maxErrorRate: 0.01,
    maxP95Ms: 500,
    maxP95Ratio: 2,
    minP95DeltaMs: 5,
    confidence: 0.99,
    fastConfidence: 0.999,
    maxErrorRatio: 2,
    minErrorDelta: 0.002,
    sequential: limit,
  };
  const none: WindowStats = { requests: 0, errors: 0, errorRate: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0 };
  const obs = (canary: [number, number], stable: [number, number], live = true): Observation => ({
    canary: none,
    stable: none,
    canaryRecent: undefined,
    canaryHealthy: true,
    windowMs: 10_000,
    recentMs: 0,
    sequential: {
      canary: { requests: canary[0], errors: canary[1] },
      stable: { requests: stable[0], errors: stable[1] },
      spanMs: 80,
      live,
    },
  });

  it('fails the canary with the counts, the critical count and the bound, before minRequests', () => {
    const v = analyze('green', obs([10, 10], [90, 0]), policy);
    expect(v.kind).toBe('fail');
    expect(v.reason).toBe(
      'green failed 10 of 10 requests since the last tick (sequential check: the critical count for 10 requests is 5 errors; a canary at 1% errors reaches it in under 0.1% of intervals)',
    );
    expect(v.evidence).toMatchObject({
      check: 'sequential',
      errors: 10,
      requests: 10,
      errorRate: 1,
      criticalErrors: 5,
      threshold: 0.01,
      alpha: 0.001,
      live: true,
    });
    expect(analyze('green', obs([100, 10], [900, 0], false), policy).reason).toMatch(
      /^green failed 10 of 100 requests in the last 0\.1s \(sequential check/,
    );
  });

  it.each([
    [[10, 4], [90, 0], 'inconclusive'],
    [[100, 6], [900, 0], 'inconclusive'],
    [[100, 7], [900, 0], 'fail'],
  ] as const)('canary %j beside stable %j: %s', (canary, stable, kind) => {
    expect(analyze('green', obs([...canary], [...stable]), policy).kind).toBe(kind);
  });

  it('says "both pools failing" when stable crosses too, unless the canary is clearly worse', () => {
    const both = sequentialVerdict('green', obs([10, 10], [100, 40]).sequential!, policy);
    expect(both?.reason).toMatch(/^both pools failing: green failed 10 of 10 .*, stable failed 40 of 100$/);
    expect(both?.evidence).toMatchObject({ shared: true, stableErrors: 40, stableRequests: 100 });
    const worse = sequentialVerdict('green', obs([200, 200], [1000, 60]).sequential!, policy);
    expect(worse?.evidence.shared).toBeUndefined();
  });

  it('no sequential line in the policy: no sequential verdict', () => {
    expect(sequentialVerdict('green', obs([10, 10], [0, 0]).sequential!, { ...policy, sequential: null })).toBe(
      undefined,
    );
  });
});

describe("the controller's urgent verdict (seeded simulation)", () => {
  const healthy: PoolBehaviour = { errorRate: 0.002, medianMs: 5 };
  const dead: PoolBehaviour = { errorRate: 1, medianMs: 5 };
  const cfg = { rollout: { stepHold: '20s' } };

  it('reads the counts once for alarms that arrive together, and changes nothing when they do not cross', async () => {
    const sim = await simulate(5, cfg);
    await sim.controller.command({ type: 'start' }, 'test');
    await sim.second(500, healthy, healthy);
    const before = sim.controller.state;
    await Promise.all([sim.controller.urgent(), sim.controller.urgent(), sim.controller.urgent()]);
    expect(sim.counts.peeks).toBe(1);
    expect(sim.controller.urgentChecks).toEqual({ alarms: 3, confirmed: 0 });
    expect(sim.controller.state).toBe(before);
  });

  it('does not close the interval: the next tick still gets the requests seen before an urgent verdict', async () => {
    const sim = await simulate(6, cfg);
    await sim.controller.command({ type: 'start' }, 'test');
    await sim.second(1000, healthy, healthy);
    await sim.requests(200, healthy, healthy);
    await sim.controller.urgent();
    expect(sim.recorder.counts()[0].requests + sim.recorder.counts()[1].requests).toBe(200);
  });

  it('dry run: one "would roll back" record with the sequential reason, weights untouched', async () => {
    const sim = await simulate(8, { rollout: { stepHold: '20s', dryRun: true } });
    await sim.controller.command({ type: 'start' }, 'test');
    for (let s = 0; s < 5; s++) await sim.second(1000, healthy, dead);
    const st = sim.controller.state;
    expect(st.weights.green).toBe(10);
    expect(st.phase).toBe('progressing');
    expect(st.wouldRollBack).toMatch(/^green failed \d+ of \d+ requests .*\(sequential check: /);
    expect(st.history.filter((e) => e.event === 'would_roll_back')).toHaveLength(1);
    expect(sim.counts.alarms).toBeGreaterThanOrEqual(5); // once per interval, each judged
  });

  it('both pools failing and onSharedFailure pause: the rollout pauses, saying so', async () => {
    const sim = await simulate(9, { rollout: { stepHold: '20s', analysis: { onSharedFailure: 'pause' } } });
    await sim.controller.command({ type: 'start' }, 'test');
    await sim.second(1000, healthy, healthy);
    await sim.second(1000, dead, dead);
    const st = sim.controller.state;
    expect(st.phase).toBe('paused');
    expect(st.weights.green).toBe(10);
    expect(st.reason).toMatch(/^paused: both pools failing: green failed \d+ of \d+ requests since the last tick/);
    expect(st.history[0]?.evidence).toMatchObject({ check: 'sequential', shared: true });
  });

  it('both pools failing with the default (rollback): rolled back, the reason says both', async () => {
    const sim = await simulate(10, cfg);
    await sim.controller.command({ type: 'start' }, 'test');
    await sim.second(1000, healthy, healthy);
    await sim.second(1000, dead, dead);
    expect(sim.controller.state.phase).toBe('rolled_back');
    expect(sim.controller.state.reason).toMatch(/^both pools failing: green failed/);
  });

  it('arms the check only while the canary is guarded: after the rollback, no alarm', async () => {
    const sim = await simulate(11, cfg);
    await sim.controller.command({ type: 'start' }, 'test');
    await sim.second(1000, healthy, dead);
    expect(sim.controller.state.phase).toBe('rolled_back');
    const alarms = sim.counts.alarms;
    // Green's failures now (requests in flight at the swap) are not checked: the table disarmed it.
    expect(sim.recorder.counts()[1].requests).toBe(0);
    for (let i = 0; i < 50; i++) sim.recorder.record(1, 503, 1000, undefined);
    expect(sim.counts.alarms).toBe(alarms);
  });
});

describe('severity of a sequential failure under rampDown (analysis.ts severeBreach)', () => {
  it.each([
    [5, 5, 0.5, 1 / 32],
    [0, 5, 0.5, 1],
    [6, 5, 0.5, 0],
    [3, 4, 0.5, 5 / 16],
    [1, 10, 0.1, 1 - 0.9 ** 10],
  ])('P(X >= %i | n=%i, q=%d)', (k, n, q, want) => {
    expect(binomialTail(k, n, q)).toBeCloseTo(want, 10);
  });

  const seq = (errors: number, requests: number) => ({
    ...ob(win(requests, errors)),
    sequential: { canary: { requests, errors }, stable: { requests: 100, errors: 0 }, spanMs: 300, live: true },
  });
  const p = policyOf(parseConfig({ ...pools }));
  it.each([
    [5, 5, true],
    [10, 12, true],
    [9, 12, false], // P = 7.3 %
    [5, 16, false],
    [4, 4, false], // fewer errors than the sequential check itself asks for
  ])('%i of %i since the last tick: severe %s', (errors, requests, severe) => {
    expect(severeBreach('green', seq(errors, requests), p)?.evidence.check === 'severeErrorRate').toBe(severe);
  });
});
