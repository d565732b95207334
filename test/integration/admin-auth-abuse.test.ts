/**
 * Admin auth that attackers cannot turn against operators (issue 15), one test per reproducer of
 * the security review, on real sockets: failed tokens never lock out a valid one; many loopback
 * addresses are one source.
 */
import { request as httpRequest } from 'node:http';
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
});
