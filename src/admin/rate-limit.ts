/**
 * Failed-authentication limits for the admin API. They apply only to requests that present no
 * valid token: the server authenticates first, so a valid token is never answered 429 nor slowed,
 * whatever failures came from its source (issue 15: an attacker's guesses used to lock the
 * operator's `sluice rollout abort` out for a minute).
 *
 * What that means, said plainly: the limit does not stop online guessing (a blocked source that
 * guesses right still gets in); a token's entropy does (`sluice new-token` makes 256-bit ones).
 * The limit bounds what failures cost: answers, audit lines (collapsed per source) and memory.
 *
 * Sources are not bare addresses, because addresses are cheap for an attacker:
 * - every loopback address (127.0.0.0/8, ::1) is one source: any local process can bind any of
 *   16 million 127.x.y.z addresses, so per-address counting there is no limit at all;
 * - IPv6 counts per /64, the usual smallest allocation (one host commonly holds all of it);
 * - IPv4 counts per address.
 * On top, a global cap on failures from all sources together, for an attacker with many /64s or
 * IPv4 addresses: past it, every request without a valid token gets 429 until the window ends.
 * Memory stays bounded by it: a source is only recorded while the global cap is not reached.
 */
import type { Clock } from '../core/clock.js';
import { addressBytes } from '../core/net.js';

export interface FailureLimits {
  /** Failures per source within `windowMs`; past it, 429 for that source. */
  perSource: number;
  /** Failures from all sources together within `windowMs`; past it, 429 for everyone without a token. */
  global: number;
  windowMs: number;
}

export const DEFAULT_FAILURE_LIMITS: FailureLimits = { perSource: 10, global: 100, windowMs: 60_000 };

export interface Block {
  /** `source`: this source's own failures; `all`: the global cap. */
  scope: 'source' | 'all';
  retryAfterMs: number;
}

/**
 * The key failures (and collapsed audit lines) are counted under.
 * @example sourceOf('127.0.0.9') === 'loopback'; sourceOf('2001:db8:1:2::7') === '2001:db8:1:2::/64'
 */
export function sourceOf(address: string): string {
  const ip = address.replace(/%.*$/, ''); // an IPv6 zone index names an interface, not a host
  const b = addressBytes(ip);
  if (b === undefined) return ip === '' ? 'unknown' : ip;
  if (b.length === 4) return b[0] === 127 ? 'loopback' : Array.from(b).join('.');
  if (b.every((x, i) => x === (i === 15 ? 1 : 0))) return 'loopback';
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push((((b[i] as number) << 8) | (b[i + 1] as number)).toString(16));
  return `${groups.join(':')}::/64`;
}

/** Fixed windows, each opened by its first failure. Injected clock. */
export class FailureLimiter {
  private readonly failures = new Map<string, { count: number; since: number }>();
  private all = { count: 0, since: Number.NEGATIVE_INFINITY };

  constructor(
    private readonly limits: FailureLimits,
    private readonly clock: Clock,
  ) {}

  /** Whether a request from `source` that has no valid token is to be answered 429. */
  blocked(source: string): Block | undefined {
    const now = this.clock();
    const { perSource, global, windowMs } = this.limits;
    const f = this.failures.get(source);
    if (f !== undefined && now - f.since >= windowMs) this.failures.delete(source);
    else if (f !== undefined && f.count >= perSource)
      return { scope: 'source', retryAfterMs: f.since + windowMs - now };
    if (now - this.all.since < windowMs && this.all.count >= global)
      return { scope: 'all', retryAfterMs: this.all.since + windowMs - now };
    return undefined;
  }

  /** Count a failed authentication from `source` (one that was not blocked). */
  fail(source: string): void {
    const now = this.clock();
    const { windowMs, global } = this.limits;
    if (now - this.all.since >= windowMs) this.all = { count: 0, since: now };
    this.all.count++;
    const f = this.failures.get(source);
    if (f !== undefined && now - f.since < windowMs) {
      f.count++;
      return;
    }
    // Live windows opened within the last windowMs, while fewer than `global` failures were let
    // through per global window: at most 2 × global of them.
    if (this.failures.size >= 2 * global) this.prune(now);
    this.failures.set(source, { count: 1, since: now });
  }

  /** Sources with a live window (for tests and metrics). */
  get size(): number {
    return this.failures.size;
  }

  private prune(now: number): void {
    for (const [k, f] of this.failures) if (now - f.since >= this.limits.windowMs) this.failures.delete(k);
  }
}
