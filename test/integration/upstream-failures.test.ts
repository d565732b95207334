/** Upstream failures: timeouts, refused connections, resets before and during the body, ejection. */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { connect } from 'node:net';
import { createServer } from 'node:net';
import { deadPort, startUpstream } from '../helpers/upstream.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';

const h = harness();
let sluice: TestSluice;

async function up(name: string, behaviour?: Parameters<typeof startUpstream>[1]) {
  return h.track(await startUpstream(name, behaviour));
}

/** A raw TCP upstream that does whatever `onConn` says with each connection. */
async function rawUpstream(onConn: (s: import('node:net').Socket) => void): Promise<string> {
  const srv = h.track(createServer(onConn));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
}

const errorBody = async (r: Awaited<ReturnType<typeof request>>) =>
  (await r.body.json()) as { error: { code: string; status: number; requestId: string } };

describe('upstream failures', () => {
  it('answers 504 at timeouts.response when the upstream never answers', async () => {
    const blue = await up('blue', () => {
      /* never answers */
    });
    const green = await up('green');
    sluice = h.sluice = await startTestSluice(blue.url, green.url, { timeouts: { response: '300ms' } });
    const t0 = Date.now();
    const r = await request(`${sluice.base}/slow`);
    const elapsed = Date.now() - t0;
    expect(r.statusCode).toBe(504);
    const b = await errorBody(r);
    expect(b.error.code).toBe('upstream_timeout');
    expect(b.error.requestId).toBe(r.headers['x-request-id']);
    // Bounded by the configured timeout, not minutes (generous margin: no timing claims here).
    expect(elapsed).toBeLessThan(5000);
    expect(sluice.recorder.errorCount(0, 'timeout')).toBe(1);
  });

  it('answers 502 with a JSON body when the connection is refused', async () => {
    const port = await deadPort();
    const green = await up('green');
    sluice = h.sluice = await startTestSluice(`http://127.0.0.1:${port}`, green.url);
    const r = await request(`${sluice.base}/`);
    expect(r.statusCode).toBe(502);
    expect(r.headers['content-type']).toBe('application/json');
    const b = await errorBody(r);
    expect(b.error).toMatchObject({ code: 'upstream_connect_refused', status: 502 });
    expect(sluice.recorder.errorCount(0, 'connect')).toBe(1);
  });

  it('answers 502 when the upstream resets before the response', async () => {
    const blue = await rawUpstream((s) => s.once('data', () => s.resetAndDestroy()));
    const green = await up('green');
    sluice = h.sluice = await startTestSluice(blue, green.url);
    const r = await request(`${sluice.base}/`);
    expect(r.statusCode).toBe(502);
    expect((await errorBody(r)).error.code).toBe('upstream_reset');
  });

  it('destroys the client connection when the upstream resets mid-body (truncation, never a clean end)', async () => {
    const blue = await rawUpstream((s) =>
      s.once('data', () => {
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
        setTimeout(() => s.resetAndDestroy(), 50);
      }),
    );
    const green = await up('green');
    sluice = h.sluice = await startTestSluice(blue, green.url);
    const r = await request(`${sluice.base}/`);
    expect(r.statusCode).toBe(200);
    await expect(r.body.text()).rejects.toThrow();
    await new Promise((res) => setTimeout(res, 50));
    expect(sluice.recorder.errorCount(0, 'reset')).toBe(1);
  });

  it('destroys the client connection when a chunked upstream closes mid-body', async () => {
    const blue = await rawUpstream((s) =>
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
        setTimeout(() => s.end(), 50);
      }),
    );
    const green = await up('green');
    sluice = h.sluice = await startTestSluice(blue, green.url);
    const sock = connect(sluice.proxyPort, '127.0.0.1');
    const text = await new Promise<string>((resolve) => {
      let buf = '';
      sock.on('data', (d) => (buf += d.toString()));
      sock.on('close', () => resolve(buf));
      sock.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    });
    expect(text).toContain('hello');
    // A clean chunked end would be the zero-length chunk.
    expect(text).not.toMatch(/\r\n0\r\n\r\n$/);
  });

  it('ejects an endpoint after consecutive connect failures, retries body-less requests on another, and restores it', async () => {
    const port = await deadPort();
    const good = await up('blue');
    const green = await up('green');
    sluice = h.sluice = await startTestSluice([`http://127.0.0.1:${port}`, good.url], green.url, {
      upstream: { ejectAfter: 2, ejectFor: '60s' },
    });
    // Every request succeeds: a refused connect is retried on the healthy endpoint.
    for (let i = 0; i < 10; i++) {
      const r = await request(`${sluice.base}/`);
      expect(r.statusCode).toBe(200);
      await r.body.text();
    }
    const dead = sluice.pools[0].endpoints[0]!;
    expect(dead.ejectedUntil).toBeGreaterThan(Date.now());
    expect((sluice.status().pools.blue!.endpoints[0] as { healthy: boolean }).healthy).toBe(false);
    // After the eject, the dead endpoint is not tried: the good one serves everything.
    const before = good.seen.length;
    for (let i = 0; i < 5; i++) await (await request(`${sluice.base}/`)).body.text();
    expect(good.seen.length - before).toBe(5);
  });

  it('aborts the upstream request when the client goes away, and does not count it as an error', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => (upstreamClosed = r));
    const blue = await up('blue', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const t = setInterval(() => res.write('x'.repeat(1024)), 5);
      res.on('close', () => {
        clearInterval(t);
        upstreamClosed();
      });
    });
    const green = await up('green');
    sluice = h.sluice = await startTestSluice(blue.url, green.url);
    const sock = connect(sluice.proxyPort, '127.0.0.1');
    sock.write('GET /stream HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise<void>((r) => sock.once('data', () => r()));
    sock.destroy();
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    const p = sluice.recorder.pools[0];
    expect([...p.errorKinds].reduce((a, b) => a + b, 0)).toBe(0);
  });
});
