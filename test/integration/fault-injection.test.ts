/**
 * Fault injection for rehearsals (PUT/DELETE /api/v1/faults): refused unless the config enables
 * it; injected aborts take the path a real upstream failure takes (judged, retried to stable when
 * safe) and are counted apart; delays hold a request before it goes out and count in its latency;
 * the spec survives a restart and reaches worker threads; a reload turning faults.enabled off
 * stops it at once.
 */
import { createHook } from 'node:async_hooks';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { sha256Hex } from '../../src/admin/auth.js';
import { supportsReusePort } from '../../src/core/runtime.js';
import { harness } from '../helpers/harness.js';
import { until } from '../helpers/load.js';
import { killAll, runCli, startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
import { startTestSluice, testConfig, type TestSluice } from '../helpers/sluice.js';
import { startUpstream } from '../helpers/upstream.js';

const h = harness();
let running: RunningSluice[] = [];
afterEach(async () => {
  await killAll(running);
  running = [];
});

const THREADS = supportsReusePort(process.version, process.platform) ? 2 : 1;

const tokens = [
  { id: 'ops', sha256: sha256Hex('ops-token'), role: 'operator' as const },
  { id: 'eye', sha256: sha256Hex('view-token'), role: 'viewer' as const },
];

/** Fast analysis, a rollout that holds its first step, fault injection allowed. */
const rehearsal = {
  split: { trustedProxies: ['127.0.0.1/32'] },
  faults: { enabled: true },
  rollout: { steps: [50, 100], stepHold: '10m', analysis: { interval: '100ms', window: '1s', minRequests: 30 } },
};

interface Call {
  status: number;
  body: { error?: { code: string; message: string; field?: string }; faults?: Record<string, unknown> | null };
}

async function api(base: string, method: string, path: string, body?: unknown, token?: string): Promise<Call> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const r = await request(`${base}${path}`, {
    method: method as 'PUT',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.statusCode, body: (await r.body.json()) as Call['body'] };
}

/** One request as a distinct client (its X-Forwarded-For is its split key). */
async function call(s: { base: string }, i: number, method = 'GET', headers: Record<string, string> = {}) {
  const r = await request(`${s.base}/r/${i}`, {
    method: method as 'GET',
    headers: { 'x-forwarded-for': `10.9.${(i >> 8) & 255}.${i & 255}`, ...headers },
    body: method === 'POST' ? '{"n":1}' : undefined,
  });
  const text = await r.body.text();
  return { status: r.statusCode, pool: r.headers['x-sluice-pool'], text };
}

const metric = async (admin: string, re: RegExp) => {
  const m = re.exec(await (await request(`${admin}/metrics`)).body.text());
  return m === null ? undefined : Number(m[1]);
};
const injected = (admin: string, pool: string, kind: string) =>
  metric(admin, new RegExp(`^sluice_injected_faults_total\\{pool="${pool}",kind="${kind}"\\} (\\d+)$`, 'm'));

describe('fault injection: who may set it', () => {
  it('is refused, naming faults.enabled, unless the config enables it; ending one is always allowed', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url));
    const r = await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'green', abortPercent: 20 });
    expect(r.status).toBe(403);
    expect(r.body.error?.code).toBe('faults_disabled');
    expect(r.body.error?.message).toContain('faults.enabled');
    expect(s.controller.state.faults).toBeNull();
    const del = await api(s.admin, 'DELETE', '/api/v1/faults', {});
    expect([del.status, del.body.faults]).toEqual([200, null]);
    // Nothing was set: nothing recorded, no new version.
    expect(s.controller.state.history.filter((e) => e.event === 'faults')).toEqual([]);
    expect(s.status().faults).toBeNull();
  });

  it('needs the operator role (audited), and answers 400 naming each bad field', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...rehearsal,
      admin: { host: '127.0.0.1', port: 0, tokens },
    }));
    const good = { pool: 'green', abortPercent: 20, abortStatus: 503, delayPercent: 10, delayMs: 300 };
    expect((await api(s.admin, 'PUT', '/api/v1/faults', good, 'view-token')).status).toBe(403);
    expect((await api(s.admin, 'DELETE', '/api/v1/faults', {}, 'view-token')).status).toBe(403);
    expect((await api(s.admin, 'PUT', '/api/v1/faults', good)).status).toBe(401);
    expect(s.controller.state.faults).toBeNull();
    const cases: [Record<string, unknown>, string][] = [
      [{ ...good, pool: 'red' }, 'pool'],
      [{ abortPercent: 20 }, 'pool'],
      [{ ...good, abortPercent: 101 }, 'abortPercent'],
      [{ ...good, abortPercent: 12.345 }, 'abortPercent'],
      [{ ...good, abortPercent: '20' }, 'abortPercent'],
      [{ ...good, abortStatus: 200 }, 'abortStatus'],
      [{ ...good, abortStatus: 600 }, 'abortStatus'],
      [{ ...good, abortStatus: 503.5 }, 'abortStatus'],
      [{ ...good, delayPercent: -1 }, 'delayPercent'],
      [{ ...good, delayMs: 60_001 }, 'delayMs'],
      [{ ...good, delayMs: 2.5 }, 'delayMs'],
      [{ pool: 'green' }, 'abortPercent,delayPercent'],
      [{ pool: 'green', delayPercent: 10 }, 'delayMs'],
      [{ pool: 'green', abortPercent: 5, delayMs: 300 }, 'delayPercent'],
      [{ ...good, expectedVersion: -1 }, 'expectedVersion'],
    ];
    for (const [body, field] of cases) {
      const r = await api(s.admin, 'PUT', '/api/v1/faults', body, 'ops-token');
      expect([r.status, r.body.error?.code, r.body.error?.field], JSON.stringify(body)).toEqual([
        400,
        'invalid_body',
        field,
      ]);
    }
    expect(s.controller.state.faults).toBeNull();
    const ok = await api(s.admin, 'PUT', '/api/v1/faults', good, 'ops-token');
    expect(ok.status).toBe(200);
    expect(ok.body.faults).toMatchObject({ ...good, by: 'ops', active: true, injected: { aborts: 0, delays: 0 } });
    // A viewer reads it.
    const seen = await api(s.admin, 'GET', '/api/v1/faults', undefined, 'view-token');
    expect(seen.body.faults).toMatchObject({ pool: 'green', abortPercent: 20 });
    expect((await api(s.admin, 'DELETE', '/api/v1/faults', {}, 'ops-token')).status).toBe(200);
    const audit = readFileSync(join(s.dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { action: string; result: string; tokenId: string | null; after?: { faults: unknown } },
      );
    const mine = audit.filter((a) => a.action === 'faults.set' || a.action === 'faults.clear');
    expect(mine.filter((a) => a.result === 'ok').map((a) => [a.action, a.tokenId])).toEqual([
      ['faults.set', 'ops'],
      ['faults.clear', 'ops'],
    ]);
    expect(mine.find((a) => a.action === 'faults.set' && a.result === 'ok')?.after?.faults).toMatchObject({
      pool: 'green',
      abortPercent: 20,
      active: true,
    });
    // Denials are collapsed per source per minute (denials.ts): the viewer's first one is written.
    expect(audit.find((a) => a.result === 'denied' && a.tokenId === 'eye')?.action).toBe('faults.set');
  });
});

describe('fault injection: aborts', () => {
  it('100 % on green in a rollout: a POST gets the injected 503, a GET is answered by stable; counted apart; rolled back', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, rehearsal, { autoTick: false }));
    expect((await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'green', abortPercent: 100 })).status).toBe(200);
    await s.controller.command({ type: 'start' }, 'test');
    expect(s.controller.state.weights).toEqual({ blue: 50, green: 50 });
    let posts = { green: 0, blue: 0 };
    let gets = { green: 0, blue: 0 };
    for (let i = 0; i < 80; i++) {
      const p = await call(s, i, 'POST', { 'content-type': 'application/json' });
      if (p.pool === 'green') {
        expect(p.status).toBe(503);
        expect(JSON.parse(p.text).error.code).toBe('fault_injected');
        posts = { ...posts, green: posts.green + 1 };
      } else {
        expect([p.status, p.pool]).toEqual([200, 'blue']);
        posts = { ...posts, blue: posts.blue + 1 };
      }
      // The same client's GET: green by the split, answered by blue (retry.toStable).
      const g = await call(s, i);
      expect([g.status, g.pool]).toEqual([200, 'blue']);
      if (p.pool === 'green') gets = { ...gets, green: gets.green + 1 };
      else gets = { ...gets, blue: gets.blue + 1 };
    }
    // The sequential check cuts green after its first few failures (FAST_MIN_ERRORS: 5), POSTs
    // and retried GETs alike; the rest of the loop goes to blue.
    expect(posts.green + gets.green).toBeGreaterThanOrEqual(5);
    expect(posts.green).toBeGreaterThan(0);
    expect(posts.blue).toBeGreaterThan(10);
    // Nothing reached green: every one of its answers was injected.
    expect(green.seen.length).toBe(0);
    const st = s.status();
    // The GET right after the POST that tipped the check went to blue by the new weights, unretried.
    expect(gets.green - st.retried.toStable).toBeGreaterThanOrEqual(0);
    expect(gets.green - st.retried.toStable).toBeLessThanOrEqual(1);
    gets = { ...gets, green: st.retried.toStable };
    expect(st.pools.green?.injected).toEqual({ aborts: posts.green + gets.green, delays: 0 });
    expect(st.faults).toMatchObject({ pool: 'green', active: true, injected: { aborts: posts.green + gets.green } });
    expect(await injected(s.admin, 'green', 'abort')).toBe(posts.green + gets.green);
    expect(await injected(s.admin, 'blue', 'abort')).toBe(0);
    expect(await metric(s.admin, /^sluice_fault_injection\{pool="green"\} (\d+)$/m)).toBe(1);
    // Judged like an upstream's 503: in the requests by code, and in the verdict.
    expect(await metric(s.admin, /^sluice_requests_total\{pool="green",code="503"\} (\d+)$/m)).toBe(
      posts.green + gets.green,
    );
    await s.controller.tick();
    expect(s.controller.state.phase).toBe('rolled_back');
    expect(s.controller.state.weights).toEqual({ blue: 100, green: 0 });
    expect(s.controller.state.reason).toMatch(/green error rate 100(\.0+)?%|green failed (\d+) of \2 requests/);
    const events = s.controller.state.history.map((e) => e.event);
    expect(events.slice(0, 3)).toEqual(['rolled_back', 'started', 'faults']);
    expect(s.controller.state.history[2]?.reason).toBe('fault injection on by local: green abort 100% (503)');
  });

  it('only the chosen pool, never a forced request; 4xx is no error; a stable fault reaches its client', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, rehearsal, { autoTick: false }));
    await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'green', abortPercent: 100, abortStatus: 429 });
    // Weights 0 % green: blue's traffic is untouched; the override to green is served by green.
    expect((await call(s, 1)).status).toBe(200);
    const forced = await call(s, 2, 'GET', { cookie: 'sluice-pool=green' });
    expect([forced.status, forced.pool]).toEqual([200, 'green']);
    await s.controller.setWeights({ blue: 0, green: 100 }, 'test');
    const r = await call(s, 3);
    // A 4xx is not a 5xx: not retried, not an error.
    expect([r.status, r.pool, JSON.parse(r.text).error.code]).toEqual([429, 'green', 'fault_injected']);
    await s.controller.tick();
    expect(s.status().pools.green?.window).toMatchObject({ requests: 1, errors: 0 });
    expect(s.status().pools.green?.forced).toEqual({ requests: 1, errors: 0 });
    expect(s.status().pools.green?.injected.aborts).toBe(1);
    // On stable (blue): nothing to retry to, its client gets it.
    await s.controller.setWeights({ blue: 100, green: 0 }, 'test');
    await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'blue', abortPercent: 100 });
    const b = await call(s, 4);
    expect([b.status, b.pool]).toEqual([503, 'blue']);
    expect(blue.seen.length).toBe(1); // call 1 only
  });
});

describe('fault injection: delays', () => {
  /** A rehearsal sluice sending every request to green, ticked by hand. */
  async function allToGreen() {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(
      blue.url,
      green.url,
      { ...rehearsal, split: { ...rehearsal.split, initialCanaryWeight: 100 } },
      { autoTick: false },
    ));
    return { green, s };
  }

  it("green's answers come at least delayMs late and the latency judged includes it", async () => {
    const { green, s } = await allToGreen();
    await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'green', delayPercent: 100, delayMs: 300 });
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await call(s, i, i === 2 ? 'POST' : 'GET', { 'content-type': 'application/json' });
      // A lower bound: the delay happened (correctness), not how fast anything else was.
      expect(performance.now() - t0).toBeGreaterThanOrEqual(295);
      expect([r.status, r.pool]).toEqual([200, 'green']);
    }
    expect(green.seen.map((x) => x.bodyBytes)).toEqual([0, 0, 7]);
    await s.controller.tick();
    const st = s.status();
    expect(st.pools.green?.window.p50Ms).toBeGreaterThanOrEqual(295);
    expect(st.pools.green?.injected).toEqual({ aborts: 0, delays: 3 });
    expect(await injected(s.admin, 'green', 'delay')).toBe(3);
  });

  it('a client that leaves during the delay leaves nothing in flight and nothing is sent', async () => {
    const { green, s } = await allToGreen();
    // A minute: were the timer not freed, the request would stay in flight well past the test.
    await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'green', delayPercent: 100, delayMs: 60_000 });
    // The delay's timer is this process's: it must go with the request, not fire a minute later.
    // Only the timers of that length are counted (undici and the harness keep timers of their own).
    const live = new Set<number>();
    const hook = createHook({
      init(id, type, _trigger, resource) {
        if (type === 'Timeout' && (resource as { _idleTimeout?: number })._idleTimeout === 60_000) live.add(id);
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();
    const timers = () => live.size;
    for (const payload of [
      'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
    ]) {
      const before = timers();
      const sock = connect(s.proxyPort, '127.0.0.1');
      sock.on('error', () => {});
      sock.write(payload);
      expect(await until(() => s.status().inflight === 1, 3000)).toBe(true);
      expect(timers()).toBe(before + 1);
      sock.destroy();
      expect(await until(() => s.status().inflight === 0, 3000)).toBe(true);
      expect(await until(() => timers() === before, 3000)).toBe(true);
    }
    hook.disable();
    expect(green.seen.length).toBe(0);
    expect(s.status().pools.green?.injected.delays).toBe(2);
    // A client gone is not an error of green's.
    await s.controller.tick();
    expect(s.status().pools.green?.window.requests).toBe(0);
  });
});

describe('fault injection: lifetime', () => {
  it('the CLI sets and clears it on worker threads; it survives a restart; DELETE ends it', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const dir = mkdtempSync(join(tmpdir(), 'sluice-faults-'));
    const file = writeConfig(dir, {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } },
      stateFile: join(dir, 'state.json'),
      audit: { file: join(dir, 'audit.log') },
      log: { level: 'info', access: false },
      split: { trustedProxies: ['127.0.0.1/32'], initialCanaryWeight: 100 },
      faults: { enabled: true },
      workers: THREADS,
      shutdownGrace: '1s',
    });
    let r = await startProcess(file);
    running.push(r);
    const proxy = () => ({ base: `http://127.0.0.1:${r.proxyPort}` });
    const env = () => ({ SLUICE_ADMIN_URL: `http://127.0.0.1:${r.adminPort}`, SLUICE_ADMIN_TOKEN: '' });
    expect(runCli(['--help']).stdout).toContain('sluice faults set --pool green');
    const set = runCli(['faults', 'set', '--pool', 'green', '--abort-percent', '100', '--abort-status', '502'], env());
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/^fault injection on: green abort 100% \(502\) — since /);
    expect(runCli(['faults', 'set', '--pool', 'green'], env())).toMatchObject({ code: 1 });
    expect(runCli(['faults', 'set', '--pool', 'green', '--abort-percent', 'lots'], env()).stderr).toContain(
      '--abort-percent needs a number',
    );
    expect(runCli(['faults', 'set', '--abort-percent', '5'], env()).code).toBe(2); // usage: no --pool
    // Every thread serves by it: POSTs (not retried) all get the injected answer.
    // Four: one short of what the sequential check needs to roll a failing canary back.
    for (let i = 0; i < 4; i++) {
      const x = await call(proxy(), i, 'POST', { 'content-type': 'application/json' });
      expect([x.status, x.pool]).toEqual([502, 'green']);
    }
    expect(runCli(['status'], env()).stdout).toContain('fault injection on: green abort 100% (502)');
    // The counts cross from every worker.
    expect(await injected(`http://127.0.0.1:${r.adminPort}`, 'green', 'abort')).toBe(4);
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    r = await startProcess(file);
    running.push(r);
    const again = await call(proxy(), 99, 'POST', { 'content-type': 'application/json' });
    expect([again.status, again.pool]).toEqual([502, 'green']);
    const shown = runCli(['faults'], env());
    expect(shown.stdout).toMatch(
      /^fault injection on: green abort 100% \(502\) — since .* by local; injected 1 aborts/,
    );
    const clear = runCli(['faults', 'clear'], env());
    expect([clear.code, clear.stdout.trim()]).toEqual([0, 'fault injection off']);
    const after = await call(proxy(), 100, 'POST', { 'content-type': 'application/json' });
    expect([after.status, after.pool]).toEqual([200, 'green']);
    expect(green.seen.length).toBe(1);
    const hist = (await (await request(`http://127.0.0.1:${r.adminPort}/api/v1/history`)).body.json()) as {
      history: { event: string; reason: string }[];
    };
    expect(hist.history.filter((e) => e.event === 'faults').map((e) => e.reason)).toEqual([
      'fault injection off by local (was green abort 100% (502))',
      'fault injection on by local: green abort 100% (502)',
    ]);
  });

  it('a reload turning faults.enabled off stops it at once and refuses a new one; on again, it applies', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const dir = mkdtempSync(join(tmpdir(), 'sluice-faults-'));
    let enabled = true;
    const extra = () => ({
      ...rehearsal,
      split: { ...rehearsal.split, initialCanaryWeight: 100 },
      faults: { enabled },
    });
    const readConfig = () => testConfig(blue.url, green.url, extra(), dir);
    const s: TestSluice = (h.sluice = await startTestSluice(blue.url, green.url, extra(), {
      dir,
      autoTick: false,
      readConfig,
    }));
    await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'green', abortPercent: 100 });
    const post = async (i: number) => (await call(s, i, 'POST', { 'content-type': 'application/json' })).status;
    expect(await post(1)).toBe(503);
    enabled = false;
    expect(await s.reload('test')).toMatchObject({ result: 'applied', changed: ['faults.enabled'] });
    expect(await post(2)).toBe(200);
    // Still in the state, shown as not applied; a new one is refused.
    expect(s.status().faults).toMatchObject({ pool: 'green', active: false });
    expect(await metric(s.admin, /^sluice_fault_injection\{pool="green"\} (\d+)$/m)).toBe(0);
    const refused = await api(s.admin, 'PUT', '/api/v1/faults', { pool: 'green', abortPercent: 50 });
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'faults_disabled']);
    enabled = true;
    expect((await s.reload('test')).result).toBe('applied');
    expect(await post(3)).toBe(503);
    expect(s.status().pools.green?.injected.aborts).toBe(2);
  });
});
