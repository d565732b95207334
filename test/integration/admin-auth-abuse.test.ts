/**
 * Admin auth that attackers cannot turn against operators (issue 15), one test per reproducer of
 * the security review, on real sockets: failed tokens never lock out a valid one; many loopback
 * addresses are one source; a flood of denials writes a bounded audit; the DNS-rebinding 403 is
 * audited.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/admin/auth.js';
import { harness } from '../helpers/harness.js';
import { startTestSluice } from '../helpers/sluice.js';
import { startUpstream } from '../helpers/upstream.js';

const h = harness();
const OPS = 'ops-secret-token';
const tokens = [{ id: 'ops', sha256: sha256Hex(OPS), role: 'operator' as const }];

async function start(extra = {}, clock?: () => number) {
  const blue = h.track(await startUpstream('blue'));
  const green = h.track(await startUpstream('green'));
  return (h.sluice = await startTestSluice(
    blue.url,
    green.url,
    { admin: { host: '127.0.0.1', port: 0, tokens }, ...extra },
    clock === undefined ? {} : { clock, autoTick: false },
  ));
}

/** One request on its own connection, from `localAddress` (any 127.x.y.z works on Linux). */
function call(
  port: number,
  method: string,
  path: string,
  opts: { token?: string; localAddress?: string; host?: string; body?: unknown } = {},
): Promise<{ status: number; headers: Record<string, unknown>; json: any }> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        localAddress: opts.localAddress,
        headers: {
          ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }),
          ...(opts.host === undefined ? {} : { host: opts.host }),
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const auditLines = (dir: string) =>
  readFileSync(join(dir, 'audit.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

describe('admin auth under attack', () => {
  it('10 bad tokens from an address, then the operator token from it: 200, and the abort goes through', async () => {
    const s = await start({ split: { initialCanaryWeight: 10 } });
    for (let i = 0; i < 10; i++)
      expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: `guess-${i}` })).status).toBe(401);
    const limited = await call(s.adminPort, 'GET', '/api/v1/status', { token: 'guess-10' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);

    expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: OPS })).status).toBe(200);
    const abort = await call(s.adminPort, 'POST', '/api/v1/rollout/abort', {
      token: OPS,
      body: { reason: 'incident' },
    });
    expect(abort.status).toBe(200);
    expect(abort.headers['retry-after']).toBeUndefined();
    expect(s.controller.state.weights.green).toBe(0);
    // The operator's successes do not reset the attacker's count.
    expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: 'guess-11' })).status).toBe(429);
  });

  it('60 guesses from 60 loopback addresses are one source: 429 after 10; the operator still gets in from any', async () => {
    const s = await start();
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++)
      statuses.push(
        (await call(s.adminPort, 'GET', '/api/v1/status', { token: `g${i}`, localAddress: `127.0.0.${i + 2}` })).status,
      );
    expect(statuses.slice(0, 10)).toEqual(new Array(10).fill(401));
    expect(statuses.slice(10)).toEqual(new Array(50).fill(429));
    for (const localAddress of ['127.0.0.2', '127.0.0.61', '127.0.0.200'])
      expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: OPS, localAddress })).status).toBe(200);
  });

  it('2,000 bad-token requests write 3 audit lines whose counts add up to every denial', async () => {
    let now = Date.UTC(2026, 5, 1);
    const s = await start({}, () => now);
    const bad = () =>
      request(`${s.admin}/api/v1/status`, { headers: { authorization: 'Bearer nope' } }).then(async (r) => {
        await r.body.dump();
        return r.statusCode;
      });
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) statuses.push(...(await Promise.all(Array.from({ length: 20 }, bad))));
    expect(statuses.filter((c) => c === 401)).toHaveLength(10);
    expect(statuses.filter((c) => c === 429)).toHaveLength(1990);
    // The first denial is written at once; the others are only counted so far.
    expect(auditLines(s.dir)).toHaveLength(1);

    // The minute ends: the next denial brings the summary, then opens a new window.
    now += 60_000;
    expect(await bad()).toBe(401);
    await s.stop();
    const lines = auditLines(s.dir);
    expect(lines.map((l) => [l.action, l.count])).toEqual([
      ['GET /api/v1/status', 1],
      ['denials', 1999],
      ['GET /api/v1/status', 1],
    ]);
    expect(lines[1]).toMatchObject({
      result: 'denied',
      source: 'loopback',
      codes: { '401 unauthorized': 9, '429 too_many_failures': 1990 },
      since: new Date(Date.UTC(2026, 5, 1)).toISOString(),
    });
    expect(JSON.stringify(lines)).not.toContain('nope');
  });

  it('a foreign Host (DNS rebinding) gets 403 and is audited, on every path', async () => {
    const s = await start();
    const r = await call(s.adminPort, 'GET', '/api/v1/status', { host: 'rebind.example', token: OPS });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('forbidden_host');
    expect(auditLines(s.dir)).toEqual([
      expect.objectContaining({
        result: 'denied',
        status: 403,
        detail: 'forbidden_host',
        host: 'rebind.example',
        remote: '127.0.0.1',
        count: 1,
      }),
    ]);
    expect((await call(s.adminPort, 'GET', '/healthz', { host: 'rebind.example:9901' })).status).toBe(403);
    await s.stop();
    expect(auditLines(s.dir).map((l) => l.count)).toEqual([1, 1]);
  });
});
