/**
 * The fleet's store and lease against a real redis-server: compare-and-set, fencing of a deposed
 * leader, re-seeding by the highest version. In-process Fleet objects (the process-level
 * behaviour is in fleet.test.ts).
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@redis/client';
import { initialState } from '../../src/control/controller.js';
import { StaleWriteError } from '../../src/control/state-store.js';
import { type ControllerState, validateState } from '../../src/control/state.js';
import { parseConfig } from '../../src/core/config.js';
import { Fleet, FleetUnavailableError } from '../../src/fleet/fleet.js';
import { until } from '../helpers/load.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.close();
});

let n = 0;
const config = parseConfig({
  pools: { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } },
});
const state = (version: number): ControllerState => ({ ...initialState(config), version });
const make = (name: string, leaseMs = 60_000, clock: () => number = Date.now) =>
  new Fleet({ url: redis.url, name, leaseMs, pollMs: 1000 }, validateState, clock, pino({ level: 'silent' }), 10);

describe('fleet store and lease', () => {
  it('one leader; compare-and-set on version; a deposed leader cannot write with its old epoch', async () => {
    const name = `s${++n}`;
    const a = make(name);
    await a.start();
    const b = make(name);
    await b.start();
    try {
      expect([a.leader, b.leader]).toEqual([true, false]);
      const e1 = a.epoch;
      await a.save(state(2), 1, e1);
      await expect(b.save(state(3), 1)).rejects.toBeInstanceOf(StaleWriteError);
      await b.save(state(3), 2); // an operator command: compare-and-set, no fence
      expect((await b.load()).state?.version).toBe(3);
      // a's lease lapses (as when its process is stopped past its time) and b takes it.
      const c = createClient({ url: redis.url });
      await c.connect();
      await c.del(`sluice:${name}:lease`);
      c.destroy();
      await (b as unknown as { renew(): Promise<void> }).renew();
      expect(b.leader).toBe(true);
      expect(b.epoch).toBe(e1 + 1);
      // a still thinks it leads (it has not renewed yet): its decision is refused all the same.
      expect(a.epoch).toBe(e1);
      await expect(a.save(state(4), 3, e1)).rejects.toThrow(/epoch/);
      await b.save(state(4), 3, b.epoch);
      expect((await a.load()).state?.version).toBe(4);
      await (a as unknown as { renew(): Promise<void> }).renew();
      expect(a.leader).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a leader whose clock passed its lease without a renewal no longer leads, before Redis says so', async () => {
    const name = `s${++n}`;
    let now = Date.now();
    const a = make(name, 60_000, () => now);
    await a.start();
    try {
      expect(a.leader).toBe(true);
      now += 59_000;
      expect(a.leader).toBe(true);
      // Paused past the lease: the timers have not run, the lease may still be in Redis; not ours.
      now += 1_000;
      expect(a.leader).toBe(false);
      // A renewal (the key is still ours in Redis) makes it the leader again, with the same epoch.
      const e = a.epoch;
      await (a as unknown as { renew(): Promise<void> }).renew();
      expect([a.leader, a.epoch]).toEqual([true, e]);
    } finally {
      await a.close();
    }
  });

  it('seeds an empty store; a lower version never replaces a higher one', async () => {
    const name = `s${++n}`;
    const a = make(name);
    await a.start();
    try {
      expect(await a.seed(state(7))).toBe(true);
      expect(await a.seed(state(5))).toBe(false);
      expect(await a.seed(state(7))).toBe(false);
      expect(await a.seed(state(9))).toBe(true);
      expect((await a.load()).state?.version).toBe(9);
    } finally {
      await a.close();
    }
  });

  it('tells a newer version to the others by message, and fails fast while Redis is away', async () => {
    const name = `s${++n}`;
    const a = make(name);
    const b = make(name);
    const seen: number[] = [];
    b.onState = (s) => seen.push(s.version);
    await a.start();
    await b.start();
    try {
      await a.save(state(2), 1);
      expect(await until(() => seen.includes(2), 3000)).toBe(true);
      await redis.kill();
      expect(await until(() => !a.connected, 3000)).toBe(true);
      await expect(a.save(state(3), 2)).rejects.toBeInstanceOf(FleetUnavailableError);
      await expect(a.load()).rejects.toBeInstanceOf(FleetUnavailableError);
      expect(a.leader).toBe(false);
      await redis.restart();
      expect(await until(() => a.connected && b.connected, 5000)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
