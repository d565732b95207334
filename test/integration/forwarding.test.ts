/** Forwarding on real sockets: split, headers sluice sets and strips, request ids, Host. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';
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
    await sluice.controller.setWeights({ blue: 0, green: 100 }, 'test');
    for (let i = 0; i < 20; i++) expect((await get(`${sluice.base}/a`)).json().pool).toBe('green');
    expect(blue.seen.length).toBe(20);
    expect(green.seen.length).toBe(20);
  });

  it('splits distinct clients by weight and keeps each client on its pool (XFF from a trusted proxy)', async () => {
    sluice = await startTestSluice(blue.url, green.url, {
      split: { trustedProxies: ['127.0.0.1/32'], initialCanaryWeight: 30 },
    });
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
    const r = await get(`${sluice.base}/path?q=1`, {
      host: 'api.example.com',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-host': 'evil',
      'x-forwarded-proto': 'https',
      'x-request-id': 'spoof',
    });
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
    await get(`${sluice.base}/`, {
      'x-forwarded-for': '203.0.113.5',
      'x-request-id': 'abc-123',
      'x-forwarded-proto': 'https',
    });
    const h = blue.seen[0]!.headers;
    expect(h['x-forwarded-for']).toBe('203.0.113.5, 127.0.0.1');
    expect(h['x-request-id']).toBe('abc-123');
    expect(h['x-forwarded-proto']).toBe('https');
  });

  it('strips hop-by-hop headers both ways, including those named in Connection', async () => {
    blue.behaviour = (_req, res) => {
      res.writeHead(200, {
        connection: 'x-upstream-private',
        'x-upstream-private': 'secret',
        'x-public': 'yes',
        'content-length': '2',
      });
      res.end('ok');
    };
    sluice = await startTestSluice(blue.url, green.url);
    const r = await rawRequest(
      sluice.proxyPort,
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Private\r\nX-Private: 1\r\nTE: trailers\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\nX-Keep: 1\r\n\r\n',
    );
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
      res.writeHead(
        201,
        'Made It',
        [
          ['set-cookie', 'a=1'],
          ['set-cookie', 'b=2'],
          ['content-type', 'text/plain'],
        ].flat(),
      );
      res.end(`${req.method} ${body.toString()}`);
    };
    sluice = await startTestSluice(blue.url, green.url);
    const r = await request(`${sluice.base}/x`, {
      method: 'POST',
      body: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(r.statusCode).toBe(201);
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(await r.body.text()).toBe('POST hello');
    const raw = await rawRequest(sluice.proxyPort, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(raw.text).toMatch(/^HTTP\/1\.1 201 Made It/);
  });

  it('frames every response as the upstream did, on one client connection, and truncates a short body', async () => {
    const piece = 'x'.repeat(20_000);
    blue.behaviour = (req, res) => {
      const later = (f: () => void) => setTimeout(f, 5);
      switch (req.url) {
        case '/cl':
          res.writeHead(200, { 'content-length': '5' });
          return void res.end('hello');
        case '/cl-pieces': // the last piece completes the length: it ends the client response
          res.writeHead(200, { 'content-length': String(piece.length * 3) });
          res.write(piece);
          return later(() => {
            res.write(piece);
            later(() => res.end(piece));
          });
        case '/chunked':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('a');
          return later(() => res.end('b'));
        case '/empty':
          res.writeHead(200, { 'content-length': '0' });
          return void res.end();
        case '/no-content':
          res.writeHead(204);
          return void res.end();
        case '/short': // promises 100 bytes, sends 10, closes
          res.writeHead(200, { 'content-length': '100' });
          res.write('0123456789');
          return later(() => res.destroy());
        default:
          res.writeHead(404, { 'content-length': '0' });
          res.end();
      }
    };
    sluice = await startTestSluice(blue.url, green.url);
    const client = new Client(sluice.base, { pipelining: 1 });
    let connects = 0;
    client.on('connect', () => connects++);
    try {
      const ask = async (path: string, method: 'GET' | 'HEAD' = 'GET') => {
        const r = await client.request({ path, method });
        return {
          status: r.statusCode,
          length: r.headers['content-length'],
          te: r.headers['transfer-encoding'],
          text: await r.body.text(),
        };
      };
      for (let round = 0; round < 2; round++) {
        expect(await ask('/cl')).toEqual({ status: 200, length: '5', te: undefined, text: 'hello' });
        expect(await ask('/cl-pieces')).toEqual({
          status: 200,
          length: String(piece.length * 3),
          te: undefined,
          text: piece.repeat(3),
        });
        expect(await ask('/chunked')).toEqual({ status: 200, length: undefined, te: 'chunked', text: 'ab' });
        expect(await ask('/empty')).toEqual({ status: 200, length: '0', te: undefined, text: '' });
        expect(await ask('/no-content')).toEqual({ status: 204, length: undefined, te: undefined, text: '' });
      }
      // One connection for all ten: had one answer been framed wrong, the next would not parse.
      expect(connects).toBe(1);
      expect(blue.seen).toHaveLength(10);
      // Last on this connection: undici's client does not reuse a connection after HEAD.
      expect(await ask('/cl', 'HEAD')).toEqual({ status: 200, length: '5', te: undefined, text: '' });
      const short = await client.request({ path: '/short', method: 'GET' });
      expect(short.statusCode).toBe(200);
      await expect(short.body.text()).rejects.toThrow();
    } finally {
      await client.destroy();
    }
  });

  it('sends a pool with no available endpoint no traffic while the other has one', async () => {
    sluice = await startTestSluice(blue.url, green.url, { split: { initialCanaryWeight: 100 } });
    sluice.endpoints.setActive(1, 0, false);
    for (let i = 0; i < 10; i++) expect((await get(`${sluice.base}/`)).json().pool).toBe('blue');
    sluice.endpoints.setActive(1, 0, true);
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
