/** Fixtures for the pure rollout state machine's tests (decide, shadow). */
import type { Observation } from '../../src/control/analysis.js';
import { MAINTENANCE_OFF, type ControllerState } from '../../src/control/state.js';
import type { WindowStats } from '../../src/stats/window.js';

/** A state with blue stable at 100 %, idle, steps 10 → 25 → 50 → 100, with `over` on top. */
export function st(over: Partial<ControllerState> = {}): ControllerState {
  return {
    version: 1,
    stable: 'blue',
    weights: { blue: 100, green: 0 },
    phase: 'idle',
    stepIndex: 0,
    steps: [10, 25, 50, 100],
    stepHold: 30_000,
    stepStartedAt: null,
    reason: null,
    rollbacks: 0,
    maintenance: { ...MAINTENANCE_OFF, allowFrom: [] },
    endpoints: null,
    faults: null,
    dryRun: false,
    wouldRollBack: null,
    shadow: null,
    lastShadow: null,
    rampDown: null,
    history: [],
    ...over,
  };
}
export const win = (requests: number, errors: number, p95 = 10): WindowStats => ({
  requests,
  errors,
  errorRate: requests ? errors / requests : 0,
  p50Ms: 5,
  p95Ms: p95,
  p99Ms: p95,
  p95LowMs: p95,
  p95HighMs: p95,
});
export const ob = (canary: WindowStats, healthy = true): Observation => ({
  canary,
  stable: win(1000, 0),
  canaryRecent: undefined,
  canaryHealthy: healthy,
  windowMs: 10_000,
  recentMs: 0,
});
