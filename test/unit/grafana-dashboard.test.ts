/** config/grafana-dashboard.json only queries metrics sluice exports (so it cannot silently rot). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportedMetrics, sluiceMetricsIn } from '../helpers/metrics.js';

const text = readFileSync(join(import.meta.dirname, '..', '..', 'config', 'grafana-dashboard.json'), 'utf8');
const dash = JSON.parse(text) as {
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
  panels: { title: string; targets?: { expr: string }[] }[];
};

describe('Grafana dashboard', () => {
  it('references only exported sluice metrics, and every contract metric appears', async () => {
    const exported = await exportedMetrics();
    const used = sluiceMetricsIn(text);
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

  it('has job and instance variables, and every query selects by both', () => {
    const vars = new Map(dash.templating.list.map((v) => [v.name, v]));
    for (const name of ['job', 'instance']) {
      const v = vars.get(name);
      expect(v?.type, name).toBe('query');
      const q = typeof v?.query === 'string' ? v.query : v?.query?.query;
      expect(q, name).toMatch(new RegExp(`^label_values\\(sluice_[a-z_]+(\\{[^}]*\\})?, ${name}\\)$`));
    }
    const targets = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));
    expect(targets.length).toBeGreaterThan(5);
    for (const { title, expr } of targets) {
      const uses = [...expr.matchAll(/\bsluice_[a-z0-9_]+(\{[^}]*\})?/g)];
      expect(uses.length, title).toBeGreaterThan(0);
      for (const [use, selector] of uses) {
        expect(selector, `${title}: ${use}`).toBeDefined();
        expect(selector, `${title}: ${use}`).toMatch(/\bjob=~?"\$job"/);
        expect(selector, `${title}: ${use}`).toMatch(/\binstance=~"\$instance"/);
      }
    }
  });
});
