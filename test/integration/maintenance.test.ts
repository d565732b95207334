/**
 * Maintenance mode on a sluice process: 503 + Retry-After (HTML or JSON by Accept) for every
 * proxied request except allowFrom; the admin API, health and metrics keep working; on and off
 * under load with nothing else failing; it survives a restart; the CLI and the config turn it on.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { supportsReusePort } from '../../src/core/runtime.js';
import { startLoad } from '../helpers/load.js';
import { killAll, runCli, startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const THREADS = supportsReusePort(process.version, process.platform) ? 2 : 1;

let running: RunningSluice[] = [];
let ups: TestUpstream[] = [];
afterEach(async () => {
  await killAll(running);
  running = [];
  await Promise.all(ups.map((u) => u.close()));
  ups = [];
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const admin = (r: RunningSluice) => `http://127.0.0.1:${r.adminPort}`;

async function setup(extra: Record<string, unknown> = {}) {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  ups.push(blue, green);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-maint-'));
  const file = writeConfig(dir, {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } },
    stateFile: join(dir, 'state.json'),
    audit: { file: join(dir, 'audit.log') },
    log: { level: 'info', access: false },
    split: { trustedProxies: ['127.0.0.1/32'] },
    workers: THREADS,
    shutdownGrace: '1s',
    ...extra,
  });
  const r = await startProcess(file);
  running.push(r);
  return { r, file, blue, green, dir };
}

const put = async (r: RunningSluice, body: unknown) => {
  const res = await request(`${admin(r)}/api/v1/maintenance`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
};

const get = async (r: RunningSluice, path: string, headers: Record<string, string> = {}) => {
  const res = await request(`http://127.0.0.1:${r.proxyPort}${path}`, { headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
};

describe('maintenance mode', () => {
  it('answers 503 with Retry-After, HTML or JSON by Accept, except allowFrom; admin, health and metrics keep working', async () => {
    const { r, blue, green } = await setup();
    const on = await put(r, {
      enabled: true,
      message: 'Upgrading <the> database',
      retryAfter: '2m',
      allowFrom: ['192.0.2.0/24'],
    });
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ enabled: true, retryAfter: 120_000, allowFrom: ['192.0.2.0/24'] });
    const seen = blue.seen.length + green.seen.length;
    const json = await get(r, '/api/orders', { 'x-forwarded-for': '203.0.113.9' });
    expect(json.status).toBe(503);
    expect(json.headers['retry-after']).toBe('120');
    expect(json.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(json.text)).toMatchObject({
      error: { code: 'maintenance', status: 503, message: 'Upgrading <the> database' },
    });
    const html = await get(r, '/', { accept: 'text/html,application/xhtml+xml', 'x-forwarded-for': '203.0.113.9' });
    expect(html.status).toBe(503);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.text).toContain('Upgrading &lt;the&gt; database');
    // Nothing reached an upstream; an allowed client is proxied as usual.
    expect(blue.seen.length + green.seen.length).toBe(seen);
    const allowed = await get(r, '/check', { 'x-forwarded-for': '192.0.2.7' });
    expect(allowed.status).toBe(200);
    expect(blue.seen.length + green.seen.length).toBe(seen + 1);
    // The admin side is not in maintenance.
    for (const path of ['/healthz', '/api/v1/status', '/metrics']) {
      const res = await request(`${admin(r)}${path}`);
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    }
    const metrics = await (await request(`${admin(r)}/metrics`)).body.text();
    expect(metrics).toMatch(/^sluice_maintenance 1$/m);
    expect(metrics).toMatch(/sluice_rejected_requests_total\{reason="maintenance"\} 2/);
    const status = (await (await request(`${admin(r)}/api/v1/status`)).body.json()) as {
      maintenance: { enabled: boolean; since: number };
    };
    expect(status.maintenance.enabled).toBe(true);
    expect(status.maintenance.since).toBeGreaterThan(0);
    // A bad body names the field.
    const bad = await put(r, { enabled: true, allowFrom: ['not-a-cidr'] });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'invalid_body', field: 'allowFrom.0' } });
  });

  it('on and off under load: only maintenance answers 503, nothing fails; it survives a restart', async () => {
    const { r, file } = await setup();
    const load = startLoad(`http://127.0.0.1:${r.proxyPort}`, 4);
    let before503 = 0;
    try {
      await sleep(300);
      before503 = load.counts.errors5xx;
      expect((await put(r, { enabled: true, retryAfter: '30s' })).status).toBe(200);
      await sleep(300);
      expect((await put(r, { enabled: false })).status).toBe(200);
      const offAt = load.counts.errors5xx;
      await sleep(300);
      // Once off, no more 503s.
      expect(load.counts.errors5xx).toBe(offAt);
      expect(offAt).toBeGreaterThan(before503);
    } finally {
      await load.stop();
    }
    expect(before503).toBe(0);
    expect(load.counts.failed).toBe(0);
    // On, then a restart: still on.
    expect((await put(r, { enabled: true, message: 'back soon' })).status).toBe(200);
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    const again = await startProcess(file);
    running.push(again);
    const res = await get(again, '/x');
    expect(res.status).toBe(503);
    expect(JSON.parse(res.text).error.message).toBe('back soon');
  });

  it('the CLI turns it on and off, the config can start in it, and each change is audited and in the history', async () => {
    const { r, dir } = await setup({ maintenance: { enabled: true, retryAfter: '5m' } });
    const first = await get(r, '/x');
    expect(first.status).toBe(503);
    expect(first.headers['retry-after']).toBe('300');
    const env = { SLUICE_ADMIN_URL: admin(r), SLUICE_ADMIN_TOKEN: '' };
    const off = runCli(['maintenance', 'off'], env);
    expect(off.code).toBe(0);
    expect(off.stdout.trim()).toBe('maintenance off');
    expect((await get(r, '/x')).status).toBe(200);
    const on = runCli(['maintenance', 'on', '--message', 'release 42', '--allow-from', '10.1.0.0/16'], env);
    expect(on.code).toBe(0);
    expect(on.stdout).toMatch(/^MAINTENANCE since .*, except 10\.1\.0\.0\/16 — release 42/);
    expect((await get(r, '/x')).status).toBe(503);
    expect(runCli(['status'], env).stdout).toContain('MAINTENANCE since');
    expect(runCli(['maintenance', 'sideways'], env).code).toBe(2);
    const { readFileSync } = await import('node:fs');
    const audit = readFileSync(join(dir, 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; after: { maintenance: boolean } });
    expect(audit.filter((a) => a.action === 'maintenance.set').map((a) => a.after.maintenance)).toEqual([false, true]);
    const hist = (await (await request(`${admin(r)}/api/v1/history`)).body.json()) as {
      history: { event: string; reason: string }[];
    };
    expect(hist.history.filter((h) => h.event === 'maintenance').map((h) => h.reason)).toEqual([
      'maintenance on by local: release 42 (Retry-After 10m, allowed: 10.1.0.0/16)',
      'maintenance off by local',
    ]);
  });
});
