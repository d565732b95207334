/** The status document (contract): built from the controller's state, the pools and the window. */
import type { ControllerState } from './control/state.js';
import { canaryOf } from './control/state.js';
import type { UpstreamPool } from './data/upstream.js';
import type { WindowSource, WindowStats } from './stats/window.js';

export interface StatusDocument {
  version: number;
  stable: string;
  canary: string;
  weights: { blue: number; green: number };
  rollout: { phase: string; stepIndex: number; steps: number[]; stepHold: number; reason: string | null; stepStartedAt: number | null };
  pools: Record<string, { endpoints: { url: string; healthy: boolean; ejected: boolean; activeHealthy: boolean; inflight: number }[]; window: WindowStats }>;
}

export function statusDocument(s: Readonly<ControllerState>, pools: readonly UpstreamPool[], window: WindowSource, now: number): StatusDocument {
  const doc: StatusDocument = {
    version: s.version,
    stable: s.stable,
    canary: canaryOf(s.stable),
    weights: { ...s.weights },
    rollout: { phase: s.phase, stepIndex: s.stepIndex, steps: [...s.steps], stepHold: s.stepHold, reason: s.reason, stepStartedAt: s.stepStartedAt },
    pools: {},
  };
  for (const p of pools) {
    doc.pools[p.name] = {
      endpoints: p.endpoints.map((e) => ({ url: e.url, healthy: e.available(now), ejected: e.ejectedUntil !== 0 && now < e.ejectedUntil, activeHealthy: e.activeHealthy, inflight: e.inflight })),
      window: window.query(p.id),
    };
  }
  return doc;
}
