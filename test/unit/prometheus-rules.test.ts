/**
 * config/prometheus-rules.yaml only uses metrics, labels and label values sluice exports, every
 * alert says how bad it is and what to do, and promtool accepts the file and its unit tests
 * (test/prometheus/rules.test.yaml: the alerts fire on the series that should fire them, and not
 * on the others) when it is installed (Debian package prometheus).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportedMetrics, sluiceMetricsIn, type ExportedMetric } from '../helpers/metrics.js';

const root = join(import.meta.dirname, '..', '..');
const RULES = join(root, 'config', 'prometheus-rules.yaml');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

let exported: Map<string, ExportedMetric>;
beforeAll(async () => {
  exported = await exportedMetrics();
});

describe('config/prometheus-rules.yaml', () => {
  it('uses only metrics sluice exports (and Prometheus its own up)', () => {
    for (const r of rules) {
      for (const name of sluiceMetricsIn(r.expr)) expect(exported.has(name), `${r.alert}: ${name}`).toBe(true);
      const others = [...r.expr.matchAll(/\b([a-z_][a-z0-9_]*)\s*(?=\{)/g)]
        .map((m) => m[1] as string)
        .filter((n) => !n.startsWith('sluice_'));
      expect(
        others.filter((n) => n !== 'up'),
        r.alert,
      ).toEqual([]);
    }
  });

  it('selects only label values the metrics carry', () => {
    let checked = 0;
    for (const r of rules) {
      for (const m of r.expr.matchAll(/\b(sluice_[a-z0-9_]+)\{([^}]*)\}/g)) {
        const metric = exported.get(m[1] as string) as ExportedMetric;
        for (const sel of (m[2] as string).matchAll(/([a-z_]+)\s*(=~|=)\s*"([^"]*)"/g)) {
          const [, label, op, value] = sel as unknown as [string, string, string, string];
          const values = metric.labels.get(label);
          expect(values, `${r.alert}: ${metric.name} has no label ${label}`).toBeDefined();
          const wanted = op === '=~' ? value.split('|') : [value];
          for (const v of wanted) expect(values?.has(v), `${r.alert}: ${metric.name}{${label}="${v}"}`).toBe(true);
          checked++;
        }
      }
      // Labels used to group or join exist on the sluice metrics of the expression (or are target labels).
      for (const m of r.expr.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)) {
        for (const label of (m[1] as string).split(',').map((l) => l.trim())) {
          if (label === 'job' || label === 'instance') continue;
          const carriers = [...sluiceMetricsIn(r.expr)].filter((n) => exported.get(n)?.labels.has(label));
          expect(carriers.length, `${r.alert}: no metric carries ${label}`).toBeGreaterThan(0);
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(4);
  });

  it('covers rollback, canary errors, the fleet link, endpoints and reloads', () => {
    const using = (metric: string) => rules.filter((r) => r.expr.includes(metric)).map((r) => r.alert);
    expect(using('sluice_rollbacks_total')).toContain('SluiceRolledBack');
    expect(using('sluice_rollout_phase{phase="rolled_back"}')).toContain('SluiceRolledBack');
    expect(using('sluice_pool_window_error_ratio')).toEqual(['SluiceCanaryErrorRatioHigh']);
    expect(using('sluice_fleet_connected')).toEqual(['SluiceFleetDisconnected']);
    expect(using('sluice_endpoint_healthy')).toEqual(['SluiceEndpointDown', 'SluicePoolDown']);
    expect(using('sluice_config_reloads_total')).toEqual(['SluiceConfigReloadFailed']);
  });

  it('gives every alert a for:, a severity and annotations that say what to do', () => {
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    for (const r of rules) {
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(['info', 'warning', 'critical'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      // Each description names a command to run: sluice's own, or the platform's.
      expect(r.annotations?.description, r.alert).toMatch(/`(sluice|systemctl|kubectl|docker) [^`]+`/);
    }
    const commands = rules.flatMap((r) => [...(r.annotations?.description ?? '').matchAll(/`sluice ([a-z]+)/g)]);
    const known = new Set(['status', 'history', 'rollout', 'reload', '--check']);
    for (const c of commands) expect(known.has(c[1] as string), c[0]).toBe(true);
  });

  it.skipIf(!hasPromtool)('passes promtool check rules and its unit tests (skipped without promtool)', () => {
    const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    const test = spawnSync('promtool', ['test', 'rules', join(root, 'test', 'prometheus', 'rules.test.yaml')], {
      encoding: 'utf8',
    });
    expect(test.status, test.stdout + test.stderr).toBe(0);
  });
});
