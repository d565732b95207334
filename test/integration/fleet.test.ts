/**
 * A fleet: sluice instances as separate processes sharing one rollout through a real
 * redis-server started here (its own port, no persistence; each test its own fleet name).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@redis/client';
import { request } from 'undici';
import { startLoad } from '../helpers/load.js';
import { killAll, runCli, startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let redis: TestRedis;
let running: RunningSluice[] = [];
let ups: TestUpstream[] = [];
let names = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.close();
});
afterEach(async () => {
  await killAll(running);
  running = [];
  // A test that failed with Redis killed does not fail the ones after it.
  await redis.ensureUp();
  await Promise.all(ups.map((u) => u.close()));
  ups = [];
});

interface Status {
  version: number;
  weights: { blue: number; green: number };
  rollout: { phase: string; reason: string | null; stepIndex: number };
  fleet: {
    connected: boolean;
    leader: boolean;
    epoch: number;
    instance: string;
    pendingRollback: boolean;
    summary: {
      windows: { green: { requests: number; errors: number } };
      members: {
        id: string;
        requests: number;
        errors: number;
        pools: { green: { requests: number; errors: number } };
      }[];
    } | null;
  } | null;
}

const admin = (r: RunningSluice) => `http://127.0.0.1:${r.adminPort}`;
// A connection per admin call (`reset`): a test's reads of an instance are seconds apart at
// times, and a kept-alive socket the instance is closing just then would fail the read with a
// reset that says nothing about sluice. A crashed instance still fails it (refused).
const status = async (r: RunningSluice) =>
  (await (await request(`${admin(r)}/api/v1/status`, { reset: true })).body.json()) as Status;
const call = async (r: RunningSluice, method: 'POST' | 'PUT', path: string, body: unknown = {}) => {
  const res = await request(`${admin(r)}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    reset: true,
  });
  return { status: res.statusCode, body: (await res.body.json()) as Status & { error?: { code: string } } };
};

/** Read until `done` holds or `ms` pass; returns the last value read, for the assertions that follow. */
async function settle<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await read();
  while (!done(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 25));
    v = await read();
  }
  return v;
}

/** Start a rollout on `a`, load both, and wait until both show it rolled back; the loads, stopped. */
async function startUnderLoadUntilRolledBack(a: RunningSluice, c: RunningSluice) {
  expect((await call(a, 'POST', '/api/v1/rollout/start')).status).toBe(200);
  const loads = [a, c].map((r) => startLoad(`http://127.0.0.1:${r.proxyPort}`, 4));
  try {
    const phases = await settle(
      async () => (await Promise.all([status(a), status(c)])).map((s) => s.rollout.phase),
      (ps) => ps.every((p) => p === 'rolled_back'),
    );
    expect(phases).toEqual(['rolled_back', 'rolled_back']);
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
  }
  return loads;
}

/** `n` instances of one fleet in front of `blue` and `green`. */
async function fleet(
  n: number,
  blue: string,
  green: string,
  extra: Record<string, unknown> = {},
  each: (i: number) => Record<string, unknown> = () => ({}),
) {
  const name = `t${process.pid}-${++names}`;
  const started: RunningSluice[] = [];
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-fleet-'));
    const file = writeConfig(dir, {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      pools: { blue: { endpoints: [blue] }, green: { endpoints: [green] } },
      stateFile: join(dir, 'state.json'),
      audit: { file: null },
      log: { level: 'info', access: false },
      split: { trustedProxies: ['127.0.0.1/32'] },
      fleet: { redis: redis.url, name, lease: '1s' },
      rollout: {
        steps: [10, 50, 100],
        stepHold: '10m',
        analysis: { interval: '200ms', window: '2s', minRequests: 30 },
      },
      shutdownGrace: '1s',
      ...extra,
      ...each(i),
    });
    files.push(file);
    const r = await startProcess(file);
    running.push(r);
    started.push(r);
  }
  return { name, instances: started, files };
}

async function upstreams(green?: Parameters<typeof startUpstream>[1]) {
  ups = [await startUpstream('blue'), await startUpstream('green', green)];
  return ups.map((u) => u.url) as [string, string];
}

/**
 * Two instances at 50 %; Redis killed; then green fails, through c only (only c carries traffic):
 * c rolls back alone and holds the rollback for the fleet. Redis is left down.
 */
async function rolledBackAloneWithRedisAway() {
  const bad = { on: false };
  const [b, g] = await upstreams((_req, res) => {
    res.writeHead(bad.on ? 503 : 200);
    res.end('green');
  });
  const { instances, files } = await fleet(2, b, g, {
    rollout: { steps: [50, 100], stepHold: '10m', analysis: { interval: '200ms', window: '2s', minRequests: 30 } },
  });
  const [a, c] = instances as [RunningSluice, RunningSluice];
  expect((await call(a, 'POST', '/api/v1/rollout/start')).status).toBe(200);
  await redis.kill();
  await new Promise((r) => setTimeout(r, 500));
  bad.on = true;
  const load = startLoad(`http://127.0.0.1:${c.proxyPort}`, 4);
  try {
    const sc = await settle(
      () => status(c),
      (x) => x.weights.green === 0,
    );
    expect(sc.weights.green).toBe(0);
    expect(sc.fleet?.pendingRollback).toBe(true);
  } finally {
    await load.stop();
  }
  return { a, c, files };
}

describe('fleet', () => {
  it.each([2, 3])('a rollout started on one of %i instances is in force on the others at once', async (count) => {
    const [b, g] = await upstreams();
    const { instances } = await fleet(count, b, g);
    const [a, ...others] = instances as [RunningSluice, ...RunningSluice[]];
    const started = await call(a, 'POST', '/api/v1/rollout/start');
    expect(started.status).toBe(200);
    const t0 = Date.now();
    for (const c of others) {
      const seen = await settle(
        () => status(c),
        (x) => x.rollout.phase === 'progressing',
        1000,
      );
      expect(seen?.rollout.phase).toBe('progressing');
      expect(seen?.weights).toEqual({ blue: 90, green: 10 });
      expect(seen?.version).toBe(started.body.version);
    }
    console.log(`rollout started on one of ${count} instances seen on the others after ${Date.now() - t0} ms`);
    // Exactly one of them leads.
    const leaders = (await Promise.all(instances.map(status))).filter((s) => s.fleet?.leader);
    expect(leaders.length).toBe(1);
  });

  it('two commands racing on two instances with the same expectedVersion: exactly one wins', async () => {
    const [b, g] = await upstreams();
    const { instances } = await fleet(2, b, g);
    const [a, c] = instances as [RunningSluice, RunningSluice];
    for (let round = 0; round < 5; round++) {
      const v = (await status(a)).version;
      const [x, y] = await Promise.all([
        call(a, 'PUT', '/api/v1/weights', { weights: { green: 20 + round }, expectedVersion: v }),
        call(c, 'PUT', '/api/v1/weights', { weights: { green: 40 + round }, expectedVersion: v }),
      ]);
      expect([x.status, y.status].sort()).toEqual([200, 409]);
      const winner = x.status === 200 ? 20 + round : 40 + round;
      // The loser's instance hears of the winner's write (pub/sub) within moments.
      await new Promise((r) => setTimeout(r, 150));
      const after = await Promise.all([status(a), status(c)]);
      for (const s of after) expect(s.weights.green).toBe(winner);
    }
  });

  it('judges the merged traffic: green failing 30 % through both instances rolls back on both', async () => {
    let n = 0;
    const [b, g] = await upstreams((_req, res) => {
      res.writeHead(n++ % 10 < 3 ? 503 : 200);
      res.end('green');
    });
    const { instances } = await fleet(2, b, g, {
      rollout: { steps: [50, 100], stepHold: '10m', analysis: { interval: '200ms', window: '2s', minRequests: 30 } },
    });
    const [a, c] = instances as [RunningSluice, RunningSluice];
    const loads = await startUnderLoadUntilRolledBack(a, c);
    // The leader's sequential check may cut green before the follower's first interval reaches
    // it (the leader's own counts cross too); the summary of the next tick or two holds both
    // members' shares, and they stay in it for the window (2 s) after the loads stop.
    const s = await settle(
      () => status(c),
      (x) => (x.fleet?.summary?.members.filter((m) => m.requests > 0).length ?? 0) >= 2,
      1500,
    );
    expect(s.weights).toEqual({ blue: 100, green: 0 });
    expect(s.rollout.reason).toMatch(/error rate|failed \d+ of \d+ requests/);
    for (const l of loads) expect(l.counts.failed).toBe(0);
    // Both instances' traffic is judged: the leader's summary counts each one's share.
    const summary = s.fleet?.summary;
    expect(summary?.members.length).toBe(2);
    for (const m of summary?.members ?? []) expect(m.requests).toBeGreaterThan(0);
    // The CLI against either instance shows the fleet and both members' shares.
    for (const r of [a, c]) {
      const out = runCli(['status', '--admin-url', admin(r)]);
      expect(out.code).toBe(0);
      const line = out.stdout.split('\n').find((l) => l.startsWith('fleet ')) ?? '';
      expect(line).toMatch(/^fleet t[\w-]+: connected, (leader|follower); members: /);
      for (const m of summary?.members ?? []) expect(line).toContain(m.id);
    }
  });

  it("green failing only through one instance's own path (its share 60 %, the fleet's ~30 %): the fleet's verdict rolls back both", async () => {
    const blue = await startUpstream('blue');
    const good = await startUpstream('green');
    let n = 0;
    const bad = await startUpstream('green', (_req, res) => {
      res.writeHead(n++ % 10 < 6 ? 503 : 200);
      res.end('green');
    });
    ups = [blue, good, bad];
    // Each instance has its own network path: c reaches green through a broken one.
    const { instances } = await fleet(
      2,
      blue.url,
      good.url,
      {
        rollout: { steps: [50, 100], stepHold: '10m', analysis: { interval: '200ms', window: '2s', minRequests: 30 } },
      },
      (i) => (i === 1 ? { pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [bad.url] } } } : {}),
    );
    const [a, c] = instances as [RunningSluice, RunningSluice];
    await startUnderLoadUntilRolledBack(a, c);
    // Judged on the merge: the reason's error rate is the fleet's, well under c's 60 %.
    const reason = (await status(a)).rollout.reason ?? '';
    // By the window's bound ("error rate 31.2% ...") on the merged window; or by the sequential
    // check on the merged counts of one interval ("failed 5 of 7 ..."), which at a handful of
    // requests says little about the rate (failures come in bursts): then only that it failed.
    if (/sequential check/.test(reason)) expect(reason).toMatch(/^green failed \d+ of \d+ requests/);
    else {
      const rate = Number(/error rate ([\d.]+)%/.exec(reason)?.[1]);
      expect(rate).toBeGreaterThan(1);
      expect(rate).toBeLessThan(60);
    }
    expect(good.seen.length).toBeGreaterThan(0);
    expect(bad.seen.length).toBeGreaterThan(0);
  });

  it.each([
    ['a follower', 1],
    ['the leader', 0],
  ] as const)(
    "green failing only through one instance's own path, %s's (its share 60 %, over the 20 % limit; the fleet's ~10 %, under it): the fleet's verdict is a pass",
    async (_who, badIndex) => {
      const blue = await startUpstream('blue');
      const good = await startUpstream('green');
      let n = 0;
      let failing = false;
      const bad = await startUpstream('green', (_req, res) => {
        res.writeHead(failing && n++ % 10 < 6 ? 503 : 200);
        res.end('green');
      });
      ups = [blue, good, bad];
      // The threshold alone: the comparison with stable (10 % beside a clean blue) would fail it.
      const analysis = { interval: '200ms', window: '2s', minRequests: 30, maxErrorRate: 0.2, maxErrorRatio: 1000 };
      const { instances } = await fleet(
        2,
        blue.url,
        good.url,
        { rollout: { steps: [50, 100], stepHold: '10m', analysis } },
        (i) => (i === badIndex ? { pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [bad.url] } } } : {}),
      );
      const [a, c] = instances as [RunningSluice, RunningSluice];
      // The first started leads (it took the lease before the other existed).
      expect((await status(a)).fleet?.leader).toBe(true);
      const broken = instances[badIndex] as RunningSluice;
      const sound = instances[1 - badIndex] as RunningSluice;
      expect((await call(a, 'POST', '/api/v1/rollout/start')).status).toBe(200);
      // The sound one carries about six times the broken one's traffic: the fleet's green error
      // rate is near 60 % / 7. The broken one's sequential check alarms on its own share within an
      // interval; the leader judges that alarm on the fleet's counts, its own share or not.
      const loads = [
        startLoad(`http://127.0.0.1:${sound.proxyPort}`, 6),
        startLoad(`http://127.0.0.1:${broken.proxyPort}`, 1),
      ];
      let seen: Status[] = [];
      try {
        // The path breaks once both members' canary traffic is in the leader's view. (In the first
        // interval of a step the leader knows no other member's canary traffic yet: see fleet.md.)
        const both = await settle(
          () => status(a),
          (s) => (s.fleet?.summary?.members.filter((m) => m.pools.green.requests >= 50).length ?? 0) === 2,
        );
        expect(both.rollout.phase).toBe('progressing');
        failing = true;
        // Until the broken one's share is plain in the leader's summary, and a while after.
        const brokenShare = (s: Status) =>
          s.fleet?.summary?.members.find((m) => m.pools.green.requests >= 200 && m.pools.green.errors > 0);
        await settle(
          () => status(a),
          (s) => brokenShare(s) !== undefined,
        );
        const end = Date.now() + 2000;
        while (Date.now() < end) {
          seen = await Promise.all([status(a), status(c)]);
          expect(seen.map((s) => s.rollout.phase)).toEqual(['progressing', 'progressing']);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await Promise.all(loads.map((l) => l.stop()));
      }
      const summary = seen[0]?.fleet?.summary;
      const shares = summary?.members.map((m) => m.pools.green.errors / m.pools.green.requests) ?? [];
      // One member's green share fails on its own (60 % since it broke, twice the 20 % limit over
      // the window, hundreds of requests)...
      expect(Math.max(...shares)).toBeGreaterThan(0.4);
      expect(Math.min(...shares)).toBe(0);
      // ...but the verdict is on the merged window, whose rate is under the limit: a pass.
      const w = summary?.windows.green;
      expect(w && w.errors / w.requests).toBeLessThan(0.2);
      expect(seen.map((s) => s.weights.green)).toEqual([50, 50]);
      expect(bad.seen.length).toBeGreaterThan(0);
      // The broken one's sequential check did cross, and the leader judged it on the fleet's counts.
      expect(a.output()).toContain('an alarm the merged counts do not confirm');
    },
  );

  it('a canary failing everything, load through a follower only: its alarm goes to the leader, which cuts it for the fleet in a few requests', async () => {
    const [b, g] = await upstreams((_req, res) => {
      res.writeHead(503);
      res.end('green');
    });
    // The default interval (1 s): the ticks alone would let a second of failures through.
    const { instances } = await fleet(2, b, g, {
      retry: { toStable: false },
      rollout: { steps: [10, 100], stepHold: '10m' },
    });
    const st = await settle(
      () => Promise.all(instances.map(status)),
      (ss) => ss.some((s) => s.fleet?.leader),
    );
    const follower = instances[st.findIndex((s) => !s.fleet?.leader)] as RunningSluice;
    const load = startLoad(`http://127.0.0.1:${follower.proxyPort}`, 4);
    try {
      await settle(
        async () => load.counts.blue,
        (n) => n > 300,
      );
      expect((await call(follower, 'POST', '/api/v1/rollout/start')).status).toBe(200);
      const both = await settle(
        () => Promise.all(instances.map(status)),
        (ss) => ss.every((s) => s.weights.green === 0),
      );
      expect(both.map((s) => s.rollout.phase)).toEqual(['rolled_back', 'rolled_back']);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await load.stop();
    }
    const seen = ups[1]!.seen.length;
    console.log(`fleet: ${seen} failed canary requests through the follower before 0 %`);
    expect(seen).toBeGreaterThanOrEqual(5);
    expect(seen).toBeLessThanOrEqual(10);
    expect((await status(instances[0]!)).rollout.reason).toMatch(
      /^green failed \d+ of \d+ requests .*\(sequential check: /,
    );
  });

  it('Redis away: an instance whose traffic fails rolls back alone at once, and the fleet gets it when Redis returns', async () => {
    const { a, c } = await rolledBackAloneWithRedisAway();
    expect((await status(a)).weights.green).toBe(50);
    await redis.restart();
    const settled = (s: Status) =>
      s.rollout.phase === 'rolled_back' && s.weights.green === 0 && !s.fleet?.pendingRollback;
    const both = await settle(
      () => Promise.all([status(a), status(c)]),
      (ss) => ss.every(settled),
    );
    expect(both.map((s) => [s.rollout.phase, s.weights.green])).toEqual([
      ['rolled_back', 0],
      ['rolled_back', 0],
    ]);
    expect(both.map((s) => s.fleet?.pendingRollback)).toEqual([false, false]);
  });

  it('Redis away: an instance that rolled back alone and is restarted before Redis returns starts rolled back, and the fleet still gets it', async () => {
    const { a, c, files } = await rolledBackAloneWithRedisAway();
    // Routing changes first; the disk follows: the marker, then the copy holding the rollback.
    const dir = dirname(files[1] as string);
    const kept = () => {
      try {
        const m = JSON.parse(readFileSync(join(dir, 'state.json.fleet-pending'), 'utf8')) as { version: number };
        return (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { version: number }).version === m.version;
      } catch {
        return false;
      }
    };
    expect(
      await settle(
        async () => kept(),
        (k) => k,
        3000,
      ),
    ).toBe(true);
    // c dies (no goodbye) and comes back while Redis is still away.
    c.proc.kill('SIGKILL');
    await c.exited;
    const again = await startProcess(files[1] as string);
    running.push(again);
    const s = await status(again);
    expect([s.rollout.phase, s.weights.green, s.fleet?.pendingRollback]).toEqual(['rolled_back', 0, true]);
    expect((await status(a)).weights.green).toBe(50);
    await redis.restart();
    const both = await settle(
      () => Promise.all([status(a), status(again)]),
      (ss) => ss.every((x) => x.rollout.phase === 'rolled_back' && x.weights.green === 0 && !x.fleet?.pendingRollback),
    );
    expect(both.map((x) => [x.rollout.phase, x.weights.green, x.fleet?.pendingRollback])).toEqual([
      ['rolled_back', 0, false],
      ['rolled_back', 0, false],
    ]);
  });

  it('the leader killed (SIGKILL) mid-rollout: the other takes the lease and decides', async () => {
    const [b, g] = await upstreams();
    const { instances } = await fleet(2, b, g);
    expect((await call(instances[0]!, 'POST', '/api/v1/rollout/start')).status).toBe(200);
    const all = await Promise.all(instances.map(status));
    const li = all.findIndex((s) => s.fleet?.leader);
    expect(li).toBeGreaterThanOrEqual(0);
    const leader = instances[li]!;
    const other = instances[1 - li]!;
    const epoch = all[li]!.fleet!.epoch;
    leader.proc.kill('SIGKILL');
    await leader.exited;
    const s = await settle(
      () => status(other),
      (x) => x.fleet?.leader === true,
    );
    expect(s.fleet?.leader).toBe(true);
    expect(s.fleet!.epoch).toBeGreaterThan(epoch);
    // It kept the rollout where it was, and it can change it.
    expect(s.rollout.phase).toBe('progressing');
    expect((await call(other, 'POST', '/api/v1/rollout/pause')).status).toBe(200);
  });

  it('the leader stopped (SIGSTOP) past its lease, then continued (SIGCONT): it does not write', async () => {
    const [b, g] = await upstreams();
    // The hold elapses while the leader is stopped: on waking it would want to advance a step.
    const { name, instances } = await fleet(2, b, g, {
      rollout: {
        steps: [10, 50, 100],
        stepHold: '1500ms',
        analysis: { interval: '200ms', window: '2s', minRequests: 30 },
      },
    });
    const first = await Promise.all(instances.map(status));
    const li = first.findIndex((s) => s.fleet?.leader);
    expect(li).toBeGreaterThanOrEqual(0);
    const leader = instances[li]!;
    const other = instances[1 - li]!;
    const oldEpoch = first[li]!.fleet!.epoch;
    expect((await call(leader, 'POST', '/api/v1/rollout/start')).status).toBe(200);
    // Traffic that passes, through both, for most of the hold.
    const loads = instances.map((r) => startLoad(`http://127.0.0.1:${r.proxyPort}`, 2));
    await new Promise((r) => setTimeout(r, 1000));
    await loads[li]!.stop();
    leader.proc.kill('SIGSTOP');
    try {
      const s = await settle(
        () => status(other),
        (x) => x.fleet?.leader === true,
      );
      expect(s.fleet!.epoch).toBeGreaterThan(oldEpoch);
      // The new leader pauses the rollout where it is.
      const paused = await call(other, 'POST', '/api/v1/rollout/pause');
      expect(paused.status).toBe(200);
      const held = paused.body.version;
      const weights = paused.body.weights;
      await loads[1 - li]!.stop();
      leader.proc.kill('SIGCONT');
      // The old leader wakes with the hold elapsed and the pause unseen; for 3 s nothing it does lands.
      const client = createClient({ url: redis.url });
      await client.connect();
      try {
        const end = Date.now() + 3000;
        while (Date.now() < end) {
          const v = Number(await client.hGet(`sluice:${name}:state`, 'version'));
          expect(v).toBe(held);
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        client.destroy();
      }
      const after = await Promise.all([status(leader), status(other)]);
      expect(after.map((x) => [x.version, x.rollout.phase, x.fleet?.leader])).toEqual([
        [held, 'paused', false],
        [held, 'paused', true],
      ]);
      for (const x of after) expect(x.weights).toEqual(weights);
      // Its history has the pause last too: no step it wanted was written.
      const hist = (await (await request(`${admin(leader)}/api/v1/history`)).body.json()) as {
        history: { event: string }[];
      };
      expect(hist.history[0]?.event).toBe('paused');
    } finally {
      leader.proc.kill('SIGCONT');
    }
  });

  it('Redis killed under load: every request answered, nothing advances; back empty: re-seeded', async () => {
    const [b, g] = await upstreams();
    const { name, instances } = await fleet(2, b, g);
    const [a, c] = instances as [RunningSluice, RunningSluice];
    expect((await call(a, 'POST', '/api/v1/rollout/start')).status).toBe(200);
    const loads = instances.map((r) => startLoad(`http://127.0.0.1:${r.proxyPort}`, 4));
    try {
      await new Promise((r) => setTimeout(r, 300));
      await redis.kill();
      await new Promise((r) => setTimeout(r, 1500));
      const during = await Promise.all([status(a), status(c)]);
      for (const s of during) {
        expect(s.fleet?.connected).toBe(false);
        expect(s.weights).toEqual({ blue: 90, green: 10 });
        expect(s.rollout.phase).toBe('progressing');
      }
      // A change is refused with a clear answer; serving goes on.
      const refused = await call(c, 'PUT', '/api/v1/weights', { weights: { green: 50 } });
      expect(refused.status).toBe(503);
      expect(refused.body.error?.code).toBe('fleet_unavailable');
      await redis.restart();
      const back = await settle(
        () => Promise.all([status(a), status(c)]),
        (ss) => ss.every((x) => x.fleet?.connected),
        5000,
      );
      expect(back.map((s) => s.fleet?.connected)).toEqual([true, true]);
    } finally {
      await Promise.all(loads.map((l) => l.stop()));
    }
    for (const l of loads) {
      expect(l.counts.failed).toBe(0);
      expect(l.counts.errors5xx).toBe(0);
      expect(l.counts.blue + l.counts.green).toBeGreaterThan(0);
    }
    // The empty Redis got the state back from the instances.
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const v = await settle(
        async () => (await client.hGet(`sluice:${name}:state`, 'version')) as string | null,
        (x) => x !== null && x !== undefined,
        5000,
      );
      expect(Number(v)).toBe((await status(a)).version);
    } finally {
      client.destroy();
    }
    // And the fleet works again: a change on one reaches the other.
    expect((await call(a, 'PUT', '/api/v1/weights', { weights: { green: 30 } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect((await status(c)).weights.green).toBe(30);
  });
});
