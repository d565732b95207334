/**
 * The controller's state: what is persisted and what the status document is built from.
 */
import { z } from 'zod';
import { POOL_NAMES, type PoolName } from '../core/config.js';

/** Rollout phases (contract). */
export type Phase =
  /** No rollout under way; weights are whatever an operator set. */
  | 'idle'
  /** Stepping the canary up while analysis passes. */
  | 'progressing'
  /** Held at the current step by an operator or a manual weight change; the guard still acts. */
  | 'paused'
  /** The canary reached 100 % and became stable. */
  | 'promoted'
  /** The canary was sent back to 0 %, by analysis or by an operator; never undone automatically. */
  | 'rolled_back';

/** Every phase, once: the state schema and the `sluice_rollout_phase` metric enumerate this. */
export const PHASE_VALUES = [
  'idle',
  'progressing',
  'paused',
  'promoted',
  'rolled_back',
] as const satisfies readonly Phase[];

export interface WeightsState {
  blue: number;
  green: number;
}

export interface HistoryEntry {
  /** ms since epoch */
  at: number;
  /** what happened: started, step, paused, resumed, promoted, rolled_back, ramp_down, aborted, weights */
  event: string;
  /** who: `auto` (the controller) or a token id / `local` */
  by: string;
  reason: string | null;
  weights: WeightsState;
  phase: Phase;
  stepIndex: number;
  /** Numbers behind an automatic decision. */
  evidence?: unknown;
}

/**
 * Maintenance mode: every proxied request gets 503 with Retry-After and a short page, except
 * clients in `allowFrom` (operators checking a release). Part of the state, so it survives a
 * restart and reaches every instance of a fleet.
 */
export interface Maintenance {
  enabled: boolean;
  message: string | null;
  /** What Retry-After says (ms, sent in whole seconds). */
  retryAfter: number;
  /** Client addresses (CIDRs) that are still proxied. */
  allowFrom: string[];
  /** When it was turned on (ms); null while off. */
  since: number | null;
}

export const MAINTENANCE_OFF: Maintenance = Object.freeze({
  enabled: false,
  message: null,
  retryAfter: 600_000,
  allowFrom: [],
  since: null,
}) as Maintenance;

/**
 * Fault injection for rehearsals (PUT /api/v1/faults): a share of `pool`'s requests answered
 * `abortStatus` at once, or held `delayMs` before they go out. Part of the state, so it survives a
 * restart and reaches every worker and instance; it applies only where the config's
 * `faults.enabled` is true.
 */
export interface FaultSpec {
  pool: PoolName;
  /** Percent of the pool's requests answered abortStatus (two decimals). */
  abortPercent: number;
  abortStatus: number;
  /** Percent of the pool's requests held delayMs before they are sent (drawn apart from the abort). */
  delayPercent: number;
  delayMs: number;
  /** When it was set (ms), and by whom. */
  since: number;
  by: string;
}

/** The longest delay a fault may hold a request (ms): a rehearsal of slowness, not a hang. */
export const MAX_FAULT_DELAY_MS = 60_000;

/** `green abort 20% (503), delay 10% 300ms`: for history, logs and the CLI. */
export function describeFaults(f: Omit<FaultSpec, 'since' | 'by'>): string {
  const parts: string[] = [];
  if (f.abortPercent > 0) parts.push(`abort ${f.abortPercent}% (${f.abortStatus})`);
  if (f.delayPercent > 0) parts.push(`delay ${f.delayPercent}% ${f.delayMs}ms`);
  return `${f.pool} ${parts.join(', ')}`;
}

/**
 * Endpoint lists set through the API (PUT /api/v1/pools/{pool}/endpoints) in place of the
 * config's, for deployers that register instances without editing files. `base` is the hash of
 * the config's lists they replaced: once the config's lists change, the config wins again.
 */
export interface EndpointOverride {
  base: string;
  blue?: string[] | undefined;
  green?: string[] | undefined;
}

/**
 * A gradual rollback under way (rollout.onFailure: rampDown): the canary's weight walks down the
 * rollout's steps below `from`, then to 0, by the clock from `startedAt` over `over` ms (see
 * ramp.ts). Persisted, so a restart or a new fleet leader carries on where the clock says.
 */
export interface RampDown {
  /** When the failing verdict came (ms); the walk is timed from here. */
  startedAt: number;
  /** The canary's weight at the failing verdict. */
  from: number;
  /** rollout.rampDownOver when it began (a reload does not stretch a walk under way). */
  over: number;
  /** The failing verdict's reason. */
  reason: string;
}

export interface ControllerState {
  version: number;
  stable: PoolName;
  weights: WeightsState;
  phase: Phase;
  stepIndex: number;
  steps: number[];
  stepHold: number;
  /** When the current step began (ms); holds count from here. */
  stepStartedAt: number | null;
  reason: string | null;
  rollbacks: number;
  maintenance: Maintenance;
  endpoints: EndpointOverride | null;
  /** Fault injection set for rehearsals (applies only with config faults.enabled); null: none. */
  faults: FaultSpec | null;
  /** This rollout runs dry: failing verdicts are recorded, never acted on. */
  dryRun: boolean;
  /** In a dry run: the reason it would have rolled back at the current step (one record per step). */
  wouldRollBack: string | null;
  /** A shadow rollout under way (control/shadow.ts); null when none is. */
  shadow: ShadowRun | null;
  /** How the last shadow rollout ended: its verdict, or stopped. */
  lastShadow: ShadowResult | null;
  /** A gradual rollback walking the canary down; null when none is under way. */
  rampDown: RampDown | null;
  history: HistoryEntry[];
}

/** A shadow rollout: `percent` of stable's requests (by the split key) mirrored to the canary. */
export interface ShadowRun {
  percent: number;
  startedAt: number;
  /** When it is judged (ms); null: until stopped or failed. */
  endsAt: number | null;
  /** Start the rollout when it passes. */
  thenRollout: boolean;
  by: string;
}

export interface ShadowResult {
  verdict: 'shadow_passed' | 'shadow_failed' | 'shadow_stopped';
  at: number;
  reason: string;
  percent: number;
  startedAt: number;
  evidence: unknown;
}

export const canaryOf = (stable: PoolName): PoolName => (stable === 'blue' ? 'green' : 'blue');

const weightsSchema = z.object({ blue: z.number().min(0).max(100), green: z.number().min(0).max(100) });
export const controllerStateSchema = z.object({
  version: z.number().int().nonnegative(),
  stable: z.enum(POOL_NAMES),
  weights: weightsSchema,
  phase: z.enum(PHASE_VALUES),
  stepIndex: z.number().int().nonnegative(),
  steps: z.array(z.number().min(0).max(100)).min(1),
  stepHold: z.number().nonnegative(),
  stepStartedAt: z.number().nullable(),
  reason: z.string().nullable(),
  rollbacks: z.number().int().nonnegative().default(0),
  // Saved before maintenance existed: off.
  maintenance: z
    .object({
      enabled: z.boolean(),
      message: z.string().nullable(),
      retryAfter: z.number().nonnegative(),
      allowFrom: z.array(z.string()),
      since: z.number().nullable(),
    })
    .default({ ...MAINTENANCE_OFF, allowFrom: [] }),
  dryRun: z.boolean().default(false),
  wouldRollBack: z.string().nullable().default(null),
  // Saved before shadow rollouts existed: none.
  shadow: z
    .object({
      percent: z.number().min(0).max(100),
      startedAt: z.number(),
      endsAt: z.number().nullable(),
      thenRollout: z.boolean(),
      by: z.string(),
    })
    .nullable()
    .default(null),
  lastShadow: z
    .object({
      verdict: z.enum(['shadow_passed', 'shadow_failed', 'shadow_stopped']),
      at: z.number(),
      reason: z.string(),
      percent: z.number(),
      startedAt: z.number(),
      evidence: z.any(),
    })
    .nullable()
    .default(null),
  // Saved before gradual rollbacks existed: none under way.
  rampDown: z
    .object({
      startedAt: z.number(),
      from: z.number().min(0).max(100),
      over: z.number().positive(),
      reason: z.string(),
    })
    .nullable()
    .default(null),
  endpoints: z
    .object({
      base: z.string(),
      blue: z.array(z.string()).min(1).optional(),
      green: z.array(z.string()).min(1).optional(),
    })
    .nullable()
    .default(null),
  // Saved before fault injection existed: none.
  faults: z
    .object({
      pool: z.enum(POOL_NAMES),
      abortPercent: z.number().min(0).max(100),
      abortStatus: z.number().int().min(400).max(599),
      delayPercent: z.number().min(0).max(100),
      delayMs: z.number().int().min(0).max(MAX_FAULT_DELAY_MS),
      since: z.number(),
      by: z.string(),
    })
    .nullable()
    .default(null),
  history: z.array(z.any()).default([]),
});

/** Parse saved state; undefined when it does not fit. */
export function validateState(raw: unknown): ControllerState | undefined {
  const r = controllerStateSchema.safeParse(raw);
  if (!r.success) return undefined;
  const s = r.data as ControllerState;
  if (Math.abs(s.weights.blue + s.weights.green - 100) > 1e-6) return undefined;
  return s;
}

/** Weights with the canary at `canaryPercent`. */
export function weightsFor(stable: PoolName, canaryPercent: number): WeightsState {
  const c = Math.round(canaryPercent * 100) / 100;
  const s = Math.round((100 - c) * 100) / 100;
  return stable === 'blue' ? { blue: s, green: c } : { blue: c, green: s };
}

/** History is bounded: the newest entries are kept. */
export const MAX_HISTORY = 500;
