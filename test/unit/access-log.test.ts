import { describe, expect, it } from 'vitest';
import { AccessLog, FLUSH_BYTES, millis } from '../../src/data/access-log.js';

/** A sink that keeps each write, as the shared log destination would receive them. */
const sink = () => {
  const writes: string[] = [];
  return { writes, write: (chunk: string) => writes.push(chunk) };
};

describe('access log', () => {
  it('writes one valid JSON line per request, escaping what needs it, in one batch', () => {
    const out = sink();
    const log = new AccessLog(out, 10_000);
    const urls = ['/plain?a=1&b=2', '/quote"d', '/back\\slash', '/tab\there', '/ünïcode', '/%22encoded%22'];
    // Lines two by two in one millisecond: each line keeps its own time.
    for (const [i, u] of urls.entries()) {
      log.log(
        1_700_000_000_000 + (i >> 1),
        `id-${i}`,
        'GET',
        u,
        200,
        'blue',
        'http://127.0.0.1:3001',
        1.23456,
        '::1',
        i === 2 ? 'upstream_reset' : undefined,
      );
    }
    // Batched: nothing handed over until a flush.
    expect(out.writes).toEqual([]);
    log.close();
    expect(out.writes.length).toBe(1);
    const lines = out.writes[0]!.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.url)).toEqual(urls);
    expect(lines.map((l) => l.time)).toEqual(urls.map((_, i) => 1_700_000_000_000 + (i >> 1)));
    expect(lines.map((l) => l.reqId)).toEqual(urls.map((_, i) => `id-${i}`));
    expect(lines[0]).toEqual({
      level: 30,
      time: 1_700_000_000_000,
      msg: 'access',
      reqId: 'id-0',
      method: 'GET',
      url: '/plain?a=1&b=2',
      status: 200,
      pool: 'blue',
      upstream: 'http://127.0.0.1:3001',
      ms: 1.235,
      remote: '::1',
    });
    expect(lines[2]!.error).toBe('upstream_reset');
  });

  it('hands over a full batch at once, without waiting for the timer', () => {
    const out = sink();
    const log = new AccessLog(out, 1_000_000);
    const lines = Math.ceil((2 * FLUSH_BYTES) / 200);
    for (let i = 0; i < lines; i++) log.log(0, 'id', 'GET', `/${'x'.repeat(200)}`, 200, 'blue', 'e', 1, 'r', undefined);
    expect(out.writes.length).toBeGreaterThan(0);
    expect(out.writes.every((w) => w.length >= FLUSH_BYTES)).toBe(true);
    log.close();
    expect(out.writes.join('').trim().split('\n').length).toBe(lines);
  });

  it('writes milliseconds with three decimals as the same number a rounding would give', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [-0.2, '0'],
      [Number.NaN, '0'],
      [0.0004, '0'],
      [0.0005, '0.001'],
      [0.05, '0.050'],
      [1.23456, '1.235'],
      [2, '2.000'],
      [9.9999, '10.000'],
      [123.4, '123.400'],
      [3_000_000.007, '3000000.007'],
    ];
    for (const [ms, text] of cases) {
      expect(millis(ms)).toBe(text);
      expect(Number(text)).toBe(Math.max(0, Math.round(ms * 1000) / 1000) || 0);
    }
    // Property: any duration up to a day reads back as the rounded value.
    for (let i = 0; i < 10_000; i++) {
      const ms = Math.random() * 86_400_000 * (i % 2 ? 1 : 1e-6);
      expect(Number(millis(ms))).toBe(Math.round(ms * 1000) / 1000);
    }
  });
});
