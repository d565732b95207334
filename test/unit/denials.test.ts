/** Denials collapse to one line per source per minute with a count; nothing is lost from the count. */
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/admin/audit.js';
import { DenialCollapser } from '../../src/admin/denials.js';

const denial = (n: number, status = 401, tokenId: string | null = null): AuditEntry => ({
  requestId: `r${n}`,
  tokenId,
  role: tokenId === null ? null : 'viewer',
  remote: '127.0.0.1',
  action: 'GET /api/v1/status',
  result: 'denied',
  status,
  detail: status === 401 ? 'unauthorized' : status === 429 ? 'too_many_failures' : 'forbidden',
});

const total = (lines: { entry: AuditEntry }[]) => lines.reduce((s, l) => s + (l.entry.count as number), 0);

describe('DenialCollapser', () => {
  it('writes the first denial at once and counts the rest into one summary when the window ends', () => {
    let now = 0;
    const c = new DenialCollapser({ windowMs: 60_000, maxSources: 10 }, () => now);
    const first = c.add('loopback', denial(0));
    expect(first).toHaveLength(1);
    expect(first[0]!.entry).toMatchObject({ requestId: 'r0', status: 401, source: 'loopback', count: 1 });
    for (let i = 1; i < 10; i++) expect(c.add('loopback', denial(i))).toEqual([]);
    for (let i = 10; i < 2000; i++) expect(c.add('loopback', denial(i, 429))).toEqual([]);
    now = 59_999;
    expect(c.due()).toEqual([]);
    now = 60_000;
    const [s, ...more] = c.due();
    expect(more).toEqual([]);
    expect(s!.at).toBe(60_000);
    expect(s!.entry).toMatchObject({
      action: 'denials',
      result: 'denied',
      source: 'loopback',
      remote: 'loopback',
      count: 1999,
      status: 429,
      requestId: 'r1999',
      since: new Date(0).toISOString(),
      codes: { '401 unauthorized': 9, '429 too_many_failures': 1990 },
    });
    expect(c.size).toBe(0);
    expect(total([first[0]!, s!])).toBe(2000);
  });

  it('writes no summary for a window that had only its first denial', () => {
    let now = 0;
    const c = new DenialCollapser({ windowMs: 1000, maxSources: 10 }, () => now);
    c.add('a', denial(0));
    now = 5000;
    expect(c.due()).toEqual([]);
    expect(c.size).toBe(0);
  });

  it('closes an ended window on the next denial: its summary, then the new first line', () => {
    let now = 0;
    const c = new DenialCollapser({ windowMs: 1000, maxSources: 10 }, () => now);
    c.add('a', denial(0));
    c.add('a', denial(1));
    c.add('a', denial(2));
    now = 1000;
    const lines = c.add('a', denial(3));
    expect(lines.map((l) => [l.entry.action, l.entry.count])).toEqual([
      ['denials', 2],
      ['GET /api/v1/status', 1],
    ]);
  });

  it('keeps sources, and anonymous and named principals, in separate windows', () => {
    const c = new DenialCollapser({ windowMs: 1000, maxSources: 10 }, () => 0);
    expect(c.add('a', denial(0))).toHaveLength(1);
    expect(c.add('b', denial(1))).toHaveLength(1);
    expect(c.add('a', denial(2, 403, 'viewer1'))).toHaveLength(1);
    expect(c.add('a', denial(3, 403, 'viewer1'))).toEqual([]);
    expect(c.add('a', denial(4))).toEqual([]);
    const drained = c.drain();
    expect(drained.map((l) => [l.entry.source, l.entry.tokenId, l.entry.count])).toEqual([
      ['a', null, 1],
      ['a', 'viewer1', 1],
    ]);
    expect(c.size).toBe(0);
  });

  it('past maxSources, further sources share one bucket: lines stay bounded and the count stays exact', () => {
    let now = 0;
    const c = new DenialCollapser({ windowMs: 1000, maxSources: 5 }, () => now);
    const lines = [];
    for (let i = 0; i < 1000; i++) lines.push(...c.add(`10.0.${i >> 8}.${i & 255}`, denial(i)));
    now = 1000;
    lines.push(...c.due());
    // 5 sources and the shared bucket open windows; only the shared one has a summary.
    expect(lines).toHaveLength(7);
    expect(lines.filter((l) => l.entry.source === '*')).toHaveLength(1);
    expect(total(lines)).toBe(1000);
  });

  it('makes room for new sources once old windows have ended', () => {
    let now = 0;
    const c = new DenialCollapser({ windowMs: 1000, maxSources: 2 }, () => now);
    c.add('a', denial(0));
    c.add('a', denial(1));
    c.add('b', denial(2));
    now = 1500;
    const lines = c.add('c', denial(3));
    expect(lines.map((l) => [l.entry.source, l.entry.count])).toEqual([
      ['a', 1],
      ['c', 1],
    ]);
  });
});
