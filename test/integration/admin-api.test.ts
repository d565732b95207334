/** The admin API: status, weights, validation, versions and bearer-token auth, on real sockets. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { sha256Hex } from '../../src/admin/auth.js';

const h = harness();
let ups: TestUpstream[] = [];
let sluice: TestSluice | undefined;

async function start(extra = {}) {
  ups = [h.track(await startUpstream('blue')), h.track(await startUpstream('green'))];
  sluice = h.sluice = await startTestSluice(ups[0]!.url, ups[1]!.url, extra);
  return sluice;
}

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await request(`${sluice!.admin}${path}`, {
    method: method as 'GET',
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, json, text, headers: r.headers };
}

describe('admin API', () => {
  it('serves healthz, readyz and Prometheus metrics without a token', async () => {
    await start({
      admin: { host: '127.0.0.1', port: 0, tokens: [{ id: 'v', sha256: sha256Hex('view'), role: 'viewer' }] },
    });
    expect((await api('GET', '/healthz')).status).toBe(200);
    expect((await api('GET', '/readyz')).status).toBe(200);
    await request(`${sluice!.base}/`).then((r) => r.body.text());
    const m = await api('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.text).toContain('sluice_requests_total{pool="blue",code="200"} 1');
    expect(m.text).toContain('sluice_pool_weight_percent{pool="blue"} 100');
    expect(m.text).toContain('sluice_rollout_phase{phase="idle"} 1');
    expect(m.text).toContain(`sluice_endpoint_healthy{pool="green",endpoint="${ups[1]!.url}"} 1`);
    expect(m.text).toMatch(/sluice_request_duration_seconds_bucket\{pool="blue",le="\+Inf"\} 1/);
    expect(m.text).toContain('process_cpu_seconds_total');
  });

  it('returns the status document with every contract field', async () => {
    await start({ split: { initialCanaryWeight: 10 } });
    const s = (await api('GET', '/api/v1/status')).json;
    expect(s).toMatchObject({
      stable: 'blue',
      canary: 'green',
      weights: { blue: 90, green: 10 },
      rollout: { phase: 'idle', stepIndex: 0, steps: [10, 25, 50, 100], reason: null },
    });
    expect(typeof s.version).toBe('number');
    for (const pool of ['blue', 'green']) {
      expect(s.pools[pool].endpoints[0]).toMatchObject({ healthy: true });
      expect(Object.keys(s.pools[pool].window).sort()).toEqual([
        'errorRate',
        'errors',
        'p50Ms',
        'p95Ms',
        'p99Ms',
        'requests',
      ]);
    }
  });

  it('sets weights, bumps the version, completes one-sided weights and takes effect on the next request', async () => {
    await start();
    const v0 = (await api('GET', '/api/v1/status')).json.version;
    const r = await api('PUT', '/api/v1/weights', { weights: { green: 100 }, expectedVersion: v0 });
    expect(r.status).toBe(200);
    expect(r.json.weights).toEqual({ blue: 0, green: 100 });
    expect(r.json.version).toBe(v0 + 1);
    expect(await request(`${sluice!.base}/`).then((x) => x.body.json())).toMatchObject({ pool: 'green' });
    const h = (await api('GET', '/api/v1/history')).json.history;
    expect(h[0]).toMatchObject({ event: 'weights', by: 'local', weights: { blue: 0, green: 100 } });
  });

  it('refuses a stale expectedVersion with 409', async () => {
    await start();
    const v0 = (await api('GET', '/api/v1/status')).json.version;
    expect((await api('PUT', '/api/v1/weights', { weights: { green: 10 }, expectedVersion: v0 })).status).toBe(200);
    const stale = await api('PUT', '/api/v1/weights', { weights: { green: 20 }, expectedVersion: v0 });
    expect(stale.status).toBe(409);
    expect(stale.json.error.code).toBe('stale_version');
    expect((await api('GET', '/api/v1/status')).json.weights.green).toBe(10);
  });

  it.each([
    [{ weights: { blue: 50, green: 40 } }, 'weights'],
    [{ weights: { green: 101 } }, 'weights.green'],
    [{ weights: { green: 10.555 } }, 'weights.green'],
    [{ weights: { green: '10' } }, 'weights.green'],
    [{ weights: { red: 10 } }, 'weights'],
    [{ weights: {} }, 'weights'],
    [{}, 'weights'],
    [{ weights: { green: 10 }, expectedVersion: -1 }, 'expectedVersion'],
  ])('answers 400 naming the field for %j', async (body, field) => {
    await start();
    const r = await api('PUT', '/api/v1/weights', body);
    expect(r.status).toBe(400);
    expect(r.json.error.field.split(',')).toContain(field);
    expect(r.json.error.message).toContain(field);
  });

  it('refuses bodies that are not JSON, too large, or not declared as JSON', async () => {
    await start();
    expect((await api('PUT', '/api/v1/weights', '{nope')).status).toBe(400);
    expect(
      (await api('PUT', '/api/v1/weights', JSON.stringify({ weights: { green: 1 } }), { 'content-type': 'text/plain' }))
        .status,
    ).toBe(415);
    expect(
      (await api('PUT', '/api/v1/weights', JSON.stringify({ weights: { green: 1 }, pad: 'x'.repeat(70_000) }))).status,
    ).toBe(413);
  });

  it('checks bearer tokens and roles: 401 without or with a wrong token, 403 for a viewer mutating, 200 for an operator', async () => {
    await start({
      admin: {
        host: '127.0.0.1',
        port: 0,
        tokens: [
          { id: 'viewer1', sha256: sha256Hex('view-secret'), role: 'viewer' },
          { id: 'ops', sha256: sha256Hex('ops-secret'), role: 'operator' },
        ],
      },
    });
    const weights = { weights: { green: 10 } };
    expect((await api('GET', '/api/v1/status')).status).toBe(401);
    expect((await api('GET', '/api/v1/status', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await api('GET', '/api/v1/status', undefined, { authorization: 'Basic b3BzLXNlY3JldA==' })).status).toBe(
      401,
    );
    expect((await api('GET', '/api/v1/status', undefined, { authorization: 'Bearer view-secret' })).status).toBe(200);
    expect((await api('PUT', '/api/v1/weights', weights, { authorization: 'Bearer view-secret' })).status).toBe(403);
    expect((await api('PUT', '/api/v1/weights', weights)).status).toBe(401);
    expect((await api('PUT', '/api/v1/weights', weights, { authorization: 'Bearer ops-secret' })).status).toBe(200);
    // Denials are collapsed per source (and principal) per minute: the first in full, the rest
    // counted into one line written when the minute ends or, here, at stop.
    await sluice!.stop();
    const audit = readFileSync(join(sluice!.dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(audit.filter((a) => a.result === 'denied').map((a) => [a.status, a.count])).toEqual([
      [401, 1],
      [403, 1],
      [401, 3],
    ]);
    const ok = audit.find((a) => a.result === 'ok');
    expect(ok).toMatchObject({
      tokenId: 'ops',
      role: 'operator',
      action: 'weights.set',
      before: { weights: { blue: 100, green: 0 } },
      after: { weights: { blue: 90, green: 10 } },
    });
    // Never a token in the audit log.
    expect(JSON.stringify(audit)).not.toMatch(/secret/);
  });

  it('reads and changes the log settings: a viewer reads, an operator changes, audited, 400 naming the field', async () => {
    await start({
      admin: {
        host: '127.0.0.1',
        port: 0,
        tokens: [
          { id: 'viewer1', sha256: sha256Hex('view-secret'), role: 'viewer' },
          { id: 'ops', sha256: sha256Hex('ops-secret'), role: 'operator' },
        ],
      },
    });
    const view = { authorization: 'Bearer view-secret' };
    const ops = { authorization: 'Bearer ops-secret' };
    expect((await api('GET', '/api/v1/log', undefined, view)).json).toEqual({ level: 'silent', access: false });
    expect((await api('PUT', '/api/v1/log', { access: true }, view)).status).toBe(403);
    const bad: [unknown, string, string][] = [
      [{}, '(body)', 'give level, access or both'],
      [{ level: 'loud' }, 'level', 'level'],
      [{ access: 'yes' }, 'access', 'access'],
      [{ access: true, colour: 'red' }, '(body)', 'colour: unknown key'],
    ];
    for (const [body, field, message] of bad) {
      const r = await api('PUT', '/api/v1/log', body, ops);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.field.split(',')).toContain(field);
      expect(r.json.error.message).toContain(message);
    }
    expect((await api('GET', '/api/v1/log', undefined, view)).json).toEqual({ level: 'silent', access: false });
    const ok = await api('PUT', '/api/v1/log', { level: 'warn', access: true }, ops);
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ level: 'warn', access: true });
    expect((await api('PUT', '/api/v1/log', { level: 'error' }, ops)).json).toEqual({ level: 'error', access: true });
    const audit = readFileSync(join(sluice!.dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(audit.filter((a) => a.action === 'log.set').map((a) => [a.result, a.status])).toEqual([
      ['denied', 403],
      ['rejected', 400],
      ['rejected', 400],
      ['rejected', 400],
      ['rejected', 400],
      ['ok', 200],
      ['ok', 200],
    ]);
    expect(audit.find((a) => a.action === 'log.set' && a.result === 'ok')).toMatchObject({
      tokenId: 'ops',
      before: { log: { level: 'silent', access: false } },
      after: { log: { level: 'warn', access: true } },
    });
  });

  it('refuses a foreign Origin and a Host that is not the admin listener', async () => {
    await start();
    expect(
      (await api('PUT', '/api/v1/weights', { weights: { green: 1 } }, { origin: 'http://evil.example' })).status,
    ).toBe(403);
    expect((await api('GET', '/api/v1/status', undefined, { host: 'evil.example' })).status).toBe(403);
    expect((await api('GET', '/api/v1/status', undefined, { host: `localhost:${sluice!.adminPort}` })).status).toBe(
      200,
    );
  });

  it('runs every rollout call, with 409 for a call the phase does not allow', async () => {
    await start({ rollout: { stepHold: '10m' } });
    const post = (path: string, body: unknown = {}) => api('POST', `/api/v1/rollout/${path}`, body);
    expect((await post('pause')).status).toBe(409);
    const started = await post('start', { steps: [20, 60], stepHold: '2m' });
    expect(started.status).toBe(200);
    expect(started.json.rollout).toMatchObject({ phase: 'progressing', steps: [20, 60], stepHold: 120_000 });
    expect(started.json.weights).toEqual({ blue: 80, green: 20 });
    expect((await post('start')).status).toBe(409);
    expect((await post('pause')).json.rollout.phase).toBe('paused');
    expect((await post('resume')).json.rollout.phase).toBe('progressing');
    const promoted = await post('promote');
    expect(promoted.json).toMatchObject({
      stable: 'green',
      canary: 'blue',
      weights: { blue: 0, green: 100 },
      rollout: { phase: 'promoted' },
    });
    expect((await post('promote')).status).toBe(409);
    // Without steps in the body, the configured ones: blue (now the canary) at 10 %.
    expect((await post('start')).json.weights).toEqual({ blue: 10, green: 90 });
    const aborted = await post('abort', { reason: 'smoke test failed' });
    expect(aborted.json).toMatchObject({
      weights: { blue: 0, green: 100 },
      rollout: { phase: 'rolled_back', reason: 'aborted by local: smoke test failed' },
    });
    const conflict = await post('abort');
    expect(conflict.status).toBe(409);
    expect(conflict.json.error.code).toBe('phase_conflict');
    expect((await post('start', { steps: [50, 10] })).status).toBe(400);
    expect((await post('start', { stepHold: 'soon' })).json.error.field).toBe('stepHold');
    const events = (await api('GET', '/api/v1/history')).json.history.map((e: { event: string }) => e.event);
    expect(events).toEqual(['aborted', 'started', 'promoted', 'resumed', 'paused', 'started']);
  });

  it('needs Content-Type: application/json on every mutation, even without a body', async () => {
    await start({ split: { initialCanaryWeight: 10 } });
    const r = await request(`${sluice!.admin}/api/v1/rollout/abort`, { method: 'POST' });
    expect(r.statusCode).toBe(415);
    await r.body.dump();
    const form = await request(`${sluice!.admin}/api/v1/rollout/abort`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1',
    });
    expect(form.statusCode).toBe(415);
    await form.body.dump();
    expect(sluice!.controller.state.weights.green).toBe(10);
  });

  it('rate-limits failed authentication per source with 429, never a valid token', async () => {
    await start({
      admin: { host: '127.0.0.1', port: 0, tokens: [{ id: 'ops', sha256: sha256Hex('right'), role: 'operator' }] },
    });
    for (let i = 0; i < 10; i++)
      expect((await api('GET', '/api/v1/status', undefined, { authorization: `Bearer wrong-${i}` })).status).toBe(401);
    const limited = await api('GET', '/api/v1/status', undefined, { authorization: 'Bearer wrong-10' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await api('GET', '/api/v1/status', undefined, { authorization: 'Bearer right' })).status).toBe(200);
    // Unauthenticated endpoints still answer.
    expect((await api('GET', '/healthz')).status).toBe(200);
  });

  it('streams a status event at once and on every change (SSE)', async () => {
    await start();
    const r = await request(`${sluice!.admin}/api/v1/events`);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/event-stream');
    const seen: { version: number; weights: { green: number } }[] = [];
    const reading = (async () => {
      let buf = '';
      for await (const chunk of r.body) {
        buf += chunk.toString();
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (block.includes('event: status') && data) seen.push(JSON.parse(data.slice(6)));
          if (seen.some((s) => s.weights.green === 40)) return;
        }
      }
    })();
    await new Promise((res) => setTimeout(res, 100));
    expect((await api('PUT', '/api/v1/weights', { weights: { green: 40 } })).status).toBe(200);
    await reading;
    r.body.destroy();
    expect(seen[0]!.weights.green).toBe(0);
    expect(seen.at(-1)!.weights.green).toBe(40);
    expect(seen.at(-1)!.version).toBeGreaterThan(seen[0]!.version);
  });

  it('needs a viewer token for the event stream when tokens are configured', async () => {
    await start({
      admin: { host: '127.0.0.1', port: 0, tokens: [{ id: 'v', sha256: sha256Hex('view'), role: 'viewer' }] },
    });
    expect((await api('GET', '/api/v1/events')).status).toBe(401);
  });

  it('serves the live page with a strict content security policy', async () => {
    await start();
    const page = await api('GET', '/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<script src="/dashboard.js"');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect((await api('GET', '/dashboard.js')).headers['content-type']).toContain('javascript');
  });
});
