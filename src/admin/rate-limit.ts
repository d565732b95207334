/**
 * Failed-authentication limit per source address: after `max` failures within `windowMs`, further
 * requests from that address get 429 until the window passes. Bounded memory; injected clock.
 */
import type { Clock } from '../core/clock.js';

export class FailureLimiter {
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {}

  /** Milliseconds until `source` may try again, or 0 when it may try now. */
  blockedFor(source: string): number {
    const f = this.failures.get(source);
    if (f === undefined) return 0;
    const left = f.since + this.windowMs - this.clock();
    if (left <= 0) {
      this.failures.delete(source);
      return 0;
    }
    return f.count >= this.max ? left : 0;
  }

  fail(source: string): void {
    const now = this.clock();
    const f = this.failures.get(source);
    if (f === undefined || now - f.since >= this.windowMs) {
      if (this.failures.size >= 10_000) this.prune(now);
      this.failures.set(source, { count: 1, since: now });
    } else f.count++;
  }

  private prune(now: number): void {
    for (const [k, f] of this.failures) if (now - f.since >= this.windowMs) this.failures.delete(k);
    if (this.failures.size >= 10_000) this.failures.clear();
  }
}
