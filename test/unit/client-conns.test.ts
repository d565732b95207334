/** Per-client connection counts shared by workers: one column each, summed; a dead column is cleared. */
import { describe, expect, it } from 'vitest';
import { ClientConnections, clearColumn, clientConnBuffer, SLOTS } from '../../src/data/client-conns.js';

describe('ClientConnections', () => {
  it('counts a client over every column, and frees places on close', () => {
    const buffer = clientConnBuffer(2);
    const a = new ClientConnections(3, { buffer, column: 0, columns: 2 });
    const b = new ClientConnections(3, { buffer, column: 1, columns: 2 });
    const x = a.slot('10.0.0.1');
    expect(b.slot('10.0.0.1')).toBe(x);
    expect(x).toBeGreaterThanOrEqual(0);
    expect(x).toBeLessThan(SLOTS);
    expect([a.open(x), b.open(x), b.open(x)]).toEqual([true, true, true]);
    // The fourth is refused on either worker, and refusing counts nothing.
    expect(a.open(x)).toBe(false);
    expect(b.open(x)).toBe(false);
    b.close(x);
    expect(a.open(x)).toBe(true);
    expect(a.open(x)).toBe(false);
    // Another address has its own budget (unless it shares the slot).
    const y = a.slot('10.0.0.2');
    expect(y).not.toBe(x);
    expect(b.open(y)).toBe(true);
  });

  it("clears a dead worker's column: its connections no longer count", () => {
    const buffer = clientConnBuffer(2);
    const a = new ClientConnections(2, { buffer, column: 0, columns: 2 });
    const b = new ClientConnections(2, { buffer, column: 1, columns: 2 });
    const x = a.slot('192.0.2.7');
    expect([b.open(x), b.open(x), a.open(x)]).toEqual([true, true, false]);
    clearColumn(buffer, 1);
    expect([a.open(x), a.open(x), a.open(x)]).toEqual([true, true, false]);
  });

  it('alone (workers: 1), it is one column of its own', () => {
    const c = new ClientConnections(1);
    const s = c.slot('::1');
    expect([c.open(s), c.open(s)]).toEqual([true, false]);
    c.close(s);
    expect(c.open(s)).toBe(true);
  });
});
