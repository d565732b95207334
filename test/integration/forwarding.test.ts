/** Forwarding on real sockets: split, headers sluice sets and strips, request ids, Host. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';
import { rawRequest } from '../helpers/raw.js';
import { bucketOf } from '../../src/data/murmur.js';

let blue: TestUpstream;
let green: TestUpstream;
let sluice: TestSluice | undefined;

beforeEach(async () => {
  blue = await startUpstream('blue');
  green = await startUpstream('green');
});
afterEach(async () => {
  await sluice?.stop();
  sluice = undefined;
  await blue.close();
  await green.close();
});

const get = async (url: string, headers: Record<string, string> = {}) => {
  const r = await request(url, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, json: () => JSON.parse(text) as { pool: string } };
};

describe('forwarding', () => {
  it('sends everyone to stable at 0 % and to the canary at 100 %', async () => {
    sluice = await startTestSluice(blue.url, green.url);
    for (let i = 0; i < 20; i++) expect((await get(`${sluice.base}/a`)).json().pool).toBe('blue');
    sluice.controller.setWeights({ blue: 0, green: 100 }, 'test');
    for (let i = 0; i < 20; i++) expect((await get(`${sluice.base}/a`)).json().pool).toBe('green');
    expect(blue.seen.length).toBe(20);
    expect(green.seen.length).toBe(20);
  });

  it('splits distinct clients by weight and keeps each client on its pool (XFF from a trusted proxy)', async () => {
    sluice = await startTestSluice(blue.url, green.url, { split: { trustedProxies: ['127.0.0.1/32'], initialCanaryWeight: 30 } });
    let greens = 0;
    for (let i = 0; i < 400; i++) {
      const ip = `198.51.${i >> 8}.${i & 255}`;
      const pool = (await get(`${sluice.base}/`, { 'x-forwarded-for': ip })).json().pool;
      expect(pool).toBe(bucketOf(ip) < 3000 ? 'green' : 'blue');
      if (pool === 'green') greens++;
      // Same client again: same pool.
      expect((await get(`${sluice.base}/`, { 'x-forwarded-for': ip })).json().pool).toBe(pool);
    }
    expect(greens).toBeGreaterThan(80);
    expect(greens).toBeLessThan(160);
  });

  it('keys by header when configured', async () => {
    sluice = await startTestSluice(blue.url, green.url, { split: { key: 'header:x-user', initialCanaryWeight: 50 } });
    for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
      const expected = bucketOf(user) < 5000 ? 'green' : 'blue';
      for (let i = 0; i < 3; i++) expect((await get(`${sluice.base}/`, { 'x-user': user })).json().pool).toBe(expected);
    }
  });

  it('honours the override header and cookie, and not when overrides are disabled', async () => {
    sluice = await startTestSluice(blue.url, green.url);
    expect((await get(`${sluice.base}/`, { 'x-sluice-pool': 'green' })).json().pool).toBe('green');
    expect((await get(`${sluice.base}/`, { cookie: 'sluice-pool=green' })).json().pool).toBe('green');
    // The override header is sluice's: the application does not see it.
    expect(green.seen[0]?.headers['x-sluice-pool']).toBeUndefined();
    await sluice.stop();
    sluice = await startTestSluice(blue.url, green.url, { split: { override: false } });
    expect((await get(`${sluice.base}/`, { 'x-sluice-pool': 'green' })).json().pool).toBe('blue');
  });

  it('sets X-Forwarded-* and X-Request-Id, ignores spoofed ones from untrusted peers, and passes Host', async () => {
    sluice = await startTestSluice(blue.url, green.url);
    const r = await get(`${sluice.base}/path?q=1`, { host: 'api.example.com', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil', 'x-forwarded-proto': 'https', 'x-request-id': 'spoof' });
    expect(r.status).toBe(200);
    const h = blue.seen[0]!.headers;
    expect(blue.seen[0]!.url).toBe('/path?q=1');
    expect(h.host).toBe('api.example.com');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-host']).toBe('api.example.com');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-request-id']).not.toBe('spoof');
    expect(h['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
    expect(r.headers['x-request-id']).toBe(h['x-request-id']);
    expect(r.headers['x-sluice-pool']).toBe('blue');
  });

  it('appends to X-Forwarded-For and keeps X-Request-Id from a trusted proxy', async () => {
    sluice = await startTestSluice(blue.url, green.url, { split: { trustedProxies: ['127.0.0.0/8'] } });
    await get(`${sluice.base}/`, { 'x-forwarded-for': '203.0.113.5', 'x-request-id': 'abc-123', 'x-forwarded-proto': 'https' });
    const h = blue.seen[0]!.headers;
    expect(h['x-forwarded-for']).toBe('203.0.113.5, 127.0.0.1');
    expect(h['x-request-id']).toBe('abc-123');
    expect(h['x-forwarded-proto']).toBe('https');
  });

  it('strips hop-by-hop headers both ways, including those named in Connection', async () => {
    blue.behaviour = (_req, res) => {
      res.writeHead(200, { connection: 'x-upstream-private', 'x-upstream-private': 'secret', 'x-public': 'yes', 'content-length': '2' });
      res.end('ok');
    };
    sluice = await startTestSluice(blue.url, green.url);
    const r = await rawRequest(sluice.proxyPort, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Private\r\nX-Private: 1\r\nTE: trailers\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\nX-Keep: 1\r\n\r\n');
    expect(r.status).toBe(200);
    const h = blue.seen[0]!.headers;
    expect(h['x-private']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['keep-alive']).toBeUndefined();
    expect(h['proxy-connection']).toBeUndefined();
    expect(h['x-keep']).toBe('1');
    expect(r.text.toLowerCase()).toContain('x-public: yes');
    expect(r.text.toLowerCase()).not.toContain('x-upstream-private');
  });

  it('passes methods, status codes, bodies and repeated headers through', async () => {
    blue.behaviour = (req, res, body) => {
      res.writeHead(201, 'Made It', [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['content-type', 'text/plain']].flat());
      res.end(`${req.method} ${body.toString()}`);
    };
    sluice = await startTestSluice(blue.url, green.url);
    const r = await request(`${sluice.base}/x`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(r.statusCode).toBe(201);
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(await r.body.text()).toBe('POST hello');
    const raw = await rawRequest(sluice.proxyPort, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(raw.text).toMatch(/^HTTP\/1\.1 201 Made It/);
  });

  it('sends a pool with no available endpoint no traffic while the other has one', async () => {
    sluice = await startTestSluice(blue.url, green.url, { split: { initialCanaryWeight: 100 } });
    sluice.pools[1].setActiveHealth(sluice.pools[1].endpoints[0]!, false);
    for (let i = 0; i < 10; i++) expect((await get(`${sluice.base}/`)).json().pool).toBe('blue');
    sluice.pools[1].setActiveHealth(sluice.pools[1].endpoints[0]!, true);
    expect((await get(`${sluice.base}/`)).json().pool).toBe('green');
  });

  it('balances several endpoints of a pool', async () => {
    const blue2 = await startUpstream('blue');
    try {
      sluice = await startTestSluice([blue.url, blue2.url], green.url);
      for (let i = 0; i < 40; i++) await get(`${sluice.base}/`);
      expect(blue.seen.length).toBeGreaterThanOrEqual(10);
      expect(blue2.seen.length).toBeGreaterThanOrEqual(10);
      expect(blue.seen.length + blue2.seen.length).toBe(40);
    } finally {
      await sluice?.stop();
      sluice = undefined;
      await blue2.close();
    }
  });
});
