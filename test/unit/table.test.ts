/** The routing table publisher: one writer, versions only forward, subscribers get each value. */
import { describe, expect, it } from 'vitest';
import { makeTable, TablePublisher, type RoutingTable } from '../../src/data/table.js';

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
