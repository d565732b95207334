/**
 * Failing parts, through a fault-injecting TCP proxy between sluice and real upstreams: hangs,
 * resets mid-body, a throttled upstream, an endpoint killed under load and brought back, and
 * latency that the controller must notice.
 */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startUpstream } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness, pump } from '../helpers/harness.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { startLoad, until } from '../helpers/load.js';

const h = harness();

describe('fault injection', () => {
  it('answers 504 at timeouts.response when the upstream accepts and never answers (blackhole)', async () => {
    const blue = h.track(await startUpstream('blue'));
    const fp = h.track(await startFaultProxy(blue.url, { blackhole: true }));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(fp.url, green.url, { timeouts: { response: '400ms' } }));
    const r = await request(`${s.base}/`);
    expect(r.statusCode).toBe(504);
    expect(((await r.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
    expect(s.recorder.errorCount(0, 'timeout')).toBe(1);
    expect(blue.seen.length).toBe(0);
  });

  // The test above takes sluice's own response deadlines (response < idle, no body); these take
  // undici's: a request with a body carries its own timeout, and response >= idle leaves both to undici.
  it.each([
    ['a request with a body', { response: '400ms' }, 'POST'],
    ['response no shorter than idle', { response: '400ms', idle: '400ms' }, 'GET'],
  ] as const)('answers 504 at timeouts.response for %s too', async (_name, timeouts, method) => {
    const blue = h.track(await startUpstream('blue'));
    const fp = h.track(await startFaultProxy(blue.url, { blackhole: true }));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(fp.url, green.url, { timeouts }));
    const r = await request(`${s.base}/`, { method, body: method === 'POST' ? 'payload' : undefined });
    expect(r.statusCode).toBe(504);
    expect(((await r.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
    expect(s.recorder.errorCount(0, 'timeout')).toBe(1);
  });

  it('does not time out a slow upstream that answers within timeouts.response', async () => {
    const blue = h.track(
      await startUpstream('blue', (_req, res) => void setTimeout(() => res.end('late but in time'), 250)),
    );
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, { timeouts: { response: '600ms' } }));
    const rs = await Promise.all(
      [0, 1, 2].map(() => request(`${s.base}/`).then(async (r) => [r.statusCode, await r.body.text()])),
    );
    expect(rs).toEqual([0, 1, 2].map(() => [200, 'late but in time']));
    expect(s.recorder.errorCount(0, 'timeout')).toBe(0);
  });

  it('truncates the client and counts an error when the upstream resets mid-body', async () => {
    const big = Buffer.alloc(64 * 1024, 0x62);
    const blue = h.track(
      await startUpstream('blue', (_req, res) => {
        res.writeHead(200, { 'content-length': String(big.length * 8) });
        pump(res, big, big.length * 8);
      }),
    );
    const fp = h.track(await startFaultProxy(blue.url, { resetAfterBytes: 100_000 }));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(fp.url, green.url));
    const r = await request(`${s.base}/big`);
    expect(r.statusCode).toBe(200);
    await expect(r.body.arrayBuffer()).rejects.toThrow();
    await until(() => s.recorder.errorCount(0, 'reset') > 0, 2000);
    expect(s.recorder.errorCount(0, 'reset')).toBe(1);
  });

  it("passes a throttled upstream's body intact", async () => {
    const payload = Buffer.from('x'.repeat(60_000));
    const blue = h.track(await startUpstream('blue', (_req, res) => res.end(payload)));
    const fp = h.track(await startFaultProxy(blue.url, { bytesPerSecond: 200_000, latencyMs: 20, jitterMs: 20 }));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(fp.url, green.url));
    const r = await request(`${s.base}/`);
    expect(Buffer.from(await r.body.arrayBuffer()).equals(payload)).toBe(true);
  });

  it('fails at most the requests in flight on an endpoint killed under load, ejects it, and takes it back when it returns', async () => {
    const a = h.track(await startUpstream('blue', (_req, res) => setTimeout(() => res.end('a'), 5)));
    const b = h.track(await startUpstream('blue', (_req, res) => setTimeout(() => res.end('b'), 5)));
    const fa = h.track(await startFaultProxy(a.url));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice([fa.url, b.url], green.url, {
      upstream: { ejectAfter: 2, ejectFor: '1s' },
    }));
    const concurrency = 8;
    const load = startLoad(s.base, concurrency);
    await until(() => a.seen.length > 50 && b.seen.length > 50, 10_000);
    await fa.kill();
    const failedAtKill = load.counts.errors5xx + load.counts.failed;
    await until(() => s.pools[0].endpoints[0]!.ejectedUntil > 0, 5000);
    const afterEject = load.counts.errors5xx + load.counts.failed;
    const bAtEject = b.seen.length;
    await until(() => b.seen.length > bAtEject + 200, 10_000);
    // While it is out, nothing fails.
    expect(load.counts.errors5xx + load.counts.failed).toBe(afterEject);
    // At most the requests in flight on the killed endpoint failed (idempotent GETs are retried).
    expect(afterEject - failedAtKill).toBeLessThanOrEqual(concurrency);
    await fa.revive();
    const aBefore = a.seen.length;
    expect(await until(() => a.seen.length > aBefore + 20, 10_000)).toBe(true);
    await load.stop();
    expect(s.pools[0].endpoints[0]!.ejectedUntil).toBe(0);
    console.log(
      `endpoint killed under load: ${afterEject - failedAtKill} failed requests (${concurrency} in flight at most), then none`,
    );
  });

  it('rolls back a canary whose answers slow down past maxP95Ms (latency injected mid-rollout)', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const fp = h.track(await startFaultProxy(green.url));
    const s = (h.sluice = await startTestSluice(blue.url, fp.url, {
      split: { trustedProxies: ['127.0.0.1/32'] },
      rollout: {
        steps: [50, 100],
        stepHold: '1m',
        analysis: { interval: '100ms', window: '1s', minRequests: 20, maxP95Ms: 150 },
      },
    }));
    const load = startLoad(s.base, 16);
    try {
      await s.controller.command({ type: 'start' }, 'test');
      await until(() => s.controller.windows.green.requests > 40, 10_000);
      fp.faults.latencyMs = 300;
      expect(await until(() => s.controller.state.phase === 'rolled_back', 15_000)).toBe(true);
    } finally {
      await load.stop();
    }
    expect(s.controller.state.reason).toMatch(/^green p95 \d/);
  });
});
