/**
 * No client can lock up a pool (issue 15): pipelining clients that never read, bodies that drip,
 * requests queued behind a full pool, bad bytes after a good request. After each hostile client
 * the idle invariant must hold again within timeouts.idle + 1 s: no exchange in flight, no
 * upstream connection busy, nothing queued. Raw sockets; counting upstreams.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import { sendBytes, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';
import { rawRequest } from '../helpers/raw.js';

const IDLE_MS = 1000;
const CONNECTIONS = 8;
/** What one /big answer sends: more than the kernel buffers between sluice and a client that stops reading. */
const BIG = 48 * 1024 * 1024;

function behaviour(name: string) {
  return (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    if (req.url === '/big') return sendBytes(res, BIG);
    if (req.url === '/hold') return void held.push(res);
    if (req.url?.startsWith('/sized/')) {
      const size = Number(req.url.slice(7));
      res.writeHead(200, { 'content-length': String(size) });
      return res.end(Buffer.alloc(size, 121));
    }
    if (req.url === '/fail') {
      res.statusCode = 503;
      return res.end('down');
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ pool: name, url: req.url, bytes: body.length }));
  };
}
let held: ServerResponse[] = [];

let ups: TestUpstream[] = [];
let sluice: TestSluice | undefined;
let sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  for (const r of held) r.destroy();
  held = [];
  await sluice?.stop();
  sluice = undefined;
  await Promise.all(ups.map((u) => u.close()));
  ups = [];
});

async function start(extra: Parameters<typeof startTestSluice>[2] = {}) {
  ups = [await startUpstream('blue', behaviour('blue')), await startUpstream('green', behaviour('green'))];
  sluice = await startTestSluice(ups[0]!.url, ups[1]!.url, {
    upstream: { connections: CONNECTIONS },
    timeouts: { idle: IDLE_MS, queue: '500ms', clientBody: '1s', clientHeaders: '2s' },
    ...extra,
  });
  return sluice;
}

/** Exchanges in flight and upstream connections busy or queued, from the status document. */
function load(s: TestSluice) {
  const doc = s.status();
  const c = Object.values(doc.pools).map((p) => p.connections);
  return {
    inflight: doc.inflight,
    busy: c.reduce((n, x) => n + x.busy, 0),
    queued: c.reduce((n, x) => n + x.queued, 0),
  };
}

/** Wait until nothing is in flight or held upstream, for at most `ms`; returns the last reading. */
async function idleWithin(s: TestSluice, ms: number) {
  const until = Date.now() + ms;
  let l = load(s);
  while ((l.inflight !== 0 || l.busy !== 0 || l.queued !== 0) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    l = load(s);
  }
  return l;
}

const IDLE = { inflight: 0, busy: 0, queued: 0 };

/** A raw client that sends `payload` and then never reads. */
function neverReads(port: number, payload: string): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.pause();
      s.write(payload);
      resolve(s);
    });
    s.on('error', () => {});
    sockets.push(s);
  });
}

const seenAt = (path: string) => ups.flatMap((u) => u.seen).filter((x) => x.url === path).length;

async function get(s: TestSluice, path: string) {
  const r = await request(`${s.base}${path}`, { dispatcher: new Agent({ pipelining: 0 }) });
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers };
}

describe('pipelining clients that never read', () => {
  it('hold one upstream request per connection, and release everything once they close', async () => {
    const s = await start();
    const pipelined = 'GET /big HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(10);
    for (let i = 0; i < 6; i++) await neverReads(s.proxyPort, pipelined);
    // Each connection's first request is being answered; the nine behind it wait their turn.
    await expect.poll(() => load(s).inflight, { timeout: 5000 }).toBe(60);
    await expect.poll(() => load(s).busy, { timeout: 5000 }).toBe(6);
    expect(seenAt('/big')).toBeLessThanOrEqual(6);
    // Two connections are still free: a normal client is served meanwhile.
    expect((await get(s, '/ok')).status).toBe(200);
    for (const sock of sockets) sock.destroy();
    expect(await idleWithin(s, IDLE_MS + 1000)).toEqual(IDLE);
    expect(seenAt('/big')).toBeLessThanOrEqual(6);
    expect((await get(s, '/ok')).status).toBe(200);
  });

  it('are cut at timeouts.idle when they stay connected, and the pool answers again', async () => {
    const s = await start();
    // More clients than upstream connections, on both pools (the override locks green the same way).
    for (let i = 0; i < 6; i++) await neverReads(s.proxyPort, 'GET /big HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(5));
    const forced = 'GET /big HTTP/1.1\r\nHost: a\r\nX-Sluice-Pool: green\r\n\r\n'.repeat(5);
    for (let i = 0; i < 6; i++) await neverReads(s.proxyPort, forced);
    await expect.poll(() => load(s).busy, { timeout: 5000 }).toBe(12);
    // Nothing is closed by the clients: sluice closes them once they have been quiet for idle.
    expect(await idleWithin(s, IDLE_MS + 1000 + 2000)).toEqual(IDLE);
    // sluice closed them: a client that reads again finds its connection ended.
    await Promise.all(
      sockets.map(
        (x) =>
          new Promise<void>((r) => {
            x.once('close', () => r());
            x.resume();
          }),
      ),
    );
    expect((await get(s, '/ok')).status).toBe(200);
    expect((await get(s, '/ok?pool=green')).status).toBe(200);
  });

  it('do not hold SIGTERM: stop() returns within shutdownGrace + 1 s', async () => {
    const s = await start({ shutdownGrace: '1s' });
    for (let i = 0; i < 10; i++) await neverReads(s.proxyPort, 'GET /big HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(10));
    await expect.poll(() => load(s).busy, { timeout: 5000 }).toBe(CONNECTIONS);
    const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), 2000).unref());
    expect(await Promise.race([s.stop().then(() => 'stopped' as const), deadline])).toBe('stopped');
    sluice = undefined;
  });
});

describe('clients that read slower than the upstream answers', () => {
  it('hold memory, not an upstream connection, for answers up to bufferResponseBytes', async () => {
    const s = await start({ limits: { bufferResponseBytes: 8 << 20 } });
    // Four times what the kernel buffers on this path take, but within the response buffer.
    const size = 6 << 20;
    const clients = await Promise.all(
      Array.from({ length: CONNECTIONS + 2 }, () =>
        neverReads(s.proxyPort, `GET /sized/${size} HTTP/1.1\r\nHost: a\r\n\r\n`),
      ),
    );
    // The answers are complete upstream and held for the clients: no connection stays busy.
    await expect.poll(() => seenAt(`/sized/${size}`), { timeout: 5000 }).toBe(CONNECTIONS + 2);
    await expect.poll(() => load(s).busy, { timeout: 5000 }).toBe(0);
    expect((await get(s, '/ok')).status).toBe(200);
    // A client that reads again gets the whole answer.
    const c = clients[0]!;
    let got = 0;
    c.on('data', (d: Buffer) => (got += d.length));
    c.resume();
    await expect.poll(() => got, { timeout: 5000 }).toBeGreaterThan(size);
  });

  it('keep the upstream connection paused for answers larger than bufferResponseBytes', async () => {
    const s = await start({ limits: { bufferResponseBytes: 64 * 1024 } });
    await neverReads(s.proxyPort, 'GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
    await expect.poll(() => load(s).busy, { timeout: 5000 }).toBe(1);
    expect(await idleWithin(s, IDLE_MS + 1000 + 1000)).toEqual(IDLE);
  });
});

describe('request bodies', () => {
  it('that drip are buffered, never given an upstream connection, and answered 408 at timeouts.clientBody', async () => {
    const s = await start();
    const drips = Array.from({ length: CONNECTIONS + 4 }, () =>
      rawRequest(
        s.proxyPort,
        ['POST /drip HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n', 'a', 'b', 'c'],
        4000,
        200,
      ),
    );
    // Meanwhile normal requests, with and without a body, are served: no connection is held.
    for (let i = 0; i < 20; i++) {
      expect((await get(s, '/ok')).status).toBe(200);
      const r = await request(`${s.base}/post`, { method: 'POST', body: 'x'.repeat(1000) });
      expect(r.statusCode).toBe(200);
      expect(JSON.parse(await r.body.text()).bytes).toBe(1000);
    }
    for (const r of await Promise.all(drips)) {
      expect(r.status).toBe(408);
      expect(r.text).toContain('body_timeout');
    }
    expect(seenAt('/drip')).toBe(0);
    expect(await idleWithin(s, IDLE_MS + 1000)).toEqual(IDLE);
    expect(s.status().rejected.body_timeout).toBe(CONNECTIONS + 4);
  });

  it('larger than bufferBodyBytes stream, and one slower than minBodyRate is cut with its upstream request', async () => {
    const s = await start({ limits: { bufferBodyBytes: 1024, minBodyRate: 100_000 } });
    const slow = rawRequest(
      s.proxyPort,
      ['PUT /slow-upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n', ...Array(30).fill('x'.repeat(100))],
      6000,
      100,
    );
    // It streams: the upstream has the request (and its connection) before the body is complete.
    await expect.poll(() => load(s).busy, { timeout: 3000 }).toBe(1);
    const r = await slow;
    expect(r.status).toBe(408);
    expect(r.text).toContain('body_too_slow');
    expect(await idleWithin(s, IDLE_MS + 1000)).toEqual(IDLE);
    expect((await get(s, '/ok')).status).toBe(200);
  });

  it('malformed within the buffer limit are refused with 0 bytes upstream', async () => {
    const s = await start();
    const before = ups[0]!.bytesReceived + ups[1]!.bytesReceived;
    for (const body of [
      '5\r\nhello\r\nZZ\r\n',
      '5\r\nhelloXX0\r\n\r\n',
      '3;\u0000\r\nabc\r\n0\r\n\r\n',
      '2\r\nab\r\n-1\r\n',
    ]) {
      const r = await rawRequest(
        s.proxyPort,
        `POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
        3000,
      );
      expect(r.status).toBe(400);
    }
    expect(ups[0]!.bytesReceived + ups[1]!.bytesReceived).toBe(before);
    expect(await idleWithin(s, IDLE_MS + 1000)).toEqual(IDLE);
  });
});

describe('a full pool', () => {
  it('answers 503 with Retry-After past timeouts.queue, and never sends the queued request', async () => {
    const s = await start({ upstream: { connections: 2 } });
    const holding = [get(s, '/hold'), get(s, '/hold')];
    await expect.poll(() => held.length, { timeout: 3000 }).toBe(2);
    const queued = await get(s, '/hold');
    expect(queued.status).toBe(503);
    expect(queued.headers['retry-after']).toBe('1');
    expect(JSON.parse(queued.body).error.code).toBe('upstream_queue_timeout');
    for (const r of held) r.end('released');
    expect((await Promise.all(holding)).map((r) => r.status)).toEqual([200, 200]);
    expect(await idleWithin(s, IDLE_MS + 1000)).toEqual(IDLE);
    // The queued request was dropped when a connection freed, not sent late.
    expect(seenAt('/hold')).toBe(2);
    expect(s.status().rejected.queue_timeout).toBe(1);
    // It waited in sluice, not in undici's queue: dropping it cost no upstream connection (undici
    // can only abort a request it has started, by destroying the connection it got).
    for (let i = 0; i < 4; i++) expect((await get(s, '/ok')).status).toBe(200);
    expect(ups[0]!.connections + ups[1]!.connections).toBe(2);
  });
});

describe('bad bytes after a good request', () => {
  it.each([
    ['garbage after a complete request', 'GET /first HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\r\n\r\n'],
    [
      'an HTTP/1.0 keep-alive request, then garbage',
      'GET /first HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGARBAGE\r\n\r\n',
    ],
    [
      'two pipelined requests, then garbage',
      'GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n\u0001\r\n\r\n',
    ],
  ])('%s: the served requests are answered first, then 400', async (_name, payload) => {
    const s = await start();
    const r = await rawRequest(s.proxyPort, payload, 3000);
    expect(r.text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(r.text).toContain('"url":"/first"');
    if (payload.includes('/second'))
      expect(r.text.indexOf('"url":"/second"')).toBeGreaterThan(r.text.indexOf('/first'));
    expect(r.text).toMatch(/HTTP\/1\.1 400 [^\r]*\r\n[\s\S]*$/);
    expect(r.text.lastIndexOf('HTTP/1.1 400')).toBeGreaterThan(r.text.lastIndexOf('HTTP/1.1 200'));
    expect(r.closed).toBe(true);
  });

  it('bytes after Connection: close are not served, and the first answer is not lost', async () => {
    const s = await start();
    const r = await rawRequest(
      s.proxyPort,
      'GET /first HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n',
      3000,
    );
    expect(r.status).toBe(200);
    expect(r.text).toContain('"url":"/first"');
    expect(r.closed).toBe(true);
    expect(seenAt('/after')).toBe(0);
    expect(await idleWithin(s, IDLE_MS + 1000)).toEqual(IDLE);
  });
});

describe('limits.maxConnectionsPerClient', () => {
  it('answers 503 to the connection past the limit, before any request reaches an upstream', async () => {
    const s = await start({ limits: { maxConnectionsPerClient: 3 } });
    for (let i = 0; i < 3; i++) await neverReads(s.proxyPort, 'GET /hold HTTP/1.1\r\nHost: a\r\n\r\n');
    await expect.poll(() => held.length, { timeout: 3000 }).toBe(3);
    const fourth = await rawRequest(s.proxyPort, 'GET /fourth HTTP/1.1\r\nHost: a\r\n\r\n', 3000);
    expect(fourth.status).toBe(503);
    expect(fourth.text).toContain('too_many_connections');
    expect(seenAt('/fourth')).toBe(0);
    // Once one closes, a new connection from the same address is served.
    sockets[0]!.destroy();
    await expect.poll(async () => (await get(s, '/ok')).status, { timeout: 3000 }).toBe(200);
  });
});
