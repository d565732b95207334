/**
 * The process as a container runs it (issue 20): a config whose ports and upstreams are wrong for
 * the place it runs in, and environment overrides that fix them. The real CLI, real sockets: the
 * overridden admin port answers /healthz, the overridden endpoints get the traffic, a SIGHUP keeps
 * the overrides, a bad variable stops the start naming itself, and a scrape by the machine's own
 * address (a Kubernetes probe, Prometheus on a pod IP) passes the DNS-rebinding guard.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/admin/auth.js';
import { killAll, runCli, startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let ups: TestUpstream[] = [];
let running: RunningSluice[] = [];
afterEach(async () => {
  await killAll(running);
  running = [];
  await Promise.all(ups.map((u) => u.close()));
  ups = [];
});

const TOKEN = 'container-ops-token';

/** A port free right now (the override must name a port before the process starts). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** A config that cannot work here: dead upstreams, admin on loopback port 0 (as an image's default). */
function shippedConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-env-'));
  return writeConfig(dir, {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    pools: { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } },
    stateFile: join(dir, 'state.json'),
    audit: { file: join(dir, 'audit.jsonl') },
    log: { level: 'info', access: false },
    shutdownGrace: '1s',
  });
}

const get = async (url: string, headers: Record<string, string> = {}) => {
  const r = await request(url, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, text };
};

/** `node dist/healthcheck.js` (the image's HEALTHCHECK) under `env`. */
const healthcheck = (env: Record<string, string>) =>
  spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'dist', 'healthcheck.js')], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 10_000,
  });

/** A non-loopback IPv4 address of this machine, if it has one. */
const ownAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

describe('environment overrides on the real process', () => {
  it('listens where the variables say, forwards to their endpoints, and keeps them over a SIGHUP', async () => {
    const blue = await startUpstream('blue');
    const green = await startUpstream('green');
    ups.push(blue, green);
    const [listenPort, adminPort] = [await freePort(), await freePort()];
    const file = shippedConfig();
    const env = {
      SLUICE_LISTEN_PORT: String(listenPort),
      SLUICE_ADMIN_HOST: '0.0.0.0',
      SLUICE_ADMIN_PORT: String(adminPort),
      SLUICE_ADMIN_TOKENS: `ops:operator:${sha256Hex(TOKEN)}`,
      SLUICE_BLUE_ENDPOINTS: blue.url,
      SLUICE_GREEN_ENDPOINTS: green.url,
    };
    const r = await startProcess(file, env);
    running.push(r);
    expect([r.proxyPort, r.adminPort]).toEqual([listenPort, adminPort]);
    const admin = `http://127.0.0.1:${adminPort}`;
    expect(await get(`${admin}/healthz`)).toEqual({ status: 200, text: '{"ok":true}' });
    expect((await get(`${admin}/readyz`)).status).toBe(200);
    // Tokens are in force (the admin host is not loopback): none gets 401, the variable's gets in.
    expect((await get(`${admin}/api/v1/status`)).status).toBe(401);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const status = async () => JSON.parse((await get(`${admin}/api/v1/status`, auth)).text);
    const before = await status();
    expect(before.pools.blue.endpoints.map((e: { url: string }) => e.url)).toEqual([blue.url]);
    expect(before.pools.green.endpoints.map((e: { url: string }) => e.url)).toEqual([green.url]);
    const proxied = await get(`http://127.0.0.1:${listenPort}/hello`);
    expect(proxied.status).toBe(200);
    expect(blue.seen.map((s) => s.url)).toEqual(['/hello']);

    r.proc.kill('SIGHUP');
    const end = Date.now() + 5000;
    let after = await status();
    while (after.config.reloads.unchanged === 0 && Date.now() < end) {
      await new Promise((res) => setTimeout(res, 25));
      after = await status();
    }
    // The file still says port 0 and dead upstreams; the environment still says otherwise.
    expect(after.config.reloads).toMatchObject({ unchanged: 1, applied: 0, refused: 0, invalid: 0 });
    expect(after.config.hash).toBe(before.config.hash);
    expect((await get(`http://127.0.0.1:${listenPort}/again`)).status).toBe(200);

    // The image's HEALTHCHECK reads the same config and variables, so it finds this admin port;
    // another port (nothing there) fails it.
    expect(healthcheck({ ...env, SLUICE_CONFIG: file })).toMatchObject({ status: 0 });
    const elsewhere = healthcheck({ ...env, SLUICE_CONFIG: file, SLUICE_ADMIN_PORT: String(await freePort()) });
    expect(elsewhere.status).toBe(1);
    expect(elsewhere.stderr).toMatch(/^healthcheck: http:\/\/127\.0\.0\.1:\d+\/healthz: fetch failed/);
  });

  it.skipIf(ownAddress === undefined)(
    'a scrape or probe by the address it arrived at passes the rebinding guard; a foreign Host does not',
    async () => {
      const adminPort = await freePort();
      const r = await startProcess(shippedConfig(), {
        SLUICE_ADMIN_HOST: '0.0.0.0',
        SLUICE_ADMIN_PORT: String(adminPort),
        SLUICE_ADMIN_TOKENS: `ops:viewer:${sha256Hex(TOKEN)}`,
      });
      running.push(r);
      const url = `http://${ownAddress}:${adminPort}`;
      const metrics = await get(`${url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.text).toContain('sluice_rollout_phase');
      expect((await get(`${url}/healthz`)).status).toBe(200);
      expect((await get(`${url}/metrics`, { host: `evil.example:${adminPort}` })).status).toBe(403);
      // An address literal that is not the one dialled is no better than a name.
      expect((await get(`${url}/metrics`, { host: `203.0.113.7:${adminPort}` })).status).toBe(403);
    },
  );

  it('a bad variable stops the start (exit 1) and --check, naming it and its key', async () => {
    const file = shippedConfig();
    const env = { SLUICE_ADMIN_PORT: 'abc', SLUICE_LISTEN_PORT: '18080' };
    for (const args of [
      ['--check', '--config', file],
      ['--config', file],
    ]) {
      const r = runCli(args, env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('SLUICE_ADMIN_PORT (admin.port): expected a port, got "abc"');
    }
    const open = runCli(['--check', '--config', file], { SLUICE_ADMIN_HOST: '0.0.0.0' });
    expect(open.code).toBe(1);
    expect(open.stderr).toContain('admin.tokens: required when admin.host (0.0.0.0, set by SLUICE_ADMIN_HOST)');
  });
});
