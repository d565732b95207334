/**
 * The sequential check between ticks (issue 19, "snap back at the speed of evidence"): a one-sided
 * sequential probability ratio test (Wald's SPRT) on the canary's counts of the current interval,
 * reduced to one straight line in (requests, errors) so that the request path compares in O(1)
 * when it records an error, and the controller re-checks merged counts with the same line.
 *
 * H0: the canary errs at `maxErrorRate` (p0) or less. H1: it errs at p1 = 10 × p0 (capped), a
 * clearly broken release. After n requests with k errors the log likelihood ratio is
 *   k·ln(p1/p0) + (n − k)·ln((1 − p1)/(1 − p0)),
 * and the check crosses when it reaches ln(1/α). There is no acceptance boundary: under H0 (or any
 * rate below p0) the likelihood ratio is a non-negative (super)martingale, so by Ville's inequality
 * the chance that it *ever* crosses in an interval is at most α however often it is looked at. A
 * fixed-confidence bound (Wilson) checked after every request has no such guarantee: its false
 * alarms grow with the number of looks (test/unit/sequential.test.ts computes both exactly).
 *
 * Crossing needs `minErrors` errors too, as the fast check does.
 */

/** Plain data (it travels in the routing table to worker threads): the critical line and its origin. */
export interface SequentialLimit {
  /** Crosses when errors ≥ minErrors and errors ≥ offset + slope × requests. */
  readonly offset: number;
  readonly slope: number;
  readonly minErrors: number;
  /** H0's error rate (analysis.maxErrorRate), H1's, and the false-alarm bound per interval. */
  readonly p0: number;
  readonly p1: number;
  readonly alpha: number;
}

/** One pool's counts over a span (the current interval). */
export interface Counts {
  requests: number;
  errors: number;
}

/** Both pools' counts, indexed by PoolId. */
export type PoolCounts = readonly [Counts, Counts];

/** The sum of two members' counts (a new value). */
export function addCounts(a: PoolCounts, b: PoolCounts): PoolCounts {
  return [
    { requests: a[0].requests + b[0].requests, errors: a[0].errors + b[0].errors },
    { requests: a[1].requests + b[1].requests, errors: a[1].errors + b[1].errors },
  ];
}

/** H1 is this many times maxErrorRate: "clearly broken", so a fresh failure crosses at minErrors. */
export const ALTERNATIVE_FACTOR = 10;

/**
 * The critical line for a policy: computed once per policy (at start and on each reload), never
 * per request. A maxErrorRate of 1 can never be exceeded: `null`, no check. A maxErrorRate of 0
 * makes every error evidence: minErrors errors cross.
 */
export function sequentialLimit(p0: number, alpha: number, minErrors: number): SequentialLimit | null {
  if (!(p0 < 1) || !(alpha > 0 && alpha < 1)) return null;
  if (p0 <= 0) return Object.freeze({ offset: 0, slope: 0, minErrors, p0: 0, p1: 0, alpha });
  const p1 = Math.min(ALTERNATIVE_FACTOR * p0, (1 + p0) / 2);
  const perError = Math.log(p1 / p0); // > 0
  const perSuccess = -Math.log((1 - p1) / (1 - p0)); // > 0: what each good request takes back
  const h = Math.log(1 / alpha);
  // k·perError − (n − k)·perSuccess ≥ h  ⇔  k ≥ (h + n·perSuccess) / (perError + perSuccess)
  const d = perError + perSuccess;
  return Object.freeze({ offset: h / d, slope: perSuccess / d, minErrors, p0, p1, alpha });
}

/** Whether `errors` in `requests` cross the line: the one comparison, on the request path and in the controller. */
export function crossesLimit(l: SequentialLimit, errors: number, requests: number): boolean {
  return errors >= l.minErrors && errors >= l.offset + l.slope * requests;
}

/** The fewest errors in `requests` requests that cross (may exceed `requests`: no crossing possible yet). */
export function criticalErrors(l: SequentialLimit, requests: number): number {
  let k = Math.max(l.minErrors, Math.ceil(l.offset + l.slope * requests));
  // Float rounding at an exact integer: the comparison decides, so the table agrees with it.
  while (k > l.minErrors && crossesLimit(l, k - 1, requests)) k--;
  while (!crossesLimit(l, k, requests)) k++;
  return k;
}
