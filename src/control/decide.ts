/**
 * The rollout state machine, as pure functions (STYLE.md habit 1):
 *   decide(state, observation, policy, now)  → { state, changes, verdict }   on every tick
 *   command(state, cmd, by, now, defaults)   → { state, changes }            on operator calls
 * They never touch I/O; the controller (controller.ts) persists, swaps the table and notifies.
 *
 * Transitions:
 *   idle | promoted | rolled_back --start--> progressing (canary at steps[0])
 *   progressing --pass held stepHold--> progressing (next step) … --last step held--> promoted (roles swap)
 *   progressing --pause / manual weights--> paused --resume--> progressing (step's weight restored)
 *   progressing | paused | idle with canary traffic --fail--> rolled_back (canary 0 %, latched)
 *   idle | progressing | paused --promote--> promoted;  progressing | paused | idle with canary traffic --abort--> rolled_back
 * With rollout.onFailure: rampDown, --fail--> is rolled_back at once too, but the canary's weight
 * walks down the steps to 0 over rampDownOver while the phase is rolled_back (ramp.ts says how).
 */
import type { PoolName } from '../core/config.js';
import { formatDuration } from '../core/duration.js';
import { SluiceError } from '../core/errors.js';
import type { ShadowTally } from '../stats/snapshot.js';
import { analyze, zFor, type AnalysisPolicy, type Observation, type Verdict } from './analysis.js';
import { startShadow, stopShadow, type ShadowPolicy } from './shadow.js';
import { rampDownTick, rampFrom, rampWalk, severeSuffix } from './ramp.js';
import {
  canaryOf,
  describeFaults,
  MAINTENANCE_OFF,
  weightsFor,
  type ControllerState,
  type FaultSpec,
  type Maintenance,
  type Phase,
  type WeightsState,
} from './state.js';

export interface RolloutPolicy extends AnalysisPolicy {
  steps: number[];
  stepHold: number;
  /** rollout.dryRun: the default for a start that does not say. */
  dryRun: boolean;
  /** analysis.onSharedFailure: when stable fails as badly, roll back or pause. */
  onSharedFailure: 'rollback' | 'pause';
  /** analysis.maxInconclusive (ms): how long a rollout may go without a verdict; 0: no limit. */
  maxInconclusive: number;
  /** rollout.onFailure: cut a failing canary to 0 at once, or walk it down the steps (ramp.ts). */
  onFailure: 'snap' | 'rampDown';
  /** rollout.rampDownOver (ms): from the failing verdict to 0 % with rampDown. */
  rampDownOver: number;
}

/**
 * A rollout that had no verdict for maxInconclusive: paused, with the reason it is waiting, so
 * that it does not sit at a step forever (Argo's inconclusiveLimit; Flagger's "no values found").
 */
export function pauseWaiting(s: ControllerState, waiting: string, waitedMs: number): Outcome {
  return pause(s, `paused: no verdict for ${formatDuration(waitedMs)}: ${waiting}`, {
    check: 'maxInconclusive',
    waitedMs,
  });
}

/** What happened, for history, logs and webhooks. */
export type ChangeEvent =
  | 'started'
  | 'step'
  | 'paused'
  | 'resumed'
  | 'promoted'
  | 'rolled_back'
  | 'aborted'
  | 'weights'
  | 'maintenance'
  | 'endpoints'
  | 'would_roll_back'
  | 'shadow_started'
  | 'shadow_stopped'
  | 'shadow_passed'
  | 'shadow_failed'
  | 'ramp_down'
  | 'faults';

export interface Change {
  event: ChangeEvent;
  reason: string | null;
  evidence?: unknown;
}

export interface Outcome {
  /** The same object when nothing changed. */
  state: ControllerState;
  changes: Change[];
}

export type Command =
  | { type: 'start'; steps?: number[] | undefined; stepHold?: number | undefined; dryRun?: boolean | undefined }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'promote' }
  | { type: 'abort'; reason?: string | undefined }
  | { type: 'weights'; weights: WeightsState }
  | { type: 'endpoints'; pool: PoolName; endpoints: string[]; base: string }
  /** Set fault injection for rehearsals (null: end it). */
  | { type: 'faults'; spec: Omit<FaultSpec, 'since' | 'by'> | null }
  | {
      type: 'shadow_start';
      percent?: number | undefined;
      duration?: number | undefined;
      thenRollout?: boolean | undefined;
    }
  | { type: 'shadow_stop' }
  | {
      type: 'maintenance';
      enabled: boolean;
      message?: string | undefined;
      retryAfter?: number | undefined;
      allowFrom?: string[] | undefined;
    };

export const canaryWeight = (s: ControllerState): number => s.weights[canaryOf(s.stable)];

/** Whether the guard watches the canary: during a rollout, and whenever it has traffic. */
export function guarded(s: ControllerState): boolean {
  if (s.phase === 'progressing' || s.phase === 'paused') return true;
  return canaryWeight(s) > 0;
}

/** Held at the current step, with the reason: an operator, both pools failing, or a wait too long. */
function pause(s: ControllerState, reason: string, evidence?: unknown): Outcome {
  return { state: { ...s, phase: 'paused', reason }, changes: [{ event: 'paused', reason, evidence }] };
}

/**
 * Canary to 0 %, phase rolled_back, latched: an automatic rollback or an abort. One that cuts a
 * walk down short (ramp.ts) ends the same rollback, so it is not counted again.
 */
export function rollback(
  s: ControllerState,
  reason: string,
  event: 'rolled_back' | 'aborted',
  evidence?: unknown,
): Outcome {
  const state: ControllerState = {
    ...s,
    weights: weightsFor(s.stable, 0),
    phase: 'rolled_back',
    reason,
    rollbacks: s.rampDown === null ? s.rollbacks + 1 : s.rollbacks,
    stepStartedAt: null,
    // A dry run ends with the rollout it belonged to.
    dryRun: false,
    wouldRollBack: null,
    rampDown: null,
  };
  return { state, changes: [{ event, reason, evidence }] };
}

function promote(s: ControllerState, reason: string, evidence?: unknown): Outcome {
  const newStable = canaryOf(s.stable);
  const state: ControllerState = {
    ...s,
    stable: newStable,
    weights: weightsFor(newStable, 0),
    phase: 'promoted',
    reason,
    stepStartedAt: null,
    dryRun: false,
    wouldRollBack: null,
    rampDown: null,
  };
  return { state, changes: [{ event: 'promoted', reason, evidence }] };
}

/** One tick: judge the canary when guarded, roll back on failure, step up or promote on a held pass. */
export function decide(
  s: ControllerState,
  o: Observation,
  p: RolloutPolicy,
  now: number,
): Outcome & { verdict: Verdict | undefined } {
  if (!guarded(s)) return { state: s, changes: [], verdict: undefined };
  const name = canaryOf(s.stable);
  const verdict = analyze(name, o, p);
  // A walk down under way: the decision was taken; only a severe breach changes its pace.
  if (s.rampDown !== null) return { ...rampDownTick(s, o, p, now), verdict };
  if (verdict.kind === 'fail') {
    // A dry run is its rollout's: a canary given traffic by hand afterwards is guarded for real.
    const dry = s.dryRun && (s.phase === 'progressing' || s.phase === 'paused');
    // Both pools failing, and the policy says pause: a rollout holds where it is, saying why.
    if (verdict.evidence.shared === true && p.onSharedFailure === 'pause' && !dry) {
      if (s.phase === 'paused') return { state: s, changes: [], verdict };
      if (s.phase === 'progressing') return { ...pause(s, `paused: ${verdict.reason}`, verdict.evidence), verdict };
    }
    if (!dry) return { ...fail(s, verdict, o, p, now), verdict };
    // A dry run records the decision it would take, once per step, and changes no weight.
    if (s.wouldRollBack !== null) return { state: s, changes: [], verdict };
    const reason = `would roll back: ${verdict.reason}`;
    return {
      state: { ...s, wouldRollBack: verdict.reason },
      changes: [{ event: 'would_roll_back', reason, evidence: verdict.evidence }],
      verdict,
    };
  }
  if (s.phase !== 'progressing' || verdict.kind !== 'pass') return { state: s, changes: [], verdict };
  const startedAt = s.stepStartedAt ?? now;
  if (now - startedAt < s.stepHold) return { state: s, changes: [], verdict };
  const next = s.stepIndex + 1;
  if (next >= s.steps.length) {
    return { ...promote(s, `promoted after ${s.steps.length} steps: ${verdict.reason}`, verdict.evidence), verdict };
  }
  const w = s.steps[next] as number;
  const state: ControllerState = {
    ...s,
    stepIndex: next,
    weights: weightsFor(s.stable, w),
    stepStartedAt: now,
    reason: null,
    wouldRollBack: null,
  };
  return {
    state,
    changes: [
      {
        event: 'step',
        reason: `${name} to ${w}% (step ${next + 1}/${s.steps.length}): ${verdict.reason}`,
        evidence: verdict.evidence,
      },
    ],
    verdict,
  };
}

/** A failing verdict acted on: to 0 % at once, or with onFailure: rampDown the start of a walk down. */
function fail(s: ControllerState, verdict: Verdict, o: Observation, p: RolloutPolicy, now: number): Outcome {
  if (p.onFailure === 'rampDown') {
    const name = canaryOf(s.stable);
    const severe = severeSuffix(name, verdict, o, p);
    if (severe !== undefined) return rollback(s, `${verdict.reason}${severe}`, 'rolled_back', verdict.evidence);
    const from = canaryWeight(s);
    const walk = rampWalk(s.steps, from);
    // At the first step already, 0 is all there is to walk to: a snap (ramp.ts says why).
    if (walk.length > 1) {
      return rampFrom(rollback(s, verdict.reason, 'rolled_back', verdict.evidence), from, walk, p.rampDownOver, now);
    }
  }
  return rollback(s, verdict.reason, 'rolled_back', verdict.evidence);
}

function conflict(cmd: string, phase: Phase, allowed: string): SluiceError {
  return new SluiceError('phase_conflict', 409, `cannot ${cmd} while ${phase} (allowed when ${allowed})`);
}

/** What a command falls back on: the config's rollout, and the shadow's options and tally so far. */
export interface CommandDefaults {
  steps: number[];
  stepHold: number;
  dryRun?: boolean;
  shadow?: ShadowPolicy;
  shadowTally?: ShadowTally | undefined;
  confidence?: number;
}

const DEFAULT_SHADOW: ShadowPolicy = { percent: 10, duration: 300_000, thenRollout: false, maxMismatchRate: 0.01 };

/** Commands that give the canary traffic or swap the roles: a shadow under way ends first. */
function endsShadow(s: ControllerState, cmd: Command): string | undefined {
  if (s.shadow === null) return undefined;
  if (cmd.type === 'start') return 'by the rollout start';
  if (cmd.type === 'promote') return 'by the promotion';
  if (cmd.type === 'weights' && cmd.weights[canaryOf(s.stable)] > 0) return 'by a weight change';
  return undefined;
}

/** An operator command. Throws a 409 SluiceError when the phase does not allow it. */
export function command(s: ControllerState, cmd: Command, by: string, now: number, defaults: CommandDefaults): Outcome {
  const name = canaryOf(s.stable);
  const z = zFor(defaults.confidence ?? 0.99);
  const ending = endsShadow(s, cmd);
  if (ending !== undefined) {
    const stopped = stopShadow(s, `${ending} (${by})`, now, defaults.shadowTally, z);
    const r = command(stopped.state, cmd, by, now, defaults);
    return { state: r.state, changes: [...stopped.changes, ...r.changes] };
  }
  switch (cmd.type) {
    case 'shadow_start':
      return startShadow(s, cmd, by, now, defaults.shadow ?? DEFAULT_SHADOW);
    case 'shadow_stop':
      return stopShadow(s, `by ${by}`, now, defaults.shadowTally, z);
    case 'start': {
      if (s.phase === 'progressing' || s.phase === 'paused')
        throw conflict('start', s.phase, 'idle, promoted or rolled_back');
      const steps = cmd.steps ?? defaults.steps;
      const stepHold = cmd.stepHold ?? defaults.stepHold;
      const first = steps[0] as number;
      const state: ControllerState = {
        ...s,
        phase: 'progressing',
        steps: [...steps],
        stepHold,
        stepIndex: 0,
        stepStartedAt: now,
        weights: weightsFor(s.stable, first),
        reason: null,
        dryRun: cmd.dryRun ?? defaults.dryRun ?? false,
        wouldRollBack: null,
        rampDown: null,
      };
      return {
        state,
        changes: [
          {
            event: 'started',
            reason: `${name} rollout started by ${by}: ${steps.join(' → ')}%, ${formatDuration(stepHold)} per step${state.dryRun ? ' (dry run: no rollback, only a record of one)' : ''}`,
          },
        ],
      };
    }
    case 'pause': {
      if (s.phase !== 'progressing') throw conflict('pause', s.phase, 'progressing');
      return pause(s, `paused by ${by}`);
    }
    case 'resume': {
      if (s.phase !== 'paused') throw conflict('resume', s.phase, 'paused');
      const w = s.steps[s.stepIndex] as number;
      const state: ControllerState = {
        ...s,
        phase: 'progressing',
        weights: weightsFor(s.stable, w),
        stepStartedAt: now,
        reason: null,
      };
      return { state, changes: [{ event: 'resumed', reason: `resumed by ${by} at step ${s.stepIndex + 1} (${w}%)` }] };
    }
    case 'promote': {
      if (s.phase === 'promoted' || s.phase === 'rolled_back')
        throw conflict('promote', s.phase, 'idle, progressing or paused');
      return promote(s, `${name} promoted by ${by}`);
    }
    case 'abort': {
      if (!guarded(s)) throw conflict('abort', s.phase, 'progressing, paused, or the canary has traffic');
      return rollback(s, `aborted by ${by}${cmd.reason ? `: ${cmd.reason}` : ''}`, 'aborted');
    }
    case 'endpoints': {
      // Set against other lists than the config's now: those no longer count.
      const prev = s.endpoints?.base === cmd.base ? s.endpoints : { base: cmd.base };
      const endpoints = { ...prev, [cmd.pool]: [...cmd.endpoints] };
      const reason = `${cmd.pool} endpoints set by ${by}: ${cmd.endpoints.join(', ')}`;
      return { state: { ...s, endpoints }, changes: [{ event: 'endpoints', reason }] };
    }
    case 'faults': {
      if (cmd.spec === null) {
        // Nothing set: nothing to end (DELETE stays idempotent and records nothing).
        if (s.faults === null) return { state: s, changes: [] };
        const reason = `fault injection off by ${by} (was ${describeFaults(s.faults)})`;
        return { state: { ...s, faults: null }, changes: [{ event: 'faults', reason }] };
      }
      // Changed while on: one rehearsal still, on since it began.
      const f = cmd.spec;
      const faults: FaultSpec = {
        pool: f.pool,
        abortPercent: f.abortPercent,
        abortStatus: f.abortStatus,
        delayPercent: f.delayPercent,
        delayMs: f.delayMs,
        since: s.faults?.since ?? now,
        by,
      };
      const reason = `fault injection on by ${by}: ${describeFaults(faults)}`;
      return { state: { ...s, faults }, changes: [{ event: 'faults', reason }] };
    }
    case 'maintenance': {
      const cur = s.maintenance;
      // Turning it on again updates the message, Retry-After and allowFrom; `since` stays.
      const m: Maintenance = cmd.enabled
        ? {
            enabled: true,
            message: cmd.message ?? (cur.enabled ? cur.message : null),
            retryAfter: cmd.retryAfter ?? (cur.enabled ? cur.retryAfter : MAINTENANCE_OFF.retryAfter),
            allowFrom: [...(cmd.allowFrom ?? (cur.enabled ? cur.allowFrom : []))],
            since: cur.enabled ? cur.since : now,
          }
        : { ...MAINTENANCE_OFF, allowFrom: [] };
      const reason = cmd.enabled
        ? `maintenance on by ${by}${m.message ? `: ${m.message}` : ''} (Retry-After ${formatDuration(m.retryAfter)}${m.allowFrom.length ? `, allowed: ${m.allowFrom.join(', ')}` : ''})`
        : `maintenance off by ${by}`;
      return { state: { ...s, maintenance: m }, changes: [{ event: 'maintenance', reason }] };
    }
    case 'weights': {
      let phase: Phase = s.phase;
      let reason = s.reason;
      if (phase === 'progressing') {
        phase = 'paused';
        reason = `paused by a manual weight change (${by})`;
      } else if (phase === 'promoted' || phase === 'rolled_back') {
        phase = 'idle';
        reason = null;
      }
      // The operator wins over a walk down: it ends, and the weights are theirs.
      const state: ControllerState = { ...s, weights: { ...cmd.weights }, phase, reason, rampDown: null };
      const ended = s.rampDown !== null ? ' (the ramp down ends)' : '';
      return {
        state,
        changes: [
          {
            event: 'weights',
            reason: `weights set by ${by}: blue ${cmd.weights.blue}%, green ${cmd.weights.green}%${ended}`,
          },
        ],
      };
    }
  }
}
