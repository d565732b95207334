/**
 * The live page in a real browser (Debian's Chromium driven by playwright-core; no browser is
 * downloaded). Skipped where Chromium is absent, except in CI, where .ci/run installs it.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startUpstream } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { sha256Hex } from '../../src/admin/auth.js';
import { supportsReusePort } from '../../src/core/runtime.js';
import { startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
import { startRedis } from '../helpers/redis.js';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present && process.env.CI === 'true')
  throw new Error(`${CHROMIUM} missing: .ci/run should install Debian's chromium`);

const h = harness();
let browser: Browser;

describe.skipIf(!present)('live page in Chromium', () => {
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('asks for a token, shows the weights, follows changes live, and rolls back on Abort', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      admin: { host: '127.0.0.1', port: 0, tokens: [{ id: 'ops', sha256: sha256Hex('ops-token'), role: 'operator' }] },
      rollout: { stepHold: '10m', analysis: { interval: '200ms', window: '2s' } },
      faults: { enabled: true },
    }));
    const page: Page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${s.admin}/`);
    // No token yet: the page asks for one.
    await page.getByTestId('token-input').fill('ops-token');
    await page.getByTestId('token-ok').click();
    await expect.poll(() => page.getByTestId('weight-blue').textContent(), { timeout: 10_000 }).toBe('blue 100%');
    expect(await page.getByTestId('phase').textContent()).toBe('idle');
    expect(await page.getByTestId('connection').textContent()).toBe('live');

    // A change made through the API shows up on the page.
    const auth = { authorization: 'Bearer ops-token', 'content-type': 'application/json' };
    const put = await request(`${s.admin}/api/v1/weights`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ weights: { green: 30 } }),
    });
    expect(put.statusCode).toBe(200);
    await put.body.dump();
    await expect.poll(() => page.getByTestId('weight-green').textContent(), { timeout: 5000 }).toBe('green 30%');
    expect(await page.getByTestId('weight-blue').textContent()).toBe('blue 70%');

    // Start a rollout through the API; Abort on the page rolls it back.
    const start = await request(`${s.admin}/api/v1/rollout/start`, { method: 'POST', headers: auth, body: '{}' });
    await start.body.dump();
    await expect.poll(() => page.getByTestId('phase').textContent(), { timeout: 5000 }).toBe('progressing');
    await page.getByTestId('abort').click();
    await expect.poll(() => s.controller.state.phase, { timeout: 5000 }).toBe('rolled_back');
    await expect.poll(() => page.getByTestId('phase').textContent(), { timeout: 5000 }).toBe('rolled back');
    expect(await page.getByTestId('weight-blue').textContent()).toBe('blue 100%');
    expect(s.controller.state.history[0]).toMatchObject({ event: 'aborted', by: 'ops' });
    await expect.poll(() => page.getByTestId('history').textContent(), { timeout: 5000 }).toContain('aborted by ops');

    // Maintenance mode shows as a banner, and goes when it ends.
    expect(await page.getByTestId('maintenance').isVisible()).toBe(false);
    const maint = (enabled: boolean) =>
      request(`${s.admin}/api/v1/maintenance`, {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify({ enabled, message: 'db upgrade' }),
      }).then((r) => r.body.dump());
    await maint(true);
    await expect
      .poll(() => page.getByTestId('maintenance').textContent(), { timeout: 5000 })
      .toMatch(/^Maintenance mode since .* — db upgrade$/);
    await maint(false);
    await expect.poll(() => page.getByTestId('maintenance').isVisible(), { timeout: 5000 }).toBe(false);

    // Fault injection (a rehearsal) shows as a badge while it is set.
    expect(await page.getByTestId('faults').isVisible()).toBe(false);
    const faults = (method: 'PUT' | 'DELETE', body: unknown) =>
      request(`${s.admin}/api/v1/faults`, { method, headers: auth, body: JSON.stringify(body) }).then((r) =>
        r.body.dump(),
      );
    await faults('PUT', { pool: 'green', abortPercent: 20, abortStatus: 503, delayPercent: 10, delayMs: 300 });
    await expect
      .poll(() => page.getByTestId('faults').textContent(), { timeout: 5000 })
      .toMatch(
        /^Fault injection on: green abort 20 % \(503\), delay 10 % 300 ms — since .* by ops; injected 0 aborts, 0 delays$/,
      );
    await faults('DELETE', {});
    await expect.poll(() => page.getByTestId('faults').isVisible(), { timeout: 5000 }).toBe(false);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('opened after a rollback, shows how it got there: backfilled series, the rollback marker with its reason', async () => {
    const blue = h.track(await startUpstream('blue'));
    let failing = false;
    const green = h.track(
      await startUpstream('green', (_req, res) => {
        res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain' });
        res.end(failing ? 'broken' : 'ok');
      }),
    );
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      split: { trustedProxies: ['127.0.0.1/32'] },
      retry: { toStable: false },
      rollout: { stepHold: '10m', analysis: { interval: '200ms', window: '2s', minRequests: 20 } },
    }));
    await s.controller.command({ type: 'start' }, 'test');
    // Traffic from many clients until green, failing from the fifth tick on, is rolled back.
    for (let i = 0; s.controller.state.phase !== 'rolled_back' && i < 4000; i++) {
      if (i === 300) failing = true;
      const r = await request(`${s.base}/x`, { headers: { 'x-forwarded-for': `10.2.${(i >> 8) & 255}.${i & 255}` } });
      await r.body.dump();
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 30));
    }
    expect(s.controller.state.phase).toBe('rolled_back');
    const reason = s.controller.state.reason as string;
    // No more traffic: what the page shows comes from the server's series and history.
    const page: Page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${s.admin}/`);
    await expect.poll(() => page.getByTestId('marker').count(), { timeout: 10_000 }).toBe(2);
    const markers = await page.getByTestId('marker').allTextContents();
    expect(markers[0]).toContain('rolled back by auto');
    expect(markers[0]).toContain(reason.replace(/\s+/g, ' ').slice(0, 40));
    expect(markers[1]).toContain('started by test');
    // Both pools drawn in each of the three charts, with the thresholds and the markers.
    for (const id of ['chart-rate', 'chart-errors', 'chart-p95'])
      expect(await page.getByTestId(id).locator('path.series').count()).toBe(2);
    expect(await page.getByTestId('chart-errors').locator('.limit-label').textContent()).toBe('limit 1%');
    expect(await page.getByTestId('chart-p95').locator('.limit-label').textContent()).toBe('limit 500 ms');
    expect(await page.getByTestId('chart-errors').locator('g.marker.ev-rolled_back').count()).toBe(1);
    expect(await page.getByTestId('timeline-span').textContent()).toMatch(/\d+ points per pool/);
    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/live-page-after-rollback.png', fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('before the first status, shows a loading state with the buttons off; a 429 says why', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      admin: { host: '127.0.0.1', port: 0, tokens: [{ id: 'ops', sha256: sha256Hex('ops-token'), role: 'operator' }] },
    }));
    const page: Page = await browser.newPage();
    // Hold the event stream: the page must say it is loading, and offer no command yet.
    await page.route('**/api/v1/events', () => {});
    await page.goto(`${s.admin}/`);
    expect(await page.getByTestId('weight-blue').textContent()).toBe('loading…');
    for (const b of ['start', 'pause', 'resume', 'promote', 'abort', 'set-weight'])
      expect(await page.getByTestId(b).isDisabled()).toBe(true);
    await page.unroute('**/api/v1/events');
    await page.route('**/api/v1/events', (r) =>
      r.fulfill({ status: 429, headers: { 'retry-after': '30' }, body: '{}' }),
    );
    await page.reload();
    await expect
      .poll(() => page.getByTestId('connection').textContent(), { timeout: 5000 })
      .toBe('too many failed tokens: retrying in 30 s');
    expect(await page.getByTestId('message').textContent()).toMatch(/Too many failed tokens from this address \(429\)/);
    await page.close();
  });

  it('shows the fleet (both instances, the leader, the Redis link) and the worker threads', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const redis = await startRedis();
    const threads = supportsReusePort(process.version, process.platform) ? 2 : 1;
    const procs: RunningSluice[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const dir = mkdtempSync(join(tmpdir(), 'sluice-page-'));
        const file = writeConfig(dir, {
          listen: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } },
          stateFile: join(dir, 'state.json'),
          audit: { file: null },
          log: { level: 'info', access: false },
          fleet: { redis: redis.url, name: `page-${process.pid}`, lease: '1s' },
          rollout: { analysis: { interval: '200ms', window: '2s' } },
          workers: threads,
          shutdownGrace: '1s',
        });
        procs.push(await startProcess(file));
      }
      const page: Page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${procs[1]!.adminPort}/`);
      await expect.poll(() => page.getByTestId('fleet-member').count(), { timeout: 10_000 }).toBe(2);
      expect(await page.getByTestId('fleet-link').textContent()).toBe('connected');
      const rows = await page.getByTestId('fleet-member').allTextContents();
      expect(rows.filter((r) => r.includes('leader')).length).toBe(1);
      expect(rows.filter((r) => r.includes('(this one)')).length).toBe(1);
      if (threads > 1) expect(await page.getByTestId('worker').count()).toBe(threads);
      await redis.kill();
      await expect
        .poll(() => page.getByTestId('fleet-link').textContent(), { timeout: 10_000 })
        .toMatch(/^Redis unreachable since /);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      for (const p of procs) {
        p.proc.kill('SIGKILL');
        await p.exited;
      }
      await redis.close();
    }
  });
});
