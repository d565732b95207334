/** The status document (contract), built from the controller's state, the pools and the last tick's windows. */
import type { AnalysisStatus } from './control/controller.js';
import type { ControllerState, FaultSpec, Maintenance, ShadowResult } from './control/state.js';
import type { ShadowEvidence } from './control/shadow.js';
import type { ShadowTotals } from './stats/totals.js';
import { canaryOf } from './control/state.js';
import { rampView, type RampView } from './control/ramp.js';
import { poolNameOf } from './data/table.js';
import type { EndpointBook } from './control/endpoints.js';
import type { FleetStatus } from './fleet/fleet.js';
import type { MemberInfo, PlaneView } from './control/members.js';
import type { UpstreamConnections } from './data/upstream.js';
import type { ForcedCounts, InjectedCounts } from './stats/recorder.js';
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
    /** This rollout runs dry; and what it would have done at this step. */
    dryRun: boolean;
    wouldRollBack: string | null;
    /** A gradual rollback under way (rollout.onFailure: rampDown): the weight now, the next and when; else null. */
    rampDown: RampView | null;
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
      /** Faults injected on this pool's requests since start (sluice_injected_faults_total). */
      injected: InjectedCounts;
    }
  >;
  /** Client requests being served now (an exchange from its headers to its end). */
  inflight: number;
  /** Requests sluice answered or cut itself since start, by reason (sluice_rejected_requests_total). */
  rejected: Record<string, number>;
  /** retry.toStable since start: canary failures sent to stable, and those the budget refused. */
  retried: { toStable: number; refused: number };
  /** The members of the data plane: `main` with `workers: 1`, else one per worker thread. */
  workers: MemberInfo[];
  /** The routing table in force: its versions, and how long the last one took to reach every member. */
  table: { version: number; health: number; appliedInMs: number };
  /** With fleet: this instance's link to the others (null when it runs alone). */
  fleet: FleetStatus | null;
  /** The span the windows cover now (grows to analysis.window after start). */
  windowMs: number;
  /** The thresholds the canary is judged against. */
  thresholds: { maxErrorRate: number; maxP95Ms: number; maxP95Ratio: number; minRequests: number };
  /** The config in force: its hash, when it was loaded (ms), its file, and the reloads so far by result. */
  config: ConfigStatus;
  /** Maintenance mode (off: enabled false). */
  maintenance: Maintenance;
  /** Shadow rollouts: the one under way (null: none) with its numbers so far, the last verdict, totals. */
  shadow: {
    active: boolean;
    percent: number;
    startedAt: number | null;
    endsAt: number | null;
    thenRollout: boolean;
    by: string | null;
    run: ShadowEvidence | null;
    /** How the last one ended: verdict shadow_passed, shadow_failed or shadow_stopped, with its numbers. */
    last: ShadowResult | null;
    /** Since start (sluice_shadow_requests_total, sluice_shadow_mismatches_total). */
    totals: ShadowTotals;
  };
  /** Fault injection set for rehearsals, or null. */
  faults: FaultStatus | null;
}

/**
 * A fault spec as the status shows it: `active` is false while the config's faults.enabled is
 * not true (set, but not applied); `injected` counts the pool's injected faults since start.
 */
export type FaultStatus = FaultSpec & { active: boolean; injected: InjectedCounts };

/** The state's fault spec with whether it applies and what it injected. */
export function faultStatus(s: Readonly<ControllerState>, enabled: boolean, view: PlaneView): FaultStatus | null {
  const f = s.faults;
  if (f === null) return null;
  const injected = view.totals.pools[f.pool === 'blue' ? 0 : 1].injected;
  return { ...f, active: enabled, injected: { ...injected } };
}

export interface ConfigStatus {
  hash: string;
  at: number;
  file: string | null;
  reloads: Readonly<Record<string, number>>;
}

export interface StatusContext {
  windowMs: number;
  thresholds: StatusDocument['thresholds'];
  /** The data plane's gauges and totals, merged over its members. */
  view: PlaneView;
  endpoints: EndpointBook;
  workers: readonly MemberInfo[];
  table: StatusDocument['table'];
  fleet: FleetStatus | null;
  config: ConfigStatus;
  /** The shadow under way's numbers so far (Controller.shadowEvidence). */
  shadowRun: ShadowEvidence | null;
  /** config faults.enabled: whether a fault spec in the state applies. */
  faultsEnabled: boolean;
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
      dryRun: s.dryRun,
      wouldRollBack: s.wouldRollBack,
      rampDown: rampView(s, now),
    },
    pools: {},
    windowMs: ctx.windowMs,
    thresholds: { ...ctx.thresholds },
    inflight: ctx.view.inflight,
    rejected: Object.fromEntries(ctx.view.totals.rejected),
    retried: { ...ctx.view.totals.retried },
    workers: ctx.workers.map((w) => ({ ...w })),
    table: { ...ctx.table },
    fleet: ctx.fleet,
    config: { ...ctx.config, reloads: { ...ctx.config.reloads } },
    maintenance: { ...s.maintenance, allowFrom: [...s.maintenance.allowFrom] },
    shadow: {
      active: s.shadow !== null,
      percent: s.shadow?.percent ?? 0,
      startedAt: s.shadow?.startedAt ?? null,
      endsAt: s.shadow?.endsAt ?? null,
      thenRollout: s.shadow?.thenRollout ?? false,
      by: s.shadow?.by ?? null,
      run: ctx.shadowRun,
      last: s.lastShadow,
      totals: { ...ctx.view.totals.shadow },
    },
    faults: faultStatus(s, ctx.faultsEnabled, ctx.view),
  };
  const book = ctx.endpoints;
  for (const id of [0, 1] as const) {
    const name = poolNameOf(id);
    doc.pools[name] = {
      endpoints: book.urls[id].map((url, i) => {
        const st = book.state(id, i);
        return {
          url: url.replace(/\/$/, ''),
          healthy: book.available(id, i, now),
          ejected: st !== undefined && st.ejectedUntil !== 0 && now < st.ejectedUntil,
          activeHealthy: st?.up ?? true,
          inflight: ctx.view.endpointInflight[id][i] ?? 0,
        };
      }),
      window: publicWindow(windows[name]),
      connections: { ...ctx.view.connections[id] },
      forced: { ...(ctx.view.totals.pools[id].forced as ForcedCounts) },
      injected: { ...ctx.view.totals.pools[id].injected },
    };
  }
  return doc;
}
