/**
 * Canary analysis: pass, fail or inconclusive, from window statistics alone (pure).
 *
 * Not enough data is not a failure (STYLE.md habit 2): fewer than `minRequests` canary requests is
 * inconclusive. A failure needs evidence that chance on a healthy canary would rarely produce:
 * - error rate: the Wilson score lower bound of errors/requests exceeds `maxErrorRate`;
 * - latency: a lower confidence bound on the canary's p95 (order statistics) exceeds `maxP95Ms`
 *   (unless stable, measured over the same span, is as slow: then the machine is, not the canary),
 *   or exceeds `maxP95Ratio` × an upper bound on stable's p95 over the same span (and by
 *   `minP95DeltaMs` at least); without stable traffic in that span there is no ratio to judge.
 * Both are checked on the whole window and on its newest intervals (the shortest suffix holding
 * `minRequests` requests), so a clearly broken canary fails within an interval or two of the
 * breach instead of after the window fills.
 */
import { type Counts, criticalErrors, crossesLimit, type SequentialLimit } from '../stats/sequential.js';
import type { RecentStats, WindowStats } from '../stats/window.js';

export interface AnalysisPolicy {
  minRequests: number;
  maxErrorRate: number;
  maxP95Ms: number;
  maxP95Ratio: number;
  /** The ratio test also needs canary p95 − stable p95 above this (ms): sub-ms noise is not a regression. */
  minP95DeltaMs: number;
  /** Fail a canary whose error rate is significantly above stable's by this factor... */
  maxErrorRatio: number;
  /** ...and by at least this much (absolute). */
  minErrorDelta: number;
  /** Two-sided confidence level of the bounds on the whole window (0.99). */
  confidence: number;
  /**
   * Confidence level of the fast check on the newest intervals: stricter, because it looks at
   * small, overlapping slices every tick and would otherwise add up false alarms over a rollout.
   */
  fastConfidence: number;
  /** The sequential check's critical line (stats/sequential.ts); absent or null: no sequential check. */
  sequential?: SequentialLimit | null | undefined;
}

/** Counts for the sequential check: the interval under way (an urgent look) or the newest closed one (a tick). */
export interface SequentialObservation {
  canary: Counts;
  stable: Counts;
  /** What the counts cover (ms): since the last tick (`live`), or one interval, or (a fleet's urgent look) both. */
  spanMs: number;
  /** True for the interval under way (the controller's urgent look after a member's alarm). */
  live: boolean;
}

export interface Observation {
  /** Canary over the whole window, with p95 bounds. */
  canary: WindowStats;
  /** Canary over the newest intervals holding at least minRequests (undefined when none do). */
  canaryRecent: WindowStats | undefined;
  /** Stable over the whole window, with p95 bounds. */
  stable: WindowStats;
  /** Stable over the same newest intervals as canaryRecent: the baseline measured at the same time. */
  stableRecent?: WindowStats | undefined;
  /** Whether the canary pool has an endpoint that may take traffic. */
  canaryHealthy: boolean;
  /** Window length in ms (for the words of a reason). */
  windowMs: number;
  /** Length of the recent suffix in ms. */
  recentMs: number;
  /** The sequential check's counts (absent: not judged). */
  sequential?: SequentialObservation | undefined;
}

export type VerdictKind = 'pass' | 'fail' | 'inconclusive';

export interface Verdict {
  kind: VerdictKind;
  /** Words with the numbers, e.g. `green error rate 4.8% (41/850, 95% lower bound 3.5%) > 1% over 10s`. */
  reason: string;
  /** The numbers behind it. */
  evidence: Record<string, unknown>;
}

/**
 * The fast check also needs this many errors in its slice: on ~50 requests, 3 errors from a
 * healthy canary (0.2 %) is a fluke that per-second checks meet about once in a few hundred
 * rollouts (measured by the seeded simulation); 5 is not. A clearly broken canary has far more.
 */
export const FAST_MIN_ERRORS = 5;

const EMPTY: WindowStats = { requests: 0, errors: 0, errorRate: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0 };

/** The Wilson score interval's centre and half-width (both over 1 + z²/n) for k in n. */
function wilson(k: number, n: number, z: number): { centre: number; margin: number; scale: number } {
  const p = k / n;
  const z2 = z * z;
  return {
    centre: p + z2 / (2 * n),
    margin: z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n)),
    scale: 1 + z2 / n,
  };
}

/** Wilson score interval lower bound for k successes in n trials. */
export function wilsonLower(k: number, n: number, z: number): number {
  if (n === 0) return 0;
  const w = wilson(k, n, z);
  return Math.max(0, (w.centre - w.margin) / w.scale);
}

/** z for a two-sided confidence level (0.8 … 0.999), by Acklam's rational approximation of the normal quantile. */
export function zFor(confidence: number): number {
  const p = 1 - (1 - confidence) / 2;
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const q = Math.sqrt(-2 * Math.log(1 - p));
  if (p > 0.97575)
    return (
      -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  const r = p - 0.5;
  const r2 = r * r;
  return (
    ((((((a[0]! * r2 + a[1]!) * r2 + a[2]!) * r2 + a[3]!) * r2 + a[4]!) * r2 + a[5]!) * r) /
    (((((b[0]! * r2 + b[1]!) * r2 + b[2]!) * r2 + b[3]!) * r2 + b[4]!) * r2 + 1)
  );
}

const pct = (x: number) => `${+(x * 100).toFixed(2)}%`;
const ms = (x: number) => `${+x.toFixed(1)}ms`;
const secs = (x: number) => `${+(x / 1000).toFixed(1)}s`;

/** Judge one slice; returns a failing verdict or undefined. */
function judge(
  name: string,
  w: WindowStats,
  stable: WindowStats,
  p: AnalysisPolicy,
  spanMs: number,
  level: number,
  minErrors = 1,
): Verdict | undefined {
  const confidence = `${+(level * 100).toFixed(1)}%`;
  const z = zFor(level);
  const errLow = wilsonLower(w.errors, w.requests, z);
  if (errLow > p.maxErrorRate && w.errors >= minErrors) {
    // Stable failing as badly over the same span: a shared dependency, said in the verdict.
    // Not when the canary is clearly worse still: stable's trouble must not shield it.
    const shared =
      stable.requests >= p.minRequests &&
      wilsonLower(stable.errors, stable.requests, z) > p.maxErrorRate &&
      worseThanStable(w, stable, p, z) === undefined;
    return {
      kind: 'fail',
      reason: `${shared ? 'both pools failing: ' : ''}${name} error rate ${pct(w.errors / w.requests)} (${w.errors}/${w.requests}, ${confidence} lower bound ${pct(errLow)}) > ${pct(p.maxErrorRate)} over ${secs(spanMs)}${shared ? `, stable ${pct(stable.errors / stable.requests)} (${stable.errors}/${stable.requests})` : ''}`,
      evidence: {
        check: 'errorRate',
        errors: w.errors,
        requests: w.requests,
        errorRate: w.errors / w.requests,
        lowerBound: errLow,
        threshold: p.maxErrorRate,
        spanMs,
        ...(shared ? { shared: true, stableErrors: stable.errors, stableRequests: stable.requests } : {}),
      },
    };
  }
  // Compared with stable over the same span: a canary well under the threshold can still be
  // much worse than what it replaces (0.8 % beside 0.01 %).
  const worse = w.errors >= minErrors ? worseThanStable(w, stable, p, z) : undefined;
  if (worse !== undefined) {
    return {
      kind: 'fail',
      reason: `${name} error rate ${pct(worse.canaryRate)} (${w.errors}/${w.requests}, ${confidence} lower bound ${pct(worse.canaryLow)}) > ${p.maxErrorRatio}× stable ${pct(worse.stableRate)} (${stable.errors}/${stable.requests}, upper bound ${pct(worse.stableHigh)}) over ${secs(spanMs)}`,
      evidence: { check: 'errorRatio', ...worse, errors: w.errors, requests: w.requests, spanMs },
    };
  }
  // Latency is compared with stable measured over the same span: a slowdown of the whole machine
  // (GC, a noisy neighbour) hits both pools and must not read as a canary regression.
  const baseline = stable.requests >= p.minRequests ? stable : undefined;
  const low = w.p95LowMs ?? w.p95Ms;
  const stableAlsoSlow = baseline !== undefined && (baseline.p95LowMs ?? baseline.p95Ms) > p.maxP95Ms;
  if (low > p.maxP95Ms && !stableAlsoSlow) {
    return {
      kind: 'fail',
      reason: `${name} p95 ${ms(w.p95Ms)} (${confidence} lower bound ${ms(low)}, ${w.requests} requests) > ${ms(p.maxP95Ms)} over ${secs(spanMs)}`,
      evidence: {
        check: 'p95',
        p95Ms: w.p95Ms,
        lowerBoundMs: low,
        requests: w.requests,
        thresholdMs: p.maxP95Ms,
        spanMs,
      },
    };
  }
  if (baseline !== undefined) {
    const stableHigh = baseline.p95HighMs ?? baseline.p95Ms;
    const limit = Math.max(p.maxP95Ratio * stableHigh, stableHigh + p.minP95DeltaMs);
    if (low > limit) {
      return {
        kind: 'fail',
        reason: `${name} p95 ${ms(w.p95Ms)} (lower bound ${ms(low)}) > ${p.maxP95Ratio}× stable p95 ${ms(baseline.p95Ms)} (upper bound ${ms(stableHigh)}) over ${secs(spanMs)}`,
        evidence: {
          check: 'p95Ratio',
          p95Ms: w.p95Ms,
          lowerBoundMs: low,
          stableP95Ms: baseline.p95Ms,
          stableUpperBoundMs: stableHigh,
          ratio: p.maxP95Ratio,
          limitMs: limit,
          spanMs,
        },
      };
    }
  }
  return undefined;
}

/** Wilson score interval upper bound for k successes in n trials. */
export function wilsonUpper(k: number, n: number, z: number): number {
  if (n === 0) return 1;
  const w = wilson(k, n, z);
  return Math.min(1, (w.centre + w.margin) / w.scale);
}

/**
 * Whether the canary's error rate is clearly above stable's over the same span: the lower end of
 * the canary's Wilson interval above `maxErrorRatio` × the upper end of stable's, and above
 * `minErrorDelta`. Bounds on both sides rather than a z test of the difference: on a few errors
 * the normal approximation alarms on bursts a healthy canary produces (the seeded simulation saw
 * it); stable needs minRequests over the span.
 */
export function worseThanStable(
  c: WindowStats,
  s: WindowStats,
  p: Pick<AnalysisPolicy, 'minRequests' | 'maxErrorRatio' | 'minErrorDelta'>,
  z: number,
): { canaryRate: number; canaryLow: number; stableRate: number; stableHigh: number; limit: number } | undefined {
  if (c.requests === 0 || s.requests < p.minRequests) return undefined;
  const canaryLow = wilsonLower(c.errors, c.requests, z);
  const stableHigh = wilsonUpper(s.errors, s.requests, z);
  const limit = Math.max(p.maxErrorRatio * stableHigh, p.minErrorDelta);
  if (canaryLow <= limit) return undefined;
  return { canaryRate: c.errors / c.requests, canaryLow, stableRate: s.errors / s.requests, stableHigh, limit };
}

/** The verdict on the canary named `name`. */
export function analyze(name: string, o: Observation, p: AnalysisPolicy): Verdict {
  if (!o.canaryHealthy) {
    return { kind: 'fail', reason: `${name} has no healthy endpoint`, evidence: { check: 'health' } };
  }
  const r = o.canaryRecent;
  if (r !== undefined && r.requests >= p.minRequests && o.recentMs < o.windowMs) {
    const fast = judge(name, r, o.stableRecent ?? EMPTY, p, o.recentMs, p.fastConfidence, FAST_MIN_ERRORS);
    if (fast !== undefined) return fast;
  }
  const seq = o.sequential === undefined ? undefined : sequentialVerdict(name, o.sequential, p);
  if (seq !== undefined) return seq;
  if (o.canary.requests < p.minRequests) {
    return {
      kind: 'inconclusive',
      reason: `waiting for traffic: ${o.canary.requests}/${p.minRequests} ${name} requests in the last ${secs(o.windowMs)}`,
      evidence: { requests: o.canary.requests, minRequests: p.minRequests },
    };
  }
  const slow = judge(name, o.canary, o.stable, p, o.windowMs, p.confidence);
  if (slow !== undefined) return slow;
  return {
    kind: 'pass',
    reason: `${name} healthy: error rate ${pct(o.canary.errorRate)} (${o.canary.errors}/${o.canary.requests}), p95 ${ms(o.canary.p95Ms)} over ${secs(o.windowMs)}`,
    evidence: { requests: o.canary.requests, errors: o.canary.errors, p95Ms: o.canary.p95Ms },
  };
}

/** The shortest suffix of intervals (newest first) holding at least `min` requests, or undefined. */
export function recentSuffix(
  recent: (intervals: number) => RecentStats,
  available: number,
  min: number,
): number | undefined {
  for (let k = 1; k <= available; k++) if (recent(k).requests >= min) return k;
  return undefined;
}

/** P(X >= k) for X ~ Binomial(n, q), summed in log space (n is an interval's count: small). */
export function binomialTail(k: number, n: number, q: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  let logC = 0; // log C(n, i), built up from i = 0
  let sum = 0;
  for (let i = 0; i <= n; i++) {
    if (i > 0) logC += Math.log((n - i + 1) / i);
    if (i >= k) sum += Math.exp(logC + i * Math.log(q) + (n - i) * Math.log1p(-q));
  }
  return Math.min(1, sum);
}

/** More than this share of a canary's answers failing is a severe breach (see severeBreach). */
export const SEVERE_ERROR_RATE = 0.5;

/**
 * A breach too severe to walk down from (rollout.onFailure: rampDown cuts these at once): the
 * canary has no healthy endpoint, or clearly more than half its answers fail: the Wilson lower
 * bound of its error rate above 0.5, on the newest slice (at the fast check's confidence) or on
 * the whole window, either with at least minRequests requests. A bound rather than the raw rate,
 * so that 3 errors in 4 answers at a thin moment of a walk down do not cut it short; a canary
 * answering nothing but errors clears it on its first minRequests answers (50/50: 82 %).
 * Undefined when the breach is not severe.
 */
export function severeBreach(name: string, o: Observation, p: AnalysisPolicy): Verdict | undefined {
  if (!o.canaryHealthy) {
    return { kind: 'fail', reason: `${name} has no healthy endpoint`, evidence: { check: 'health' } };
  }
  // The sequential check's counts (since the last tick): too few for the bounds below, but as
  // many errors as 5 of 5 are unlikely (under 5 %) with at most half the requests failing.
  // Severity only chooses between cutting at once and walking down, both rollbacks the evidence
  // already justified, so this bound may be looser than the others.
  const c = o.sequential?.canary;
  if (c !== undefined && c.errors >= FAST_MIN_ERRORS && binomialTail(c.errors, c.requests, SEVERE_ERROR_RATE) <= 0.05) {
    return {
      kind: 'fail',
      reason: `more than ${pct(SEVERE_ERROR_RATE)} errors: ${name} failed ${c.errors} of ${c.requests} requests in ${secs((o.sequential as SequentialObservation).spanMs)}`,
      evidence: { check: 'severeErrorRate', errors: c.errors, requests: c.requests, threshold: SEVERE_ERROR_RATE },
    };
  }
  const slices: [WindowStats | undefined, number, number][] = [
    [o.canaryRecent, o.recentMs, p.fastConfidence],
    [o.canary, o.windowMs, p.confidence],
  ];
  for (const [w, spanMs, level] of slices) {
    if (w === undefined || w.requests < p.minRequests) continue;
    const low = wilsonLower(w.errors, w.requests, zFor(level));
    if (low <= SEVERE_ERROR_RATE) continue;
    return {
      kind: 'fail',
      reason: `more than ${pct(SEVERE_ERROR_RATE)} errors: ${name} ${pct(w.errors / w.requests)} (${w.errors}/${w.requests}, ${+(level * 100).toFixed(1)}% lower bound ${pct(low)}) over ${secs(spanMs)}`,
      evidence: {
        check: 'severeErrorRate',
        errors: w.errors,
        requests: w.requests,
        lowerBound: low,
        threshold: SEVERE_ERROR_RATE,
        spanMs,
      },
    };
  }
  return undefined;
}

const asStats = (c: Counts): WindowStats => ({
  ...EMPTY,
  requests: c.requests,
  errors: c.errors,
  errorRate: c.requests === 0 ? 0 : c.errors / c.requests,
});

/**
 * The sequential check's verdict: a failure when the canary's counts cross the critical line
 * (stats/sequential.ts), else undefined. It needs no minRequests: the SPRT's bound holds at any
 * count, and the line asks for FAST_MIN_ERRORS errors at least. Stable failing as badly over the
 * same counts (crossing the same line, or its fast-confidence Wilson bound above maxErrorRate on
 * minRequests) with the canary not clearly worse is said as `both pools failing`, so
 * analysis.onSharedFailure applies as for the other checks.
 */
export function sequentialVerdict(name: string, s: SequentialObservation, p: AnalysisPolicy): Verdict | undefined {
  const l = p.sequential;
  const c = s.canary;
  if (l === undefined || l === null || !crossesLimit(l, c.errors, c.requests)) return undefined;
  const st = s.stable;
  const z = zFor(p.fastConfidence);
  const stableFailing =
    crossesLimit(l, st.errors, st.requests) ||
    (st.requests >= p.minRequests && wilsonLower(st.errors, st.requests, z) > p.maxErrorRate);
  const shared = stableFailing && worseThanStable(asStats(c), asStats(st), p, z) === undefined;
  const critical = criticalErrors(l, c.requests);
  const span = s.live ? 'since the last tick' : `in the last ${secs(s.spanMs)}`;
  return {
    kind: 'fail',
    reason: `${shared ? 'both pools failing: ' : ''}${name} failed ${c.errors} of ${c.requests} requests ${span} (sequential check: the critical count for ${c.requests} requests is ${critical} errors; a canary at ${pct(l.p0)} errors reaches it in under ${pct(l.alpha)} of intervals)${shared ? `, stable failed ${st.errors} of ${st.requests}` : ''}`,
    evidence: {
      check: 'sequential',
      errors: c.errors,
      requests: c.requests,
      errorRate: c.requests === 0 ? 0 : c.errors / c.requests,
      criticalErrors: critical,
      threshold: l.p0,
      alternative: l.p1,
      alpha: l.alpha,
      spanMs: s.spanMs,
      live: s.live,
      ...(shared ? { shared: true, stableErrors: st.errors, stableRequests: st.requests } : {}),
    },
  };
}
