/**
 * Gradual rollback, `rollout.onFailure: rampDown` (issue 19; asked for in argo-rollouts #3888 and
 * flagger #1694, #869: a stable pool that was scaled down or went cold while the canary carried
 * much of the traffic is overloaded when it gets all of it back at once). Pure, like decide.ts.
 *
 * What it does, and why:
 * - **The decision is made at the first failing verdict.** The phase becomes `rolled_back` then
 *   (latched, counted in `rollbacks`, the reason, a `rolled_back` history entry and webhook, as a
 *   snap does); no new phase, since tools outside enumerate them. Only the weights take time.
 * - **The walk**: the rollout's steps below the canary's weight, highest first, then 0 (at 50 %
 *   with steps 10, 25, 50, 100: 25, 10, 0). The first weight is taken at once: a failing canary
 *   loses traffic at the verdict, and waiting would only prolong its failures. The others follow
 *   by the clock, so that 0 comes `rampDownOver` after the verdict: each weight above 0 is held
 *   rampDownOver / (walk length − 1). A canary at the first step (or below it) has only 0 to go
 *   to, so it snaps: the rollout put that share on stable's side from warm, it is what stable took
 *   before the rollout, and holding it on a failing canary would only cost.
 * - **Each step down** is a `ramp_down` history entry and `rollout.ramp_down` webhook with the
 *   weights; a tick that finds several steps due (after a restart, a slow tick) goes straight to
 *   the latest, in one entry.
 * - **Still guarded**: the canary has traffic, so every tick judges it. A severe breach
 *   (analysis.ts severeBreach: no healthy endpoint, or the error rate's lower bound above 50 %)
 *   cuts to 0 at once, at the first verdict or during the walk. Any other verdict, passing or
 *   failing, leaves the walk as it is (a rollback is never undone automatically).
 * - **Dry run**: no walk; the failing verdict is recorded as `would_roll_back` as with snap.
 * - **analysis.onSharedFailure: pause** pauses a rollout at the first failure, as with snap; once
 *   a walk is under way, a shared failure does not stop it (the decision was taken).
 * - **Operators win**: an abort cuts to 0 at once (not counted as a second rollback); manual
 *   weights or a new start end the walk and set what they say (the guard still watches a canary
 *   given traffic by hand). Promote, pause and resume are refused while rolled_back (409), as
 *   after a snap: to keep a canary an operator sets its weights first.
 * - **Restart**: the walk is in the persisted state (`rampDown`: startedAt, from, over, reason),
 *   so it goes on by the clock from where it was; a reload's rampDownOver applies to the next one.
 * - **Fleet**: only the leader walks (each step written through Redis like any decision, and
 *   published before it is persisted, as a rollback is). An instance with Redis away does not walk
 *   alone: a failure or a due step there cuts to 0 at once on that instance (safety first), and
 *   that rollback is written to the fleet when Redis returns.
 */
import { formatDuration } from '../core/duration.js';
import { severeBreach, type AnalysisPolicy, type Observation, type Verdict } from './analysis.js';
import type { Outcome } from './decide.js';
import { canaryOf, weightsFor, type ControllerState, type RampDown } from './state.js';

const canaryWeightOf = (s: ControllerState): number => s.weights[canaryOf(s.stable)];

/** The weights a canary at `from` walks through: the steps below it, highest first, then 0. */
export function rampWalk(steps: readonly number[], from: number): number[] {
  return [
    ...steps
      .filter((w) => w > 0 && w < from)
      .sort((a, b) => a - b)
      .reverse(),
    0,
  ];
}

/** The index in a walk of `n` weights that is due at `now`: 0 at startedAt, n − 1 (0 %) from startedAt + over. */
export function rampIndexAt(r: RampDown, n: number, now: number): number {
  if (n <= 1) return 0;
  // elapsed × (n − 1) / over rather than elapsed / (over / (n − 1)): exact on whole milliseconds.
  const i = Math.floor((Math.max(0, now - r.startedAt) * (n - 1)) / r.over);
  return Math.min(n - 1, i);
}

/** When walk index `i` is due (ms). */
export const rampDueAt = (r: RampDown, n: number, i: number): number =>
  n <= 1 ? r.startedAt : r.startedAt + Math.ceil((i * r.over) / (n - 1));

/**
 * A snap (decide.ts rollback) turned into the start of a walk: the canary at the walk's first
 * weight, the walk recorded. Everything else (phase, reason, count, history event) is the snap's.
 */
export function rampFrom(snap: Outcome, from: number, walk: number[], over: number, now: number): Outcome {
  const first = walk[0] as number;
  const reason = snap.state.reason ?? '';
  const state: ControllerState = {
    ...snap.state,
    weights: weightsFor(snap.state.stable, first),
    rampDown: { startedAt: now, from, over, reason },
  };
  const changes = snap.changes.map((c) => ({
    ...c,
    evidence: { ...(c.evidence as Record<string, unknown>), rampDown: { from, walk, over } },
  }));
  return { state, changes };
}

/** The severe breach that cuts a walk short, as a reason suffix for the first verdict (or undefined). */
export function severeSuffix(name: string, verdict: Verdict, o: Observation, p: AnalysisPolicy): string | undefined {
  const severe = severeBreach(name, o, p);
  if (severe === undefined) return undefined;
  return verdict.evidence.check === 'health' ? ', cut at once' : `; severe: ${severe.reason}, cut at once`;
}

/** One tick of a walk under way: a severe breach cuts it to 0; else the weight the clock says, if lower. */
export function rampDownTick(s: ControllerState, o: Observation, p: AnalysisPolicy, now: number): Outcome {
  const r = s.rampDown as RampDown;
  const name = canaryOf(s.stable);
  const current = canaryWeightOf(s);
  const walk = rampWalk(s.steps, r.from);
  const severe = severeBreach(name, o, p);
  if (severe !== undefined) {
    return {
      state: { ...s, weights: weightsFor(s.stable, 0), rampDown: null },
      changes: [
        {
          event: 'ramp_down',
          reason: `${name} to 0% at once (ramp down from ${r.from}% cut short): ${severe.reason}`,
          evidence: { from: r.from, to: 0, walk, severe: severe.evidence },
        },
      ],
    };
  }
  const i = rampIndexAt(r, walk.length, now);
  const target = walk[i] as number;
  if (target >= current) return { state: s, changes: [] };
  return {
    state: { ...s, weights: weightsFor(s.stable, target), rampDown: target === 0 ? null : r },
    changes: [
      {
        event: 'ramp_down',
        reason: `ramp down: ${name} to ${target}% (${i + 1}/${walk.length} from ${r.from}% over ${formatDuration(r.over)}) after: ${r.reason}`,
        evidence: { from: r.from, to: target, walk, step: i + 1, over: r.over },
      },
    ],
  };
}

/**
 * With Redis away an instance does not walk down alone (it cannot know what the leader does
 * next): a decision that lowers the canary takes it to 0 % at once there.
 */
export function cutShort(r: Outcome, why: string): Outcome {
  if (canaryWeightOf(r.state) === 0) return r;
  const name = canaryOf(r.state.stable);
  return {
    state: { ...r.state, weights: weightsFor(r.state.stable, 0), rampDown: null },
    changes: [...r.changes, { event: 'ramp_down', reason: `${name} to 0% at once: ${why}` }],
  };
}

/** A walk as the status document, the CLI and the live page show it. */
export interface RampView {
  from: number;
  walk: number[];
  /** The canary's weight now. */
  weight: number;
  /** The next weight of the walk, and when it is due (ms) and in how long from `now`. */
  next: number;
  nextAt: number;
  nextInMs: number;
  startedAt: number;
  over: number;
  reason: string;
}

/** Where a walk stands at `now` (null when none is under way). */
export function rampView(s: Readonly<ControllerState>, now: number): RampView | null {
  const r = s.rampDown;
  const weight = canaryWeightOf(s);
  if (r === null || weight === 0) return null;
  const walk = rampWalk(s.steps, r.from);
  const i = walk.findIndex((w) => w < weight);
  const next = (walk[i] ?? 0) as number;
  const nextAt = rampDueAt(r, walk.length, i < 0 ? walk.length - 1 : i);
  return {
    from: r.from,
    walk,
    weight,
    next,
    nextAt,
    nextInMs: Math.max(0, nextAt - now),
    startedAt: r.startedAt,
    over: r.over,
    reason: r.reason,
  };
}
