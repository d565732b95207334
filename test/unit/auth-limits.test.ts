/** Failed-authentication limits: what a source is, and when a source (or everyone) gets 429. */
import { describe, expect, it } from 'vitest';
import { FailureLimiter, sourceOf } from '../../src/admin/rate-limit.js';

describe('sourceOf', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.5', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['10.1.2.3', '10.1.2.3'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2::7', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:3::7', '2001:db8:1:3::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::2', '0:0:0:0::/64'],
    ['', 'unknown'],
    ['not-an-address', 'not-an-address'],
  ])('%s is counted as %s', (address, source) => {
    expect(sourceOf(address)).toBe(source);
  });
});

/** Drive a limiter through steps at given times; each step: fail (f) or check (c) with the expected answer. */
type Step = [at: number, op: 'f' | 'c', source: string, expect?: 'ok' | 'source' | 'all'];

describe('FailureLimiter', () => {
  const limits = { perSource: 3, global: 5, windowMs: 1000 };
  it.each<[string, Step[]]>([
    [
      'blocks a source after perSource failures, until its window ends',
      [
        [0, 'f', 'a'],
        [10, 'f', 'a'],
        [20, 'c', 'a', 'ok'],
        [20, 'f', 'a'],
        [21, 'c', 'a', 'source'],
        [999, 'c', 'a', 'source'],
        [1000, 'c', 'a', 'ok'],
      ],
    ],
    [
      'counts each source apart',
      [
        [0, 'f', 'a'],
        [0, 'f', 'a'],
        [0, 'f', 'a'],
        [1, 'c', 'a', 'source'],
        [1, 'c', 'b', 'ok'],
      ],
    ],
    [
      'caps failures from all sources together (many addresses, one attacker)',
      [
        [0, 'f', 'a'],
        [0, 'f', 'b'],
        [0, 'f', 'c'],
        [0, 'f', 'd'],
        [0, 'c', 'e', 'ok'],
        [0, 'f', 'e'],
        [1, 'c', 'never-seen', 'all'],
        [1, 'c', 'a', 'all'],
        [999, 'c', 'z', 'all'],
        [1000, 'c', 'z', 'ok'],
      ],
    ],
    [
      'a window opens at its first failure, not at a fixed clock boundary',
      [
        [500, 'f', 'a'],
        [900, 'f', 'a'],
        [1400, 'f', 'a'],
        [1450, 'c', 'a', 'source'],
        [1500, 'c', 'a', 'ok'],
        [1500, 'f', 'a'],
        [1501, 'c', 'a', 'ok'],
      ],
    ],
  ])('%s', (_name, steps) => {
    let now = 0;
    const l = new FailureLimiter(limits, () => now);
    for (const [i, [at, op, source, want]] of steps.entries()) {
      now = at;
      if (op === 'f') l.fail(source);
      else expect(l.blocked(source)?.scope ?? 'ok', `step ${i}`).toBe(want);
    }
  });

  it('says how long until the source may try again', () => {
    let now = 0;
    const l = new FailureLimiter(limits, () => now);
    for (let i = 0; i < 3; i++) l.fail('a');
    now = 250;
    expect(l.blocked('a')).toEqual({ scope: 'source', retryAfterMs: 750 });
  });

  it('keeps memory bounded by the global cap whatever the number of sources', () => {
    let now = 0;
    const l = new FailureLimiter({ perSource: 10, global: 50, windowMs: 1000 }, () => now);
    let most = 0;
    for (let i = 0; i < 100_000; i++) {
      now = i; // 100 s of one new address every millisecond
      const source = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      if (l.blocked(source) === undefined) l.fail(source);
      most = Math.max(most, l.size);
    }
    expect(most).toBeLessThanOrEqual(100);
    expect(most).toBeGreaterThan(50);
  });
});
