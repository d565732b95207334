/**
 * TLS and HTTP/2 at the edge: certificates made at test time, real TLS and HTTP/2 clients
 * (undici, node:http2). SNI, X-Forwarded-Proto, h2 mapped to HTTP/1.1 upstream requests with
 * the split, override, measurement and limits of the HTTP/1.1 path; the rapid-reset guard.
 */
import { connect as h2connect, constants, type ClientHttp2Session } from 'node:http2';
import { mkdtempSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { served } from '../../src/stats/totals.js';
import { makeCert, type TestCert } from '../helpers/certs.js';
import { harness } from '../helpers/harness.js';
import { runCli, writeConfig } from '../helpers/process.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';
import { startUpstream } from '../helpers/upstream.js';

const h = harness();

async function setup(tls: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));
  const a = makeCert(dir, ['a.test', '*.a.test']);
  const b = makeCert(dir, ['b.test']);
  const blue = h.track(await startUpstream('blue'));
  const green = h.track(await startUpstream('green'));
  const s = (h.sluice = await startTestSluice(blue.url, green.url, {
    listen: {
      host: '127.0.0.1',
      port: 0,
      tls: {
        certificates: [
          { cert: a.cert, key: a.key },
          { cert: b.cert, key: b.key },
        ],
        ...tls,
      },
    },
    ...extra,
  }));
  return { s, a, b, blue, green, dir };
}

/** The certificate a TLS handshake with `servername` gets, by its subject CN. */
function servedCN(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false }, () => {
      const cn = sock.getPeerCertificate().subject.CN;
      sock.destroy();
      resolve(Array.isArray(cn) ? (cn[0] as string) : (cn as string));
    });
    sock.once('error', reject);
  });
}

function h2(s: TestSluice, cert: TestCert, servername = 'a.test'): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const c = h2connect(`https://127.0.0.1:${s.proxyPort}`, { ca: cert.pem, servername });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

function h2get(
  c: ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const st = c.request({ ':path': path, ':method': body === undefined ? 'GET' : 'POST', ...headers });
    let text = '';
    let head: Record<string, unknown> = {};
    st.on('response', (hd) => (head = hd));
    st.setEncoding('utf8');
    st.on('data', (d: string) => (text += d));
    st.on('end', () => resolve({ status: Number(head[':status']), headers: head, text }));
    st.on('error', reject);
    st.end(body);
  });
}

describe('TLS and HTTP/2', () => {
  it('serves HTTP/1.1 over TLS with the certificate SNI names, and tells the upstream https', async () => {
    const { s, a, b, blue } = await setup();
    expect(await servedCN(s.proxyPort, 'a.test')).toBe('a.test');
    expect(await servedCN(s.proxyPort, 'x.a.test')).toBe('a.test');
    expect(await servedCN(s.proxyPort, 'b.test')).toBe('b.test');
    // An unknown name gets the first (default) certificate.
    expect(await servedCN(s.proxyPort, 'other.test')).toBe('a.test');
    const agent = new Agent({ connect: { ca: [a.pem, b.pem], servername: 'b.test' } });
    try {
      const r = await request(`https://127.0.0.1:${s.proxyPort}/over-tls`, {
        dispatcher: agent,
        headers: { host: 'b.test' },
      });
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    } finally {
      await agent.close();
    }
    const seen = blue.seen.find((x) => x.url === '/over-tls');
    const hdr = (name: string) => seen?.rawHeaders[seen.rawHeaders.findIndex((k) => k.toLowerCase() === name) + 1];
    expect(hdr('x-forwarded-proto')).toBe('https');
    expect(hdr('host')).toBe('b.test');
  });

  it('proxies HTTP/2 streams as HTTP/1.1 requests: split, override, bodies, measurement', async () => {
    const { s, a, blue, green } = await setup({}, { split: { trustedProxies: ['127.0.0.1/32'] } });
    const c = await h2(s, a);
    try {
      expect(c.alpnProtocol).toBe('h2');
      expect(c.remoteSettings.maxConcurrentStreams).toBe(100);
      // Two cookie fields (as browsers send them over HTTP/2) reach the upstream as one line.
      const r = await h2get(c, '/h2/one?x=1', { 'user-agent': 'h2-test', cookie: ['a=1', 'b=2'] as unknown as string });
      expect(r.status).toBe(200);
      expect(r.headers['x-sluice-pool']).toBe('blue');
      expect(r.headers.connection).toBeUndefined();
      // The override cookie forces green, over HTTP/2 too.
      const forced = await h2get(c, '/h2/forced', { cookie: 'sluice-pool=green' });
      expect(forced.headers['x-sluice-pool']).toBe('green');
      // A body goes through whole.
      const post = await h2get(c, '/h2/post', { 'content-type': 'text/plain' }, 'hello over h2');
      expect(post.status).toBe(200);
      // Many streams at once on the one connection, none ordered behind another.
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => h2get(c, `/h2/many/${i}`)));
      expect(many.every((m) => m.status === 200)).toBe(true);
    } finally {
      c.close();
    }
    const up = blue.seen.find((x) => x.url === '/h2/one?x=1');
    expect(up).toBeDefined();
    const names = (up?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.some((n) => n.startsWith(':'))).toBe(false);
    const hdr = (name: string) => up?.rawHeaders[up.rawHeaders.findIndex((k) => k.toLowerCase() === name) + 1];
    // :authority as Host (the client's, with the port it dialled).
    expect(hdr('host')).toMatch(/^a\.test(:\d+)?$/);
    expect(hdr('x-forwarded-proto')).toBe('https');
    expect(hdr('user-agent')).toBe('h2-test');
    expect(up?.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]?.toLowerCase() === 'cookie')).toEqual([
      'a=1; b=2',
    ]);
    expect(green.seen.some((x) => x.url === '/h2/forced')).toBe(true);
    const posted = blue.seen.find((x) => x.url === '/h2/post');
    expect(posted?.method).toBe('POST');
    expect(posted?.bodyBytes).toBe('hello over h2'.length);
    // Measured like HTTP/1.1: the totals count every stream.
    s.status(); // reads the members' numbers as of now
    expect(served(s.members.view().totals)).toBeGreaterThanOrEqual(53);
  });

  it('closes a connection whose client resets streams faster than maxResetsPerSecond (rapid reset)', async () => {
    const { s, a, blue } = await setup({ maxResetsPerSecond: 20 });
    const c = await h2(s, a);
    const closed = new Promise<number | undefined>((resolve) => {
      c.once('goaway', (code: number) => resolve(code));
      c.once('close', () => resolve(undefined));
    });
    c.on('error', () => {});
    for (let i = 0; i < 200 && !c.destroyed && !c.closed; i++) {
      const st = c.request({ ':path': `/reset/${i}` });
      st.on('error', () => {});
      st.close(constants.NGHTTP2_CANCEL);
    }
    const code = await closed;
    expect(code === undefined || code === constants.NGHTTP2_ENHANCE_YOUR_CALM).toBe(true);
    await expect.poll(() => c.destroyed || c.closed, { timeout: 3000 }).toBe(true);
    expect(s.status().rejected.rapid_reset).toBe(1);
    // The proxy still serves others.
    const d = await h2(s, a);
    try {
      expect((await h2get(d, '/after')).status).toBe(200);
    } finally {
      d.close();
    }
    expect(blue.seen.filter((x) => x.url.startsWith('/reset/')).length).toBeLessThan(200);
  });
});

describe('TLS at the edge, more', () => {
  it('listen.http redirects to https (301, 308 for a POST), or serves plain with X-Forwarded-Proto http', async () => {
    const { s, blue } = await setup({}, {});
    // The listener of setup() has no listen.http: start one that has.
    await s.stop();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-http-'));
    const a = makeCert(dir, ['a.test']);
    for (const redirect of [true, false]) {
      const r = (h.sluice = await startTestSluice(blue.url, blue.url, {
        listen: {
          host: '127.0.0.1',
          port: 0,
          tls: { certificates: [{ cert: a.cert, key: a.key }] },
          http: { port: 0, redirect },
        },
      }));
      expect(r.httpPort).toBeGreaterThan(0);
      const before = blue.seen.length;
      const get = await request(`http://127.0.0.1:${r.httpPort}/path?q=1`, {
        headers: { host: `a.test:${r.httpPort}` },
      });
      await get.body.dump();
      if (redirect) {
        expect(get.statusCode).toBe(301);
        expect(get.headers.location).toBe(`https://a.test:${r.proxyPort}/path?q=1`);
        const post = await request(`http://127.0.0.1:${r.httpPort}/form`, { method: 'POST', body: 'x=1' });
        await post.body.dump();
        expect(post.statusCode).toBe(308);
        expect(post.headers.location).toBe(`https://127.0.0.1:${r.proxyPort}/form`);
        expect(blue.seen.length).toBe(before);
      } else {
        expect(get.statusCode).toBe(200);
        const seen = blue.seen.at(-1);
        expect(seen?.url).toBe('/path?q=1');
        expect(seen?.headers['x-forwarded-proto']).toBe('http');
      }
      await r.stop();
      h.sluice = undefined;
    }
  });

  it('--check reads the certificate files: a missing or mismatched one is a problem naming its key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-check-'));
    const a = makeCert(dir, ['a.test']);
    const b = makeCert(dir, ['b.test']);
    const check = (certificates: unknown[]) => {
      const file = writeConfig(dir, {
        listen: { port: 0, tls: { certificates } },
        pools: { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } },
      });
      return runCli(['--check', '--config', file]);
    };
    expect(check([{ cert: a.cert, key: a.key }]).code).toBe(0);
    const missing = check([{ cert: join(dir, 'nope.pem'), key: a.key }]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('listen.tls.certificates.0.cert: cannot read');
    const mismatched = check([
      { cert: a.cert, key: a.key },
      { cert: a.cert, key: b.key },
    ]);
    expect(mismatched.code).toBe(1);
    expect(mismatched.stderr).toMatch(/^listen\.tls\.certificates\.1: /);
  });

  it('cuts a TLS client whose headers arrive too slowly (timeouts.clientHeaders) with 408', async () => {
    const { s, a } = await setup({}, { timeouts: { clientHeaders: '300ms' } });
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = tlsConnect(
        { port: s.proxyPort, host: '127.0.0.1', servername: 'a.test', ca: a.pem, ALPNProtocols: ['http/1.1'] },
        () => {
          sock.write('GET /slow HTTP/1.1\r\nHost: a.test\r\nX-Partial: ');
        },
      );
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it.runIf(Number(process.versions.node.split('.')[0]) * 100 + Number(process.versions.node.split('.')[1]) >= 2409)(
    'answers Upgrade: h2c on the plain listener over HTTP/1.1 (as nginx does), without passing the upgrade on',
    async () => {
      const blue = h.track(await startUpstream('blue'));
      const green = h.track(await startUpstream('green'));
      const s = (h.sluice = await startTestSluice(blue.url, green.url));
      const raw = await new Promise<string>((resolve, reject) => {
        const sock = netConnect(s.proxyPort, '127.0.0.1', () =>
          sock.write(
            'GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
          ),
        );
        let got = '';
        sock.on('data', (d) => {
          got += d.toString();
          if (got.includes('\r\n\r\n') && got.includes('"pool"')) sock.destroy();
        });
        sock.on('close', () => resolve(got));
        sock.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 200 /);
      const seen = blue.seen.find((x) => x.url === '/h2c');
      expect(seen).toBeDefined();
      expect(seen?.headers.upgrade).toBeUndefined();
      expect(seen?.headers['http2-settings']).toBeUndefined();
    },
  );
});
