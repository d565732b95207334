/** The routing table publisher: one writer, versions only forward, subscribers get each value. */
import { describe, expect, it } from 'vitest';
import { isNewer, makeTable, TablePublisher, type RoutingTable, type TableExtras } from '../../src/data/table.js';

describe('TablePublisher', () => {
  it('publishes newer tables to every subscriber and refuses an older one', () => {
    const p = new TablePublisher(makeTable(3, 'blue', { blue: 90, green: 10 }));
    const seen: number[] = [];
    const off = p.subscribe((t: RoutingTable) => seen.push(t.version));
    p.publish(makeTable(4, 'blue', { blue: 50, green: 50 }));
    expect(p.current.canaryBuckets).toBe(5000);
    // The same version again (a restart re-applying saved state) is allowed.
    p.publish(makeTable(4, 'blue', { blue: 50, green: 50 }));
    expect(() => p.publish(makeTable(2, 'blue', { blue: 100, green: 0 }))).toThrow(/older/);
    expect(p.current.version).toBe(4);
    off();
    p.publish(makeTable(5, 'green', { blue: 0, green: 100 }));
    expect(seen).toEqual([4, 4]);
    expect(p.current).toMatchObject({ version: 5, stable: 1, canary: 0, canaryBuckets: 0 });
  });
});

describe('table versions: the rollout and the endpoint availability each only move forward', () => {
  const avail = (health: number) => ({ health, endpoints: [[{ up: health % 2 === 0, ejectedUntil: 0 }], []] as const });
  it.each([
    // [cur version, cur health, next version, next health, newer]
    [4, 2, 4, 2, true],
    [4, 2, 5, 2, true],
    [4, 2, 4, 3, true],
    [4, 2, 5, 3, true],
    [4, 2, 3, 9, false],
    [4, 2, 9, 1, false],
  ])('%i/%i then %i/%i: accepted %s', (v, hv, nv, nh, ok) => {
    const cur = makeTable(v, 'blue', { blue: 100, green: 0 }, avail(hv) as never);
    const next = makeTable(nv, 'blue', { blue: 100, green: 0 }, avail(nh) as never);
    expect(isNewer(next, cur)).toBe(ok);
    const p = new TablePublisher(cur);
    if (ok) p.publish(next);
    else expect(() => p.publish(next)).toThrow(/older/);
    expect(p.current).toBe(ok ? next : cur);
  });
});

describe('fault injection in the table', () => {
  const f = { pool: 'green' as const, abortPercent: 20.5, abortStatus: 503, delayPercent: 0.01, delayMs: 300 };
  it.each<[string, TableExtras['faults'], RoutingTable['faults']]>([
    ['none', null, null],
    [
      'shares per 10,000 and the pool by id',
      f,
      { pool: 1, abortPer10k: 2050, abortStatus: 503, delayPer10k: 1, delayMs: 300 },
    ],
    ['blue', { ...f, pool: 'blue' }, { pool: 0, abortPer10k: 2050, abortStatus: 503, delayPer10k: 1, delayMs: 300 }],
    [
      'a delay of 0 ms is no delay',
      { ...f, delayMs: 0 },
      { pool: 1, abortPer10k: 2050, abortStatus: 503, delayPer10k: 0, delayMs: 0 },
    ],
    ['nothing to inject: no fault at all', { ...f, abortPercent: 0, delayPercent: 0 }, null],
  ])('%s', (_name, input, want) => {
    const t = makeTable(1, 'blue', { blue: 90, green: 10 }, undefined, { faults: input });
    expect(t.faults).toEqual(want);
    // Plain data: it crosses to worker threads whole.
    expect(structuredClone(t)).toEqual(t);
  });
});
