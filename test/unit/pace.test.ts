/** ClientPace (data/pace.ts): what a slow client may hold in memory, and when it is too slow to keep. */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { BodyBudget } from '../../src/data/body.js';
import { ClientPace } from '../../src/data/pace.js';

/** The two counters ClientPace reads off a socket, moved by hand. */
function socketAt(state: { written: number; pending: number }): Socket {
  return {
    get bytesWritten() {
      return state.written;
    },
    get writableLength() {
      return state.pending;
    },
  } as unknown as Socket;
}

describe('ClientPace.hold', () => {
  it('holds chunks while the response and the shared budget allow, and gives them back', () => {
    const budget = new BodyBudget(100);
    const pace = new ClientPace({ maxHeld: 50, minRate: 0, graceMs: 1000 }, budget, () => 0);
    expect(pace.hold(30, 10)).toBe(true);
    expect(budget.held).toBe(30);
    // This response already has more pending than it may hold.
    expect(pace.hold(10, 51)).toBe(false);
    expect(pace.hold(60, 40)).toBe(true);
    // The budget is what all responses share: 90 held, 20 more would pass it.
    expect(pace.hold(20, 0)).toBe(false);
    pace.release();
    expect(budget.held).toBe(0);
    pace.release();
    expect(budget.held).toBe(0);
  });

  it('holds nothing when bufferResponseBytes is 0', () => {
    const pace = new ClientPace({ maxHeld: 0, minRate: 0, graceMs: 0 }, new BodyBudget(1 << 20), () => 0);
    expect(pace.hold(1, 1)).toBe(false);
  });
});

describe('ClientPace.end (limits.minResponseRate after timeouts.clientBody of stalls)', () => {
  const policy = { maxHeld: 0, minRate: 1000, graceMs: 10_000 };

  it.each([
    // [stalls as [ms stalled, bytes the client read meanwhile], too slow after the last?]
    ['one long stall, a trickle read', [[12_000, 100]], true],
    ['one long stall, enough read', [[12_000, 20_000]], false],
    ['a trickle, but stalled less than the grace', [[9_000, 10]], false],
    ['many short stalls adding up past the grace, a trickle', Array(30).fill([500, 10]), true],
    ['many short stalls, each drained fast enough', Array(30).fill([500, 600]), false],
  ] as const)('%s: %s', (_name, stalls, tooSlow) => {
    let now = 0;
    const state = { written: 0, pending: 0 };
    const socket = socketAt(state);
    const pace = new ClientPace(policy, new BodyBudget(0), () => now);
    let verdict = false;
    for (const [ms, read] of stalls) {
      state.pending = 64 * 1024;
      state.written += 64 * 1024;
      pace.begin(socket);
      expect(pace.stalled).toBe(true);
      now += ms;
      state.pending -= read;
      verdict = pace.end(socket);
      expect(pace.stalled).toBe(false);
      // Time between stalls (the upstream's own pace) never counts.
      now += 60_000;
    }
    expect(verdict).toBe(tooSlow);
  });

  it('never judges with minResponseRate 0', () => {
    let now = 0;
    const socket = socketAt({ written: 0, pending: 0 });
    const pace = new ClientPace({ maxHeld: 0, minRate: 0, graceMs: 0 }, new BodyBudget(0), () => now);
    pace.begin(socket);
    now += 1e6;
    expect(pace.end(socket)).toBe(false);
  });
});
