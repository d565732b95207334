/**
 * Per-pool measurement, written on the request path and read elsewhere (STYLE.md habit 4).
 *
 * `record()` is all the request path calls: one HDR `recordValue`, a few typed-array increments,
 * no allocation, no percentile math. Cumulative counters feed Prometheus at scrape time; the
 * interval histogram and counters are handed to the window ring (stats/window.ts) on each tick.
 */
import * as hdr from 'hdr-histogram-js';
import type { UpstreamErrorKind } from '../core/errors.js';
import type { PoolId } from '../data/table.js';
import { crossesLimit, type PoolCounts, type SequentialLimit } from './sequential.js';
import type { IntervalSnapshot, PoolInterval, ShadowTally } from './snapshot.js';
import { emptyShadowTotals, type PoolTotals, type Totals } from './totals.js';

export const ERROR_KINDS: readonly UpstreamErrorKind[] = ['connect', 'timeout', 'reset', 'protocol', 'other'];
const KIND_INDEX: Readonly<Record<UpstreamErrorKind, number>> = {
  connect: 0,
  timeout: 1,
  reset: 2,
  protocol: 3,
  other: 4,
};

/** Prometheus histogram bucket bounds (seconds) for sluice_request_duration_seconds. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
const BUCKET_MICROS = DURATION_BUCKETS.map((s) => s * 1e6);

/** Highest latency tracked exactly (µs): an hour; longer values are clamped. */
export const MAX_MICROS = 3_600_000_000;

export function newHistogram(): hdr.Histogram {
  return hdr.build({
    bitBucketSize: 32,
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_MICROS,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
  });
}

/** Faults injected on a pool's requests (PUT /api/v1/faults): counted apart, judged as they are. */
export interface InjectedCounts {
  aborts: number;
  delays: number;
}

/** Requests the override placed: served and counted, never part of any verdict. */
export interface ForcedCounts {
  requests: number;
  errors: number;
}

export class PoolRecorder {
  /** Histogram of the current interval, in µs: handed over whole by `Recorder.takeInterval`. */
  interval: hdr.Histogram = newHistogram();
  intervalRequests = 0;
  intervalErrors = 0;
  /** Cumulative counts by status code (0 = no response). */
  readonly codes = new Float64Array(600);
  readonly errorKinds = new Float64Array(ERROR_KINDS.length);
  /** Cumulative Prometheus bucket counts (non-cumulative per bucket; last is +Inf). */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  sumSeconds = 0;
  count = 0;
  /** Cumulative forced (override) requests and their errors: never in the interval or buckets. */
  readonly forced: ForcedCounts = { requests: 0, errors: 0 };
  /** Cumulative injected aborts and delays (the aborts are also in codes and the interval). */
  readonly injected: InjectedCounts = { aborts: 0, delays: 0 };
}

/** The line nothing crosses: the sequential check disarmed. */
const NEVER: SequentialLimit = Object.freeze({
  offset: Number.POSITIVE_INFINITY,
  slope: 0,
  minErrors: Number.POSITIVE_INFINITY,
  p0: 1,
  p1: 1,
  alpha: 0,
});

export class Recorder {
  readonly pools: readonly [PoolRecorder, PoolRecorder] = [new PoolRecorder(), new PoolRecorder()];
  /** The pool the sequential check watches (the canary, while guarded), or -1. */
  private seqPool = -1;
  private seqLimit: SequentialLimit = NEVER;
  /** The check crossed in this interval: it alarms once per interval (reset by takeInterval). */
  alarmed = false;
  /**
   * Called once when the watched pool's interval counts cross the critical line: it asks the
   * controller for a verdict now (a message from a worker); the controller decides.
   */
  onAlarm: (() => void) | undefined;

  /**
   * Arm the sequential check on `pool` with `limit` (from the routing table), or disarm it
   * (`limit` null: the canary is not guarded). Only the canary is checked.
   */
  guard(pool: PoolId, limit: SequentialLimit | null): void {
    this.seqPool = limit === null ? -1 : pool;
    this.seqLimit = limit ?? NEVER;
  }

  /**
   * One finished upstream exchange. `status` is the upstream status, or the status sluice
   * answered with when the upstream never answered; `errorKind` is set for upstream failures.
   * `micros` is the time to the upstream's response headers (or to the failure).
   */
  record(pool: PoolId, status: number, micros: number, errorKind: UpstreamErrorKind | undefined): void {
    const p = this.pools[pool];
    const v = micros < 1 ? 1 : Math.min(micros, MAX_MICROS);
    p.interval.recordValue(v);
    p.intervalRequests++;
    const isError = errorKind !== undefined || status >= 500;
    if (isError) {
      p.intervalErrors++;
      // The sequential check costs nothing on success: one comparison per error, when armed.
      if (pool === this.seqPool && !this.alarmed && crossesLimit(this.seqLimit, p.intervalErrors, p.intervalRequests))
        this.alarm();
    }
    if (errorKind !== undefined) p.errorKinds[KIND_INDEX[errorKind]]! += 1;
    p.codes[status > 0 && status < 600 ? status : 0]! += 1;
    let b = 0;
    while (b < BUCKET_MICROS.length && v > (BUCKET_MICROS[b] as number)) b++;
    p.buckets[b]! += 1;
    p.sumSeconds += v / 1e6;
    p.count++;
  }

  private alarm(): void {
    this.alarmed = true;
    this.onAlarm?.();
  }

  /** Both pools' counts of the current interval, without closing it (the controller's urgent look). */
  counts(): PoolCounts {
    const [b, g] = this.pools;
    return [
      { requests: b.intervalRequests, errors: b.intervalErrors },
      { requests: g.intervalRequests, errors: g.intervalErrors },
    ];
  }

  /**
   * Requests sluice answered or cut itself instead of passing on an upstream's answer, by reason
   * (queue_timeout, body_timeout, body_too_slow, response_too_slow, parser errors, ...):
   * sluice_rejected_requests_total. Rare, so a Map is fine.
   */
  readonly rejected = new Map<string, number>();
  /** retry.toStable: canary failures sent again to stable, and those the budget refused. */
  readonly retried = { toStable: 0, refused: 0 };
  /** Shadow traffic of the current interval (data/mirror.ts writes it); undefined until a mirror. */
  shadow: ShadowTally | undefined;
  /** Shadow traffic since start (sluice_shadow_*). */
  readonly shadowTotals = emptyShadowTotals();

  /**
   * A mirror's answer from the canary: in the interval (so the canary is judged on its shadow
   * traffic by the same analysis), never in the pool's cumulative counts, which are what clients got.
   */
  recordShadow(pool: PoolId, status: number, micros: number, errorKind: UpstreamErrorKind | undefined): void {
    const p = this.pools[pool];
    p.interval.recordValue(micros < 1 ? 1 : Math.min(micros, MAX_MICROS));
    p.intervalRequests++;
    if (errorKind !== undefined || status >= 500) p.intervalErrors++;
  }

  /** A request the override placed: counted apart, never judged (no interval, no histogram). */
  recordForced(pool: PoolId, status: number, errorKind: UpstreamErrorKind | undefined): void {
    const f = this.pools[pool].forced;
    f.requests++;
    if (errorKind !== undefined || status >= 500) f.errors++;
  }

  /**
   * Close the current interval: its histograms and counts as a snapshot (a value the caller now
   * owns), and fresh ones for the request path. `recycle` gives back histograms the caller no
   * longer needs (HdrHistogram's Recorder.getIntervalHistogram does the same), so a steady
   * window allocates none.
   */
  takeInterval(recycle?: readonly [hdr.Histogram | undefined, hdr.Histogram | undefined]): IntervalSnapshot {
    const take = (i: PoolId): PoolInterval => {
      const p = this.pools[i];
      const out: PoolInterval = { hist: p.interval, requests: p.intervalRequests, errors: p.intervalErrors };
      const fresh = recycle?.[i] ?? newHistogram();
      fresh.reset();
      p.interval = fresh;
      p.intervalRequests = 0;
      p.intervalErrors = 0;
      return out;
    };
    this.alarmed = false;
    const shadow = this.shadow;
    this.shadow = undefined;
    const pools: IntervalSnapshot['pools'] = [take(0), take(1)];
    return shadow === undefined ? { pools } : { pools, shadow };
  }

  /** Everything counted since start, as a value (read on each tick and scrape, never per request). */
  totals(): Totals {
    const pool = (p: PoolRecorder): PoolTotals => {
      const codes: [number, number][] = [];
      for (let c = 0; c < p.codes.length; c++) if ((p.codes[c] as number) > 0) codes.push([c, p.codes[c] as number]);
      return {
        codes,
        errorKinds: Array.from(p.errorKinds),
        buckets: Array.from(p.buckets),
        sumSeconds: p.sumSeconds,
        count: p.count,
        forced: { ...p.forced },
        injected: { ...p.injected },
      };
    };
    return {
      pools: [pool(this.pools[0]), pool(this.pools[1])],
      rejected: [...this.rejected],
      retried: { ...this.retried },
      shadow: { ...this.shadowTotals },
    };
  }

  reject(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  /** Cumulative upstream failures of one kind for a pool (metrics read the arrays directly). */
  errorCount(pool: PoolId, kind: UpstreamErrorKind): number {
    return this.pools[pool].errorKinds[KIND_INDEX[kind]] as number;
  }
}
