import { describe, expect, it } from 'vitest';
import { command, decide, guarded, type Command, type RolloutPolicy } from '../../src/control/decide.js';
import type { Observation } from '../../src/control/analysis.js';
import { severeBreach, type Verdict } from '../../src/control/analysis.js';
import { cutShort, rampIndexAt, rampView, rampWalk } from '../../src/control/ramp.js';
import { MAINTENANCE_OFF, validateState, type ControllerState, type Phase } from '../../src/control/state.js';
import type { SluiceError } from '../../src/core/errors.js';
import { ob, st, win } from '../helpers/rollout-state.js';

const policy: RolloutPolicy = {
  steps: [10, 25, 50, 100],
  stepHold: 30_000,
  dryRun: false,
  minRequests: 50,
  maxErrorRate: 0.01,
  maxP95Ms: 500,
  maxP95Ratio: 2,
  minP95DeltaMs: 5,
  confidence: 0.95,
  fastConfidence: 0.999,
  maxErrorRatio: 2,
  minErrorDelta: 0.005,
  onSharedFailure: 'rollback',
  maxInconclusive: 600_000,
  onFailure: 'snap',
  rampDownOver: 60_000,
};
const defaults = { steps: policy.steps, stepHold: policy.stepHold };

const healthy = ob(win(500, 0));
const broken = ob(win(500, 100));
const thin = ob(win(10, 10));

describe('decide', () => {
  const progressing = (stepIndex: number, startedAt: number, green: number) =>
    st({ phase: 'progressing', stepIndex, stepStartedAt: startedAt, weights: { blue: 100 - green, green } });

  it.each<[string, ControllerState, Observation, number, Partial<ControllerState> | 'unchanged', string | undefined]>([
    ['idle at 0 %: no analysis, nothing happens, even with a broken canary', st(), broken, 0, 'unchanged', undefined],
    ['progressing, pass, hold not over: stays', progressing(0, 0, 10), healthy, 29_999, 'unchanged', undefined],
    [
      'progressing, pass, hold over: next step',
      progressing(0, 0, 10),
      healthy,
      30_000,
      { stepIndex: 1, weights: { blue: 75, green: 25 }, stepStartedAt: 30_000, phase: 'progressing' },
      'step',
    ],
    [
      'progressing, inconclusive (thin traffic), hold over: waits',
      progressing(0, 0, 10),
      thin,
      90_000,
      'unchanged',
      undefined,
    ],
    [
      'progressing, fail: rollback to 0 %',
      progressing(1, 0, 25),
      broken,
      1000,
      { phase: 'rolled_back', weights: { blue: 100, green: 0 }, rollbacks: 1 },
      'rolled_back',
    ],
    [
      'progressing, canary without healthy endpoint: rollback',
      progressing(0, 0, 10),
      ob(win(0, 0), false),
      1000,
      { phase: 'rolled_back', weights: { blue: 100, green: 0 } },
      'rolled_back',
    ],
    [
      'last step held with pass: promote, roles swap',
      progressing(3, 0, 100),
      healthy,
      30_000,
      { phase: 'promoted', stable: 'green', weights: { blue: 0, green: 100 } },
      'promoted',
    ],
    [
      'paused with traffic, pass: holds still',
      st({ phase: 'paused', stepIndex: 1, weights: { blue: 75, green: 25 }, stepStartedAt: 0 }),
      healthy,
      999_999,
      'unchanged',
      undefined,
    ],
    [
      'paused, fail: the guard still rolls back',
      st({ phase: 'paused', weights: { blue: 75, green: 25 } }),
      broken,
      1,
      { phase: 'rolled_back', weights: { blue: 100, green: 0 } },
      'rolled_back',
    ],
    [
      'idle with manual canary weight, fail: guard rolls back',
      st({ weights: { blue: 70, green: 30 } }),
      broken,
      1,
      { phase: 'rolled_back', weights: { blue: 100, green: 0 } },
      'rolled_back',
    ],
    [
      'idle with manual canary weight, pass: nothing',
      st({ weights: { blue: 70, green: 30 } }),
      healthy,
      1,
      'unchanged',
      undefined,
    ],
    [
      'rolled back: latched, a healthy canary is never brought back',
      st({ phase: 'rolled_back', rollbacks: 1 }),
      healthy,
      1e9,
      'unchanged',
      undefined,
    ],
    [
      'promoted (green stable), blue canary at 0 %: nothing',
      st({ phase: 'promoted', stable: 'green', weights: { blue: 0, green: 100 } }),
      broken,
      1,
      'unchanged',
      undefined,
    ],
    [
      'green stable, blue canary progressing, fail: blue to 0 %',
      st({ phase: 'progressing', stable: 'green', weights: { blue: 10, green: 90 }, stepStartedAt: 0 }),
      broken,
      1,
      { phase: 'rolled_back', weights: { blue: 0, green: 100 }, stable: 'green' },
      'rolled_back',
    ],
  ])('%s', (_name, s, o, now, expected, event) => {
    const r = decide(s, o, policy, now);
    if (expected === 'unchanged') {
      expect(r.state).toBe(s);
      expect(r.changes).toEqual([]);
    } else {
      expect(r.state).toMatchObject(expected);
      expect(r.changes.map((c) => c.event)).toEqual([event]);
    }
  });

  it('puts the reason with its numbers in state and change', () => {
    const r = decide(
      st({ phase: 'progressing', weights: { blue: 90, green: 10 }, stepStartedAt: 0 }),
      ob(win(850, 41)),
      policy,
      1,
    );
    expect(r.state.reason).toBe('green error rate 4.82% (41/850, 95% lower bound 3.58%) > 1% over 10s');
    expect(r.changes[0]!.evidence).toMatchObject({ errors: 41, requests: 850 });
  });

  it('walks 10 → 25 → 50 → 100 → promoted with a healthy canary and never rolls back', () => {
    let s = command(st(), { type: 'start' }, 'ops', 0, defaults).state;
    const seen: number[] = [s.weights.green];
    for (let t = 1000; t <= 200_000 && s.phase === 'progressing'; t += 1000) {
      s = decide(s, healthy, policy, t).state;
      if (s.weights.green !== seen.at(-1)) seen.push(s.weights.green);
    }
    expect(seen).toEqual([10, 25, 50, 100]);
    expect(s.phase).toBe('promoted');
    expect(s.stable).toBe('green');
    expect(s.rollbacks).toBe(0);
  });
});

describe('commands', () => {
  const cmd = (s: ControllerState, c: Command) => command(s, c, 'ops', 5000, defaults);
  const conflicts: [Phase, Command['type'], Partial<ControllerState>][] = [
    ['progressing', 'start', { weights: { blue: 90, green: 10 } }],
    ['paused', 'start', { weights: { blue: 90, green: 10 } }],
    ['idle', 'pause', {}],
    ['paused', 'pause', {}],
    ['idle', 'resume', {}],
    ['progressing', 'resume', {}],
    ['promoted', 'promote', {}],
    ['rolled_back', 'promote', {}],
    ['idle', 'abort', {}],
    ['rolled_back', 'abort', {}],
    ['promoted', 'abort', { stable: 'green', weights: { blue: 0, green: 100 } }],
  ];
  it.each(conflicts)('%s refuses %s with 409', (phase, type, over) => {
    expect(() => cmd(st({ phase, ...over }), { type } as Command)).toThrowError(
      expect.objectContaining({ status: 409, code: 'phase_conflict' }) as unknown as SluiceError,
    );
  });

  it('start: canary to the first step, from idle, promoted or rolled back, with custom steps', () => {
    for (const phase of ['idle', 'promoted', 'rolled_back'] as const) {
      const r = cmd(st({ phase }), { type: 'start', steps: [5, 50], stepHold: 1000 });
      expect(r.state).toMatchObject({
        phase: 'progressing',
        stepIndex: 0,
        steps: [5, 50],
        stepHold: 1000,
        weights: { blue: 95, green: 5 },
        stepStartedAt: 5000,
      });
      expect(r.changes[0]!.event).toBe('started');
    }
  });

  it('pause and resume: resume restores the step weight and restarts the hold', () => {
    const p = cmd(st({ phase: 'progressing', stepIndex: 1, weights: { blue: 75, green: 25 }, stepStartedAt: 0 }), {
      type: 'pause',
    }).state;
    expect(p.phase).toBe('paused');
    const manual = cmd(p, { type: 'weights', weights: { blue: 95, green: 5 } }).state;
    expect(manual.phase).toBe('paused');
    const r = cmd(manual, { type: 'resume' }).state;
    expect(r).toMatchObject({ phase: 'progressing', weights: { blue: 75, green: 25 }, stepStartedAt: 5000 });
  });

  it('manual weights pause a rollout, and end a promoted or rolled-back episode', () => {
    expect(
      cmd(st({ phase: 'progressing', weights: { blue: 90, green: 10 } }), {
        type: 'weights',
        weights: { blue: 80, green: 20 },
      }).state.phase,
    ).toBe('paused');
    expect(cmd(st({ phase: 'rolled_back' }), { type: 'weights', weights: { blue: 80, green: 20 } }).state.phase).toBe(
      'idle',
    );
    expect(cmd(st(), { type: 'weights', weights: { blue: 80, green: 20 } }).state.phase).toBe('idle');
  });

  it('promote: canary to 100 % and roles swap; abort: canary to 0 %', () => {
    const pr = cmd(st({ phase: 'paused', weights: { blue: 75, green: 25 } }), { type: 'promote' }).state;
    expect(pr).toMatchObject({ phase: 'promoted', stable: 'green', weights: { blue: 0, green: 100 } });
    const ab = cmd(st({ phase: 'progressing', weights: { blue: 50, green: 50 } }), {
      type: 'abort',
      reason: 'bad deploy',
    });
    expect(ab.state).toMatchObject({
      phase: 'rolled_back',
      weights: { blue: 100, green: 0 },
      rollbacks: 1,
      reason: 'aborted by ops: bad deploy',
    });
    expect(ab.changes[0]!.event).toBe('aborted');
  });
});

describe('decide: the guard, the hold and what a change says', () => {
  it.each<[string, Partial<ControllerState>, boolean]>([
    ['idle at 0 %', {}, false],
    ['idle with canary traffic', { weights: { blue: 99, green: 1 } }, true],
    ['progressing, even at 0 %', { phase: 'progressing', weights: { blue: 100, green: 0 }, stepStartedAt: 0 }, true],
    ['paused at 0 % (a manual weight change to 0)', { phase: 'paused', weights: { blue: 100, green: 0 } }, true],
    [
      'promoted, new canary (blue) at 0 %',
      { phase: 'promoted', stable: 'green', weights: { blue: 0, green: 100 } },
      false,
    ],
    ['green stable, blue canary with traffic', { stable: 'green', weights: { blue: 5, green: 95 } }, true],
  ])('%s: guarded %s', (_name, over, isGuarded) => {
    const s = st(over);
    expect(guarded(s)).toBe(isGuarded);
    const r = decide(s, broken, policy, 1);
    expect(r.changes.map((c) => c.event)).toEqual(isGuarded ? ['rolled_back'] : []);
    expect(r.verdict?.kind).toBe(isGuarded ? 'fail' : undefined);
  });

  it('a rollback is latched at 0 % with the verdict as reason and evidence', () => {
    const s = st({
      phase: 'progressing',
      stepIndex: 2,
      weights: { blue: 50, green: 50 },
      stepStartedAt: 7,
      rollbacks: 2,
    });
    const r = decide(s, broken, policy, 1000);
    const reason = 'green error rate 20% (100/500, 95% lower bound 16.73%) > 1% over 10s';
    expect(r.state).toEqual({
      ...s,
      weights: { blue: 100, green: 0 },
      phase: 'rolled_back',
      reason,
      rollbacks: 3,
      stepStartedAt: null,
    });
    expect(r.changes).toEqual([{ event: 'rolled_back', reason, evidence: r.verdict!.evidence }]);
    expect(r.verdict!.evidence).toMatchObject({ check: 'errorRate', errors: 100 });
  });

  it('holds each step for stepHold from when it started', () => {
    const s = st({ phase: 'progressing', stepIndex: 0, weights: { blue: 90, green: 10 }, stepStartedAt: 10_000 });
    expect(decide(s, healthy, policy, 39_999).state).toBe(s);
    expect(decide(s, healthy, policy, 39_999).verdict?.kind).toBe('pass');
    const r = decide({ ...s, reason: 'resumed' }, healthy, policy, 40_000);
    expect(r.state).toEqual({
      ...s,
      stepIndex: 1,
      weights: { blue: 75, green: 25 },
      stepStartedAt: 40_000,
      reason: null,
    });
    expect(r.changes).toEqual([
      {
        event: 'step',
        reason: `green to 25% (step 2/4): ${r.verdict!.reason}`,
        evidence: r.verdict!.evidence,
      },
    ]);
    expect(r.verdict!.reason).toBe('green healthy: error rate 0% (0/500), p95 10ms over 10s');
  });

  it('promotes after the last step with the count of steps in the reason', () => {
    const s = st({
      phase: 'progressing',
      stepIndex: 3,
      weights: { blue: 0, green: 100 },
      stepStartedAt: 5,
      reason: 'x',
    });
    const r = decide(s, healthy, policy, 30_005);
    expect(r.state).toEqual({
      ...s,
      stable: 'green',
      weights: { blue: 0, green: 100 },
      phase: 'promoted',
      reason: `promoted after 4 steps: ${r.verdict!.reason}`,
      stepStartedAt: null,
    });
    expect(r.changes).toEqual([{ event: 'promoted', reason: r.state.reason, evidence: r.verdict!.evidence }]);
    // One tick short of the hold: still at the last step.
    expect(decide(s, healthy, policy, 30_004).state).toBe(s);
  });

  it('paused or idle with traffic: the verdict is reported, nothing moves', () => {
    const s = st({ phase: 'paused', weights: { blue: 75, green: 25 }, stepStartedAt: 0 });
    const r = decide(s, healthy, policy, 1e9);
    expect(r).toEqual({ state: s, changes: [], verdict: expect.objectContaining({ kind: 'pass' }) });
  });
});

describe('commands: the resulting state and the words', () => {
  const cmd = (s: ControllerState, c: Command) => command(s, c, 'ops', 5000, defaults);

  it.each<[Phase, Command, string]>([
    ['progressing', { type: 'start' }, 'cannot start while progressing (allowed when idle, promoted or rolled_back)'],
    ['idle', { type: 'pause' }, 'cannot pause while idle (allowed when progressing)'],
    ['progressing', { type: 'resume' }, 'cannot resume while progressing (allowed when paused)'],
    ['rolled_back', { type: 'promote' }, 'cannot promote while rolled_back (allowed when idle, progressing or paused)'],
    [
      'idle',
      { type: 'abort' },
      'cannot abort while idle (allowed when progressing, paused, or the canary has traffic)',
    ],
  ])('%s refuses %o: %s', (phase, c, message) => {
    expect(() => cmd(st({ phase }), c)).toThrow(message);
  });

  it('start: a fresh rollout from the defaults, the reason cleared, the plan in words', () => {
    const s = st({ phase: 'rolled_back', reason: 'old failure', stepIndex: 3, rollbacks: 1 });
    const r = cmd(s, { type: 'start' });
    expect(r.state).toEqual({
      ...s,
      phase: 'progressing',
      steps: [10, 25, 50, 100],
      stepHold: 30_000,
      stepIndex: 0,
      stepStartedAt: 5000,
      weights: { blue: 90, green: 10 },
      reason: null,
    });
    expect(r.state.steps).not.toBe(defaults.steps);
    expect(r.changes).toEqual([
      { event: 'started', reason: 'green rollout started by ops: 10 → 25 → 50 → 100%, 30s per step' },
    ]);
    const custom = cmd(st({ stable: 'green', weights: { blue: 0, green: 100 } }), {
      type: 'start',
      steps: [1, 100],
      stepHold: 1500,
    });
    expect(custom.state.weights).toEqual({ blue: 1, green: 99 });
    expect(custom.changes[0]!.reason).toBe('blue rollout started by ops: 1 → 100%, 1.5s per step');
  });

  it('pause and resume say who and where', () => {
    const s = st({ phase: 'progressing', stepIndex: 1, weights: { blue: 75, green: 25 }, stepStartedAt: 0 });
    const p = cmd(s, { type: 'pause' });
    expect(p.state).toEqual({ ...s, phase: 'paused', reason: 'paused by ops' });
    expect(p.changes).toEqual([{ event: 'paused', reason: 'paused by ops' }]);
    const r = cmd({ ...p.state, weights: { blue: 100, green: 0 } }, { type: 'resume' });
    expect(r.state).toEqual({ ...s, phase: 'progressing', stepStartedAt: 5000, reason: null });
    expect(r.changes).toEqual([{ event: 'resumed', reason: 'resumed by ops at step 2 (25%)' }]);
  });

  it('promote from idle, progressing or paused: roles swap', () => {
    for (const phase of ['idle', 'progressing', 'paused'] as const) {
      const s = st({ phase, weights: { blue: 60, green: 40 }, stepStartedAt: 3 });
      const r = cmd(s, { type: 'promote' });
      expect(r.state).toEqual({
        ...s,
        stable: 'green',
        weights: { blue: 0, green: 100 },
        phase: 'promoted',
        reason: 'green promoted by ops',
        stepStartedAt: null,
      });
      expect(r.changes).toEqual([{ event: 'promoted', reason: 'green promoted by ops', evidence: undefined }]);
    }
  });

  it('abort: with or without a reason, also from idle while the canary has traffic', () => {
    const s = st({ weights: { blue: 70, green: 30 } });
    const r = cmd(s, { type: 'abort' });
    expect(r.state).toEqual({
      ...s,
      weights: { blue: 100, green: 0 },
      phase: 'rolled_back',
      reason: 'aborted by ops',
      rollbacks: 1,
      stepStartedAt: null,
    });
    expect(r.changes).toEqual([{ event: 'aborted', reason: 'aborted by ops', evidence: undefined }]);
    expect(cmd(s, { type: 'abort', reason: '' }).state.reason).toBe('aborted by ops');
    expect(cmd(st({ phase: 'paused', weights: { blue: 100, green: 0 } }), { type: 'abort' }).state.phase).toBe(
      'rolled_back',
    );
  });

  it.each<[Phase, Phase, string | null]>([
    ['idle', 'idle', 'kept'],
    ['progressing', 'paused', 'paused by a manual weight change (ops)'],
    ['paused', 'paused', 'kept'],
    ['promoted', 'idle', null],
    ['rolled_back', 'idle', null],
  ])('manual weights while %s → %s', (from, to, reason) => {
    const weights = { blue: 80, green: 20 };
    const s = st({ phase: from, reason: 'kept' });
    const r = cmd(s, { type: 'weights', weights });
    expect(r.state).toEqual({ ...s, weights, phase: to, reason });
    expect(r.state.weights).not.toBe(weights);
    expect(r.changes).toEqual([{ event: 'weights', reason: 'weights set by ops: blue 80%, green 20%' }]);
  });
});

describe('maintenance command', () => {
  it('turns on with its settings and a since, updates while on keeping since, turns off whole', () => {
    const on = command(
      st(),
      { type: 'maintenance', enabled: true, message: 'db upgrade', allowFrom: ['10.0.0.0/8'] },
      'ops',
      1000,
      defaults,
    );
    expect(on.state.maintenance).toEqual({
      enabled: true,
      message: 'db upgrade',
      retryAfter: 600_000,
      allowFrom: ['10.0.0.0/8'],
      since: 1000,
    });
    expect(on.changes).toEqual([
      { event: 'maintenance', reason: 'maintenance on by ops: db upgrade (Retry-After 10m, allowed: 10.0.0.0/8)' },
    ]);
    // The rollout is not touched.
    expect(on.state.weights).toEqual({ blue: 100, green: 0 });
    expect(on.state.phase).toBe('idle');
    const again = command(on.state, { type: 'maintenance', enabled: true, retryAfter: 30_000 }, 'ops', 5000, defaults);
    expect(again.state.maintenance).toMatchObject({ message: 'db upgrade', retryAfter: 30_000, since: 1000 });
    expect(again.state.maintenance.allowFrom).toEqual(['10.0.0.0/8']);
    const off = command(again.state, { type: 'maintenance', enabled: false }, 'ops', 9000, defaults);
    expect(off.state.maintenance).toEqual({ ...MAINTENANCE_OFF, allowFrom: [] });
    expect(off.changes[0]?.reason).toBe('maintenance off by ops');
    // On again later: a fresh since and none of the old settings.
    const later = command(off.state, { type: 'maintenance', enabled: true }, 'ops', 20_000, defaults);
    expect(later.state.maintenance).toMatchObject({ message: null, retryAfter: 600_000, allowFrom: [], since: 20_000 });
  });
});

describe('faults command', () => {
  const spec = { pool: 'green' as const, abortPercent: 20, abortStatus: 503, delayPercent: 10, delayMs: 300 };
  it('sets a spec with since and by, keeps since while it stays on, ends it; ending none records nothing', () => {
    const on = command(
      st({ phase: 'progressing', weights: { blue: 90, green: 10 } }),
      { type: 'faults', spec },
      'ops',
      1000,
      defaults,
    );
    expect(on.state.faults).toEqual({ ...spec, since: 1000, by: 'ops' });
    expect(on.changes).toEqual([
      { event: 'faults', reason: 'fault injection on by ops: green abort 20% (503), delay 10% 300ms' },
    ]);
    // The rollout is not touched.
    expect(on.state).toMatchObject({ phase: 'progressing', weights: { blue: 90, green: 10 } });
    const changed = command(
      on.state,
      { type: 'faults', spec: { ...spec, abortPercent: 0, delayPercent: 50 } },
      'qa',
      5000,
      defaults,
    );
    expect(changed.state.faults).toEqual({ ...spec, abortPercent: 0, delayPercent: 50, since: 1000, by: 'qa' });
    expect(changed.changes[0]?.reason).toBe('fault injection on by qa: green delay 50% 300ms');
    const off = command(changed.state, { type: 'faults', spec: null }, 'ops', 9000, defaults);
    expect(off.state.faults).toBeNull();
    expect(off.changes).toEqual([
      { event: 'faults', reason: 'fault injection off by ops (was green delay 50% 300ms)' },
    ]);
    const again = command(off.state, { type: 'faults', spec: null }, 'ops', 9500, defaults);
    expect(again.state).toBe(off.state);
    expect(again.changes).toEqual([]);
    // On again later: a fresh since.
    expect(command(off.state, { type: 'faults', spec }, 'ops', 20_000, defaults).state.faults?.since).toBe(20_000);
  });

  it('a state saved before fault injection existed loads with none; a saved spec loads back', () => {
    const { faults: _none, ...old } = st();
    expect(validateState(old)?.faults).toBeNull();
    const saved = { ...st(), faults: { ...spec, since: 5, by: 'ops' } };
    expect(validateState(JSON.parse(JSON.stringify(saved)))?.faults).toEqual(saved.faults);
    expect(validateState({ ...saved, faults: { ...saved.faults, delayMs: 3_600_000 } })).toBeUndefined();
  });

  it('copies only the spec fields, in any phase', () => {
    for (const phase of ['idle', 'paused', 'promoted', 'rolled_back'] as Phase[]) {
      const r = command(st({ phase }), { type: 'faults', spec: { ...spec, extra: 1 } as never }, 'ops', 1, defaults);
      expect(Object.keys(r.state.faults ?? {}).sort()).toEqual([
        'abortPercent',
        'abortStatus',
        'by',
        'delayMs',
        'delayPercent',
        'pool',
        'since',
      ]);
      expect(r.state.phase).toBe(phase);
    }
  });
});

describe('endpoints command', () => {
  it('sets a pool against the config lists it replaces; lists set against other config lists are dropped', () => {
    const a = command(
      st(),
      { type: 'endpoints', pool: 'green', endpoints: ['http://g2'], base: 'c1' },
      'ops',
      1,
      defaults,
    );
    expect(a.state.endpoints).toEqual({ base: 'c1', green: ['http://g2'] });
    expect(a.changes).toEqual([{ event: 'endpoints', reason: 'green endpoints set by ops: http://g2' }]);
    const b = command(
      a.state,
      { type: 'endpoints', pool: 'blue', endpoints: ['http://b2'], base: 'c1' },
      'ops',
      2,
      defaults,
    );
    expect(b.state.endpoints).toEqual({ base: 'c1', green: ['http://g2'], blue: ['http://b2'] });
    // The config's lists changed since (another base): the old green override no longer holds.
    const c = command(
      b.state,
      { type: 'endpoints', pool: 'blue', endpoints: ['http://b3'], base: 'c2' },
      'ops',
      3,
      defaults,
    );
    expect(c.state.endpoints).toEqual({ base: 'c2', blue: ['http://b3'] });
    expect(c.state.weights).toEqual(st().weights);
  });
});

describe('dry run', () => {
  const dry = (stepIndex = 0, over: Partial<ControllerState> = {}) =>
    st({ phase: 'progressing', stepIndex, stepStartedAt: 0, weights: { blue: 90, green: 10 }, dryRun: true, ...over });

  it('records what it would do, once per step, and changes no weight', () => {
    const a = decide(dry(), broken, policy, 1000);
    expect(a.state.weights).toEqual({ blue: 90, green: 10 });
    expect(a.state.phase).toBe('progressing');
    expect(a.state.rollbacks).toBe(0);
    expect(a.changes).toHaveLength(1);
    expect(a.changes[0]?.event).toBe('would_roll_back');
    expect(a.changes[0]?.reason).toMatch(/^would roll back: green error rate/);
    expect(a.state.wouldRollBack).toMatch(/^green error rate/);
    // Still failing on the next tick: no second record at this step.
    const b = decide(a.state, broken, policy, 2000);
    expect(b.changes).toEqual([]);
    expect(b.state).toBe(a.state);
    // Passing again, the hold over: the next step, with a clean slate for it.
    const c = decide(b.state, healthy, policy, 31_000);
    expect(c.changes[0]?.event).toBe('step');
    expect(c.state.wouldRollBack).toBeNull();
    expect(decide(c.state, broken, policy, 32_000).changes[0]?.event).toBe('would_roll_back');
  });

  it('a start takes dryRun from the command, else from the policy; an abort still rolls back', () => {
    const fromCmd = command(st(), { type: 'start', dryRun: true }, 'ops', 0, { ...defaults, dryRun: false });
    expect([fromCmd.state.dryRun, fromCmd.state.wouldRollBack]).toEqual([true, null]);
    expect(fromCmd.changes[0]?.reason).toContain('dry run');
    const fromPolicy = command(st(), { type: 'start' }, 'ops', 0, { ...defaults, dryRun: true });
    expect(fromPolicy.state.dryRun).toBe(true);
    expect(command(st(), { type: 'start' }, 'ops', 0, defaults).state.dryRun).toBe(false);
    const aborted = command(dry(), { type: 'abort' }, 'ops', 5, defaults);
    expect(aborted.state.weights).toEqual({ blue: 100, green: 0 });
  });
});

describe('both pools failing', () => {
  const shared = ob(win(500, 100));
  const sharedObs = { ...shared, stable: win(5000, 1000) };
  const progressing = st({ phase: 'progressing', stepIndex: 0, stepStartedAt: 0, weights: { blue: 90, green: 10 } });

  it('rolls back by default (as the runbooks do), with the words', () => {
    const r = decide(progressing, sharedObs, policy, 1000);
    expect(r.state.phase).toBe('rolled_back');
    expect(r.changes[0]?.reason).toMatch(/^both pools failing: /);
  });

  it('pauses, once, with onSharedFailure: pause; a canary failing alone is then rolled back', () => {
    const p = { ...policy, onSharedFailure: 'pause' as const };
    const r = decide(progressing, sharedObs, p, 1000);
    expect(r.state.phase).toBe('paused');
    expect(r.state.weights).toEqual({ blue: 90, green: 10 });
    expect(r.changes[0]).toMatchObject({ event: 'paused' });
    expect(r.changes[0]?.reason).toMatch(/^paused: both pools failing: /);
    expect(decide(r.state, sharedObs, p, 2000).changes).toEqual([]);
    // Stable recovers, the canary does not: its own failure.
    expect(decide(r.state, ob(win(500, 100)), p, 3000).state.phase).toBe('rolled_back');
  });
});

describe('dry run and shared failures, at the edges of a rollout', () => {
  const dryProgressing = st({
    phase: 'progressing',
    stepIndex: 0,
    stepStartedAt: 0,
    weights: { blue: 90, green: 10 },
    dryRun: true,
  });

  it('a dry run ends with its rollout: a canary given traffic by hand afterwards is rolled back for real', () => {
    const aborted = command(dryProgressing, { type: 'abort' }, 'ops', 1, defaults);
    expect([aborted.state.dryRun, aborted.state.wouldRollBack]).toEqual([false, null]);
    // Even a state that kept the flag (saved before this fix): outside a rollout it is not honoured.
    const byHand = st({ phase: 'idle', weights: { blue: 90, green: 10 }, dryRun: true });
    expect(decide(byHand, broken, policy, 5).state.phase).toBe('rolled_back');
  });

  it('onSharedFailure: pause holds a rollout, but never turns a canary given traffic by hand into one', () => {
    const p = { ...policy, onSharedFailure: 'pause' as const };
    const sharedObs = { ...ob(win(500, 100)), stable: win(5000, 1000) };
    const idle = st({ phase: 'idle', weights: { blue: 90, green: 10 } });
    expect(decide(idle, sharedObs, p, 5).state.phase).toBe('rolled_back');
  });
});

describe('gradual rollback (rollout.onFailure: rampDown)', () => {
  const ramp: RolloutPolicy = { ...policy, onFailure: 'rampDown', rampDownOver: 60_000 };
  const at = (green: number, over: Partial<ControllerState> = {}) =>
    st({ phase: 'progressing', stepIndex: 2, stepStartedAt: 0, weights: { blue: 100 - green, green }, ...over });
  const allErrors = ob(win(500, 500));
  const dead = ob(win(0, 0), false);
  const fails = (s: ControllerState, o: Observation, now: number) => decide(s, o, ramp, now);

  it.each<[string, number[], number, number[]]>([
    ['at 50 with the default steps', [10, 25, 50, 100], 50, [25, 10, 0]],
    ['at the last step (100)', [10, 25, 50, 100], 100, [50, 25, 10, 0]],
    ['at the first step: only 0', [10, 25, 50, 100], 10, [0]],
    ['between steps (a weight set by hand)', [10, 25, 50, 100], 30, [25, 10, 0]],
    ['under the first step', [10, 25, 50, 100], 5, [0]],
    ['steps that start at 0', [0, 50, 100], 100, [50, 0]],
  ])('the walk %s', (_name, steps, from, walk) => {
    expect(rampWalk(steps, from)).toEqual(walk);
  });

  it('times the walk by the clock: the first weight at once, 0 exactly rampDownOver later', () => {
    const r = { startedAt: 1000, from: 50, over: 1000, reason: 'x' };
    // 4 weights over 1 s: 333.33 ms each; whole milliseconds land on their step exactly.
    expect([999, 1000, 1333, 1334, 1666, 1667, 1999, 2000, 9e9].map((t) => rampIndexAt(r, 4, t))).toEqual([
      0, 0, 0, 1, 1, 2, 2, 3, 3,
    ]);
    expect(rampIndexAt(r, 1, 5000)).toBe(0);
  });

  it('the first failing verdict: rolled_back at once (latched, counted), the canary at the first weight of the walk', () => {
    const s = at(50);
    const r = fails(s, broken, 5000);
    const reason = 'green error rate 20% (100/500, 95% lower bound 16.73%) > 1% over 10s';
    expect(r.state).toEqual({
      ...s,
      phase: 'rolled_back',
      weights: { blue: 75, green: 25 },
      reason,
      rollbacks: 1,
      stepStartedAt: null,
      rampDown: { startedAt: 5000, from: 50, over: 60_000, reason },
    });
    expect(r.changes).toEqual([
      {
        event: 'rolled_back',
        reason,
        evidence: { ...r.verdict!.evidence, rampDown: { from: 50, walk: [25, 10, 0], over: 60_000 } },
      },
    ]);
  });

  /** Tick every second from `from` until the walk ends; the weights it went through and when. */
  function walk(s0: ControllerState, o: Observation, t0: number, p = ramp) {
    let s = s0;
    const seen: [number, number][] = [];
    const events: string[] = [];
    for (let t = t0; t <= t0 + 120_000; t += 1000) {
      const r = decide(s, o, p, t);
      events.push(...r.changes.map((c) => c.event));
      if (r.state.weights.green !== s.weights.green) seen.push([t - t0, r.state.weights.green]);
      s = r.state;
      if (s.weights.green === 0) break;
    }
    return { s, seen, events };
  }

  it.each<[string, Observation]>([
    ['still failing', broken],
    ['passing again (a rollback is never undone)', healthy],
    ['with no traffic left to judge', thin],
  ])('walks 50 → 25 → 10 → 0 over rampDownOver, %s', (_name, later) => {
    const first = fails(at(50), broken, 0).state;
    const w = walk(first, later, 1000);
    expect(w.seen).toEqual([
      [29_000, 10],
      [59_000, 0],
    ]);
    expect(w.events).toEqual(['ramp_down', 'ramp_down']);
    expect(w.s).toMatchObject({ phase: 'rolled_back', rampDown: null, rollbacks: 1, weights: { blue: 100, green: 0 } });
  });

  it('each step down says where it is in the walk, with the reason of the rollback', () => {
    const first = fails(at(50), broken, 0).state;
    const r = decide(first, broken, ramp, 30_000);
    expect(r.changes).toEqual([
      {
        event: 'ramp_down',
        reason: `ramp down: green to 10% (2/3 from 50% over 1m) after: ${first.reason}`,
        evidence: { from: 50, to: 10, walk: [25, 10, 0], step: 2, over: 60_000 },
      },
    ]);
    expect(r.state.rampDown).toBe(first.rampDown);
  });

  it('from the last step (100): 50 at once, then 25, 10 and 0, each held 20 s', () => {
    const first = fails(at(100, { stepIndex: 3 }), broken, 0);
    expect(first.state.weights.green).toBe(50);
    expect(walk(first.state, broken, 1000).seen).toEqual([
      [19_000, 25],
      [39_000, 10],
      [59_000, 0],
    ]);
  });

  it.each<[string, ControllerState, Observation, string]>([
    ['at the first step: 0 is all there is, a snap', at(10, { stepIndex: 0 }), broken, '> 1% over 10s'],
    ['a dead canary (no healthy endpoint)', at(50), dead, 'green has no healthy endpoint, cut at once'],
    [
      'a canary failing every request',
      at(50),
      allErrors,
      '> 1% over 10s; severe: more than 50% errors: green 100% (500/500, 95% lower bound 99.24%) over 10s, cut at once',
    ],
    [
      'a canary failing 60 % over a large window',
      at(50),
      ob(win(1000, 600)),
      '; severe: more than 50% errors: green 60% (600/1000, 95% lower bound 56.93%) over 10s, cut at once',
    ],
    [
      'a canary failing every request in the newest slice',
      at(50),
      { ...ob(win(1000, 100)), canaryRecent: win(60, 60), recentMs: 1000 },
      '; severe: more than 50% errors: green 100% (60/60, 99.9% lower bound 84.71%) over 1s, cut at once',
    ],
  ])('snaps to 0 at once: %s', (_name, s, o, reason) => {
    const r = fails(s, o, 5000);
    expect(r.state).toMatchObject({
      phase: 'rolled_back',
      weights: { blue: 100, green: 0 },
      rampDown: null,
      rollbacks: 1,
    });
    expect(r.changes.map((c) => c.event)).toEqual(['rolled_back']);
    expect(r.state.reason?.endsWith(reason)).toBe(true);
  });

  it.each<[string, Observation]>([
    ['60 % on 60 requests (the lower bound is under 50 %)', ob(win(60, 36))],
    [
      'every request failing, but fewer than minRequests',
      { ...ob(win(500, 100)), canaryRecent: win(20, 20), recentMs: 100 },
    ],
    ['20 %', broken],
  ])('is not severe, so it walks: %s', (_name, o) => {
    expect(severeBreach('green', o, ramp)).toBeUndefined();
    expect(fails(at(50), o, 0).state.weights.green).toBe(25);
  });

  it('a severe breach during the walk cuts it to 0 at once, still one rollback', () => {
    const first = fails(at(50), broken, 0).state;
    for (const o of [dead, allErrors]) {
      const r = decide(first, o, ramp, 1000);
      expect(r.state).toMatchObject({
        weights: { blue: 100, green: 0 },
        rampDown: null,
        rollbacks: 1,
        phase: 'rolled_back',
      });
      expect(r.state.reason).toBe(first.reason);
      expect(r.changes).toHaveLength(1);
      expect(r.changes[0]).toMatchObject({ event: 'ramp_down', evidence: { from: 50, to: 0 } });
      expect(r.changes[0]?.reason).toMatch(/^green to 0% at once \(ramp down from 50% cut short\): /);
    }
  });

  it('a restart goes on by the clock: the weight due now, in one entry; past the end, 0', () => {
    const first = fails(at(100, { stepIndex: 3 }), broken, 0).state;
    const saved = validateState(JSON.parse(JSON.stringify(first)))!;
    expect(saved.rampDown).toEqual(first.rampDown);
    const later = decide(saved, broken, ramp, 45_000);
    expect(later.state.weights.green).toBe(10);
    expect(later.changes).toHaveLength(1);
    expect(later.changes[0]?.evidence).toMatchObject({ to: 10, step: 3 });
    expect(decide(saved, healthy, ramp, 3_600_000).state).toMatchObject({ weights: { green: 0 }, rampDown: null });
    // Saved before gradual rollbacks: none under way.
    const { rampDown: _, ...old } = first;
    expect(validateState(JSON.parse(JSON.stringify({ ...old, rampDown: undefined })))?.rampDown).toBeNull();
  });

  it('a reload of rampDownOver or onFailure does not change a walk under way', () => {
    const first = fails(at(50), broken, 0).state;
    expect(decide(first, broken, { ...ramp, rampDownOver: 1000, onFailure: 'snap' }, 29_000).state).toBe(first);
    expect(decide(first, broken, { ...ramp, rampDownOver: 1000, onFailure: 'snap' }, 30_000).state.weights.green).toBe(
      10,
    );
  });

  it('a dry run records "would roll back" and walks nothing', () => {
    const s = at(50, { dryRun: true });
    const r = fails(s, broken, 1000);
    expect(r.state.weights).toEqual(s.weights);
    expect(r.state.rampDown).toBeNull();
    expect(r.changes.map((c) => c.event)).toEqual(['would_roll_back']);
  });

  it('onSharedFailure: pause pauses at the first failure; a walk under way is not paused by one', () => {
    const p: RolloutPolicy = { ...ramp, onSharedFailure: 'pause' };
    const sharedObs = { ...broken, stable: win(5000, 1000) };
    expect(decide(at(50), sharedObs, p, 1000).state).toMatchObject({ phase: 'paused', weights: { green: 50 } });
    const first = decide(at(50), broken, p, 0).state;
    const r = decide(first, sharedObs, p, 30_000);
    expect(r.state).toMatchObject({ phase: 'rolled_back', weights: { green: 10 } });
  });

  it('the guard walks a canary given traffic by hand outside a rollout down too', () => {
    const r = fails(st({ weights: { blue: 70, green: 30 } }), broken, 0);
    expect(r.state).toMatchObject({ phase: 'rolled_back', weights: { green: 25 }, rampDown: { from: 30 } });
    expect(walk(r.state, broken, 1000).seen.map(([, w]) => w)).toEqual([10, 0]);
  });

  it('with green stable, the blue canary walks down', () => {
    const s = st({
      phase: 'progressing',
      stable: 'green',
      stepIndex: 2,
      stepStartedAt: 0,
      weights: { blue: 50, green: 50 },
    });
    const r = fails(s, broken, 0);
    expect(r.state.weights).toEqual({ blue: 25, green: 75 });
    expect(decide(r.state, broken, ramp, 60_000).state.weights).toEqual({ blue: 0, green: 100 });
  });

  describe('operators during a walk', () => {
    const walking = () => fails(at(50), broken, 0).state;
    const cmd = (c: Command) => command(walking(), c, 'ops', 5000, defaults);

    it('abort cuts to 0 at once, not counted as a second rollback', () => {
      const r = cmd({ type: 'abort', reason: 'now' });
      expect(r.state).toMatchObject({ phase: 'rolled_back', weights: { green: 0 }, rampDown: null, rollbacks: 1 });
      expect(r.state.reason).toBe('aborted by ops: now');
      expect(r.changes.map((c) => c.event)).toEqual(['aborted']);
    });

    it('manual weights end the walk: the weights are theirs, the phase idle, the guard still on', () => {
      const r = cmd({ type: 'weights', weights: { blue: 80, green: 20 } });
      expect(r.state).toMatchObject({ phase: 'idle', weights: { blue: 80, green: 20 }, rampDown: null, reason: null });
      expect(r.changes[0]?.reason).toBe('weights set by ops: blue 80%, green 20% (the ramp down ends)');
      expect(decide(r.state, broken, ramp, 6000).state).toMatchObject({ phase: 'rolled_back', weights: { green: 10 } });
    });

    it('a new start ends the walk and starts over from the first step', () => {
      const r = cmd({ type: 'start' });
      expect(r.state).toMatchObject({ phase: 'progressing', weights: { green: 10 }, rampDown: null });
      expect(decide(r.state, healthy, ramp, 6000).state).toBe(r.state);
    });

    it.each<Command['type']>(['promote', 'pause', 'resume'])('%s is refused with 409, as after a snap', (type) => {
      expect(() => cmd({ type } as Command)).toThrowError(
        expect.objectContaining({ status: 409, code: 'phase_conflict' }) as unknown as SluiceError,
      );
    });
  });

  it('with Redis away a decision that lowers the canary takes it to 0 at once (cutShort)', () => {
    const first = fails(at(50), broken, 0);
    const r = cutShort(first, 'Redis is unreachable');
    expect(r.state).toMatchObject({ phase: 'rolled_back', weights: { green: 0 }, rampDown: null, rollbacks: 1 });
    expect(r.changes.map((c) => [c.event, c.reason])).toEqual([
      ['rolled_back', first.changes[0]?.reason],
      ['ramp_down', 'green to 0% at once: Redis is unreachable'],
    ]);
    const snapped = fails(at(10, { stepIndex: 0 }), broken, 0);
    expect(cutShort(snapped, 'x')).toBe(snapped);
  });

  it('the status view: the weight now, the next and when', () => {
    const first = fails(at(50), broken, 10_000).state;
    expect(rampView(first, 12_000)).toEqual({
      from: 50,
      walk: [25, 10, 0],
      weight: 25,
      next: 10,
      nextAt: 40_000,
      nextInMs: 28_000,
      startedAt: 10_000,
      over: 60_000,
      reason: first.reason,
    });
    const last = decide(first, broken, ramp, 40_000).state;
    expect(rampView(last, 41_000)).toMatchObject({ weight: 10, next: 0, nextAt: 70_000, nextInMs: 29_000 });
    expect(rampView(st(), 0)).toBeNull();
  });

  it("the snap default is today's behaviour", () => {
    const v: Verdict | undefined = decide(at(50), broken, policy, 0).verdict;
    expect(v?.kind).toBe('fail');
    expect(decide(at(50), broken, policy, 0).state).toMatchObject({ weights: { green: 0 }, rampDown: null });
  });
});
