/**
 * Shadow rollouts: a share of stable's requests is mirrored to the canary, whose answers are judged
 * (the analysis and the paired comparison) and dropped; clients only ever get stable's answers.
 */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startUpstream, type Behaviour } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { startLoad, until } from '../helpers/load.js';

const h = harness();

const fast = {
  split: { trustedProxies: ['127.0.0.1/32'] },
  rollout: { stepHold: '10m', analysis: { interval: '100ms', window: '1s', minRequests: 30 } },
};

async function post(base: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await request(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.statusCode, json: await r.body.json() };
}

/** 500 on every `n`th request (by arrival), 200 otherwise. */
const failingEvery = (n: number): Behaviour => {
  let i = 0;
  return (_req, res) => {
    const fail = ++i % n === 0;
    res.writeHead(fail ? 500 : 200, { 'content-type': 'text/plain' });
    res.end(fail ? 'green broke' : 'green ok');
  };
};

describe('shadow rollouts', () => {
  it('a green answering 500 on a third of requests ends shadow_failed while clients see 0 errors', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green', failingEvery(3)));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, fast));
    const load = startLoad(s.base, 8);
    try {
      const started = await post(s.admin, '/api/v1/shadow/start', { percent: 100, duration: '1m' });
      expect(started.status).toBe(200);
      expect(started.json.shadow).toMatchObject({ active: true, percent: 100 });
      expect(await until(() => s.controller.state.lastShadow !== null, 5000)).toBe(true);
    } finally {
      await load.stop();
    }
    const st = s.status();
    expect(st.shadow.active).toBe(false);
    expect(st.shadow.last?.verdict).toBe('shadow_failed');
    expect(st.shadow.last?.reason).toMatch(/^shadow failed: .*\d+ failed on green only/);
    const e = st.shadow.last?.evidence as {
      pairs: number;
      failed: number;
      samples: { path: string; requestId: string }[];
    };
    expect(e.failed).toBeGreaterThan(0);
    expect(e.samples[0]?.path).toBe('/load');
    expect(e.samples[0]?.requestId).toMatch(/./);
    // The clients only ever got blue's answers.
    expect([load.counts.errors5xx, load.counts.failed, load.counts.green]).toEqual([0, 0, 0]);
    expect(load.counts.blue).toBeGreaterThan(0);
    // Green saw the mirrors, marked as such; the weights never moved.
    expect(green.seen.length).toBeGreaterThan(0);
    expect(green.seen.every((x) => x.headers['x-sluice-shadow'] === '1')).toBe(true);
    expect(st.weights).toEqual({ blue: 100, green: 0 });
    const history = s.controller.state.history.map((x) => x.event);
    expect(history.slice(0, 2)).toEqual(['shadow_failed', 'shadow_started']);
    // Clients' per-pool counts hold only what they were answered: no green request.
    const metrics = await (await request(`${s.admin}/metrics`)).body.text();
    expect(metrics).not.toMatch(/^sluice_requests_total\{pool="green"/m);
    const mirrored = Number(/^sluice_shadow_requests_total\{result="mirrored"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(mirrored).toBe(green.seen.length);
    expect(metrics).toMatch(/^sluice_shadow_mismatches_total\{kind="failed"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^sluice_shadow_percent 0$/m);
  });

  it('a healthy green passes and, with thenRollout, the rollout starts', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, fast));
    const load = startLoad(s.base, 4);
    try {
      const r = await post(s.admin, '/api/v1/shadow/start', { percent: 50, duration: '1500ms', thenRollout: true });
      expect(r.status).toBe(200);
      expect(await until(() => s.controller.state.phase === 'progressing', 8000)).toBe(true);
    } finally {
      await load.stop();
    }
    const st = s.controller.state;
    expect(st.lastShadow?.verdict).toBe('shadow_passed');
    expect(st.weights.green).toBe(10);
    expect(st.history.slice(0, 3).map((x) => x.event)).toEqual(['started', 'shadow_passed', 'shadow_started']);
    expect(load.counts.errors5xx + load.counts.failed).toBe(0);
  });

  it('mirrors only safe methods by default, a session whole, and never an override', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, fast));
    expect((await post(s.admin, '/api/v1/shadow/start', { percent: 50 })).status).toBe(200);
    const send = async (method: string, ip: string, extra: Record<string, string> = {}) => {
      const r = await request(`${s.base}/m`, {
        method: method as 'GET',
        headers: { 'x-forwarded-for': ip, ...extra },
        ...(method === 'POST' ? { body: 'x' } : {}),
      });
      await r.body.dump();
      expect(r.headers['x-sluice-pool']).toBe('blue');
    };
    // 40 clients, two GETs each: a client is mirrored on both or on neither.
    for (let i = 0; i < 40; i++) {
      await send('GET', `10.1.0.${i}`);
      await send('GET', `10.1.0.${i}`);
      await send('POST', `10.1.0.${i}`);
    }
    await send('GET', '10.9.9.9', { cookie: 'sluice-pool=blue' });
    await until(
      () => s.status().shadow.totals.mirrored > 0 && green.seen.length === s.status().shadow.totals.mirrored,
      2000,
    );
    expect(green.seen.every((x) => x.method === 'GET')).toBe(true);
    const perClient = new Map<string, number>();
    for (const x of green.seen) {
      const ip = String(x.headers['x-real-ip']);
      perClient.set(ip, (perClient.get(ip) ?? 0) + 1);
    }
    expect([...perClient.values()].every((n) => n === 2)).toBe(true);
    expect(perClient.size).toBeGreaterThan(5);
    expect(perClient.size).toBeLessThan(35);
    expect(perClient.has('10.9.9.9')).toBe(false);
  });

  it('a slow canary never slows a client; past maxInFlight mirrors are dropped and counted', async () => {
    const blue = h.track(await startUpstream('blue'));
    const held: import('node:http').ServerResponse[] = [];
    const green = h.track(await startUpstream('green', (_req, res) => void held.push(res)));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...fast,
      rollout: { ...fast.rollout, shadow: { maxInFlight: 2, timeout: '2s' } },
    }));
    expect((await post(s.admin, '/api/v1/shadow/start', { percent: 100 })).status).toBe(200);
    for (let i = 0; i < 6; i++) {
      const r = await request(`${s.base}/x${i}`);
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
    await until(() => held.length === 2, 1000);
    const t = s.status().shadow.totals;
    expect([t.mirrored, t.dropped]).toEqual([2, 4]);
    for (const res of held) res.end('late');
    expect(green.seen.length).toBe(2);
    // The slots came back: the next request is mirrored again, and green's endpoint is idle after.
    await until(() => s.status().pools.green?.endpoints[0]?.inflight === 0, 2000);
    const again = await request(`${s.base}/again`);
    await again.body.dump();
    expect(await until(() => held.length === 3, 2000)).toBe(true);
    held[2]?.end('late');
    expect(s.status().shadow.totals.mirrored).toBe(3);
  });

  it("a client's own x-sluice-shadow is dropped: only a mirror carries it", async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, fast));
    const r = await request(`${s.base}/spoof`, { headers: { 'x-sluice-shadow': '1' } });
    await r.body.dump();
    expect(blue.seen[0]?.headers['x-sluice-shadow']).toBeUndefined();
    expect((await post(s.admin, '/api/v1/shadow/start', { percent: 100 })).status).toBe(200);
    const m = await request(`${s.base}/m`, { headers: { 'x-sluice-shadow': 'forged' } });
    await m.body.dump();
    expect(await until(() => green.seen.length === 1, 2000)).toBe(true);
    expect(green.seen[0]?.rawHeaders.filter((x) => x.toLowerCase() === 'x-sluice-shadow').length).toBe(1);
    expect(green.seen[0]?.headers['x-sluice-shadow']).toBe('1');
  });

  it("a shadow right after a rollback is judged on its own mirrors, not the canary's earlier failures", async () => {
    const blue = h.track(await startUpstream('blue'));
    let broken = true;
    const green = h.track(
      await startUpstream('green', (_req, res) => {
        res.writeHead(broken ? 500 : 200);
        res.end();
      }),
    );
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...fast,
      retry: { toStable: false },
      rollout: { ...fast.rollout, analysis: { ...fast.rollout.analysis, window: '10s' } },
    }));
    const load = startLoad(s.base, 4);
    try {
      await s.controller.command({ type: 'start' }, 'test');
      expect(await until(() => s.controller.state.phase === 'rolled_back', 5000)).toBe(true);
      broken = false; // the fixed build
      const r = await post(s.admin, '/api/v1/shadow/start', { percent: 100, duration: '1500ms' });
      expect(r.status).toBe(200);
      expect(await until(() => s.controller.state.lastShadow !== null, 8000)).toBe(true);
    } finally {
      await load.stop();
    }
    // The window still held the rolled-back green's errors; the shadow saw only its own.
    expect(s.controller.state.lastShadow?.verdict).toBe('shadow_passed');
  });

  it('refuses a bad start with the field, a second start, a start during a rollout; stop records shadow_stopped', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, fast));
    const bad = await post(s.admin, '/api/v1/shadow/start', { percent: 0 });
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('percent');
    const bad2 = await post(s.admin, '/api/v1/shadow/start', { percent: 10, duration: 'soon' });
    expect([bad2.status, bad2.json.error.field]).toEqual([400, 'duration']);
    expect((await post(s.admin, '/api/v1/shadow/start', { percent: 10 })).status).toBe(200);
    expect((await post(s.admin, '/api/v1/shadow/start', { percent: 10 })).status).toBe(409);
    const stop = await post(s.admin, '/api/v1/shadow/stop', {});
    expect(stop.status).toBe(200);
    expect(stop.json.shadow.last.verdict).toBe('shadow_stopped');
    expect((await post(s.admin, '/api/v1/shadow/stop', {})).status).toBe(409);
    expect((await post(s.admin, '/api/v1/rollout/start', {})).status).toBe(200);
    const during = await post(s.admin, '/api/v1/shadow/start', { percent: 10 });
    expect([during.status, during.json.error.code]).toEqual([409, 'phase_conflict']);
    // A rollout started during a shadow ends it first.
    expect((await post(s.admin, '/api/v1/rollout/abort', {})).status).toBe(200);
    expect((await post(s.admin, '/api/v1/shadow/start', { percent: 10 })).status).toBe(200);
    expect((await post(s.admin, '/api/v1/rollout/start', {})).status).toBe(200);
    const st = s.controller.state;
    expect([st.shadow, st.lastShadow?.verdict, st.phase]).toEqual([null, 'shadow_stopped', 'progressing']);
    expect(st.lastShadow?.reason).toMatch(/by the rollout start/);
  });
});
