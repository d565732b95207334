/**
 * Prometheus metrics behind a small facade over a Registry passed in (STYLE.md habit 11).
 * Nothing here runs per request: every number is read at scrape time from the merged totals of
 * the data plane's members (a value: stats/totals.ts) and the controller's status, through
 * custom collectors. Counters are summed over every worker that ever ran, so they never go back.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';
import { POOL_NAMES } from '../core/config.js';
import { PHASE_VALUES } from '../control/state.js';
import { DURATION_BUCKETS, ERROR_KINDS } from '../stats/recorder.js';
import type { Totals } from '../stats/totals.js';

type Labels = Record<string, string | number>;
interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** The shape prom-client's Registry formats: anything with name, help, type and get(). */
function collector(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', read: () => Sample[]) {
  return {
    name,
    help,
    type,
    aggregator: 'sum' as const,
    get: async () => ({ name, help, type, aggregator: 'sum' as const, values: read() }),
    reset: () => {},
  };
}

/** What the metrics read from the control plane at scrape time. */
export interface MetricsSource {
  weights(): { blue: number; green: number };
  /** The pool holding the current release (the other is the canary). */
  stable(): 'blue' | 'green';
  phase(): string;
  rollbacks(): number;
  endpoints(): { pool: string; url: string; healthy: boolean }[];
  windows(): Partial<Record<'blue' | 'green', { errorRate: number; p95Ms: number }>>;
  inflight(): number;
  connections(): { pool: string; busy: number; idle: number; queued: number }[];
  /** Everything the data plane counted, over all its members. */
  totals(): Totals;
  /** Worker threads replaced after they died. */
  workerRestarts(): number;
  /** With fleet: whether Redis is reachable and whether this instance leads. */
  fleet(): { connected: boolean; leader: boolean } | undefined;
  /** Config reloads so far, by result (applied, unchanged, refused, invalid). */
  reloads(): Readonly<Record<string, number>>;
  /** Whether maintenance mode is on. */
  maintenance(): boolean;
  /** The shadow under way's percent of stable's requests mirrored (0: none). */
  shadowPercent(): number;
  /** The pool a fault injection applies to now (set, and enabled by the config), else null. */
  faults(): string | null;
}

export function registerMetrics(registry: Registry, source: MetricsSource): void {
  collectDefaultMetrics({ register: registry });
  const reg = (m: ReturnType<typeof collector>) => registry.registerMetric(m as never);

  reg(
    collector(
      'sluice_requests_total',
      'Upstream exchanges by pool and status code (0: no response).',
      'counter',
      () => {
        const out: Sample[] = [];
        source.totals().pools.forEach((p, i) => {
          for (const [code, v] of p.codes) out.push({ labels: { pool: POOL_NAMES[i] as string, code }, value: v });
        });
        return out;
      },
    ),
  );
  reg(
    collector(
      'sluice_upstream_errors_total',
      'Upstream failures by pool and kind (connect, timeout, reset, protocol, other).',
      'counter',
      () =>
        source.totals().pools.flatMap((p, i) =>
          ERROR_KINDS.map((kind, k) => ({
            labels: { pool: POOL_NAMES[i] as string, kind },
            value: p.errorKinds[k] as number,
          })),
        ),
    ),
  );
  reg(
    collector(
      'sluice_request_duration_seconds',
      'Time to the upstream response headers (or failure), by pool.',
      'histogram',
      () => {
        const out: Sample[] = [];
        source.totals().pools.forEach((p, i) => {
          const pool = POOL_NAMES[i] as string;
          let cum = 0;
          DURATION_BUCKETS.forEach((le, b) => {
            cum += p.buckets[b] as number;
            out.push({ metricName: 'sluice_request_duration_seconds_bucket', labels: { pool, le }, value: cum });
          });
          cum += p.buckets[DURATION_BUCKETS.length] as number;
          out.push({ metricName: 'sluice_request_duration_seconds_bucket', labels: { pool, le: '+Inf' }, value: cum });
          out.push({ metricName: 'sluice_request_duration_seconds_sum', labels: { pool }, value: p.sumSeconds });
          out.push({ metricName: 'sluice_request_duration_seconds_count', labels: { pool }, value: p.count });
        });
        return out;
      },
    ),
  );
  reg(
    collector('sluice_pool_weight_percent', 'Share of traffic routed to each pool, in percent.', 'gauge', () => {
      const w = source.weights();
      return POOL_NAMES.map((pool) => ({ labels: { pool }, value: w[pool] }));
    }),
  );
  reg(
    // One series per pool, 1, labelled with its role: alert rules join on it to judge the canary.
    collector(
      'sluice_pool_role',
      'Role of each pool (1): stable holds the release, canary the candidate.',
      'gauge',
      () => {
        const stable = source.stable();
        return POOL_NAMES.map((pool) => ({ labels: { pool, role: pool === stable ? 'stable' : 'canary' }, value: 1 }));
      },
    ),
  );
  reg(
    collector('sluice_pool_window_error_ratio', 'Errors / requests over the analysis window.', 'gauge', () => {
      const w = source.windows();
      return POOL_NAMES.flatMap((pool) =>
        w[pool] === undefined ? [] : [{ labels: { pool }, value: w[pool].errorRate }],
      );
    }),
  );
  reg(
    collector('sluice_pool_window_p95_seconds', 'p95 latency over the analysis window.', 'gauge', () => {
      const w = source.windows();
      return POOL_NAMES.flatMap((pool) =>
        w[pool] === undefined ? [] : [{ labels: { pool }, value: w[pool].p95Ms / 1000 }],
      );
    }),
  );
  reg(
    collector('sluice_rollout_phase', 'Current rollout phase (1 for the current one).', 'gauge', () => {
      const phase = source.phase();
      return PHASE_VALUES.map((p) => ({ labels: { phase: p }, value: p === phase ? 1 : 0 }));
    }),
  );
  reg(
    collector('sluice_rollbacks_total', 'Rollbacks, automatic and manual.', 'counter', () => [
      { labels: {}, value: source.rollbacks() },
    ]),
  );
  reg(
    collector('sluice_inflight_requests', 'Client requests being served now.', 'gauge', () => [
      { labels: {}, value: source.inflight() },
    ]),
  );
  reg(
    collector(
      'sluice_upstream_connections',
      'Upstream connections by pool and state (busy, idle), and requests queued for one (queued).',
      'gauge',
      () =>
        source.connections().flatMap((c) =>
          (['busy', 'idle', 'queued'] as const).map((state) => ({
            labels: { pool: c.pool, state },
            value: c[state],
          })),
        ),
    ),
  );
  reg(
    collector(
      'sluice_forced_requests_total',
      'Requests placed by the override header or cookie, by pool: served, never judged (not in sluice_requests_total).',
      'counter',
      () =>
        source.totals().pools.map((p, i) => ({ labels: { pool: POOL_NAMES[i] as string }, value: p.forced.requests })),
    ),
  );
  reg(
    collector('sluice_forced_errors_total', 'Errors among the forced requests, by pool.', 'counter', () =>
      source.totals().pools.map((p, i) => ({ labels: { pool: POOL_NAMES[i] as string }, value: p.forced.errors })),
    ),
  );
  reg(
    collector(
      'sluice_rejected_requests_total',
      'Requests sluice answered or cut itself instead of an upstream answering, by reason (queue_timeout, body_timeout, body_too_slow, response_too_slow, ...).',
      'counter',
      () => source.totals().rejected.map(([reason, value]) => ({ labels: { reason }, value })),
    ),
  );
  reg(
    collector(
      'sluice_fleet_connected',
      'With fleet: 1 while Redis is reachable (absent without fleet).',
      'gauge',
      () => {
        const f = source.fleet();
        return f === undefined ? [] : [{ labels: {}, value: f.connected ? 1 : 0 }];
      },
    ),
  );
  reg(
    collector('sluice_fleet_leader', 'With fleet: 1 on the instance that decides.', 'gauge', () => {
      const f = source.fleet();
      return f === undefined ? [] : [{ labels: {}, value: f.leader ? 1 : 0 }];
    }),
  );
  reg(
    collector(
      'sluice_retried_to_stable_total',
      'Canary failures sent again to stable before any byte reached the client (retry.toStable).',
      'counter',
      () => [{ labels: {}, value: source.totals().retried.toStable }],
    ),
  );
  reg(
    collector(
      'sluice_retry_budget_refused_total',
      'Canary failures the retry budget did not send to stable: the client got the canary answer.',
      'counter',
      () => [{ labels: {}, value: source.totals().retried.refused }],
    ),
  );
  reg(
    collector(
      'sluice_shadow_requests_total',
      'Shadow mirrors of stable requests to the canary: mirrored, dropped (no room), skipped (body too large or streamed).',
      'counter',
      () => {
        const t = source.totals().shadow;
        return (['mirrored', 'dropped', 'skipped'] as const).map((result) => ({
          labels: { result },
          value: t[result],
        }));
      },
    ),
  );
  reg(
    collector(
      'sluice_shadow_mismatches_total',
      'Shadow pairs whose answers differ: failed (stable ok, canary 5xx or none), status (another class), slow.',
      'counter',
      () => {
        const t = source.totals().shadow;
        return (['failed', 'status', 'slow'] as const).map((kind) => ({ labels: { kind }, value: t[kind] }));
      },
    ),
  );
  reg(
    collector(
      'sluice_shadow_percent',
      "Percent of stable's requests mirrored to the canary now (0: no shadow).",
      'gauge',
      () => [{ labels: {}, value: source.shadowPercent() }],
    ),
  );
  reg(
    collector('sluice_maintenance', 'Maintenance mode: 1 while proxied requests get 503.', 'gauge', () => [
      { labels: {}, value: source.maintenance() ? 1 : 0 },
    ]),
  );
  reg(
    collector(
      'sluice_injected_faults_total',
      'Faults injected for rehearsals (PUT /api/v1/faults), by pool and kind (abort, delay); the aborts also count in sluice_requests_total and the verdict.',
      'counter',
      () =>
        source.totals().pools.flatMap((p, i) => [
          { labels: { pool: POOL_NAMES[i] as string, kind: 'abort' }, value: p.injected.aborts },
          { labels: { pool: POOL_NAMES[i] as string, kind: 'delay' }, value: p.injected.delays },
        ]),
    ),
  );
  reg(
    collector(
      'sluice_fault_injection',
      'Fault injection: 1 for the pool whose requests get injected faults now (none: 0 for both).',
      'gauge',
      () => {
        const on = source.faults();
        return POOL_NAMES.map((pool) => ({ labels: { pool }, value: pool === on ? 1 : 0 }));
      },
    ),
  );
  reg(
    collector(
      'sluice_config_reloads_total',
      'Config reloads (SIGHUP, POST /api/v1/reload) by result: applied, unchanged, refused (needs a restart), invalid.',
      'counter',
      () => Object.entries(source.reloads()).map(([result, value]) => ({ labels: { result }, value })),
    ),
  );
  reg(
    collector('sluice_worker_restarts_total', 'Worker threads replaced after they died.', 'counter', () => [
      { labels: {}, value: source.workerRestarts() },
    ]),
  );
  reg(
    collector(
      'sluice_endpoint_healthy',
      'Whether an endpoint takes traffic (active and passive health).',
      'gauge',
      () => source.endpoints().map((e) => ({ labels: { pool: e.pool, endpoint: e.url }, value: e.healthy ? 1 : 0 })),
    ),
  );
}
