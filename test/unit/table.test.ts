/** The routing table publisher: one writer, versions only forward, subscribers get each value. */
import { describe, expect, it } from 'vitest';
import { isNewer, makeTable, TablePublisher, type RoutingTable } from '../../src/data/table.js';

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
