/**
 * A client slower than its upstream: what one response holds in memory for it, and whether it
 * reads too slowly to keep. An exchange makes one at its first stall (write() returned false), so
 * a client that keeps up costs nothing here.
 *
 * - Up to limits.bufferResponseBytes the answer is read on into memory (nginx proxy_buffers) from
 *   a shared budget: one that fits frees its upstream connection at once, whatever the client's
 *   pace, and a slow reader holds memory, not a connection.
 * - A client reading a trickle is never idle, yet holds its upstream connection as long as it
 *   likes: once responses have waited on it for `graceMs` in all, it must have read `minRate`
 *   bytes per second on average while they waited. Only stalled time counts, so a slow upstream
 *   (an event stream) is never blamed on the client.
 */
import type { Socket } from 'node:net';
import type { BodyBudget } from './body.js';

export interface PacePolicy {
  /** limits.bufferResponseBytes: what one response may hold for its client. */
  maxHeld: number;
  /** limits.minResponseRate, bytes per second (0: no minimum). */
  minRate: number;
  /** Stalled time before the minimum rate applies (timeouts.clientBody). */
  graceMs: number;
}

/** Bytes a socket has handed to the kernel (what the client has had the chance to read). */
const sent = (s: Socket): number => s.bytesWritten - s.writableLength;

export class ClientPace {
  /** Response bytes held in memory for this client, taken from the budget. */
  private held = 0;
  /** A stall is under way: waiting for 'drain'. */
  stalled = false;
  private stallStart = 0;
  private stallSent = 0;
  /** Time spent stalled and what the client read meanwhile, over all stalls so far. */
  private stalledMs = 0;
  private stalledRead = 0;

  constructor(
    private readonly policy: PacePolicy,
    private readonly budget: BodyBudget,
    private readonly now: () => number,
  ) {}

  /**
   * The client is behind with `pending` bytes buffered: may `n` more be held in memory (true), or
   * must the upstream wait (false)?
   */
  hold(n: number, pending: number): boolean {
    const b = this.budget;
    if (pending > this.policy.maxHeld || b.held + n > b.total) return false;
    this.held += n;
    b.held += n;
    return true;
  }

  /** A stall begins (once until it ends). */
  begin(socket: Socket | null): void {
    this.stalled = true;
    this.stallStart = this.now();
    if (socket !== null) this.stallSent = sent(socket);
  }

  /** The stall ended ('drain'): what was held is flushed. True when the client is too slow to keep. */
  end(socket: Socket | null): boolean {
    this.stalled = false;
    this.release();
    if (socket !== null) {
      this.stalledMs += this.now() - this.stallStart;
      this.stalledRead += sent(socket) - this.stallSent;
    }
    const { minRate, graceMs } = this.policy;
    if (minRate <= 0 || this.stalledMs < graceMs) return false;
    return this.stalledRead < (minRate * this.stalledMs) / 1000;
  }

  /** Give back what is held: flushed, or dropped with the response. */
  release(): void {
    if (this.held === 0) return;
    this.budget.held -= this.held;
    this.held = 0;
  }
}
