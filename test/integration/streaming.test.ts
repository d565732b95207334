/** Bodies stream both ways with backpressure: a 1 GiB response passes with flat memory. */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { Readable } from 'node:stream';
import { startUpstream } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness, pump } from '../helpers/harness.js';

const h = harness();

const GiB = 1024 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

describe('streaming', () => {
  it('passes a 1 GiB response with flat memory', async () => {
    const blue = await startUpstream('blue', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(GiB) });
      pump(res, CHUNK, GiB);
    });
    h.track(blue);
    const green = h.track(await startUpstream('green'));
    h.sluice = await startTestSluice(blue.url, green.url);
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const r = await request(`${h.sluice.base}/big`);
    expect(r.statusCode).toBe(200);
    let received = 0;
    for await (const chunk of r.body) {
      received += (chunk as Buffer).length;
      if ((received & 0xffffff) < 65536) peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect(received).toBe(GiB);
    // Upstream, proxy and client share this process: all three stream; a buffering proxy would
    // grow by the whole gigabyte.
    expect(peak - rssBefore).toBeLessThan(200 * 1024 * 1024);
  }, 120_000);

  it('streams a request body to the upstream without buffering it whole', async () => {
    const blue = await startUpstream(
      'blue',
      (_req, res) => {
        res.end('done');
      },
      { collectBody: false },
    );
    h.track(blue);
    const green = h.track(await startUpstream('green'));
    h.sluice = await startTestSluice(blue.url, green.url);
    const total = 64 * 1024 * 1024;
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) return void this.push(null);
        sent += CHUNK.length;
        this.push(CHUNK);
      },
    });
    const r = await request(`${h.sluice.base}/upload`, {
      method: 'PUT',
      body,
      headers: { 'content-length': String(total) },
    });
    expect(r.statusCode).toBe(200);
    expect(await r.body.text()).toBe('done');
    expect(blue.seen[0]!.bodyBytes).toBe(total);
  }, 60_000);

  it('streams a chunked request body (no Content-Length) as it arrives when buffering is off', async () => {
    const blue = await startUpstream('blue', (req, res, body) =>
      res.end(`${req.headers['transfer-encoding']}:${body.toString()}`),
    );
    h.track(blue);
    const green = h.track(await startUpstream('green'));
    h.sluice = await startTestSluice(blue.url, green.url, { limits: { bufferBodyBytes: 0 } });
    // Chunks with gaps, so the body is still arriving when sluice forwards it.
    async function* slow() {
      for (const part of ['a'.repeat(1000), 'b'.repeat(2000), 'c'.repeat(3000)]) {
        yield part;
        await new Promise((r) => setTimeout(r, 30));
      }
    }
    const r = await request(`${h.sluice.base}/chunked`, { method: 'POST', body: Readable.from(slow()) });
    expect(await r.body.text()).toBe(`chunked:${'a'.repeat(1000)}${'b'.repeat(2000)}${'c'.repeat(3000)}`);
  });

  it('applies backpressure: a slow reader does not make the proxy buffer the response', async () => {
    let written = 0;
    const blue = await startUpstream('blue', (_req, res) => {
      res.writeHead(200);
      pump(res, CHUNK, 256 * 1024 * 1024, (n) => (written = n));
    });
    h.track(blue);
    const green = h.track(await startUpstream('green'));
    h.sluice = await startTestSluice(blue.url, green.url);
    const r = await request(`${h.sluice.base}/`, { highWaterMark: 16 * 1024 });
    // Read one chunk, then stop reading for a while.
    const it = r.body[Symbol.asyncIterator]();
    await it.next();
    await new Promise((res) => setTimeout(res, 500));
    // Socket buffers hold a few MiB at most; without backpressure the upstream would have sent it all.
    expect(written).toBeLessThan(64 * 1024 * 1024);
    r.body.destroy();
  });
});
