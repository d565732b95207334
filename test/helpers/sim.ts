/**
 * A simulated rollout: the real Recorder, WindowRing and Controller, a fake clock, and synthetic
 * traffic recorded straight into the recorder (no sockets), one simulated second per tick. The
 * recorder follows the published table (its sequential check armed as on a data plane); an alarm
 * runs the controller's urgent verdict before the next simulated request (a real one takes a few
 * ms, during which a few more requests may arrive: the simulation is exact about false alarms and
 * a lower bound on the requests a failing canary gets).
 */
import pino from 'pino';
import { parseConfig, type ConfigInput } from '../../src/core/config.js';
import { Controller, type FleetLink } from '../../src/control/controller.js';
import { MemoryStateStore, type StateStore } from '../../src/control/state-store.js';
import type { ControllerState } from '../../src/control/state.js';
import { makeTable, poolIdOf, TablePublisher } from '../../src/data/table.js';
import { EndpointBook } from '../../src/control/endpoints.js';
import { Recorder } from '../../src/stats/recorder.js';
import { WindowRing } from '../../src/stats/window.js';

/** mulberry32: a seeded PRNG. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A latency sample in ms: log-normal around `medianMs` (a few ms with jitter). */
export function latency(r: () => number, medianMs: number, sigma = 0.5): number {
  const u = Math.max(1e-12, r());
  const v = r();
  const n = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return medianMs * Math.exp(sigma * n);
}

export interface PoolBehaviour {
  errorRate: number;
  medianMs: number;
}

export interface Sim {
  controller: Controller;
  recorder: Recorder;
  endpoints: EndpointBook;
  store: StateStore<ControllerState>;
  now: () => number;
  /** Simulate one second of traffic at `rps` (split by the current weights), then tick. */
  second(rps: number, blue: PoolBehaviour, green: PoolBehaviour): Promise<void>;
  /** `n` requests (split by the current weights) and no tick: part of an interval. */
  requests(n: number, blue: PoolBehaviour, green: PoolBehaviour): Promise<void>;
  /** Failed requests green received so far, the sequential alarms raised, the controller's looks at the counts. */
  readonly counts: { greenFailures: number; alarms: number; peeks: number };
  close(): Promise<void>;
}

export interface SimOptions {
  /** The store the controller loads from and saves to (default: a fresh memory store). */
  store?: StateStore<ControllerState>;
  /** The simulated clock's start (ms). */
  start?: number;
  fleet?: FleetLink;
}

export async function simulate(seed: number, extra: Partial<ConfigInput> = {}, opts: SimOptions = {}): Promise<Sim> {
  const config = parseConfig({
    pools: { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } },
    ...extra,
  });
  let t = opts.start ?? 1_000_000;
  const clock = () => t;
  const r = rng(seed);
  const recorder = new Recorder();
  const window = new WindowRing(Math.ceil(config.rollout.analysis.window / config.rollout.analysis.interval));
  const endpoints = new EndpointBook(
    [config.pools.blue.endpoints, config.pools.green.endpoints],
    { ejectFor: 1000 },
    clock,
  );
  const table = new TablePublisher(makeTable(0, 'blue', { blue: 100, green: 0 }, endpoints.current));
  const store = opts.store ?? new MemoryStateStore<ControllerState>();
  const counts = { greenFailures: 0, alarms: 0, peeks: 0 };
  let alarmed = false;
  recorder.onAlarm = () => {
    alarmed = true;
    counts.alarms++;
  };
  table.subscribe((t) => recorder.guard(t.canary, t.sequential));
  const controller = await Controller.create({
    config,
    table,
    store,
    fleet: opts.fleet,
    window,
    endpoints,
    intervals: (spare) => recorder.takeInterval(spare),
    peek: () => {
      counts.peeks++;
      return recorder.counts();
    },
    clock,
    logger: pino({ level: 'silent' }),
  });
  const step = config.rollout.analysis.interval;
  const sim: Sim = {
    controller,
    recorder,
    endpoints,
    store,
    now: clock,
    counts,
    async requests(n, blue, green) {
      let share = table.current.weights.green / 100;
      for (let i = 0; i < n; i++) {
        const g = r() < share;
        const b = g ? green : blue;
        const fail = r() < b.errorRate;
        if (g && fail) counts.greenFailures++;
        recorder.record(poolIdOf(g ? 'green' : 'blue'), fail ? 503 : 200, latency(r, b.medianMs) * 1000, undefined);
        if (alarmed) {
          alarmed = false;
          await controller.urgent();
          share = table.current.weights.green / 100;
        }
      }
    },
    async second(rps, blue, green) {
      const ticks = Math.round(1000 / step);
      for (let k = 0; k < ticks; k++) {
        await sim.requests(Math.round((rps * step) / 1000), blue, green);
        t += step;
        await controller.tick();
      }
    },
    close: async () => {},
  };
  return sim;
}
