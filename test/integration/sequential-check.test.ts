/**
 * The sequential check between ticks, on real sockets (issue 19, "snap back at the speed of
 * evidence"): a canary failing every request at the first step (10 %) under steady load is cut
 * after a handful of failed requests, long before the next tick (analysis.interval 1 s, the
 * default), and the reason names the check. Requests are counted, never timed.
 */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { harness } from '../helpers/harness.js';
import { startLoad, until } from '../helpers/load.js';
import { startTestSluice } from '../helpers/sluice.js';
import { startUpstream, type Behaviour } from '../helpers/upstream.js';

const h = harness();

const broken: Behaviour = (_req, res) => {
  res.writeHead(503, { 'content-type': 'text/plain' });
  res.end('green is broken');
};

describe('sequential check', () => {
  it('a canary at 10 % failing every request gets at most 10 of them before it is at 0 %, clients seeing each', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', broken));
    // No retry on stable: these stand for requests no retry could save (a POST without a key).
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      split: { trustedProxies: ['127.0.0.1/32'] },
      retry: { toStable: false },
      rollout: { steps: [10, 50, 100], stepHold: '1m' },
    }));
    const load = startLoad(s.base, 8);
    try {
      // Steady load first, so that the interval of the start holds hundreds of blue requests.
      await until(() => load.counts.blue > 300, 10_000);
      const r = await request(`${s.admin}/api/v1/rollout/start`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(r.statusCode).toBe(200);
      await r.body.dump();
      expect(await until(() => s.controller.state.phase === 'rolled_back', 10_000)).toBe(true);
      // Let requests already at green when the table was swapped finish.
      await new Promise((res) => setTimeout(res, 200));
    } finally {
      await load.stop();
    }
    const st = s.status();
    console.log(
      `canary failing every request at 10 %: ${green.seen.length} requests reached it, clients saw ${load.counts.errors5xx} failures; ${load.counts.blue} blue answers`,
    );
    expect(st.weights).toEqual({ blue: 100, green: 0 });
    expect(green.seen.length).toBeGreaterThanOrEqual(5);
    expect(green.seen.length).toBeLessThanOrEqual(10);
    expect(load.counts.errors5xx).toBe(green.seen.length);
    expect(st.rollout.reason).toMatch(
      /^green failed \d+ of \d+ requests (since the last tick|in the last 1s) \(sequential check: the critical count for \d+ requests is \d+ errors; a canary at 1% errors reaches it in under 0\.1% of intervals\)$/,
    );
    expect(s.controller.state.history[0]).toMatchObject({
      event: 'rolled_back',
      by: 'auto',
      evidence: { check: 'sequential', errorRate: 1, threshold: 0.01, alpha: 0.001 },
    });
    expect(s.controller.urgentChecks.confirmed).toBe(1);
  });

  it('counts canary failures that retry.toStable answered from stable: clients see none, the canary is still cut', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', broken));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      split: { trustedProxies: ['127.0.0.1/32'] },
      rollout: { steps: [10, 50, 100], stepHold: '1m' },
    }));
    const load = startLoad(s.base, 8);
    try {
      await until(() => load.counts.blue > 300, 10_000);
      await s.controller.command({ type: 'start' }, 'test');
      expect(await until(() => s.controller.state.phase === 'rolled_back', 10_000)).toBe(true);
      await new Promise((res) => setTimeout(res, 200));
    } finally {
      await load.stop();
    }
    expect(load.counts.errors5xx).toBe(0);
    expect(green.seen.length).toBeLessThanOrEqual(10);
    expect(s.status().retried.toStable).toBe(green.seen.length);
    expect(s.controller.state.history[0]?.evidence).toMatchObject({ check: 'sequential' });
  });
});
