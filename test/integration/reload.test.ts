/**
 * Reload without a restart (SIGHUP, POST /api/v1/reload) on a sluice process: endpoints swapped
 * under load with no failed request, on one thread and on worker threads; new endpoints wait
 * for their health checks; a broken file or a change that needs a restart keeps everything.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { makeCert } from '../helpers/certs.js';
import { sha256Hex } from '../../src/admin/auth.js';
import { supportsReusePort } from '../../src/core/runtime.js';
import { startLoad } from '../helpers/load.js';
import { killAll, startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
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

interface Status {
  weights: { blue: number; green: number };
  thresholds: { maxErrorRate: number };
  pools: Record<string, { endpoints: { url: string; healthy: boolean }[] }>;
  config: { hash: string; reloads: Record<string, number> };
}

const dirs = new Map<RunningSluice, string>();
const dirOf = (r: RunningSluice) => dirs.get(r) as string;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const admin = (r: RunningSluice) => `http://127.0.0.1:${r.adminPort}`;
const status = async (r: RunningSluice) => (await (await request(`${admin(r)}/api/v1/status`)).body.json()) as Status;

async function upstream(name: string, behaviour?: Parameters<typeof startUpstream>[1]) {
  const u = await startUpstream(name, behaviour);
  ups.push(u);
  return u;
}

/** A sluice process on `config`; returns it with a way to rewrite its file. */
async function start(config: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-reload-'));
  const base = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    stateFile: join(dir, 'state.json'),
    audit: { file: join(dir, 'audit.log') },
    log: { level: 'info', access: false },
    split: { trustedProxies: ['127.0.0.1/32'], initialCanaryWeight: 50 },
    shutdownGrace: '1s',
  };
  const file = writeConfig(dir, { ...base, ...config });
  const r = await startProcess(file);
  running.push(r);
  dirs.set(r, dir);
  const rewrite = (c: Record<string, unknown> | string) =>
    typeof c === 'string' ? writeFileSync(file, c) : writeConfig(dir, { ...base, ...c });
  return { r, rewrite, dir };
}

async function waitLog(r: RunningSluice, text: string, ms = 5000): Promise<string> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const line = r
      .output()
      .split('\n')
      .find((l) => l.includes(text));
    if (line !== undefined) return line;
    await sleep(25);
  }
  throw new Error(`no log line with ${text} in:\n${r.output()}`);
}

describe('reload', () => {
  it.each([1, THREADS].filter((n, i, a) => a.indexOf(n) === i))(
    "SIGHUP with both pools' endpoints swapped under load: 0 failed requests (workers %i)",
    async (workers) => {
      const b1 = await upstream('blue');
      const g1 = await upstream('green');
      const b2 = await upstream('blue');
      const g2 = await upstream('green');
      const pools = (b: string[], g: string[]) => ({ blue: { endpoints: b }, green: { endpoints: g } });
      const { r, rewrite } = await start({ pools: pools([b1.url], [g1.url]), workers });
      const before = await status(r);
      const load = startLoad(`http://127.0.0.1:${r.proxyPort}`, 6);
      try {
        await sleep(400);
        rewrite({ pools: pools([b1.url, b2.url], [g2.url]), workers });
        r.proc.kill('SIGHUP');
        const line = await waitLog(r, '"config reloaded"');
        expect(line).toContain('pools.green.endpoints');
        expect(line).toContain('pools.blue.endpoints');
        await sleep(400);
        const g1Seen = g1.seen.length;
        const b2Seen = b2.seen.length;
        const g2Seen = g2.seen.length;
        await sleep(400);
        // The removed endpoint gets nothing new; the new ones carry traffic.
        expect(g1.seen.length).toBe(g1Seen);
        expect(b2.seen.length).toBeGreaterThan(b2Seen);
        expect(g2.seen.length).toBeGreaterThan(g2Seen);
      } finally {
        await load.stop();
      }
      expect(load.counts.failed).toBe(0);
      expect(load.counts.errors5xx).toBe(0);
      expect(load.counts.blue + load.counts.green).toBeGreaterThan(200);
      const after = await status(r);
      expect(after.pools.green?.endpoints.map((e) => e.url)).toEqual([g2.url]);
      expect(after.pools.blue?.endpoints.map((e) => e.url)).toEqual([b1.url, b2.url]);
      expect(after.config.hash).not.toBe(before.config.hash);
      expect(after.config.reloads.applied).toBe(1);
      // Still running: SIGHUP is a reload, not the end.
      expect(r.proc.exitCode).toBeNull();
      const metrics = await (await request(`${admin(r)}/metrics`)).body.text();
      expect(metrics).toMatch(/sluice_config_reloads_total\{result="applied"\} 1/);
    },
  );

  it('a new endpoint takes no traffic until its health checks pass', async () => {
    const blue = await upstream('blue');
    const green = await upstream('green');
    const state = { ok: false };
    const fresh = await upstream('green', (req, res) => {
      if (req.url === '/healthz') res.writeHead(state.ok ? 200 : 503);
      else res.writeHead(200);
      res.end('fresh');
    });
    const healthCheck = { path: '/healthz', interval: '100ms', healthyAfter: 2, unhealthyAfter: 2 };
    const pools = (g: string[]) => ({ blue: { endpoints: [blue.url] }, green: { endpoints: g } });
    const { r, rewrite } = await start({ pools: pools([green.url]), healthCheck });
    rewrite({ pools: pools([green.url, fresh.url]), healthCheck });
    r.proc.kill('SIGHUP');
    await waitLog(r, '"config reloaded"');
    const load = startLoad(`http://127.0.0.1:${r.proxyPort}`, 4);
    try {
      await sleep(700);
      expect(fresh.seen.filter((s) => s.url !== '/healthz').length).toBe(0);
      expect((await status(r)).pools.green?.endpoints.map((e) => e.healthy)).toEqual([true, false]);
      state.ok = true;
      await waitLog(r, '"endpoint healthy"');
      await sleep(300);
      expect(fresh.seen.filter((s) => s.url !== '/healthz').length).toBeGreaterThan(0);
    } finally {
      await load.stop();
    }
    expect(load.counts.failed).toBe(0);
  });

  it('a broken file keeps the running config and names each problem; a restart-only key is refused whole', async () => {
    const blue = await upstream('blue');
    const green = await upstream('green');
    const other = await upstream('green');
    const pools = (g: string) => ({ blue: { endpoints: [blue.url] }, green: { endpoints: [g] } });
    const { r, rewrite } = await start({ pools: pools(green.url) });
    const before = await status(r);
    rewrite({ pools: pools(other.url), rollout: { analysis: { maxErrorRate: 7 } }, timeouts: { idle: 'soon' } });
    r.proc.kill('SIGHUP');
    await waitLog(r, 'config reload failed');
    const out = r.output();
    expect(out).toContain('config reload: rollout.analysis.maxErrorRate:');
    expect(out).toContain('config reload: timeouts.idle:');
    // Not YAML at all.
    rewrite('pools: [unclosed');
    r.proc.kill('SIGHUP');
    await sleep(300);
    // A key that needs a restart, beside one that would not: nothing changes.
    rewrite({ pools: pools(other.url), listen: { host: '127.0.0.1', port: 1 } });
    r.proc.kill('SIGHUP');
    const refused = await waitLog(r, 'config reload refused');
    expect(refused).toContain('listen.port');
    const after = await status(r);
    expect(after.config.hash).toBe(before.config.hash);
    expect(after.pools.green?.endpoints.map((e) => e.url)).toEqual([green.url]);
    expect(after.config.reloads).toMatchObject({ invalid: 2, refused: 1, applied: 0 });
    // Traffic still goes where it went.
    const res = await request(`http://127.0.0.1:${r.proxyPort}/x`, { headers: { cookie: 'sluice-pool=green' } });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(other.seen.length).toBe(0);
    expect(r.proc.exitCode).toBeNull();
  });

  it('PUT /api/v1/pools/{pool}/endpoints under load: 0 failed, kept across a restart until the config changes', async () => {
    const blue = await upstream('blue');
    const g1 = await upstream('green');
    const g2 = await upstream('green');
    const g3 = await upstream('green');
    const pools = (g: string) => ({ blue: { endpoints: [blue.url] }, green: { endpoints: [g] } });
    const { r, rewrite } = await start({ pools: pools(g1.url) });
    const set = async (r: RunningSluice, endpoints: unknown) => {
      const res = await request(`${admin(r)}/api/v1/pools/green/endpoints`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ endpoints }),
      });
      return { status: res.statusCode, body: (await res.body.json()) as Status & { error?: { field: string } } };
    };
    const load = startLoad(`http://127.0.0.1:${r.proxyPort}`, 4);
    try {
      await sleep(300);
      const ok = await set(r, [g2.url]);
      expect(ok.status).toBe(200);
      expect(ok.body.pools.green?.endpoints.map((e) => e.url)).toEqual([g2.url]);
      const g1Seen = g1.seen.length;
      await sleep(300);
      expect(g1.seen.length).toBe(g1Seen);
      expect(g2.seen.length).toBeGreaterThan(0);
    } finally {
      await load.stop();
    }
    expect(load.counts.failed).toBe(0);
    expect(load.counts.errors5xx).toBe(0);
    const bad = await set(r, ['ftp://x']);
    expect(bad.status).toBe(400);
    expect(bad.body.error?.field).toBe('endpoints.0');
    // A restart keeps the lists set through the API...
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    const again = await startProcess(join(dirOf(r), 'sluice.yaml'));
    running.push(again);
    expect((await status(again)).pools.green?.endpoints.map((e) => e.url)).toEqual([g2.url]);
    // ...until the config's own lists change: then the config wins.
    rewrite({ pools: pools(g3.url) });
    again.proc.kill('SIGHUP');
    await waitLog(again, '"config reloaded"');
    expect((await status(again)).pools.green?.endpoints.map((e) => e.url)).toEqual([g3.url]);
  });

  it.each([1, THREADS].filter((n, i, a) => a.indexOf(n) === i))(
    'a certificate renewed on disk is served to the next connection after SIGHUP; a bad one keeps the old (workers %i)',
    async (workers) => {
      const blue = await upstream('blue');
      const green = await upstream('green');
      const certDir = mkdtempSync(join(tmpdir(), 'sluice-certs-'));
      const first = makeCert(certDir, ['a.test']);
      const cert = join(certDir, 'live-cert.pem');
      const key = join(certDir, 'live-key.pem');
      copyFileSync(first.cert, cert);
      copyFileSync(first.key, key);
      const pools = { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } };
      const listen = { host: '127.0.0.1', port: 0, tls: { certificates: [{ cert, key }] }, http: { port: 0 } };
      const { r } = await start({ pools, listen, workers });
      // listen.http on every worker: a redirect to the TLS port.
      const started = JSON.parse(await waitLog(r, '"sluice listening"')) as { http: string };
      const httpPort = Number(started.http.split(':').pop());
      for (let i = 0; i < 4; i++) {
        const res = await request(`http://127.0.0.1:${httpPort}/p`, { headers: { host: 'a.test' } });
        await res.body.dump();
        expect([res.statusCode, res.headers.location]).toEqual([301, `https://a.test:${r.proxyPort}/p`]);
      }
      const fingerprint = () =>
        new Promise<string>((resolve, reject) => {
          const sock = tlsConnect(
            { port: r.proxyPort, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false },
            () => {
              const f = sock.getPeerCertificate().fingerprint256;
              sock.destroy();
              resolve(f);
            },
          );
          sock.once('error', reject);
        });
      const before = await fingerprint();
      // Session tickets resume on any worker: the keys are shared (TLS 1.2 here, for a ticket at once).
      const resumed = async (session?: Buffer) =>
        new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
          const sock = tlsConnect(
            {
              port: r.proxyPort,
              host: '127.0.0.1',
              servername: 'a.test',
              rejectUnauthorized: false,
              maxVersion: 'TLSv1.2',
              session,
            },
            () => {
              const out = { reused: sock.isSessionReused(), session: sock.getSession() };
              sock.destroy();
              resolve(out);
            },
          );
          sock.once('error', reject);
        });
      const firstSession = (await resumed()).session;
      const reuses = await Promise.all(Array.from({ length: 8 }, () => resumed(firstSession)));
      expect(reuses.map((x) => x.reused)).toEqual(Array(8).fill(true));
      // A connection opened before the renewal, kept alive across it.
      const agent = new Agent({ connect: { rejectUnauthorized: false, servername: 'a.test' }, connections: 1 });
      const get = async () => {
        const res = await request(`https://127.0.0.1:${r.proxyPort}/x`, { dispatcher: agent });
        await res.body.dump();
        return res.statusCode;
      };
      try {
        expect(await get()).toBe(200);
        const second = makeCert(certDir, ['a.test']);
        copyFileSync(second.cert, cert);
        copyFileSync(second.key, key);
        r.proc.kill('SIGHUP');
        const line = await waitLog(r, '"config reloaded"');
        expect(line).toContain('listen.tls.certificates (files)');
        const after = await fingerprint();
        expect(after).not.toBe(before);
        // The old connection was not dropped.
        expect(await get()).toBe(200);
        // A broken certificate: the running one stays, the log says which file.
        writeFileSync(cert, 'not a certificate');
        r.proc.kill('SIGHUP');
        const bad = await waitLog(r, 'the running certificates stay');
        expect(bad).toContain('listen.tls.certificates.0');
        expect(await fingerprint()).toBe(after);
        expect(await get()).toBe(200);
      } finally {
        await agent.close();
      }
    },
  );

  it('POST /api/v1/reload applies thresholds and tokens, answers 400 and 409 with the keys, and is audited', async () => {
    const blue = await upstream('blue');
    const green = await upstream('green');
    const pools = { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } };
    const { r, rewrite, dir } = await start({ pools });
    const post = async (token?: string) => {
      const res = await request(`${admin(r)}/api/v1/reload`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: '{}',
      });
      return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
    };
    expect((await post()).body).toMatchObject({ result: 'unchanged' });
    rewrite({ pools, rollout: { analysis: { maxErrorRate: 0.05 } } });
    const ok = await post();
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ result: 'applied', changed: ['rollout.analysis.maxErrorRate'] });
    expect((await status(r)).thresholds.maxErrorRate).toBe(0.05);
    rewrite({ pools, rollout: { analysis: { maxErrorRate: 2 } } });
    const bad = await post();
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'invalid_config', field: 'rollout.analysis.maxErrorRate' } });
    rewrite({ pools, workers: 3 });
    const restart = await post();
    expect(restart.status).toBe(409);
    expect(restart.body).toMatchObject({ error: { code: 'restart_required', field: 'workers' } });
    expect((await status(r)).thresholds.maxErrorRate).toBe(0.05);
    // Tokens: from the reload on, the API wants one.
    const tokens = [{ id: 'ops', sha256: sha256Hex('ops-token'), role: 'operator' }];
    rewrite({ pools, rollout: { analysis: { maxErrorRate: 0.05 } }, admin: { host: '127.0.0.1', port: 0, tokens } });
    expect((await post()).body).toMatchObject({ result: 'applied', changed: ['admin.tokens'] });
    expect((await post()).status).toBe(401);
    expect((await post('ops-token')).body).toMatchObject({ result: 'unchanged' });
    const audit = readFileSync(join(dir, 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const reloads = audit.filter((a) => a.action === 'config.reload').map((a) => [a.result, a.status]);
    expect(reloads).toEqual([
      ['ok', 200],
      ['ok', 200],
      ['rejected', 400],
      ['rejected', 409],
      ['ok', 200],
      ['denied', 401],
      ['ok', 200],
    ]);
  });
});
