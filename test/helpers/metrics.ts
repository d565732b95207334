/**
 * The metrics sluice exports, from the real registerMetrics over a source that fills every
 * series (all phases, both roles, every reload result, a fleet), for tests that check files
 * outside the code (dashboard, alert rules) against it.
 */
import { Registry } from 'prom-client';
import { registerMetrics } from '../../src/metrics/metrics.js';
import { emptyTotals } from '../../src/stats/totals.js';

export interface ExportedMetric {
  name: string;
  /** Every label name → the values its series carry. */
  labels: Map<string, Set<string>>;
}

export async function exportedMetrics(): Promise<Map<string, ExportedMetric>> {
  const registry = new Registry();
  registerMetrics(registry, {
    weights: () => ({ blue: 90, green: 10 }),
    stable: () => 'blue',
    phase: () => 'progressing',
    rollbacks: () => 0,
    endpoints: () => [{ pool: 'blue', url: 'http://127.0.0.1:3001', healthy: true }],
    windows: () => ({ blue: { errorRate: 0, p95Ms: 1 }, green: { errorRate: 0, p95Ms: 1 } }),
    inflight: () => 0,
    connections: () => [],
    totals: emptyTotals,
    workerRestarts: () => 0,
    reloads: () => ({ applied: 0, unchanged: 0, refused: 0, invalid: 0 }),
    maintenance: () => false,
    shadowPercent: () => 10,
    faults: () => 'green',
    fleet: () => ({ connected: true, leader: true }),
  });
  const out = new Map<string, ExportedMetric>();
  for (const m of await registry.getMetricsAsJSON()) {
    const labels = new Map<string, Set<string>>();
    for (const v of m.values) {
      for (const [k, value] of Object.entries(v.labels)) {
        if (!labels.has(k)) labels.set(k, new Set());
        labels.get(k)?.add(String(value));
      }
    }
    out.set(m.name, { name: m.name, labels });
  }
  return out;
}

/** The metric names an expression uses (histogram suffixes folded into their metric). */
export const sluiceMetricsIn = (text: string): Set<string> =>
  new Set([...text.matchAll(/\bsluice_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
