/** config/grafana-dashboard.json only queries metrics sluice exports (so it cannot silently rot). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerMetrics } from '../../src/metrics/metrics.js';
import { emptyTotals } from '../../src/stats/totals.js';

describe('Grafana dashboard', () => {
  it('references only exported sluice metrics, and every contract metric appears', async () => {
    const registry = new Registry();
    registerMetrics(registry, {
      weights: () => ({ blue: 100, green: 0 }),
      phase: () => 'idle',
      rollbacks: () => 0,
      endpoints: () => [],
      windows: () => ({}),
      inflight: () => 0,
      connections: () => [],
      totals: emptyTotals,
      workerRestarts: () => 0,
      reloads: () => ({ applied: 0 }),
      maintenance: () => false,
      shadowPercent: () => 0,
      faults: () => null,
      fleet: () => undefined,
    });
    const exported = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const dash = readFileSync(join(import.meta.dirname, '..', '..', 'config', 'grafana-dashboard.json'), 'utf8');
    const used = new Set(
      [...dash.matchAll(/\bsluice_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')),
    );
    for (const name of used) expect(exported.has(name), `${name} is not exported`).toBe(true);
    for (const name of [
      'sluice_requests_total',
      'sluice_request_duration_seconds',
      'sluice_upstream_errors_total',
      'sluice_pool_weight_percent',
      'sluice_pool_window_error_ratio',
      'sluice_pool_window_p95_seconds',
      'sluice_rollout_phase',
      'sluice_rollbacks_total',
      'sluice_endpoint_healthy',
    ]) {
      expect(exported.has(name), `${name} (contract)`).toBe(true);
      expect(used.has(name), `${name} on the dashboard`).toBe(true);
    }
  });
});
