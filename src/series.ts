/**
 * The series document (GET /api/v1/series): per-interval points of both pools over the last 15
 * minutes, the thresholds to draw, and the rollout's events in that span as markers, each with its
 * reason (the numbers behind an automatic decision are in it).
 */
import type { Controller } from './control/controller.js';
import type { PoolSeries } from './stats/series.js';

/** History events drawn as markers on the charts (a weight move, or the rollout's own). */
const MARKED = new Set([
  'started',
  'step',
  'paused',
  'resumed',
  'promoted',
  'rolled_back',
  'aborted',
  'weights',
  'ramp_down',
  'would_roll_back',
  'maintenance',
  'shadow_started',
  'shadow_passed',
  'shadow_failed',
  'shadow_stopped',
]);

export interface SeriesDocument {
  now: number;
  intervalMs: number;
  spanMs: number;
  thresholds: { maxErrorRate: number; maxP95Ms: number };
  pools: { blue: PoolSeries; green: PoolSeries };
  markers: { at: number; event: string; by: string; reason: string | null; weights: { blue: number; green: number } }[];
}

export function seriesDocument(
  c: Controller,
  since: number,
  intervalMs: number,
  t: { maxErrorRate: number; maxP95Ms: number },
  now: number,
): SeriesDocument {
  const spanMs = c.series.spanMs;
  const from = Math.max(since, now - spanMs);
  const markers = c.state.history
    .filter((e) => e.at > from && MARKED.has(e.event))
    .map((e) => ({ at: e.at, event: e.event, by: e.by, reason: e.reason, weights: { ...e.weights } }))
    .reverse();
  return {
    now,
    intervalMs,
    spanMs,
    thresholds: { maxErrorRate: t.maxErrorRate, maxP95Ms: t.maxP95Ms },
    pools: c.series.since(since),
    markers,
  };
}
