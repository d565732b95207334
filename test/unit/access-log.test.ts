import { describe, expect, it } from 'vitest';
import { AccessLog, FLUSH_BYTES, millis, nginxEscape, timeLocal } from '../../src/data/access-log.js';

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
        '1.1',
        200,
        'blue',
        'http://127.0.0.1:3001',
        1.23456,
        0.5,
        1234,
        '::1',
        i === 0 ? 'curl/8.5 "quoted"' : undefined,
        i === 0 ? 'https://example.test/' : undefined,
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
      proto: '1.1',
      status: 200,
      bytes: 1234,
      pool: 'blue',
      upstream: 'http://127.0.0.1:3001',
      ms: 1.235,
      upstreamMs: 0.5,
      remote: '::1',
      ua: 'curl/8.5 "quoted"',
      referer: 'https://example.test/',
    });
    expect(lines[1]).not.toHaveProperty('ua');
    expect(lines[2]!.error).toBe('upstream_reset');
  });

  it('hands over a full batch at once, without waiting for the timer', () => {
    const out = sink();
    const log = new AccessLog(out, 1_000_000);
    const lines = Math.ceil((2 * FLUSH_BYTES) / 200);
    for (let i = 0; i < lines; i++)
      log.log(
        0,
        'id',
        'GET',
        `/${'x'.repeat(200)}`,
        '1.1',
        200,
        'blue',
        'e',
        1,
        1,
        0,
        'r',
        undefined,
        undefined,
        undefined,
      );
    expect(out.writes.length).toBeGreaterThan(0);
    expect(out.writes.every((w) => w.length >= FLUSH_BYTES)).toBe(true);
    log.close();
    expect(out.writes.join('').trim().split('\n').length).toBe(lines);
  });

  it("writes nginx's combined and common formats, escaped as nginx escapes", () => {
    const out = sink();
    const log = new AccessLog(out, 10_000);
    log.configure({ accessFormat: 'combined', accessSample: 1 });
    const t = Date.UTC(2026, 11, 1, 8, 5, 9, 250);
    log.log(
      t,
      'a',
      'GET',
      '/p?q="x"',
      '1.1',
      200,
      'blue',
      'e',
      3,
      2,
      512,
      '10.0.0.1',
      'Mozilla/5.0 "x"',
      undefined,
      undefined,
    );
    log.log(t, 'b', 'POST', '/ü', '1.0', 502, 'green', 'e', 3, 0, 0, '::1', undefined, 'http://r/', 'connect_refused');
    log.configure({ accessFormat: 'common', accessSample: 1 });
    log.log(t + 1000, 'c', 'HEAD', '/', '1.1', 204, 'blue', 'e', 1, 1, 0, '10.0.0.2', 'ua', 'ref', undefined);
    log.close();
    expect(out.writes.join('').split('\n')).toEqual([
      '10.0.0.1 - - [01/Dec/2026:08:05:09 +0000] "GET /p?q=\\x22x\\x22 HTTP/1.1" 200 512 "-" "Mozilla/5.0 \\x22x\\x22"',
      '::1 - - [01/Dec/2026:08:05:09 +0000] "POST /\\xFC HTTP/1.0" 502 0 "http://r/" "-"',
      '10.0.0.2 - - [01/Dec/2026:08:05:10 +0000] "HEAD / HTTP/1.1" 204 0',
      '',
    ]);
    // nginx's combined layout, as log parsers read it.
    const combined = /^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) (HTTP\/[\d.]+)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$/;
    const m = combined.exec(out.writes.join('').split('\n')[0] as string);
    expect(m?.slice(1)).toEqual([
      '10.0.0.1',
      '-',
      '01/Dec/2026:08:05:09 +0000',
      'GET',
      '/p?q=\\x22x\\x22',
      'HTTP/1.1',
      '200',
      '512',
      '-',
      'Mozilla/5.0 \\x22x\\x22',
    ]);
    expect(timeLocal(Date.UTC(2027, 0, 9, 23, 59, 59))).toBe('09/Jan/2027:23:59:59 +0000');
    expect(nginxEscape('a\\b\tc')).toBe('a\\x5Cb\\x09c');
  });

  it('samples successful requests by log.accessSample and always writes 4xx, 5xx and failures', () => {
    const out = sink();
    const log = new AccessLog(out, 10_000);
    log.configure({ accessFormat: 'json', accessSample: 0.25 });
    const line = (status: number, error?: string) =>
      log.log(0, 'i', 'GET', '/', '1.1', status, 'blue', 'e', 1, 1, 0, 'r', undefined, undefined, error);
    for (let i = 0; i < 400; i++) line(200);
    for (let i = 0; i < 30; i++) line(404);
    for (let i = 0; i < 20; i++) line(503);
    for (let i = 0; i < 10; i++) line(200, 'client_abort');
    log.close();
    const statuses = out.writes
      .join('')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { status: number; error?: string }).status);
    expect(statuses.filter((s) => s === 200).length).toBe(100 + 10);
    expect(statuses.filter((s) => s === 404).length).toBe(30);
    expect(statuses.filter((s) => s === 503).length).toBe(20);
    log.configure({ accessFormat: 'json', accessSample: 0 });
    line(200);
    log.close();
    expect(out.writes.length).toBe(1);
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
