/**
 * retry.toStable: a canary failure before any byte reached the client is sent once to stable for
 * requests safe to repeat, while the canary is still judged on it; the budget bounds the retries.
 */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startUpstream, deadPort } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { startLoad, until } from '../helpers/load.js';

const h = harness();

const fast = {
  split: { trustedProxies: ['127.0.0.1/32'] },
  rollout: { stepHold: '10m', analysis: { interval: '100ms', window: '1s', minRequests: 30 } },
};

/** Every request to the canary (100 %), with a verdict that waits (minRequests past the test). */
const allCanary = (retry?: Record<string, unknown>) => ({
  ...fast,
  split: { ...fast.split, initialCanaryWeight: 100 },
  rollout: { ...fast.rollout, analysis: { ...fast.rollout.analysis, minRequests: 1000 } },
  ...(retry === undefined ? {} : { retry }),
});

const failing =
  (status = 503) =>
  (_req: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end('green is broken');
  };

describe('retry.toStable', () => {
  it('a canary at 10 % failing every GET costs clients nothing (default budget), and is still rolled back', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', failing()));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, fast));
    const load = startLoad(s.base, 8);
    try {
      await new Promise((r) => setTimeout(r, 200));
      const put = await request(`${s.admin}/api/v1/weights`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ weights: { green: 10 } }),
      });
      await put.body.dump();
      expect(await until(() => s.controller.state.phase === 'rolled_back', 5000)).toBe(true);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await load.stop();
    }
    const st0 = s.status();
    expect([load.counts.errors5xx, st0.retried.refused]).toEqual([0, 0]);
    expect(load.counts.failed).toBe(0);
    expect(load.counts.green).toBe(0); // every green answer was replaced by blue's
    expect(green.seen.length).toBeGreaterThan(0);
    const st = s.status();
    expect(st.retried.toStable).toBe(green.seen.length);
    expect(st.rollout.reason).toMatch(/green (error rate|failed \d+ of \d+ requests)/);
    const metrics = await (await request(`${s.admin}/metrics`)).body.text();
    expect(metrics).toMatch(new RegExp(`^sluice_retried_to_stable_total ${st.retried.toStable}$`, 'm'));
  });

  it('retries a POST only with an Idempotency-Key; a connect failure too; not the override', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', failing(500)));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, allCanary()));
    const post = async (headers: Record<string, string>) => {
      const r = await request(`${s.base}/order`, { method: 'POST', headers, body: '{"n":1}' });
      await r.body.dump();
      return [r.statusCode, r.headers['x-sluice-pool']];
    };
    expect(await post({ 'content-type': 'application/json' })).toEqual([500, 'green']);
    expect(await post({ 'content-type': 'application/json', 'idempotency-key': 'k-1' })).toEqual([200, 'blue']);
    const posted = blue.seen.filter((x) => x.url === '/order');
    expect(posted.length).toBe(1);
    expect(posted[0]?.bodyBytes).toBe(7);
    // Forced to green by the override: what green says is what the client gets.
    const forced = await request(`${s.base}/x`, { headers: { cookie: 'sluice-pool=green' } });
    await forced.body.dump();
    expect(forced.statusCode).toBe(500);
  });

  it('a dead canary endpoint (connect refused) is retried on stable', async () => {
    const blue = h.track(await startUpstream('blue'));
    const s = (h.sluice = await startTestSluice(blue.url, `http://127.0.0.1:${await deadPort()}`, allCanary()));
    const r = await request(`${s.base}/dead`);
    await r.body.dump();
    expect([r.statusCode, r.headers['x-sluice-pool']]).toEqual([200, 'blue']);
    expect(s.status().retried.toStable).toBe(1);
  });

  it("stable's latency is its own, not the canary's time before the retry; a stable with no endpoint up is not retried to", async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(
      await startUpstream('green', (_req, res) => {
        setTimeout(() => {
          res.writeHead(503);
          res.end('slow failure');
        }, 300);
      }),
    );
    const s = (h.sluice = await startTestSluice(blue.url, green.url, allCanary()));
    for (let i = 0; i < 3; i++) {
      const r = await request(`${s.base}/slow-${i}`);
      await r.body.dump();
      expect(r.headers['x-sluice-pool']).toBe('blue');
    }
    await s.controller.tick();
    const st = s.status();
    expect(st.pools.green!.window.p95Ms).toBeGreaterThanOrEqual(250);
    expect(st.pools.blue!.window.requests).toBe(3);
    expect(st.pools.blue!.window.p95Ms).toBeLessThan(250);
    await s.stop();
    h.sluice = undefined;
    // Stable down: the canary's answer is all there is.
    const down = (h.sluice = await startTestSluice(`http://127.0.0.1:${await deadPort()}`, green.url, {
      ...allCanary(),
      upstream: { ejectAfter: 1 },
    }));
    const first = await request(`${down.base}/a`);
    await first.body.dump();
    await new Promise((r) => setTimeout(r, 100)); // the ejection reaches the table
    const before = down.status().retried.toStable;
    const r = await request(`${down.base}/b`);
    await r.body.dump();
    expect([r.statusCode, r.headers['x-sluice-pool']]).toEqual([503, 'green']);
    expect(down.status().retried.toStable).toBe(before);
  });

  it('the budget refuses retries past its share: the client then gets the canary answer', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', failing()));
    const s = (h.sluice = await startTestSluice(
      blue.url,
      green.url,
      allCanary({ toStable: true, budget: 0, minRetries: 0 }),
    ));
    const r = await request(`${s.base}/x`);
    await r.body.dump();
    expect(r.statusCode).toBe(503);
    expect(s.status().retried).toEqual({ toStable: 0, refused: 1 });
  });

  it('switched off, a canary failure reaches the client', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', failing()));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, allCanary({ toStable: false })));
    const r = await request(`${s.base}/x`);
    await r.body.dump();
    expect(r.statusCode).toBe(503);
    expect(s.status().retried).toEqual({ toStable: 0, refused: 0 });
  });
});
