import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AccessLog } from '../../src/data/access-log.js';

describe('access log', () => {
  it('writes one valid JSON line per request, escaping what needs it, in batches', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sluice-al-')), 'access.log');
    const fd = openSync(file, 'w');
    const log = new AccessLog(fd, 10_000);
    const urls = ['/plain?a=1&b=2', '/quote"d', '/back\\slash', '/tab\there', '/ünïcode', '/%22encoded%22'];
    urls.forEach((u, i) => log.log(1_700_000_000_000 + i, `id-${i}`, 'GET', u, 200, 'blue', 'http://127.0.0.1:3001', 1.23456, '::1', i === 2 ? 'upstream_reset' : undefined));
    // Batched: nothing written until a flush.
    expect(readFileSync(file, 'utf8')).toBe('');
    await log.close();
    closeSync(fd);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.url)).toEqual(urls);
    expect(lines[0]).toEqual({ level: 30, time: 1_700_000_000_000, msg: 'access', reqId: 'id-0', method: 'GET', url: '/plain?a=1&b=2', status: 200, pool: 'blue', upstream: 'http://127.0.0.1:3001', ms: 1.235, remote: '::1' });
    expect(lines[2]!.error).toBe('upstream_reset');
  });

  it('drops and counts lines instead of buffering without bound', () => {
    const log = new AccessLog(-1, 1_000_000);
    (log as unknown as { writing: boolean }).writing = true; // a write that never completes
    const url = `/${'x'.repeat(1000)}`;
    for (let i = 0; i < 20_000; i++) log.log(0, 'id', 'GET', url, 200, 'blue', 'e', 1, 'r', undefined);
    expect(log.dropped).toBeGreaterThan(0);
  });
});
