/**
 * Rollouts on real sockets with the real tick loop (100 ms intervals): a healthy green is
 * promoted; a green that turns bad mid-rollout is rolled back and blue then serves everything;
 * the guard protects manual weights; webhooks arrive; metrics follow.
 */
import { describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage } from 'node:http';
import { request } from 'undici';
import { startUpstream, type Behaviour } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { startLoad, until } from '../helpers/load.js';

const h = harness();

/** An upstream whose failure rate can be changed while it runs. */
function flaky(name: string) {
  const state = { failRate: 0 };
  const behaviour: Behaviour = (_req, res) => {
    const fail = Math.random() < state.failRate;
    res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain' });
    res.end(name);
  };
  return { state, behaviour };
}

const fast = {
  split: { trustedProxies: ['127.0.0.1/32'] },
  rollout: {
    steps: [10, 25, 50, 100],
    stepHold: '400ms',
    analysis: { interval: '100ms', window: '1s', minRequests: 30 },
  },
};

async function webhookSink() {
  const events: { event: string; body: Record<string, unknown> }[] = [];
  const srv = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      events.push({ event: String(req.headers['x-sluice-event']), body: JSON.parse(body) as Record<string, unknown> });
      res.end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  h.track(srv);
  return { url: `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`, events };
}

describe('rollout on real sockets', () => {
  it('promotes a healthy green: 10 → 25 → 50 → 100 → green stable', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const hooks = await webhookSink();
    const s = (h.sluice = await startTestSluice(blue.url, green.url, { ...fast, webhooks: [{ url: hooks.url }] }));
    const load = startLoad(s.base, 8);
    try {
      const r = await request(`${s.admin}/api/v1/rollout/start`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(r.statusCode).toBe(200);
      await r.body.dump();
      expect(await until(() => s.controller.state.phase === 'promoted', 20_000)).toBe(true);
    } finally {
      await load.stop();
    }
    expect(s.controller.state).toMatchObject({ stable: 'green', weights: { blue: 0, green: 100 }, rollbacks: 0 });
    const steps = s.controller.state.history
      .filter((e) => e.event === 'step')
      .map((e) => e.weights.green)
      .reverse();
    expect(steps).toEqual([25, 50, 100]);
    expect(load.counts.failed + load.counts.errors5xx).toBe(0);
    await until(() => hooks.events.some((e) => e.event === 'rollout.promoted'), 5000);
    expect(hooks.events.map((e) => e.event)).toEqual([
      'rollout.started',
      'rollout.step',
      'rollout.step',
      'rollout.step',
      'rollout.promoted',
    ]);
    expect(hooks.events.at(-1)!.body).toMatchObject({ stable: 'green', phase: 'promoted' });
  });

  it('rolls back a green that turns bad mid-rollout; blue then serves everything', async () => {
    const blue = h.track(await startUpstream('blue'));
    const g = flaky('green');
    const green = h.track(await startUpstream('green', g.behaviour));
    const hooks = await webhookSink();
    const slack = await webhookSink();
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...fast,
      rollout: { ...fast.rollout, stepHold: '1s' },
      webhooks: [
        { url: hooks.url, events: ['rollout.rolled_back'] },
        { url: slack.url, events: ['rollout.rolled_back'], format: 'slack' },
      ],
    }));
    const load = startLoad(s.base, 8);
    let breachAt = 0;
    try {
      await s.controller.command({ type: 'start' }, 'test');
      expect(await until(() => s.controller.state.stepIndex >= 1, 15_000)).toBe(true);
      breachAt = Date.now();
      g.state.failRate = 0.5;
      expect(await until(() => s.controller.state.phase === 'rolled_back', 15_000)).toBe(true);
      const rolledBackAt = Date.now();
      // Afterwards: only blue answers. Requests already at green when the table was swapped finish
      // there (by design: nothing in flight fails), so let them drain before the snapshot.
      // Wait until green's count has held for 200 ms (at most 5 s: a leak never holds that long).
      for (let seen = -1, t = Date.now(); load.counts.green !== seen && Date.now() - t < 5000; ) {
        seen = load.counts.green;
        await new Promise((r) => setTimeout(r, 200));
      }
      const before = { ...load.counts };
      await new Promise((r) => setTimeout(r, 300));
      expect(load.counts.green).toBe(before.green);
      expect(load.counts.blue).toBeGreaterThan(before.blue);
      console.log(
        `breach → 0 % green: ${rolledBackAt - breachAt} ms (status), last green answer ${load.lastGreenAt - breachAt} ms after the breach; ${load.counts.errors5xx} failed responses seen by clients`,
      );
    } finally {
      await load.stop();
    }
    expect(s.controller.state.weights).toEqual({ blue: 100, green: 0 });
    // Between ticks by the sequential check, or at a tick by the window's bound.
    expect(s.controller.state.reason).toMatch(
      /^green (error rate \d+(\.\d+)?% \(\d+\/\d+, 99(\.9)?% lower bound \d+(\.\d+)?%\) > 1% over \d+(\.\d+)?s|failed \d+ of \d+ requests (since the last tick|in the last 0\.1s) \(sequential check: .*\))$/,
    );
    expect(s.controller.state.history[0]).toMatchObject({ event: 'rolled_back', by: 'auto' });
    await until(() => hooks.events.length > 0, 5000);
    expect(hooks.events[0]).toMatchObject({ event: 'rollout.rolled_back', body: { phase: 'rolled_back' } });
    expect(['errorRate', 'sequential']).toContain((hooks.events[0]!.body.evidence as { check: string }).check);
    // The Slack target gets a message people read: what happened, the weights and the reason.
    await until(() => slack.events.length > 0, 5000);
    const msg = slack.events[0]?.body as { text: string; blocks: { type: string }[] };
    expect(msg.text).toMatch(
      /^:rotating_light: \*green ROLLED BACK\* \(blue 100% · green 0%\)\n(green error rate|green failed) \d/,
    );
    expect(msg.text).toContain((s.controller.state.reason ?? 'no reason').replace('>', '&gt;'));
    expect(msg.blocks.map((b) => b.type)).toEqual(['section', 'context']);
    const metrics = await (await request(`${s.admin}/metrics`)).body.text();
    expect(metrics).toContain('sluice_rollbacks_total 1');
    expect(metrics).toContain('sluice_rollout_phase{phase="rolled_back"} 1');
    expect(metrics).toMatch(/sluice_pool_window_error_ratio\{pool="green"\} 0\.\d+/);
    // Latched: a healthy green is not brought back.
    g.state.failRate = 0;
    const load2 = startLoad(s.base, 4);
    await new Promise((r) => setTimeout(r, 500));
    await load2.stop();
    expect(s.controller.state.phase).toBe('rolled_back');
    expect(load2.counts.green).toBe(0);
  });

  it('guards manual weights: a failing canary with traffic is snapped back outside a rollout', async () => {
    const blue = h.track(await startUpstream('blue'));
    const g = flaky('green');
    g.state.failRate = 1;
    const green = h.track(await startUpstream('green', g.behaviour));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, fast));
    await s.controller.setWeights({ blue: 50, green: 50 }, 'ops');
    const load = startLoad(s.base, 4);
    try {
      expect(await until(() => s.controller.state.phase === 'rolled_back', 10_000)).toBe(true);
    } finally {
      await load.stop();
    }
    expect(s.controller.state.weights.green).toBe(0);
  });

  it("shows each pool's window in the status document", async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...fast,
      split: { ...fast.split, initialCanaryWeight: 50 },
    }));
    const load = startLoad(s.base, 4);
    await until(
      () => s.status().pools.green!.window.requests > 20 && s.status().pools.blue!.window.requests > 20,
      10_000,
    );
    await load.stop();
    const st = s.status();
    for (const p of ['blue', 'green'] as const) {
      const w = st.pools[p]!.window;
      expect(w.requests).toBeGreaterThan(20);
      expect(w.errors).toBe(0);
      expect(w.p95Ms).toBeGreaterThan(0);
      expect(w.p50Ms).toBeLessThanOrEqual(w.p95Ms);
      expect(w.p95Ms).toBeLessThanOrEqual(w.p99Ms);
    }
  });
});

describe('dry run on real sockets', () => {
  it('a green failing every request is recorded and notified as "would roll back", and keeps its weight', async () => {
    const blue = h.track(await startUpstream('blue'));
    const g = flaky('green');
    g.state.failRate = 1;
    const green = h.track(await startUpstream('green', g.behaviour));
    const hooks = await webhookSink();
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...fast,
      rollout: { ...fast.rollout, stepHold: '10m' },
      webhooks: [{ url: hooks.url }],
    }));
    const load = startLoad(s.base, 8);
    try {
      const r = await request(`${s.admin}/api/v1/rollout/start`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ dryRun: true }),
      });
      expect(r.statusCode).toBe(200);
      await r.body.dump();
      expect(await until(() => s.controller.state.wouldRollBack !== null, 5000)).toBe(true);
      // Well past the first verdict: still at its step, never rolled back.
      await new Promise((res) => setTimeout(res, 500));
    } finally {
      await load.stop();
    }
    const st = s.status();
    expect(st.rollout.phase).toBe('progressing');
    expect(st.weights).toEqual({ blue: 90, green: 10 });
    expect(st.rollout.dryRun).toBe(true);
    expect(st.rollout.wouldRollBack).toMatch(/^green (error rate|failed \d+ of \d+ requests)/);
    expect(s.controller.state.rollbacks).toBe(0);
    const recorded = s.controller.state.history.filter((e) => e.event === 'would_roll_back');
    expect(recorded).toHaveLength(1);
    expect(recorded[0]?.reason).toMatch(/^would roll back: green (error rate|failed \d+ of \d+ requests)/);
    // Green kept its share (its failures went on to blue: retry.toStable).
    expect(green.seen.length).toBeGreaterThan(30);
    expect(await until(() => hooks.events.some((e) => e.event === 'rollout.would_roll_back'), 3000)).toBe(true);
  });
});
