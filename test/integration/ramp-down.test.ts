/**
 * Gradual rollback (rollout.onFailure: rampDown) on real sockets with the real tick loop: a green
 * that fails at 50 % walks down 50 → 25 → 10 → 0 over rampDownOver, one history entry per step; a
 * dead green is cut to 0 at once.
 */
import { describe, expect, it } from 'vitest';
import type { Behaviour } from '../helpers/upstream.js';
import { startUpstream } from '../helpers/upstream.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { startLoad, until } from '../helpers/load.js';
import { rampLine } from '../../src/client.js';

const h = harness();

const config = {
  split: { trustedProxies: ['127.0.0.1/32'] },
  rollout: {
    steps: [10, 25, 50, 100],
    stepHold: '1s',
    onFailure: 'rampDown' as const,
    rampDownOver: '1.5s',
    analysis: { interval: '100ms', window: '1s', minRequests: 30 },
  },
};

/** The weights of green in the history from the rollback on, oldest first, with their events. */
function sinceRollback(s: TestSluice): [string, number][] {
  const h = [...s.controller.state.history].reverse();
  return h.slice(h.findIndex((e) => e.event === 'rolled_back')).map((e) => [e.event, e.weights.green]);
}

describe('gradual rollback on real sockets', () => {
  it('a green failing 20 % from 50 % on walks 50 → 25 → 10 → 0, one entry per step', async () => {
    const blue = h.track(await startUpstream('blue'));
    // Fails once the rollout has put it at 50 %, and goes on failing: a release bad under load.
    const at = { green: 0 };
    let failing = false;
    const behaviour: Behaviour = (_req, res) => {
      failing ||= at.green >= 50;
      res.writeHead(failing && Math.random() < 0.2 ? 503 : 200, { 'content-type': 'text/plain' });
      res.end('green');
    };
    const green = h.track(await startUpstream('green', behaviour));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, config));
    s.controller.onChange((st) => {
      at.green = st.weights.green;
    });
    const load = startLoad(s.base, 8);
    let during: ReturnType<TestSluice['status']> | undefined;
    try {
      await s.controller.command({ type: 'start' }, 'test');
      expect(await until(() => s.status().rollout.rampDown !== null, 15_000)).toBe(true);
      during = s.status();
      expect(await until(() => s.controller.state.weights.green === 0, 10_000)).toBe(true);
    } finally {
      await load.stop();
    }
    expect(sinceRollback(s)).toEqual([
      ['rolled_back', 25],
      ['ramp_down', 10],
      ['ramp_down', 0],
    ]);
    expect(s.controller.state).toMatchObject({ phase: 'rolled_back', rollbacks: 1, rampDown: null });
    // Judged by the window, or by the sequential check between ticks: a walk either way.
    expect(s.controller.state.reason).toMatch(/^(green error rate |green failed \d+ of \d+ requests)/);
    // While it walked: the status document said where it was, and the CLI's line says it in words.
    const ramp = during!.rollout.rampDown!;
    expect(during!.rollout.phase).toBe('rolled_back');
    expect(ramp).toMatchObject({ from: 50, walk: [25, 10, 0], over: 1500, weight: during!.weights.green });
    expect(ramp.next).toBeLessThan(ramp.weight);
    expect(rampLine(ramp)).toMatch(
      /^ramping down: (25% → 10%|10% → 0%) in [0-2] s \(from 50% over 1\.5 s; reason: (green error rate|green failed) .+\)$/,
    );
    expect(s.status().rollout.rampDown).toBeNull();
  });

  it('a dead green is cut to 0 at once, without a walk', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, config));
    const load = startLoad(s.base, 8);
    try {
      await s.controller.command({ type: 'start' }, 'test');
      expect(await until(() => s.controller.state.weights.green === 50, 15_000)).toBe(true);
      await green.close();
      expect(await until(() => s.controller.state.phase === 'rolled_back', 10_000)).toBe(true);
      // Well past a walk's first step: nothing more happens.
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      await load.stop();
    }
    expect(sinceRollback(s)).toEqual([['rolled_back', 0]]);
    expect(s.controller.state.reason).toMatch(/cut at once$/);
    expect(s.controller.state.rampDown).toBeNull();
  });
});
