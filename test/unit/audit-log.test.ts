/** The audit file: mutations always in full, denials collapsed and bounded by maxBytes, reopened for logrotate. */
import { existsSync, mkdtempSync, readFileSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AuditEntry, AuditLog } from '../../src/admin/audit.js';

const entry = (n: number, result = 'denied', status = 401): AuditEntry => ({
  requestId: `r${n}`,
  tokenId: null,
  role: null,
  remote: '127.0.0.1',
  action: result === 'ok' ? 'weights.set' : 'GET /api/v1/status',
  result,
  status,
  detail: result === 'denied' ? 'unauthorized' : undefined,
});

const lines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l))
    : [];

function setup(maxBytes = 1 << 20) {
  let now = Date.UTC(2026, 0, 1);
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-audit-')), 'sub', 'audit.jsonl');
  const log = new AuditLog(file, { maxBytes, clock: () => now });
  return { file, log, advance: (ms: number) => (now += ms) };
}

describe('AuditLog', () => {
  it('writes mutations in full, in order, stamped with the injected clock, mode 0600', async () => {
    const { file, log } = setup();
    await Promise.all([log.write(entry(1, 'ok', 200)), log.write(entry(2, 'ok', 200)), log.write(entry(3, 'ok', 200))]);
    await log.close();
    expect(lines(file).map((l) => [l.requestId, l.time])).toEqual([
      ['r1', '2026-01-01T00:00:00.000Z'],
      ['r2', '2026-01-01T00:00:00.000Z'],
      ['r3', '2026-01-01T00:00:00.000Z'],
    ]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('collapses denials: the first at once, the rest as one summary at the end of the minute or at close', async () => {
    const { file, log, advance } = setup();
    for (let i = 0; i < 500; i++) await log.deny('loopback', entry(i));
    expect(lines(file)).toHaveLength(1);
    advance(60_000);
    await log.flushEnded();
    expect(lines(file).map((l) => l.count)).toEqual([1, 499]);
    for (let i = 0; i < 3; i++) await log.deny('loopback', entry(i));
    await log.close();
    expect(lines(file).map((l) => l.count)).toEqual([1, 499, 1, 2]);
  });

  it('past maxBytes stops writing denials with one line saying so, still writes mutations, and starts again after reopen', async () => {
    const { file, log, advance } = setup(4096);
    let i = 0;
    // A new window for every denial (60 s apart): each one is a line of its own, ~250 bytes.
    for (; i < 40; i++) {
      await log.deny('loopback', entry(i));
      advance(60_000);
    }
    const all = lines(file);
    expect(all.length).toBeLessThan(40);
    expect(all.filter((l) => l.action === 'audit.denials_suppressed')).toHaveLength(1);
    expect(all.at(-1)?.action).toBe('audit.denials_suppressed');
    expect(statSync(file).size).toBeLessThanOrEqual(4096 + 400);
    await log.write(entry(999, 'ok', 200));
    expect(lines(file).at(-1)).toMatchObject({ requestId: 'r999', result: 'ok' });
    const before = lines(file).length;
    await log.deny('loopback', entry(i++));
    expect(lines(file)).toHaveLength(before);

    // logrotate: move the file away, then SIGUSR1 → reopen(): a new file, denials written again.
    renameSync(file, `${file}.1`);
    await log.reopen();
    expect(existsSync(file)).toBe(true);
    advance(60_000);
    await log.deny('loopback', entry(i++));
    await log.close();
    expect(lines(file)).toHaveLength(1);
    expect(lines(`${file}.1`)).toHaveLength(before);
  });

  it('does nothing when audit.file is null', async () => {
    const log = new AuditLog(null, { maxBytes: 4096, clock: () => 0 });
    await log.write(entry(1, 'ok', 200));
    await log.deny('loopback', entry(2));
    await log.reopen();
    await log.close();
  });
});
