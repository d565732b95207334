/** Active health checks on real sockets: out of rotation after failures, back after successes. */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startUpstream, type Behaviour } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { until } from '../helpers/load.js';

const h = harness();

function withHealth(name: string) {
  const state = { healthy: true };
  const behaviour: Behaviour = (req, res) => {
    if (req.url === '/health') {
      res.writeHead(state.healthy ? 200 : 503);
      res.end();
      return;
    }
    res.end(name);
  };
  return { state, behaviour };
}

const checks = {
  healthCheck: { path: '/health', interval: '50ms', timeout: '200ms', unhealthyAfter: 2, healthyAfter: 2 },
};

describe('health checks', () => {
  it.each([1, 2])(
    'takes a failing endpoint out of rotation and brings it back; traffic follows (workers: %i)',
    async (workers) => {
      const g1 = withHealth('green-1');
      const g2 = withHealth('green-2');
      const blue = h.track(await startUpstream('blue'));
      const green1 = h.track(await startUpstream('green', g1.behaviour));
      const green2 = h.track(await startUpstream('green', g2.behaviour));
      const s = (h.sluice = await startTestSluice(blue.url, [green1.url, green2.url], {
        ...checks,
        workers,
        split: { initialCanaryWeight: 100 },
      }));
      // The main thread owns availability; with workers it reaches them in the routing table.
      const ep = (i: number) => s.status().pools.green!.endpoints[i]!;
      g1.state.healthy = false;
      expect(await until(() => !ep(0).activeHealthy, 5000)).toBe(true);
      expect(s.status().pools.green!.endpoints.map((e) => e.healthy)).toEqual([false, true]);
      const before = green1.seen.filter((x) => x.url !== '/health').length;
      for (let i = 0; i < 10; i++) expect(await (await request(`${s.base}/`)).body.text()).toBe('green-2');
      expect(green1.seen.filter((x) => x.url !== '/health').length).toBe(before);
      const metrics = await (await request(`${s.admin}/metrics`)).body.text();
      expect(metrics).toContain(`sluice_endpoint_healthy{pool="green",endpoint="${green1.url}"} 0`);
      g1.state.healthy = true;
      expect(await until(() => ep(0).activeHealthy, 5000)).toBe(true);
      // Both endpoints serve again.
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) seen.add(await (await request(`${s.base}/`)).body.text());
      expect(seen).toEqual(new Set(['green-1', 'green-2']));
    },
  );

  it("sends the canary's traffic to stable when no canary endpoint is healthy, and rolls back a rollout", async () => {
    const g = withHealth('green');
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', g.behaviour));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...checks,
      rollout: { stepHold: '1m', analysis: { interval: '100ms', window: '1s' } },
    }));
    await s.controller.command({ type: 'start', steps: [50, 100] }, 'test');
    g.state.healthy = false;
    expect(await until(() => s.controller.state.phase === 'rolled_back', 5000)).toBe(true);
    expect(s.controller.state.reason).toBe('green has no healthy endpoint');
    // Even a forced green request goes to blue: green has no healthy endpoint.
    for (let i = 0; i < 5; i++)
      expect(await (await request(`${s.base}/`, { headers: { 'x-sluice-pool': 'green' } })).body.json()).toMatchObject({
        pool: 'blue',
      });
  });
});
