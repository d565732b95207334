/** The status document (contract), built from the controller's state, the pools and the last tick's windows. */
import type { AnalysisStatus } from './control/controller.js';
import type { ControllerState } from './control/state.js';
import { canaryOf } from './control/state.js';
import type { UpstreamConnections, UpstreamPool } from './data/upstream.js';
import type { ForcedCounts } from './stats/recorder.js';
import type { WindowStats } from './stats/window.js';

export interface StatusDocument {
  version: number;
  stable: string;
  canary: string;
  weights: { blue: number; green: number };
  rollout: {
    phase: string;
    stepIndex: number;
    steps: number[];
    stepHold: number;
    reason: string | null;
    stepStartedAt: number | null;
    rollbacks: number;
    analysis: AnalysisStatus;
  };
  pools: Record<
    string,
    {
      endpoints: { url: string; healthy: boolean; ejected: boolean; activeHealthy: boolean; inflight: number }[];
      window: WindowStats;
      /** Upstream connections now: busy, idle, and requests queued for one. */
      connections: UpstreamConnections;
      /** Requests the override placed since start: served, never judged. */
      forced: ForcedCounts;
    }
  >;
  /** Client requests being served now (an exchange from its headers to its end). */
  inflight: number;
  /** Requests sluice answered or cut itself since start, by reason (sluice_rejected_requests_total). */
  rejected: Record<string, number>;
  /** The span the windows cover now (grows to analysis.window after start). */
  windowMs: number;
  /** The thresholds the canary is judged against. */
  thresholds: { maxErrorRate: number; maxP95Ms: number; maxP95Ratio: number; minRequests: number };
}

export interface StatusContext {
  windowMs: number;
  thresholds: StatusDocument['thresholds'];
  inflight: number;
  /** Per pool id (0 blue, 1 green). */
  forced: readonly ForcedCounts[];
  rejected: ReadonlyMap<string, number>;
}

const publicWindow = (w: WindowStats): WindowStats => ({
  requests: w.requests,
  errors: w.errors,
  errorRate: w.errorRate,
  p50Ms: w.p50Ms,
  p95Ms: w.p95Ms,
  p99Ms: w.p99Ms,
});

export function statusDocument(
  s: Readonly<ControllerState>,
  analysis: AnalysisStatus,
  pools: readonly UpstreamPool[],
  windows: { blue: WindowStats; green: WindowStats },
  now: number,
  ctx: StatusContext,
): StatusDocument {
  const doc: StatusDocument = {
    version: s.version,
    stable: s.stable,
    canary: canaryOf(s.stable),
    weights: { ...s.weights },
    rollout: {
      phase: s.phase,
      stepIndex: s.stepIndex,
      steps: [...s.steps],
      stepHold: s.stepHold,
      reason: s.reason,
      stepStartedAt: s.stepStartedAt,
      rollbacks: s.rollbacks,
      analysis: { ...analysis },
    },
    pools: {},
    windowMs: ctx.windowMs,
    thresholds: { ...ctx.thresholds },
    inflight: ctx.inflight,
    rejected: Object.fromEntries(ctx.rejected),
  };
  for (const p of pools) {
    doc.pools[p.name] = {
      endpoints: p.endpoints.map((e) => ({
        url: e.url,
        healthy: e.available(now),
        ejected: e.ejectedUntil !== 0 && now < e.ejectedUntil,
        activeHealthy: e.activeHealthy,
        inflight: e.inflight,
      })),
      window: publicWindow(windows[p.name]),
      connections: p.connections(),
      forced: { ...(ctx.forced[p.id] as ForcedCounts) },
    };
  }
  return doc;
}
