/**
 * Hostile input beyond the basics in client-limits.test.ts: Transfer-Encoding obfuscations,
 * spoofed and garbage routing input, headers only sluice may set, slow bodies, Expect:
 * 100-continue, pipelining. Raw TCP clients; recording upstreams count every byte they get.
 */
import { describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { request } from 'undici';
import { sharedSluice } from '../helpers/fixture.js';
import { sendBytes } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw.js';
import { bucketOf } from '../../src/data/murmur.js';

/** Bytes /big sends: far more than the socket buffers between a client that stops reading and it. */
const BIG = 256 * 1024 * 1024;
const echo = (name: string) => (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
  if (req.url === '/big') return sendBytes(res, BIG);
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pool: name, url: req.url, bytes: body.length }));
};
const fx = sharedSluice(
  { split: { initialCanaryWeight: 50 }, timeouts: { idle: '700ms', clientHeaders: '700ms', clientBody: '700ms' } },
  echo,
);
const upstreamBytes = fx.upstreamBytes;
const post = (te: string, body = '5\r\nhello\r\n0\r\n\r\n') => `POST / HTTP/1.1\r\nHost: a\r\n${te}\r\n\r\n${body}`;

describe('request smuggling: Transfer-Encoding obfuscations get 400 and reach no upstream', () => {
  it.each([
    ['xchunked', post('Transfer-Encoding: xchunked')],
    ['chunked, chunked', post('Transfer-Encoding: chunked, chunked')],
    ['gzip, chunked', post('Transfer-Encoding: gzip, chunked')],
    ['chunked with a parameter', post('Transfer-Encoding: chunked;ext=1')],
    ['two Transfer-Encoding headers', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked')],
    ['space before the colon', post('Transfer-Encoding : chunked')],
    ['vertical tab in the value', post('Transfer-Encoding: \u000bchunked')],
    ['folded onto the next line', post('Transfer-Encoding:\r\n chunked')],
    ['chunked, identity', post('Transfer-Encoding: chunked, identity')],
    [
      'CL.TE with a smuggled request',
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n',
    ],
    ['chunk size overflow', post('Transfer-Encoding: chunked', 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n')],
    ['chunk without its CRLF', post('Transfer-Encoding: chunked', '5\r\nhelloXX0\r\n\r\n')],
    ['bare CR in a header value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n'],
  ])('%s', async (_name, payload) => {
    const r = await rawRequest(fx.sluice.proxyPort, payload);
    expect(r.status).toBe(400);
    await new Promise((res) => setTimeout(res, 30));
    expect(upstreamBytes()).toBe(0);
  });

  it('accepts plain chunked (any case) and forwards a well-framed body', async () => {
    const r = await rawRequest(fx.sluice.proxyPort, post('Transfer-Encoding: Chunked\r\nConnection: close'));
    expect(r.status).toBe(200);
    expect(r.text).toContain('"bytes":5');
  });
});

describe('headers only sluice sets', () => {
  it('the upstream sees exactly one of each forwarding header, set by sluice, and no spoofed variant', async () => {
    const r = await rawRequest(
      fx.sluice.proxyPort,
      'GET /f HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX_Forwarded_For: 8.8.8.8\r\nX-Forwarded-Proto: https\r\n' +
        'X-Forwarded-Host: evil\r\nX-Request-Id: fake\r\nForwarded: for=9.9.9.9\r\nX-Real-IP_: 1\r\nConnection: close, X-Forwarded-For\r\n\r\n',
    );
    expect(r.status).toBe(200);
    const seen = [...fx.blue.seen, ...fx.green.seen].find((x) => x.url === '/f')!;
    const count = (name: string) =>
      seen.rawHeaders.filter((_, i) => i % 2 === 0 && seen.rawHeaders[i]!.toLowerCase() === name).length;
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-host']).toBe('api.example');
    expect(seen.headers['x-request-id']).not.toBe('fake');
    for (const n of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id'])
      expect(count(n)).toBe(1);
    expect(seen.headers.forwarded).toBeUndefined();
    expect(seen.rawHeaders.some((h) => h.includes('_'))).toBe(false);
  });
});

describe('routing abuse', () => {
  it('a spoofed X-Forwarded-For from an untrusted peer does not change the pool', async () => {
    const own = bucketOf('127.0.0.1') < 5000 ? 'green' : 'blue';
    for (let i = 0; i < 40; i++) {
      const r = await request(`${fx.sluice.base}/`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      expect(((await r.body.json()) as { pool: string }).pool).toBe(own);
    }
  });

  it.each([
    '',
    ';;;;',
    'sluice-pool',
    'sluice-pool=',
    'sluice-pool=purple',
    'sluice-pool="green',
    `sluice-pool=${'g'.repeat(4000)}`,
    'sluice-pool=blue; sluice-pool=green',
    '=green',
    'x=\u00ff\u00fe',
  ])('a garbage override cookie %j falls back cleanly', async (cookie) => {
    const r = await request(`${fx.sluice.base}/`, { headers: { cookie } });
    expect(r.statusCode).toBe(200);
    const pool = ((await r.body.json()) as { pool: string }).pool;
    // Anything but one override cookie whose value is exactly blue or green (two of them too)
    // routes by the key, at 50 % canary here.
    const expected = bucketOf('127.0.0.1') < 5000 ? 'green' : 'blue';
    expect(pool).toBe(expected);
  });
});

describe('slow clients and protocol corners', () => {
  it('answers a slow body 408 at timeouts.clientBody and closes it, with nothing upstream, while normal requests keep being served', async () => {
    const slow = Array.from({ length: 20 }, () =>
      rawRequest(
        fx.sluice.proxyPort,
        ['POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n', 'abc'],
        6000,
        100,
      ),
    );
    // Normal traffic meanwhile: every request answered.
    for (let i = 0; i < 30; i++) {
      const r = await request(`${fx.sluice.base}/ok`);
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
    const before = fx.upstreamBytes();
    const results = await Promise.all(slow);
    for (const r of results) {
      expect(r.status).toBe(408);
      expect(r.text).toContain('"code":"body_timeout"');
      expect(r.closed).toBe(true);
      expect(r.closedAfterMs).toBeLessThan(5000);
    }
    // The bodies were buffered, never streamed: no POST byte reached an upstream.
    expect(fx.upstreamBytes()).toBe(before);
    expect(fx.blue.seen.concat(fx.green.seen).filter((s) => s.url === '/slow')).toEqual([]);
  });

  it('closes a client that stops reading a response at timeouts.idle (the response is cut short)', async () => {
    const sock = connect(fx.sluice.proxyPort, '127.0.0.1');
    let received = 0;
    sock.on('data', (d: Buffer) => (received += d.length));
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise((r) => setTimeout(r, 300));
    sock.pause(); // stop reading: the kernel buffers fill, then sluice's writes stall
    // timeouts.idle is 700 ms here; stay away 3 s, then read whatever is left.
    await new Promise((r) => setTimeout(r, 3000));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.resume();
    await closed;
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(BIG);
    // Meanwhile and after, others are served.
    const r = await request(`${fx.sluice.base}/ok`);
    expect(r.statusCode).toBe(200);
    await r.body.dump();
  });

  it('answers Expect: 100-continue, then forwards the body (without the Expect header)', async () => {
    const sock = connect(fx.sluice.proxyPort, '127.0.0.1');
    let buf = '';
    sock.on('data', (d) => (buf += d.toString()));
    sock.write('POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (buf.includes('100 Continue')) {
          clearInterval(t);
          r();
        }
      }, 5);
    });
    sock.write('hello');
    await new Promise((r) => sock.on('close', r));
    expect(buf).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
    expect(buf).toContain('"bytes":5');
    const seen = [...fx.blue.seen, ...fx.green.seen].find((x) => x.url === '/e')!;
    expect(seen.headers.expect).toBeUndefined();
  });

  it('answers pipelined requests in order', async () => {
    const r = await rawRequest(
      fx.sluice.proxyPort,
      'GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\nGET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const urls = [...r.text.matchAll(/"url":"(\/p\d)"/g)].map((m) => m[1]);
    expect(urls).toEqual(['/p1', '/p2', '/p3']);
  });
});
