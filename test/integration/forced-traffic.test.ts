/**
 * Forced traffic is served but never judged (issue 15): requests the override header or cookie
 * places are counted apart and never enter the canary's verdict, so no client can roll back a
 * healthy canary or rescue a broken one; split.override.allowFrom restricts who may force.
 * The controller is ticked by hand: each tick is one analysis interval.
 */
import { describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { startUpstream } from '../helpers/upstream.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';

const h = harness();
const agent = new Agent({ connections: 16 });

/** blue answers 200 everywhere; green answers 503 on /api (its release is broken) and 200 elsewhere. */
const answer = (name: string) => (req: IncomingMessage, res: ServerResponse) => {
  const broken = name === 'green' && req.url?.startsWith('/api');
  res.writeHead(broken || req.url === '/fail' ? 503 : 200, { 'content-type': 'text/plain' });
  res.end(name);
};

async function start(extra: Parameters<typeof startTestSluice>[2] = {}) {
  const blue = h.track(await startUpstream('blue', answer('blue')));
  const green = h.track(await startUpstream('green', answer('green')));
  const s = await startTestSluice(
    blue.url,
    green.url,
    {
      split: { key: 'header:x-user' },
      rollout: { steps: [50, 100], stepHold: '1h', analysis: { interval: '1s', window: '10s', minRequests: 50 } },
      ...extra,
    },
    { autoTick: false },
  );
  h.sluice = s;
  return s;
}

async function send(s: TestSluice, n: number, path: string, headers: (i: number) => Record<string, string>) {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, async (_, k) => {
      const r = await request(`${s.base}${path}`, { headers: headers(i + k), dispatcher: agent });
      await r.body.dump();
      return r.statusCode;
    });
    statuses.push(...(await Promise.all(batch)));
  }
  return statuses;
}

async function startRollout(s: TestSluice) {
  const r = await request(`${s.admin}/api/v1/rollout/start`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  expect(r.statusCode).toBe(200);
  await r.body.dump();
}

describe('forced traffic', () => {
  it('cannot roll back a healthy canary: 300 forced failures are served and counted apart', async () => {
    const s = await start();
    await startRollout(s);
    const statuses = await send(s, 300, '/fail', () => ({ 'x-sluice-pool': 'green' }));
    expect(statuses.every((c) => c === 503)).toBe(true);
    await s.controller.tick();
    await s.controller.tick();
    const doc = s.status();
    expect(doc.rollout.phase).toBe('progressing');
    expect(doc.weights.green).toBe(50);
    expect(doc.pools.green!.window.requests).toBe(0);
    expect(doc.pools.green!.forced).toEqual({ requests: 300, errors: 300 });
    const metrics = await (await request(`${s.admin}/metrics`)).body.text();
    expect(metrics).toContain('sluice_forced_requests_total{pool="green"} 300');
    expect(metrics).toContain('sluice_forced_errors_total{pool="green"} 300');
    expect(metrics).not.toMatch(/sluice_requests_total\{pool="green",code="503"\}/);
  });

  it('cannot rescue a broken canary: forced successes do not dilute its errors', async () => {
    const s = await start({ retry: { toStable: false } }); // real users must meet the broken path
    await startRollout(s);
    // A flood of forced successes on green, then real users, half of them on green (50 %), on the
    // broken path: the sequential check counts only the real ones, and cuts the canary between
    // ticks after a few of them.
    await send(s, 2000, '/ok', () => ({ 'x-sluice-pool': 'green' }));
    const real = await send(s, 200, '/api', (i) => ({ 'x-user': `user-${i}` }));
    expect(real.filter((c) => c === 503).length).toBeGreaterThanOrEqual(5);
    expect(s.controller.state.phase).toBe('rolled_back');
    expect(s.controller.state.history[0]?.evidence).toMatchObject({ check: 'sequential', errorRate: 1 });
    await s.controller.tick();
    const doc = s.status();
    expect(doc.pools.green!.forced.requests).toBe(2000);
    expect(doc.pools.green!.window.errorRate).toBe(1);
    expect(doc.rollout.phase).toBe('rolled_back');
    expect(doc.weights.green).toBe(0);
  });

  it('is limited to split.override.allowFrom: others are routed by their key and judged', async () => {
    const s = await start({ split: { key: 'header:x-user', override: { allowFrom: ['10.0.0.0/8'] } } });
    const r = await request(`${s.base}/ok`, { headers: { 'x-sluice-pool': 'green', 'x-user': 'u' } });
    await r.body.dump();
    // 0 % canary and a client outside allowFrom: blue, as if no override had been sent.
    expect(r.headers['x-sluice-pool']).toBe('blue');
    await s.controller.tick();
    const doc = s.status();
    expect(doc.pools.green!.forced.requests).toBe(0);
    expect(doc.pools.blue!.forced.requests).toBe(0);
    expect(doc.pools.blue!.window.requests).toBe(1);
  });
});
