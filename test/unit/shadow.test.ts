/** Shadow rollouts' pure parts: the pair comparison, the tally crossing, start/stop/judge. */
import { describe, expect, it } from 'vitest';
import { policyOf } from '../../src/control/controller.js';
import { command, type RolloutPolicy } from '../../src/control/decide.js';
import { parseConfig } from '../../src/core/config.js';
import { judgeShadow, startShadow, stopShadow, type ShadowPolicy } from '../../src/control/shadow.js';
import type { ControllerState } from '../../src/control/state.js';
import type { SluiceError } from '../../src/core/errors.js';
import { comparePair, samplePath } from '../../src/data/mirror.js';
import { newHistogram } from '../../src/stats/recorder.js';
import {
  addTally,
  decodeInterval,
  emptyTally,
  encodeInterval,
  intervalJSON,
  mergeIntervals,
  type ShadowTally,
} from '../../src/stats/snapshot.js';
import { ob, st, win } from '../helpers/rollout-state.js';

const shadow: ShadowPolicy = { percent: 10, duration: 60_000, thenRollout: false, maxMismatchRate: 0.01 };
// The config's defaults (1 % errors, 50 requests, 99 %), as the controller reads them.
const policy: RolloutPolicy & { shadow: ShadowPolicy } = {
  ...policyOf(
    parseConfig({
      pools: { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } },
    }),
  ),
  shadow,
};
const defaults = { steps: policy.steps, stepHold: policy.stepHold, shadow };

const tally = (pairs: number, failed = 0, slow = 0): ShadowTally => ({
  ...emptyTally(),
  mirrored: pairs,
  pairs,
  failed,
  slow,
  samples:
    failed > 0
      ? [
          {
            kind: 'failed',
            method: 'GET',
            path: '/a',
            requestId: 'r1',
            stable: 200,
            canary: 500,
            stableMs: 1,
            canaryMs: 1,
          },
        ]
      : [],
});
const start = (s: ControllerState) => command(s, { type: 'start' }, 'auto', 5, defaults);
const running = (over: Partial<NonNullable<ControllerState['shadow']>> = {}) =>
  st({ shadow: { percent: 10, startedAt: 0, endsAt: 60_000, thenRollout: false, by: 'op', ...over } });

describe('comparePair', () => {
  const o = { slowRatio: 3, slowDeltaMs: 50 };
  it.each([
    ['both fine', 200, 10, 200, undefined, 12, 'match'],
    ['canary 5xx beside stable 2xx', 200, 10, 503, undefined, 12, 'failed'],
    ['canary no answer', 200, 10, 502, 'connect', 1, 'failed'],
    ['canary 4xx beside stable 2xx', 200, 10, 404, undefined, 12, 'status'],
    ['stable 4xx, canary 2xx', 404, 10, 200, undefined, 12, 'status'],
    ['both 5xx: not the canary', 500, 10, 503, undefined, 12, 'match'],
    ['stable 5xx, canary fine', 503, 10, 200, undefined, 12, 'match'],
    ['3x and 50 ms slower', 200, 20_000, 200, undefined, 70_000, 'slow'],
    ['3x slower but sub-ms', 200, 200, 200, undefined, 900, 'match'],
    ['60 ms slower but 2x', 200, 60_000, 200, undefined, 120_000, 'match'],
  ] as const)('%s', (_name, stable, sMicros, canary, kind, cMicros, want) => {
    expect(comparePair(stable, sMicros, canary, kind, cMicros, o)).toBe(want);
  });
});

describe('samplePath', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/login?token=secret&x=1', '/login'],
    [`/${'x'.repeat(300)}`, `/${'x'.repeat(199)}…`],
  ])('%s', (path, want) => expect(samplePath(path)).toBe(want));
});

describe('the shadow tally crossing', () => {
  it('encodes, decodes and merges with the interval; refuses a bad one', () => {
    const part = (t: ShadowTally | undefined) => ({
      pools: [
        { hist: newHistogram(), requests: 0, errors: 0 },
        { hist: newHistogram(), requests: 0, errors: 0 },
      ] as const,
      shadow: t,
    });
    const a = tally(10, 2);
    const json = JSON.parse(JSON.stringify(intervalJSON(encodeInterval(part(a)))));
    expect(decodeInterval(json).shadow).toEqual(a);
    const merged = mergeIntervals([part(tally(5, 1)), json, part(undefined)], [newHistogram(), newHistogram()]);
    expect(merged.shadow).toMatchObject({ pairs: 15, failed: 3, mirrored: 15 });
    expect(merged.shadow?.samples.length).toBe(2);
    expect(mergeIntervals([part(undefined)], [newHistogram(), newHistogram()]).shadow).toBeUndefined();
    expect(() => decodeInterval({ ...json, shadow: { ...a, pairs: -1 } })).toThrow(/pairs/);
    expect(() => decodeInterval({ ...json, shadow: { ...a, samples: Array(9).fill(a.samples[0]) } })).toThrow(
      /samples/,
    );
  });

  it('keeps at most five samples', () => {
    let t = emptyTally();
    for (let i = 0; i < 4; i++) t = addTally(t, tally(3, 2));
    expect(t.samples.length).toBe(4);
    t = addTally(t, tally(3, 2));
    t = addTally(t, tally(3, 2));
    expect([t.samples.length, t.pairs, t.failed]).toEqual([5, 18, 12]);
  });
});

describe('start and stop', () => {
  it('starts with the defaults or the given values', () => {
    const r = startShadow(st(), {}, 'op', 1000, shadow);
    expect(r.state.shadow).toEqual({ percent: 10, startedAt: 1000, endsAt: 61_000, thenRollout: false, by: 'op' });
    expect(r.changes[0]?.event).toBe('shadow_started');
    const r2 = startShadow(st(), { percent: 25, duration: 0, thenRollout: true }, 'op', 1000, shadow);
    expect(r2.state.shadow).toMatchObject({ percent: 25, endsAt: null, thenRollout: true });
    expect(r2.changes[0]?.reason).toMatch(/until stopped, then the rollout/);
  });

  it.each([
    ['a shadow under way', running()],
    ['a rollout progressing', st({ phase: 'progressing', weights: { blue: 90, green: 10 } })],
    ['a rollout paused', st({ phase: 'paused', weights: { blue: 90, green: 10 } })],
    ['canary traffic set by hand', st({ weights: { blue: 95, green: 5 } })],
  ])('refuses a start with %s (409)', (_name, s) => {
    let err: SluiceError | undefined;
    try {
      startShadow(s, {}, 'op', 0, shadow);
    } catch (e) {
      err = e as SluiceError;
    }
    expect([err?.status, err?.code]).toEqual([409, 'phase_conflict']);
  });

  it('stop records shadow_stopped with what was seen; without one it is a 409', () => {
    const r = stopShadow(running(), 'by op', 500, tally(100, 3), 2.5);
    expect(r.state.shadow).toBeNull();
    expect(r.state.lastShadow).toMatchObject({ verdict: 'shadow_stopped', percent: 10, startedAt: 0 });
    expect(r.state.lastShadow?.reason).toMatch(/^shadow stopped by op: 3 of 100 paired requests mismatched/);
    expect(() => stopShadow(st(), 'by op', 0, undefined, 2.5)).toThrow(/no shadow/);
  });

  it('a rollout start, a promotion or canary weight ends the shadow first; other commands do not', () => {
    const started = command(running(), { type: 'start' }, 'op', 10, defaults);
    expect(started.changes.map((c) => c.event)).toEqual(['shadow_stopped', 'started']);
    expect(started.state.shadow).toBeNull();
    const promoted = command(running(), { type: 'promote' }, 'op', 10, defaults);
    expect(promoted.changes.map((c) => c.event)).toEqual(['shadow_stopped', 'promoted']);
    const weights = command(running(), { type: 'weights', weights: { blue: 80, green: 20 } }, 'op', 10, defaults);
    expect(weights.changes.map((c) => c.event)).toEqual(['shadow_stopped', 'weights']);
    const kept = command(running(), { type: 'maintenance', enabled: true }, 'op', 10, defaults);
    expect(kept.state.shadow).not.toBeNull();
  });
});

describe('judgeShadow', () => {
  it('waits while nothing failed and the time is not up', () => {
    const s = running();
    const r = judgeShadow(s, ob(win(20, 0)), tally(20), policy, 30_000, start);
    expect(r.state).toBe(s);
    expect(r.changes).toEqual([]);
  });

  it('fails at once on the analysis (the canary erring on its mirrored requests)', () => {
    const r = judgeShadow(running(), ob(win(500, 100)), tally(500, 100), policy, 1000, start);
    expect(r.state.lastShadow?.verdict).toBe('shadow_failed');
    expect(r.state.lastShadow?.reason).toMatch(/^shadow failed: green error rate/);
    expect(r.changes[0]?.event).toBe('shadow_failed');
    expect(r.state.weights).toEqual({ blue: 100, green: 0 });
  });

  it('fails on mismatches alone (slow answers the error checks cannot see)', () => {
    const r = judgeShadow(running(), ob(win(400, 0)), tally(400, 0, 40), policy, 1000, start);
    expect(r.state.lastShadow?.verdict).toBe('shadow_failed');
    expect(r.state.lastShadow?.reason).toMatch(/40 of 400 paired requests mismatched .*40 much slower > 1%/);
  });

  it('does not fail on a few mismatches in thin traffic (the lower bound)', () => {
    const r = judgeShadow(running(), ob(win(60, 0)), tally(60, 0, 1), policy, 1000, start);
    expect(r.changes).toEqual([]);
  });

  it('passes at its end with enough pairs; with thenRollout the rollout starts', () => {
    const r = judgeShadow(running(), ob(win(500, 0)), tally(500), policy, 60_000, start);
    expect(r.state.lastShadow?.verdict).toBe('shadow_passed');
    expect(r.state.phase).toBe('idle');
    const then = judgeShadow(running({ thenRollout: true }), ob(win(500, 0)), tally(500), policy, 60_000, start);
    expect(then.changes.map((c) => c.event)).toEqual(['shadow_passed', 'started']);
    expect([then.state.phase, then.state.weights.green]).toEqual(['progressing', 10]);
  });

  it('fails at its end without enough pairs, and never starts the rollout then', () => {
    const r = judgeShadow(running({ thenRollout: true }), ob(win(10, 0)), tally(10), policy, 60_000, start);
    expect(r.state.lastShadow?.verdict).toBe('shadow_failed');
    expect(r.state.lastShadow?.reason).toMatch(/not enough traffic to judge: 10\/50 paired requests in 1m/);
    expect(r.state.phase).toBe('idle');
  });

  it('a canary with no healthy endpoint fails the shadow', () => {
    const r = judgeShadow(running(), ob(win(0, 0), false), tally(0), policy, 1000, start);
    expect(r.state.lastShadow?.verdict).toBe('shadow_failed');
  });

  it('runs until stopped without an end', () => {
    const s = running({ endsAt: null });
    expect(judgeShadow(s, ob(win(500, 0)), tally(500), policy, 1e9, start).state).toBe(s);
  });
});
