/**
 * Seeded simulations of whole rollouts through the real controller (fake clock, synthetic
 * traffic): healthy canaries reach promotion without a false rollback; broken ones are rolled
 * back, and the time from breach to 0 % canary is printed, with the failed canary requests
 * before it (the sequential check between ticks acts on those).
 */
import { describe, expect, it } from 'vitest';
import { FAST_MIN_ERRORS, wilsonLower, zFor } from '../../src/control/analysis.js';
import { policyOf } from '../../src/control/controller.js';
import { parseConfig } from '../../src/core/config.js';
import { Recorder } from '../../src/stats/recorder.js';
import type { SequentialLimit } from '../../src/stats/sequential.js';
import type { FleetLink } from '../../src/control/controller.js';
import { MemoryStateStore, StoreUnavailableError } from '../../src/control/state-store.js';
import type { ControllerState, HistoryEntry } from '../../src/control/state.js';
import { rng, simulate, type PoolBehaviour, type Sim } from '../helpers/sim.js';

const healthy: PoolBehaviour = { errorRate: 0.002, medianMs: 5 };
const cfg = { rollout: { stepHold: '20s' } };

describe('rollout simulation', () => {
  // SLUICE_SIM_RUNS=150 runs 600 rollouts (the README's false-alarm figure); 10 per rate in npm test.
  const runs = Number(process.env.SLUICE_SIM_RUNS ?? 10);
  it.each(
    ([100, 200, 600, 2000] as const).flatMap((rps) => (['snap', 'rampDown'] as const).map((f) => [rps, f] as const)),
  )(
    `promotes a healthy canary (same error rate and latency as stable) at %i req/s, onFailure %s, in ${runs} of ${runs} seeded runs, with no rollback`,
    async (rps, onFailure) => {
      let promoted = 0;
      let alarms = 0;
      for (let seed = 1; seed <= runs; seed++) {
        const sim = await simulate(seed * 7919 + rps, { rollout: { ...cfg.rollout, onFailure } });
        await sim.controller.command({ type: 'start' }, 'test');
        for (let s = 0; s < 150 && sim.controller.state.phase === 'progressing'; s++)
          await sim.second(rps, healthy, healthy);
        expect(sim.controller.state.rollbacks).toBe(0);
        alarms += sim.counts.alarms;
        if (sim.controller.state.phase === 'promoted') promoted++;
        await sim.close();
      }
      console.log(
        `healthy canary at ${rps} req/s (${onFailure}): ${promoted}/${runs} promoted, 0 rolled back, ${alarms} sequential alarms`,
      );
      expect(alarms).toBe(0);
      expect(promoted).toBe(runs);
    },
    300_000,
  );

  it('does not roll back a canary on thin traffic, however bad its few answers', async () => {
    const sim = await simulate(7, cfg);
    await sim.controller.command({ type: 'start' }, 'test');
    // 20 req/s total → ~2 canary requests per second at 10 %: never 50 in the window.
    for (let s = 0; s < 60; s++) await sim.second(20, healthy, { errorRate: 0.5, medianMs: 5 });
    expect(sim.controller.state.phase).toBe('progressing');
    expect(sim.controller.analysis.reason).toMatch(/^waiting for traffic/);
    await sim.close();
  });

  it.each([
    [0.5, 300, 2],
    [0.2, 300, 2],
    // "Clearly broken at a few dozen requests a second": 120 req/s × 25 % ≈ 30 canary req/s.
    // Median 1 s; 3 s when the first bad second happens to hold fewer than 5 errors.
    [0.2, 120, 3],
    // 5 % is not clearly broken on small slices: it needs the window (10 s) at most.
    [0.05, 300, 10],
    [0.05, 1000, 4],
  ])(
    'rolls back a canary that starts failing %s of requests mid-rollout at %i req/s within %i s',
    async (errorRate, rps, maxSeconds) => {
      const times: number[] = [];
      const failures: number[] = [];
      let sequential = 0;
      for (let seed = 100; seed < 120; seed++) {
        const sim = await simulate(seed, cfg);
        await sim.controller.command({ type: 'start' }, 'test');
        for (let s = 0; s < 25; s++) await sim.second(rps, healthy, healthy); // into step 2 (25 %)
        expect(sim.controller.state.phase).toBe('progressing');
        const breach = sim.now();
        const before = sim.counts.greenFailures;
        let s = 0;
        while (sim.controller.state.phase === 'progressing' && s++ < 60)
          await sim.second(rps, healthy, { errorRate, medianMs: 5 });
        expect(sim.controller.state.phase).toBe('rolled_back');
        expect(sim.controller.state.weights.green).toBe(0);
        expect(sim.controller.state.reason).toMatch(/^green (error rate|failed \d+ of \d+ requests)/);
        if ((sim.controller.state.history[0]?.evidence as { check?: string } | undefined)?.check === 'sequential')
          sequential++;
        times.push((sim.controller.state.history[0]!.at - breach) / 1000);
        failures.push(sim.counts.greenFailures - before);
        await sim.close();
      }
      const sorted = [...times].sort((a, b) => a - b);
      const f = [...failures].sort((a, b) => a - b);
      console.log(
        `${errorRate * 100}% errors at ${rps} req/s: breach → 0 % canary in ${sorted[0]}–${sorted.at(-1)} s (median ${sorted[sorted.length >> 1]} s), ${f[0]}–${f.at(-1)} failed canary requests (median ${f[f.length >> 1]}), ${sequential} of ${times.length} runs by the sequential check`,
      );
      expect(sorted.at(-1)!).toBeLessThanOrEqual(maxSeconds);
    },
  );

  it.each([100, 1000, 4000])(
    'a canary failing every request from the start at 10 percent (%i req/s) gets at most 10 of them before 0 percent',
    async (rps) => {
      const failures: number[] = [];
      for (let seed = 300; seed < 320; seed++) {
        const sim = await simulate(seed, cfg);
        for (let s = 0; s < 3; s++) await sim.second(rps, healthy, healthy);
        await sim.controller.command({ type: 'start' }, 'test');
        let s = 0;
        while (sim.controller.state.phase === 'progressing' && s++ < 60)
          await sim.second(rps, healthy, { errorRate: 1, medianMs: 5 });
        expect(sim.controller.state.phase).toBe('rolled_back');
        const evidence = sim.controller.state.history[0]?.evidence as { check?: string };
        if (rps >= 1000) expect(evidence.check).toBe('sequential');
        failures.push(sim.counts.greenFailures);
        await sim.close();
      }
      const f = failures.sort((a, b) => a - b);
      console.log(`100% errors from the start at 10 %, ${rps} req/s: ${f[0]}–${f.at(-1)} failed canary requests`);
      expect(f.at(-1)).toBeLessThanOrEqual(10);
    },
  );

  it.each([300, 2000])(
    'a canary that breaks mid-interval (every request failing, %i req/s) is cut by the sequential check after the critical count of its interval',
    async (rps) => {
      const failures: number[] = [];
      for (let seed = 400; seed < 420; seed++) {
        const sim = await simulate(seed, cfg);
        await sim.controller.command({ type: 'start' }, 'test');
        for (let s = 0; s < 25; s++) await sim.second(rps, healthy, healthy); // step 2 (25 %)
        // Good requests first in the interval of the breach (the tick is every second).
        await sim.requests(rps / 2, healthy, healthy);
        const before = sim.counts.greenFailures;
        let s = 0;
        while (sim.controller.state.phase === 'progressing' && s++ < 60)
          await sim.second(rps, healthy, { errorRate: 1, medianMs: 5 });
        expect(sim.controller.state.phase).toBe('rolled_back');
        expect((sim.controller.state.history[0]?.evidence as { check?: string } | undefined)?.check).toBe('sequential');
        failures.push(sim.counts.greenFailures - before);
        await sim.close();
      }
      const f = failures.sort((a, b) => a - b);
      console.log(
        `100% errors from mid-interval at ${rps} req/s (25 %): ${f[0]}–${f.at(-1)} failed canary requests (median ${f[10]})`,
      );
      // About 3 + 0.04 × the good requests already in the interval (rps / 2 × 25 %): the SPRT's price.
      expect(f.at(-1)).toBeLessThanOrEqual(5 + Math.ceil(0.05 * (rps / 2) * 0.25));
    },
  );

  it('a canary below maxErrorRate (0.5 %, beside a stable at 0.5 %) is never rolled back by the sequential check', async () => {
    const below: PoolBehaviour = { errorRate: 0.005, medianMs: 5 };
    let alarms = 0;
    let rollbacks = 0;
    for (let seed = 1; seed <= runs; seed++) {
      const sim = await simulate(seed * 104729, cfg);
      await sim.controller.command({ type: 'start' }, 'test');
      for (let s = 0; s < 150 && sim.controller.state.phase === 'progressing'; s++)
        await sim.second(2000, below, below);
      alarms += sim.counts.alarms;
      rollbacks += sim.controller.state.rollbacks;
      await sim.close();
    }
    console.log(`canary at 0.5 % at 2000 req/s: ${alarms} sequential alarms, ${rollbacks} rollbacks in ${runs} runs`);
    expect(alarms).toBe(0);
  }, 300_000);

  it("the sequential check's choice, seeded: at exactly maxErrorRate the SPRT alarms in under α of intervals; the Wilson bound checked after every request in far more", () => {
    const limit = policyOf(
      parseConfig({ pools: { blue: { endpoints: ['http://a'] }, green: { endpoints: ['http://b'] } } }),
    ).sequential as SequentialLimit;
    const z = zFor(0.999);
    const rec = new Recorder();
    let sprt = 0;
    rec.onAlarm = () => sprt++;
    rec.guard(1, limit);
    const r = rng(2024);
    const intervals = 4000;
    let wilson = 0;
    for (let i = 0; i < intervals; i++) {
      let k = 0;
      let hit = false;
      for (let n = 1; n <= 1000; n++) {
        const fail = r() < 0.01;
        rec.record(1, fail ? 503 : 200, 1000, undefined);
        if (fail && !hit && ++k >= FAST_MIN_ERRORS && wilsonLower(k, n, z) > 0.01) hit = true;
        else if (fail && hit) k++;
      }
      if (hit) wilson++;
      rec.takeInterval();
    }
    console.log(
      `canary at exactly 1 %, ${intervals} intervals of 1000 requests: SPRT alarmed in ${sprt}, Wilson (99.9 %, 5 errors) after every request in ${wilson}`,
    );
    expect(sprt).toBeLessThanOrEqual(limit.alpha * intervals);
    expect(wilson).toBeGreaterThan(20 * Math.max(1, sprt));
  });

  it('rolls back a canary at 0.8 % errors beside a stable at 0.01 % (under the 1 % threshold), by comparison', async () => {
    const clean: PoolBehaviour = { errorRate: 0.0001, medianMs: 5 };
    const times: number[] = [];
    const checks: string[] = [];
    for (let seed = 200; seed < 220; seed++) {
      const sim = await simulate(seed, cfg);
      await sim.controller.command({ type: 'start' }, 'test');
      let s = 0;
      while (sim.controller.state.phase === 'progressing' && s++ < 120)
        await sim.second(1000, clean, { errorRate: 0.008, medianMs: 5 });
      expect(sim.controller.state.phase).toBe('rolled_back');
      expect(sim.controller.state.reason).toMatch(/^green error rate /);
      checks.push(String((sim.controller.state.history[0]?.evidence as { check?: string } | undefined)?.check));
      times.push(s);
      await sim.close();
    }
    const sorted = [...times].sort((a, b) => a - b);
    const byRatio = checks.filter((c) => c === 'errorRatio').length;
    console.log(
      `0.8% canary beside 0.01% stable at 1000 req/s: rolled back after ${sorted[0]}–${sorted.at(-1)} s (median ${sorted[10]} s) over 20 runs, ${byRatio} by the comparison with stable, ${20 - byRatio} by a burst over the threshold`,
    );
    // Without the comparison only bursts would catch it; with it, most are caught by it.
    expect(byRatio).toBeGreaterThan(10);
  });

  it('pauses a rollout that has had no verdict for analysis.maxInconclusive, and says why', async () => {
    const sim = await simulate(11, { rollout: { stepHold: '20s', analysis: { maxInconclusive: '30s' } } });
    await sim.controller.command({ type: 'start' }, 'test');
    let s = 0;
    // 2 req/s: the canary's 10 % never reaches minRequests in the window.
    while (sim.controller.state.phase === 'progressing' && s++ < 120) await sim.second(2, healthy, healthy);
    expect(sim.controller.state.phase).toBe('paused');
    expect(s).toBeGreaterThanOrEqual(30);
    expect(s).toBeLessThanOrEqual(32);
    expect(sim.controller.state.reason).toMatch(
      /^paused: no verdict for 3\ds: waiting for traffic: \d+\/50 green requests/,
    );
    expect(sim.controller.state.weights.green).toBe(10);
    expect(sim.controller.state.history[0]?.event).toBe('paused');
    await sim.close();
  });

  it('rolls back a canary whose p95 rises past maxP95Ms', async () => {
    const sim = await simulate(3, cfg);
    await sim.controller.command({ type: 'start' }, 'test');
    for (let s = 0; s < 5; s++) await sim.second(300, healthy, healthy);
    const breach = sim.now();
    for (let s = 0; s < 30 && sim.controller.state.phase === 'progressing'; s++)
      await sim.second(300, healthy, { errorRate: 0.002, medianMs: 800 });
    expect(sim.controller.state.phase).toBe('rolled_back');
    expect(sim.controller.state.reason).toMatch(/^green p95/);
    expect((sim.controller.state.history[0]!.at - breach) / 1000).toBeLessThanOrEqual(5);
    await sim.close();
  });
});

describe('gradual rollback in the simulation (rollout.onFailure: rampDown)', () => {
  const ramp = { rollout: { stepHold: '20s', onFailure: 'rampDown' as const, rampDownOver: '30s' } };

  /** Start, and run healthy until the canary is at 50 % (step 3). */
  async function atHalf(sim: Sim, rps: number): Promise<void> {
    await sim.controller.command({ type: 'start' }, 'test');
    for (let s = 0; s < 60 && sim.controller.state.stepIndex < 2; s++) await sim.second(rps, healthy, healthy);
    expect(sim.controller.state.weights.green).toBe(50);
  }
  /** The history from the rollback on, oldest first. */
  const sinceRollback = (s: Readonly<ControllerState>): HistoryEntry[] => {
    const h = [...s.history].reverse();
    return h.slice(h.findIndex((e) => e.event === 'rolled_back'));
  };
  const failing5: PoolBehaviour = { errorRate: 0.05, medianMs: 5 };

  it('walks a canary failing 5 % from 50 % down 25 → 10 → 0 over rampDownOver, in 20 of 20 seeded runs', async () => {
    const detect: number[] = [];
    for (let seed = 300; seed < 320; seed++) {
      const sim = await simulate(seed, ramp);
      await atHalf(sim, 1000);
      const breach = sim.now();
      for (let s = 0; s < 120 && sim.controller.state.history[0]?.weights.green !== 0; s++)
        await sim.second(1000, healthy, failing5);
      const h = sinceRollback(sim.controller.state);
      expect(h.map((e) => [e.event, e.weights.green])).toEqual([
        ['rolled_back', 25],
        ['ramp_down', 10],
        ['ramp_down', 0],
      ]);
      expect(h.map((e) => e.phase)).toEqual(['rolled_back', 'rolled_back', 'rolled_back']);
      // Ticks fall on whole seconds, so each step lands on its due time: 15 s apart.
      expect(h.map((e) => e.at - h[0]!.at)).toEqual([0, 15_000, 30_000]);
      expect(sim.controller.state).toMatchObject({ rollbacks: 1, rampDown: null, weights: { green: 0 } });
      detect.push((h[0]!.at - breach) / 1000);
    }
    const sorted = detect.sort((a, b) => a - b);
    console.log(
      `rampDown, 5% errors at 50% and 1000 req/s: breach → first step down in ${sorted[0]}–${sorted.at(-1)} s, then 25 → 10 → 0 over 30 s, 20 of 20 runs`,
    );
  });

  it('snaps at once a canary answering 100 % errors, or one that loses its endpoints, at the verdict or during the walk', async () => {
    for (let seed = 400; seed < 410; seed++) {
      const sim = await simulate(seed, ramp);
      await atHalf(sim, 300);
      for (let s = 0; s < 10 && sim.controller.state.phase === 'progressing'; s++)
        await sim.second(300, healthy, { errorRate: 1, medianMs: 5 });
      expect(sim.controller.state.history[0]).toMatchObject({ event: 'rolled_back', weights: { green: 0 } });
      expect(sim.controller.state.reason).toMatch(/; severe: more than 50% errors: .*, cut at once$/);
    }
    const dead = await simulate(7, ramp);
    await atHalf(dead, 300);
    dead.endpoints.setActive(1, 0, false);
    await dead.second(300, healthy, healthy);
    expect(dead.controller.state).toMatchObject({
      phase: 'rolled_back',
      weights: { green: 0 },
      reason: 'green has no healthy endpoint, cut at once',
    });
    // A walk under way, then the endpoints go: cut short at the next tick.
    const walking = await simulate(8, ramp);
    await atHalf(walking, 1000);
    for (let s = 0; s < 20 && walking.controller.state.phase === 'progressing'; s++)
      await walking.second(1000, healthy, failing5);
    expect(walking.controller.state.weights.green).toBe(25);
    walking.endpoints.setActive(1, 0, false);
    await walking.second(1000, healthy, failing5);
    expect(walking.controller.state.history[0]).toMatchObject({ event: 'ramp_down', weights: { green: 0 } });
    expect(walking.controller.state.history[0]?.reason).toBe(
      'green to 0% at once (ramp down from 50% cut short): green has no healthy endpoint',
    );
    expect(sinceRollback(walking.controller.state).map((e) => e.weights.green)).toEqual([25, 0]);
  });

  it('a restart goes on by the clock from the saved walk', async () => {
    const store = new MemoryStateStore<ControllerState>();
    const a = await simulate(9, ramp, { store });
    await atHalf(a, 1000);
    for (let s = 0; s < 20 && a.controller.state.phase === 'progressing'; s++) await a.second(1000, healthy, failing5);
    expect(a.controller.state.weights.green).toBe(25);
    const startedAt = a.controller.state.rampDown!.startedAt;
    // Down for 20 s: the new process finds 10 % due (15 s in), and 0 at 30 s.
    const b = await simulate(10, ramp, { store, start: startedAt + 20_000 });
    expect(b.controller.state.weights.green).toBe(25);
    await b.second(1000, healthy, failing5);
    expect(b.controller.state.history[0]).toMatchObject({ event: 'ramp_down', weights: { green: 10 } });
    while (b.now() < startedAt + 30_000) await b.second(1000, healthy, failing5);
    expect(b.controller.state.history[0]).toMatchObject({
      event: 'ramp_down',
      weights: { green: 0 },
      at: startedAt + 30_000,
    });
  });

  /** A fleet link whose Redis can be taken away; this instance leads. */
  const link = (): FleetLink & { connected: boolean } => ({
    connected: true,
    leader: true,
    epoch: 1,
    pendingOf: null as { stable: string; rollbacks: number } | null,
    get pendingRollback() {
      return this.pendingOf !== null;
    },
    exchange: async (l) => l,
    publishSummary: () => {},
  });

  it('in a fleet with Redis away, an instance does not walk alone: the next step down is a cut to 0', async () => {
    const fleet = link();
    const sim = await simulate(12, ramp, { fleet });
    await atHalf(sim, 1000);
    for (let s = 0; s < 20 && sim.controller.state.phase === 'progressing'; s++)
      await sim.second(1000, healthy, failing5);
    const startedAt = sim.controller.state.rampDown!.startedAt;
    fleet.connected = false;
    while (sim.now() < startedAt + 14_000) await sim.second(1000, healthy, failing5);
    expect(sim.controller.state.weights.green).toBe(25);
    await sim.second(1000, healthy, failing5);
    expect(sim.controller.state).toMatchObject({ weights: { green: 0 }, rampDown: null, rollbacks: 1 });
    expect(sim.controller.state.history[0]?.reason).toBe(
      'green to 0% at once: Redis is unreachable: no walk down on this instance alone',
    );
    expect(fleet.pendingRollback).toBe(true);
  });

  it('each step down is published before it is persisted: a store that cannot be written does not hold it up', async () => {
    const inner = new MemoryStateStore<ControllerState>();
    let down = false;
    const store = {
      load: () => inner.load(),
      save: async (st: ControllerState, v: number) => {
        if (down) throw new StoreUnavailableError('Redis away');
        await inner.save(st, v);
      },
    };
    const fleet = link();
    const sim = await simulate(13, ramp, { store, fleet });
    await atHalf(sim, 1000);
    for (let s = 0; s < 20 && sim.controller.state.phase === 'progressing'; s++)
      await sim.second(1000, healthy, failing5);
    const startedAt = sim.controller.state.rampDown!.startedAt;
    down = true;
    while (sim.now() < startedAt + 15_000) await sim.second(1000, healthy, failing5);
    expect(sim.controller.state.weights.green).toBe(10);
    expect(inner.saved?.weights.green).toBe(25);
    expect(fleet.pendingRollback).toBe(true);
  });

  describe('a rollback applied alone while Redis is away', () => {
    /** An instance at 50 % that lost Redis and cut a failing green alone; its store's pending calls. */
    async function cutAlone(seed: number) {
      const inner = new MemoryStateStore<ControllerState>();
      const calls: string[] = [];
      const store = {
        load: () => inner.load(),
        save: (st: ControllerState, v: number) => inner.save(st, v),
        keepPending: async (st: ControllerState, of: { stable: string; rollbacks: number }) => {
          calls.push(`keep v${st.version} ${of.stable}/${of.rollbacks}`);
        },
        clearPending: async () => {
          calls.push('clear');
        },
      };
      const fleet = link();
      const sim = await simulate(seed, ramp, { store, fleet });
      await atHalf(sim, 1000);
      const before = structuredClone(sim.controller.state);
      fleet.connected = false;
      for (let s = 0; s < 30 && sim.controller.state.weights.green > 0; s++)
        await sim.second(1000, healthy, { errorRate: 1, medianMs: 5 });
      expect(sim.controller.state).toMatchObject({ phase: 'rolled_back', weights: { green: 0 } });
      expect([fleet.pendingRollback, fleet.pendingOf]).toEqual([true, { stable: 'blue', rollbacks: 0 }]);
      expect(calls).toEqual([`keep v${sim.controller.state.version} blue/0`]);
      fleet.connected = true;
      return { sim, fleet, inner, calls, before };
    }

    it('is written on top of the fleet state of the rollout it ended, once Redis is back', async () => {
      const { sim, fleet, inner, calls, before } = await cutAlone(21);
      await inner.save(before, inner.saved?.version ?? 0); // the fleet, as it stood
      await sim.controller.adopt(before);
      expect(inner.saved).toMatchObject({ phase: 'rolled_back', weights: { green: 0 }, version: before.version + 1 });
      expect([fleet.pendingRollback, fleet.pendingOf, calls.at(-1)]).toEqual([false, null, 'clear']);
    });

    it('is not written on a rollout the fleet started after it (an abort, then a new start)', async () => {
      const { sim, fleet, inner, calls, before } = await cutAlone(22);
      const newer = { ...before, rollbacks: before.rollbacks + 1, version: before.version + 4 };
      await inner.save(newer, inner.saved?.version ?? 0);
      await sim.controller.adopt(newer);
      expect(sim.controller.state).toMatchObject({ phase: 'progressing', version: newer.version, rollbacks: 1 });
      expect(inner.saved?.version).toBe(newer.version);
      expect([fleet.pendingRollback, fleet.pendingOf, calls.at(-1)]).toEqual([false, null, 'clear']);
    });
  });
});
