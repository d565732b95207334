/**
 * `workers: 2`: two worker threads serve the port (SO_REUSEPORT), the main thread judges the
 * merged traffic. On a Node without SO_REUSEPORT (20) the same config runs on the main thread and
 * the tests check that fallback instead of skipping.
 */
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { supportsReusePort } from '../../src/core/runtime.js';
import type { WorkerMember } from '../../src/worker/member.js';
import { harness } from '../helpers/harness.js';
import { rawRequest } from '../helpers/raw.js';
import { startLoad, until } from '../helpers/load.js';
import { startTestSluice } from '../helpers/sluice.js';
import { jsonOk, startUpstream, type Behaviour } from '../helpers/upstream.js';
import { startWsUpstream, wsConnect } from '../helpers/ws.js';

const h = harness();
const THREADS = supportsReusePort(process.version, process.platform) ? 2 : 1;

/** One request on a new connection (the kernel picks a worker per connection). */
async function fresh(url: string, headers: Record<string, string> = {}) {
  const r = await request(url, { headers: { connection: 'close', ...headers }, reset: true });
  const text = await r.body.text();
  return { status: r.statusCode, pool: r.headers['x-sluice-pool'], text };
}

async function status(admin: string) {
  const r = await request(`${admin}/api/v1/status`);
  return (await r.body.json()) as {
    version: number;
    weights: { blue: number; green: number };
    rollout: { phase: string; reason: string | null };
    workers: { id: string; state: string; restarts: number; requests: number }[];
    retried: { toStable: number; refused: number };
    pools: Record<string, { window: { requests: number; errors: number }; endpoints: { ejected: boolean }[] }>;
  };
}

async function metric(admin: string, line: RegExp): Promise<number> {
  const text = await (await request(`${admin}/metrics`)).body.text();
  return text
    .split('\n')
    .filter((l) => line.test(l))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

const workers = { workers: 2, split: { trustedProxies: ['127.0.0.1/32'] } };

describe('workers: 2', () => {
  it('serves on every thread, and the status lists the workers with what each served', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, workers));
    expect(s.workers).toBe(THREADS);
    for (let i = 0; i < 80; i++) expect((await fresh(`${s.base}/x`)).status).toBe(200);
    const st = await status(s.admin);
    expect(st.workers.map((w) => w.state)).toEqual(Array(THREADS).fill('running'));
    expect(st.workers.reduce((n, w) => n + w.requests, 0)).toBe(80);
    // The kernel spreads new connections: with 80 of them, each thread gets some.
    for (const w of st.workers) expect(w.requests).toBeGreaterThan(0);
    expect(blue.seen.length).toBe(80);
  });

  it('judges the merged traffic: window counts equal what the upstreams served', async () => {
    const blue = h.track(await startUpstream('blue'));
    let greenServed = 0;
    let greenFailed = 0;
    const failing: Behaviour = (_req, res) => {
      const fail = greenServed++ % 10 < 3;
      if (fail) greenFailed++;
      res.writeHead(fail ? 503 : 200);
      res.end('green');
    };
    const green = h.track(await startUpstream('green', failing));
    const s = (h.sluice = await startTestSluice(
      blue.url,
      green.url,
      { ...workers, split: { ...workers.split, initialCanaryWeight: 50 } },
      { autoTick: false },
    ));
    const clients = Array.from({ length: 200 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    for (const ip of clients) await fresh(`${s.base}/`, { 'x-forwarded-for': ip });
    await s.controller.tick();
    const st = await status(s.admin);
    expect(st.pools.blue!.window.requests).toBe(blue.seen.length);
    expect(st.pools.green!.window.requests).toBe(greenServed);
    expect(st.pools.green!.window.errors).toBe(greenFailed);
    // Every client request once, and each green 503 once more on blue (retry.toStable).
    expect(blue.seen.length + greenServed).toBe(200 + greenFailed);
    expect(st.retried.toStable).toBe(greenFailed);
    expect(green.seen.length).toBe(greenServed);
  });

  it('rolls back a canary failing 30 % when each worker alone saw only its share', async () => {
    const blue = h.track(await startUpstream('blue'));
    let n = 0;
    const green = h.track(
      await startUpstream('green', (_req, res) => {
        res.writeHead(n++ % 10 < 3 ? 503 : 200);
        res.end('green');
      }),
    );
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...workers,
      rollout: { steps: [50, 100], stepHold: '30s', analysis: { interval: '100ms', window: '1s', minRequests: 30 } },
    }));
    await s.controller.command({ type: 'start' }, 'test');
    const load = startLoad(s.base, 8);
    try {
      expect(await until(() => s.controller.state.phase === 'rolled_back', 10_000)).toBe(true);
    } finally {
      await load.stop();
    }
    expect(s.controller.state.weights).toEqual({ blue: 100, green: 0 });
    expect(s.controller.state.reason).toMatch(/error rate|failed \d+ of \d+ requests/);
    expect(green.seen.length).toBeGreaterThan(0);
  });

  it('each worker runs the sequential check on its own traffic: a canary failing everything is cut within 10 requests', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(
      await startUpstream('green', (_req, res) => {
        res.writeHead(503);
        res.end('green');
      }),
    );
    // The default interval (1 s): only an alarm from a worker can cut it this soon.
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...workers,
      retry: { toStable: false },
      rollout: { steps: [10, 100], stepHold: '1m' },
    }));
    const load = startLoad(s.base, 8);
    try {
      await until(() => load.counts.blue > 300, 10_000);
      await s.controller.command({ type: 'start' }, 'test');
      expect(await until(() => s.controller.state.phase === 'rolled_back', 10_000)).toBe(true);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await load.stop();
    }
    expect(s.controller.state.weights).toEqual({ blue: 100, green: 0 });
    expect(green.seen.length).toBeGreaterThanOrEqual(5);
    expect(green.seen.length).toBeLessThanOrEqual(10);
    expect(s.controller.state.history[0]?.evidence).toMatchObject({ check: 'sequential', errorRate: 1 });
    expect(s.controller.state.reason).toMatch(/^green failed \d+ of \d+ requests .*\(sequential check: /);
    // Usually a worker's alarm; when a tick comes first, the tick's check on the merged interval.
    console.log(
      `workers: ${green.seen.length} failed canary requests, ${s.controller.urgentChecks.alarms} alarms from the workers`,
    );
  });

  it('routes no new request by the old weights once PUT /api/v1/weights has returned', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, workers));
    const agent = new Agent({ connections: 16 });
    try {
      for (const [weights, pool] of [
        [{ blue: 0, green: 100 }, 'green'],
        [{ blue: 100, green: 0 }, 'blue'],
        [{ blue: 0, green: 100 }, 'green'],
      ] as const) {
        const r = await request(`${s.admin}/api/v1/weights`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ weights }),
        });
        expect(r.statusCode).toBe(200);
        await r.body.dump();
        // Kept-alive connections on both threads and new ones: all by the new table.
        const pools = await Promise.all(
          Array.from({ length: 40 }, async (_, i) => {
            const q = await request(`${s.base}/`, {
              dispatcher: i % 2 === 0 ? agent : undefined,
              headers: { 'x-forwarded-for': `10.1.0.${i}` },
            });
            await q.body.dump();
            return q.headers['x-sluice-pool'];
          }),
        );
        expect(new Set(pools)).toEqual(new Set([pool]));
      }
    } finally {
      await agent.close();
    }
  });

  it('shares a passive ejection: once one worker reports a dead endpoint, no worker connects to it', async () => {
    const blue = h.track(await startUpstream('blue'));
    const dead = await startUpstream('dead');
    await dead.close();
    const green = h.track(await startUpstream('green', jsonOk('green')));
    const s = (h.sluice = await startTestSluice([dead.url, blue.url], green.url, {
      ...workers,
      upstream: { ejectAfter: 2, ejectFor: '60s' },
    }));
    for (let i = 0; i < 20; i++) expect((await fresh(`${s.base}/`)).status).toBe(200);
    expect(await until(() => s.status().pools.blue!.endpoints[0]!.ejected, 5000)).toBe(true);
    // A worker that still tried the dead endpoint would report a further streak, which would
    // extend the ejection and move the availability's version: it stays where it is.
    const health = s.endpoints.current.health;
    for (let i = 0; i < 40; i++) expect((await fresh(`${s.base}/`)).status).toBe(200);
    expect(s.endpoints.current.health).toBe(health);
    expect(blue.seen.length).toBe(60);
  });

  it.runIf(THREADS > 1)(
    'replaces a worker that dies; counters never go back; the other keeps serving',
    async () => {
      const blue = h.track(await startUpstream('blue'));
      const green = h.track(await startUpstream('green'));
      const s = (h.sluice = await startTestSluice(blue.url, green.url, workers));
      for (let i = 0; i < 30; i++) await fresh(`${s.base}/`);
      const total = /^sluice_requests_total\{pool="blue",code="200"\}/;
      expect(await metric(s.admin, total)).toBe(30);
      await (s.members.list[0] as WorkerMember).kill();
      // While it is replaced, the other thread answers every new connection.
      for (let i = 0; i < 30; i++) expect((await fresh(`${s.base}/`)).status).toBe(200);
      expect(await until(() => s.status().workers[0]!.state === 'running', 10_000)).toBe(true);
      expect(s.status().workers[0]!.restarts).toBe(1);
      expect(await metric(s.admin, /^sluice_worker_restarts_total/)).toBe(1);
      for (let i = 0; i < 30; i++) expect((await fresh(`${s.base}/`)).status).toBe(200);
      // 90 served in all: the dead thread's 30-odd stay counted.
      expect(await metric(s.admin, total)).toBe(90);
      expect(blue.seen.length).toBe(90);
    },
    30_000,
  );

  it('proxies WebSockets through the worker threads', async () => {
    const blue = h.track(await startWsUpstream('blue'));
    const green = h.track(await startWsUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, workers));
    for (let i = 0; i < 10; i++) {
      const { socket, head } = await wsConnect(s.proxyPort);
      expect(head).toMatch(/^HTTP\/1\.1 101/);
      const echoed = new Promise<string>((r) => socket.once('data', (d) => r(d.toString())));
      socket.write(`ping-${i}`);
      expect(await echoed).toBe(`ping-${i}`);
      socket.destroy();
    }
    expect(blue.upgrades.length).toBe(10);
  });

  it('counts connections per client over every worker (limits.maxConnectionsPerClient)', async () => {
    const held: ServerResponse[] = [];
    const ok = jsonOk('blue');
    const blue = h.track(
      await startUpstream('blue', (req, res, body) => (req.url === '/hold' ? held.push(res) : ok(req, res, body))),
    );
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...workers,
      limits: { maxConnectionsPerClient: 3 },
    }));
    const socks = Array.from({ length: 3 }, () => {
      const c = connect(s.proxyPort, '127.0.0.1');
      c.on('error', () => {});
      c.write('GET /hold HTTP/1.1\r\nHost: a\r\n\r\n');
      return c;
    });
    try {
      expect(await until(() => held.length === 3, 5000)).toBe(true);
      // New connections land on either worker: each is one past the client's three.
      for (let i = 0; i < 6; i++) {
        const r = await rawRequest(s.proxyPort, 'GET /more HTTP/1.1\r\nHost: a\r\n\r\n', 3000);
        expect(r.status).toBe(503);
        expect(r.text).toContain('too_many_connections');
      }
      expect(blue.seen.filter((x) => x.url === '/more').length).toBe(0);
      socks[0]!.destroy();
      await expect.poll(async () => (await fresh(`${s.base}/ok`)).status, { timeout: 3000 }).toBe(200);
    } finally {
      for (const c of socks) c.destroy();
      for (const r of held) r.destroy();
    }
  });

  it('keeps upstream.connections for the whole process: two workers never carry more at once', async () => {
    let now = 0;
    let most = 0;
    const slow: Behaviour = (_req, res) => {
      most = Math.max(most, ++now);
      setTimeout(() => {
        now--;
        res.end('blue');
      }, 150);
    };
    const blue = h.track(await startUpstream('blue', slow));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      ...workers,
      upstream: { connections: 4 },
      timeouts: { queue: '10s' },
    }));
    const answers = await Promise.all(Array.from({ length: 24 }, () => fresh(`${s.base}/slow`)));
    expect(answers.map((a) => a.status)).toEqual(Array(24).fill(200));
    expect(blue.seen.length).toBe(24);
    expect(most).toBeLessThanOrEqual(4);
    expect(most).toBeGreaterThan(1);
  });

  it("divides the process's limits over the workers", async () => {
    const { workerShare, planeOptions } = await import('../../src/data/plane.js');
    const { testConfig } = await import('../helpers/sluice.js');
    const o = planeOptions(testConfig('http://127.0.0.1:1', 'http://127.0.0.1:2', { upstream: { connections: 5 } }));
    const two = workerShare(o, 2);
    expect(two.upstream.connections).toBe(3);
    expect(two.limits.maxConnections).toBe(Math.ceil(o.limits.maxConnections / 2));
    expect(two.limits.bufferBodyTotalBytes).toBe(Math.ceil(o.limits.bufferBodyTotalBytes / 2));
    expect(two.limits.bufferResponseTotalBytes).toBe(Math.ceil(o.limits.bufferResponseTotalBytes / 2));
    expect(workerShare(o, 1)).toBe(o);
    expect(workerShare({ ...o, upstream: { ...o.upstream, connections: 1 } }, 4).upstream.connections).toBe(1);
    expect(workerShare({ ...o, limits: { ...o.limits, bufferBodyTotalBytes: 0 } }, 4).limits.bufferBodyTotalBytes).toBe(
      0,
    );
  });

  it('falls back to the main thread without SO_REUSEPORT, and says so', async () => {
    const { workerLayout } = await import('../../src/main.js');
    expect(workerLayout(2, 8, false)).toMatchObject({ count: 1, note: expect.stringMatching(/SO_REUSEPORT/) });
    expect(workerLayout('auto', 8, true)).toEqual({ count: 8, note: undefined });
    expect(workerLayout('auto', 1, true)).toEqual({ count: 1, note: undefined });
    expect(workerLayout(3, 2, true)).toEqual({ count: 3, note: undefined });
  });
});
