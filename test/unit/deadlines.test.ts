import { describe, expect, it } from 'vitest';
import { ResponseDeadlines, type Awaiting } from '../../src/data/deadlines.js';

/** An exchange stand-in that records when (at which tick of the test) it timed out. */
class Waiter implements Awaiting {
  awaitPrev: Awaiting | undefined;
  awaitNext: Awaiting | undefined;
  awaitLinked = false;
  sentTick = 0;
  firedAt: number | undefined;
  constructor(
    readonly name: string,
    private readonly clock: { tick: number },
    private readonly onFire: (w: Waiter) => void = () => {},
  ) {}
  deadlinePassed(): void {
    this.firedAt = this.clock.tick;
    this.onFire(this);
  }
}

/** Drive `d` tick by tick; `at[k]` runs before tick k+1. Returns when each waiter fired. */
function run(d: ResponseDeadlines, ticks: number, at: Record<number, (clock: { tick: number }) => void>) {
  const clock = { tick: 0 };
  for (; clock.tick < ticks; ) {
    at[clock.tick]?.(clock);
    clock.tick++;
    d.advance();
  }
  return clock;
}

describe('response deadlines', () => {
  it.each([
    // timeoutMs, tickMs, ticks a waiter added at tick 0 waits before failing
    [1000, 250, 5],
    [1000, 300, 5],
    [400, 100, 5],
    [30_000, 500, 61],
    [50, 10, 6],
  ])(
    'a %d ms timeout on %d ms ticks fails after %d ticks: never early, at most two ticks late',
    (timeoutMs, tickMs, after) => {
      const d = new ResponseDeadlines(timeoutMs, tickMs);
      let w: Waiter | undefined;
      run(d, after + 3, { 0: (c) => d.add((w = new Waiter('a', c))) });
      expect(w!.firedAt).toBe(after);
      // Added just after a tick, it has waited (after - 1) whole ticks: more than the timeout.
      expect((after - 1) * tickMs).toBeGreaterThanOrEqual(timeoutMs);
      expect(after * tickMs).toBeLessThan(timeoutMs + 2 * tickMs);
      expect(d.waiting).toBe(0);
    },
  );

  it('defaults to ticks of a quarter of the timeout, between 10 and 500 ms', () => {
    expect(new ResponseDeadlines(30_000).tickMs).toBe(500);
    expect(new ResponseDeadlines(400).tickMs).toBe(100);
    expect(new ResponseDeadlines(20).tickMs).toBe(10);
  });

  it('fails the oldest first, spares removed ones, and restarts a re-added one', () => {
    const d = new ResponseDeadlines(100, 100); // fails on the 2nd tick after its add
    const ws: Record<string, Waiter> = {};
    const add = (name: string) => (c: { tick: number }) => d.add((ws[name] = ws[name] ?? new Waiter(name, c)));
    run(d, 10, {
      0: (c) => {
        add('a')(c);
        add('b')(c);
        add('c')(c);
      },
      1: (c) => {
        d.remove(ws.b!); // headers arrived
        add('a')(c); // a retry: sent again
        add('d')(c);
      },
    });
    expect(ws.c!.firedAt).toBe(2);
    expect(ws.b!.firedAt).toBeUndefined();
    expect(ws.a!.firedAt).toBe(3);
    expect(ws.d!.firedAt).toBe(3);
    expect(d.waiting).toBe(0);
  });

  it('survives a failure that ends other waiters while the tick walks the list', () => {
    const d = new ResponseDeadlines(100, 100);
    const clock = { tick: 0 };
    const later = new Waiter('later', clock);
    const first = new Waiter('first', clock, () => d.remove(later));
    const second = new Waiter('second', clock, () => d.add(new Waiter('retry', clock)));
    d.add(first);
    d.add(second);
    d.add(later);
    clock.tick = 1;
    d.advance();
    clock.tick = 2;
    d.advance();
    expect([first.firedAt, second.firedAt, later.firedAt]).toEqual([2, 2, undefined]);
    expect(d.waiting).toBe(1); // the retry, sent at tick 2
  });
});
