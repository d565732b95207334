/** What a reload may change: the plan from the running config and the new one (pure). */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/core/config.js';
import { configHash, RESTART_KEYS, reloadPlan } from '../../src/core/reload.js';

const pools = { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } };
const base = parseConfig({ pools });

describe('reloadPlan', () => {
  it.each([
    [{}, [], []],
    [{ pools: { ...pools, green: { endpoints: ['http://127.0.0.1:3'] } } }, ['pools.green.endpoints'], []],
    [{ rollout: { analysis: { maxErrorRate: 0.05 } } }, ['rollout.analysis.maxErrorRate'], []],
    [{ rollout: { steps: [5, 100] } }, ['rollout.steps'], []],
    [{ log: { level: 'debug' } }, ['log.level'], []],
    [{ listen: { port: 8081 } }, ['listen.port'], ['listen.port']],
    [{ workers: 2 }, ['workers'], ['workers']],
    [{ timeouts: { idle: '61s' } }, ['timeouts.idle'], ['timeouts.idle']],
    [{ timeouts: { queue: '2s' } }, ['timeouts.queue'], []],
    [{ rollout: { analysis: { window: '20s' } } }, ['rollout.analysis.window'], ['rollout.analysis.window']],
    [{ fleet: { redis: 'redis://127.0.0.1:6379', name: 'x' } }, ['fleet'], ['fleet']],
    [{ listen: { port: 8081 }, rollout: { stepHold: '1m' } }, ['listen.port', 'rollout.stepHold'], ['listen.port']],
  ])('%j changes %j, of which %j need a restart', (change, changed, restart) => {
    const next = parseConfig({ pools, ...change });
    const plan = reloadPlan(base, next);
    expect(plan.changed.sort()).toEqual([...changed].sort());
    expect(plan.restart.sort()).toEqual([...restart].sort());
  });

  it('a restart key matches itself and what is under it, not a key that only starts with its name', () => {
    expect(RESTART_KEYS).toContain('admin.host');
    const next = parseConfig({ pools, admin: { tokens: [] }, audit: { maxBytes: 1 << 20 } });
    expect(reloadPlan(base, next).restart).toEqual(['audit.maxBytes']);
  });

  it('the hash follows the settings, not the order they were written in', () => {
    const a = parseConfig({ pools, log: { level: 'info', access: true } });
    const b = parseConfig({ log: { access: true, level: 'info' }, pools });
    expect(configHash(a)).toBe(configHash(b));
    expect(configHash(parseConfig({ pools, log: { level: 'debug' } }))).not.toBe(configHash(a));
  });
});
