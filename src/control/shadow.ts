/**
 * Shadow rollouts, as pure functions beside decide.ts: start, stop, and the judgement on each
 * tick. During a shadow the canary has no weight; a share of stable's requests is mirrored to it
 * (data/mirror.ts), so it is judged on real requests no user sees answered:
 * - by the same analysis as a rollout (its error rate and p95 on the mirrored requests, compared
 *   with stable's over the same span), and
 * - by the paired comparison: for the same request, stable ok and canary failing, another status
 *   class, or the canary much slower. The lower Wilson bound of mismatches / pairs above
 *   rollout.shadow.maxMismatchRate fails it (the same evidence rule as errors: thin traffic never
 *   fails a shadow by chance).
 * It ends `shadow_failed` as soon as either fails, `shadow_passed` at its end with at least
 * minRequests pairs and no failure (then, with thenRollout, the rollout starts), and
 * `shadow_failed` at its end without enough pairs: a shadow that saw too little proves nothing.
 */
import { formatDuration } from '../core/duration.js';
import { SluiceError } from '../core/errors.js';
import type { ShadowTally } from '../stats/snapshot.js';
import { analyze, wilsonLower, zFor, type Observation, type Verdict } from './analysis.js';
import type { Change, Outcome, RolloutPolicy } from './decide.js';
import { canaryOf, type ControllerState, type ShadowResult, type ShadowRun } from './state.js';

export interface ShadowPolicy {
  /** Defaults for a start that does not say. */
  percent: number;
  duration: number;
  thenRollout: boolean;
  maxMismatchRate: number;
}

/** Numbers behind a shadow's verdict (history evidence, status document, webhook). */
export interface ShadowEvidence {
  pairs: number;
  mismatches: number;
  failed: number;
  status: number;
  slow: number;
  mirrored: number;
  dropped: number;
  skipped: number;
  /** Lower bound of mismatches / pairs at the analysis confidence. */
  mismatchLow: number;
  samples: ShadowTally['samples'];
  analysis?: unknown;
}

export function evidenceOf(t: ShadowTally, z: number): ShadowEvidence {
  const mismatches = t.failed + t.status + t.slow;
  return {
    pairs: t.pairs,
    mismatches,
    failed: t.failed,
    status: t.status,
    slow: t.slow,
    mirrored: t.mirrored,
    dropped: t.dropped,
    skipped: t.skipped,
    mismatchLow: t.pairs === 0 ? 0 : wilsonLower(mismatches, t.pairs, z),
    samples: t.samples.map((s) => ({ ...s })),
  };
}

const pct = (x: number) => `${Math.round(x * 10_000) / 100}%`;

/** The mismatches in words: `12 of 400 pairs mismatched (3%): 10 failed on green, 2 slower; e.g. GET /a (id …)`. */
export function mismatchWords(name: string, e: ShadowEvidence): string {
  const parts: string[] = [];
  if (e.failed > 0) parts.push(`${e.failed} failed on ${name} only`);
  if (e.status > 0) parts.push(`${e.status} another status class`);
  if (e.slow > 0) parts.push(`${e.slow} much slower`);
  // The example: the worst kind seen (a failure says more than a slow answer).
  const s = e.samples.find((x) => x.kind === 'failed') ?? e.samples.find((x) => x.kind === 'status') ?? e.samples[0];
  const example = s === undefined ? '' : `; e.g. ${s.method} ${s.path} (${s.requestId}): ${s.stable} → ${s.canary}`;
  return `${e.mismatches} of ${e.pairs} paired requests mismatched (${pct(e.pairs === 0 ? 0 : e.mismatches / e.pairs)}, lower bound ${pct(e.mismatchLow)})${parts.length > 0 ? `: ${parts.join(', ')}` : ''}${example}`;
}

/** Start a shadow; 409 during a rollout, while the canary has traffic, or with one under way. */
export function startShadow(
  s: ControllerState,
  cmd: { percent?: number | undefined; duration?: number | undefined; thenRollout?: boolean | undefined },
  by: string,
  now: number,
  p: ShadowPolicy,
): Outcome {
  if (s.shadow !== null)
    throw new SluiceError('phase_conflict', 409, 'a shadow is under way: stop it first (POST /api/v1/shadow/stop)');
  if (s.phase === 'progressing' || s.phase === 'paused')
    throw new SluiceError('phase_conflict', 409, `cannot start a shadow while ${s.phase}: the canary is live already`);
  const name = canaryOf(s.stable);
  if (s.weights[name] > 0)
    throw new SluiceError(
      'phase_conflict',
      409,
      `cannot start a shadow while ${name} has ${s.weights[name]}% of the traffic: set it to 0 first`,
    );
  const percent = cmd.percent ?? p.percent;
  const duration = cmd.duration ?? p.duration;
  const shadow: ShadowRun = {
    percent,
    startedAt: now,
    endsAt: duration > 0 ? now + duration : null,
    thenRollout: cmd.thenRollout ?? p.thenRollout,
    by,
  };
  const reason = `${name} shadow started by ${by}: ${percent}% of ${s.stable}'s requests mirrored${duration > 0 ? ` for ${formatDuration(duration)}` : ' until stopped'}${shadow.thenRollout ? ', then the rollout if it passes' : ''}`;
  return { state: { ...s, shadow }, changes: [{ event: 'shadow_started', reason }] };
}

/** End the shadow under way with `verdict`; the state's lastShadow keeps it. */
function end(
  s: ControllerState,
  verdict: ShadowResult['verdict'],
  reason: string,
  now: number,
  evidence: ShadowEvidence | null,
): Outcome {
  const run = s.shadow as ShadowRun;
  const lastShadow: ShadowResult = {
    verdict,
    at: now,
    reason,
    percent: run.percent,
    startedAt: run.startedAt,
    evidence,
  };
  const change: Change = { event: verdict, reason, ...(evidence === null ? {} : { evidence }) };
  return { state: { ...s, shadow: null, lastShadow }, changes: [change] };
}

/** An operator's stop (or a rollout, weights or promotion that ends it): no verdict. */
export function stopShadow(
  s: ControllerState,
  why: string,
  now: number,
  tally: ShadowTally | undefined,
  z: number,
): Outcome {
  if (s.shadow === null) throw new SluiceError('phase_conflict', 409, 'no shadow is under way');
  const e = tally === undefined ? null : evidenceOf(tally, z);
  const seen = e === null ? '' : `: ${mismatchWords(canaryOf(s.stable), e)}`;
  return end(s, 'shadow_stopped', `shadow stopped ${why}${seen}`, now, e);
}

/**
 * One tick of a shadow: fail on the analysis or the pairs, pass at its end, or wait. A pass with
 * thenRollout also starts the rollout (through `start`, decide's own start command).
 */
export function judgeShadow(
  s: ControllerState,
  o: Observation,
  tally: ShadowTally,
  p: RolloutPolicy & { shadow: ShadowPolicy },
  now: number,
  start: (s: ControllerState) => Outcome,
): Outcome & { verdict: Verdict | undefined } {
  const run = s.shadow;
  if (run === null) return { state: s, changes: [], verdict: undefined };
  const name = canaryOf(s.stable);
  const verdict = analyze(name, o, p);
  const e = evidenceOf(tally, zFor(p.confidence));
  if (verdict.kind === 'fail') {
    const r = end(s, 'shadow_failed', `shadow failed: ${verdict.reason}; ${mismatchWords(name, e)}`, now, {
      ...e,
      analysis: verdict.evidence,
    });
    return { ...r, verdict };
  }
  if (e.pairs >= p.minRequests && e.mismatchLow > p.shadow.maxMismatchRate) {
    const reason = `shadow failed: ${mismatchWords(name, e)} > ${pct(p.shadow.maxMismatchRate)}`;
    return { ...end(s, 'shadow_failed', reason, now, e), verdict };
  }
  if (run.endsAt === null || now < run.endsAt) return { state: s, changes: [], verdict };
  const span = formatDuration(run.endsAt - run.startedAt);
  if (e.pairs < p.minRequests) {
    const reason = `shadow failed: not enough traffic to judge: ${e.pairs}/${p.minRequests} paired requests in ${span}`;
    return { ...end(s, 'shadow_failed', reason, now, e), verdict };
  }
  const passed = end(s, 'shadow_passed', `shadow passed after ${span}: ${mismatchWords(name, e)}`, now, e);
  if (!run.thenRollout) return { ...passed, verdict };
  const next = start(passed.state);
  return { state: next.state, changes: [...passed.changes, ...next.changes], verdict };
}
