/**
 * Header hygiene and hostile request lines (issue 15): client-address and rewrite headers an
 * untrusted client must not be able to set, invalid Host values, TRACE, foreign schemes, HTTP
 * versions other than 1.x, and ambiguous overrides. Raw TCP clients; recording upstreams on
 * listen(0) count every request and byte, and every refused request must reach neither.
 */
import { describe, expect, it } from 'vitest';
import { sharedSluice, type Fixture } from '../helpers/fixture.js';
import { rawRequest } from '../helpers/raw.js';
import type { Seen } from '../helpers/upstream.js';

/** The default `forwarding.stripFromUntrusted` headers the security review found, plus the two fixed ones. */
const SPOOFED: [string, string][] = [
  ['X-Real-IP', '6.6.6.6'],
  ['True-Client-IP', '6.6.6.6'],
  ['X-Client-IP', '6.6.6.6'],
  ['CF-Connecting-IP', '6.6.6.6'],
  ['X-Forwarded-Port', '8443'],
  ['X-Forwarded-Prefix', '/internal'],
  ['X-Original-URL', '/admin'],
  ['X-Rewrite-URL', '/admin'],
  ['Proxy-Authorization', 'Basic c2x1aWNlOmh1bnRlcjI='],
];
const spoofedLines = SPOOFED.map(([n, v]) => `${n}: ${v}\r\n`).join('');

const seenCount = (fx: Fixture) => fx.blue.seen.length + fx.green.seen.length;
const lastSeen = (fx: Fixture, url: string): Seen =>
  [...fx.blue.seen, ...fx.green.seen].filter((s) => s.url === url).at(-1)!;
/** How many times the upstream got header `name` (raw, so duplicates count). */
const times = (s: Seen, name: string) =>
  s.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === name.toLowerCase()).length;
const bodyCode = (text: string) => (/"code":"([a-z_]+)"/.exec(text) ?? [])[1];

describe('from an untrusted peer', () => {
  const fx = sharedSluice({});

  it('the upstream gets none of the client-address, rewrite or proxy-credential headers, and X-Real-IP = the client', async () => {
    const r = await rawRequest(
      fx.sluice.proxyPort,
      `GET /strip HTTP/1.1\r\nHost: api.example\r\n${spoofedLines}Connection: close\r\n\r\n`,
    );
    expect(r.status).toBe(200);
    const s = lastSeen(fx, '/strip');
    for (const [name] of SPOOFED.slice(1)) expect(times(s, name), name).toBe(0);
    expect(times(s, 'x-real-ip')).toBe(1);
    expect(s.headers['x-real-ip']).toBe('127.0.0.1');
  });

  it('sets X-Real-IP also when the client sent none', async () => {
    const r = await rawRequest(fx.sluice.proxyPort, 'GET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(200);
    expect(lastSeen(fx, '/plain').headers['x-real-ip']).toBe('127.0.0.1');
  });

  const get = (host: string, extra = '') => `GET / HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;
  const ws =
    'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
  // [name, raw request, status, status line, error code]
  const hostile: [string, string, number, string, string | undefined][] = [
    ['Host with a space', get('a b'), 400, 'Bad Request', 'invalid_host'],
    ['Host that is a list', get('a, b'), 400, 'Bad Request', 'invalid_host'],
    ['Host with userinfo', get('user@evil.com'), 400, 'Bad Request', 'invalid_host'],
    ['Host with a path', get('evil.com/path'), 400, 'Bad Request', 'invalid_host'],
    ['Host with a query', get('evil.com?x=1'), 400, 'Bad Request', 'invalid_host'],
    ['empty Host', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', 400, 'Bad Request', 'invalid_host'],
    ['Host that is only a port', get(':8080'), 400, 'Bad Request', 'invalid_host'],
    ['Host with a bad port', get('a:80x'), 400, 'Bad Request', 'invalid_host'],
    ['Host with a bad IP literal', get('[evil.com]'), 400, 'Bad Request', 'invalid_host'],
    ['invalid Host on a WebSocket upgrade', get('user@evil.com', ws), 400, 'Bad Request', 'invalid_host'],
    ['TRACE', 'TRACE / HTTP/1.1\r\nHost: a\r\n\r\n', 405, 'Method Not Allowed', 'method_not_allowed'],
    [
      'TRACE with a body',
      'TRACE / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi',
      405,
      'Method Not Allowed',
      'method_not_allowed',
    ],
    // Node's parser refuses TRACK before sluice sees it (HPE_INVALID_METHOD): it still gets TRACE's 405.
    ['TRACK', 'TRACK / HTTP/1.1\r\nHost: a\r\n\r\n', 405, 'Method Not Allowed', 'method_not_allowed'],
    ['CONNECT', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 405, 'Method Not Allowed', 'connect_refused'],
    ['gopher:// target', 'GET gopher://a/ HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'Bad Request', 'unsupported_scheme'],
    ['file:// target', 'GET file://a/etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'Bad Request', 'unsupported_scheme'],
    ['ws:// target', 'GET ws://a/ HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'Bad Request', 'unsupported_scheme'],
    [
      'HTTP/2.0 request line',
      'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
      505,
      'HTTP Version Not Supported',
      'http_version_not_supported',
    ],
    [
      'HTTP/0.9 request line',
      'GET / HTTP/0.9\r\nHost: a\r\n\r\n',
      505,
      'HTTP Version Not Supported',
      'http_version_not_supported',
    ],
    [
      'HTTP/2.0 WebSocket upgrade',
      `GET / HTTP/2.0\r\nHost: a\r\n${ws}\r\n`,
      505,
      'HTTP Version Not Supported',
      'http_version_not_supported',
    ],
  ];

  it.each(hostile)('%s: refused, and no upstream sees it', async (_name, payload, status, reason, code) => {
    const before = seenCount(fx);
    const r = await rawRequest(fx.sluice.proxyPort, payload);
    expect(r.text.startsWith(`HTTP/1.1 ${status} ${reason}\r\n`), r.text).toBe(true);
    expect(bodyCode(r.text)).toBe(code);
    if (status === 405) expect(r.text).toMatch(/\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n/i);
    expect(r.closed).toBe(true);
    await new Promise((res) => setTimeout(res, 30));
    expect(fx.upstreamBytes()).toBe(0);
    expect(seenCount(fx)).toBe(before);
  });

  // What must still pass, so the refusals above are not a blunt instrument.
  it.each([
    [
      'a name with a port',
      'GET /ok HTTP/1.1\r\nHost: api.example.com:8080\r\nConnection: close\r\n\r\n',
      'api.example.com:8080',
    ],
    ['an IPv6 literal', 'GET /ok HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n', '[::1]:8080'],
    [
      'an http:// target',
      'GET http://a.example/ok HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n',
      'a.example',
    ],
    [
      'an HTTPS:// target',
      'GET HTTPS://a.example/ok HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n',
      'a.example',
    ],
    ['HTTP/1.0 without Host', 'GET /ok HTTP/1.0\r\n\r\n', undefined],
  ])('%s is forwarded', async (_name, payload, xfHost) => {
    const r = await rawRequest(fx.sluice.proxyPort, payload);
    expect(r.status).toBe(200);
    const s = lastSeen(fx, '/ok');
    expect(s.headers['x-forwarded-host']).toBe(xfHost);
  });
});

describe('from a trusted proxy (split.trustedProxies 127.0.0.1/32)', () => {
  const fx = sharedSluice({ split: { trustedProxies: ['127.0.0.1/32'] } });

  it('its client-address and rewrite headers pass; X-Real-IP is overwritten with the resolved client; Proxy-Authorization never passes', async () => {
    const r = await rawRequest(
      fx.sluice.proxyPort,
      `GET /t HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 203.0.113.7\r\n${spoofedLines}Connection: close\r\n\r\n`,
    );
    expect(r.status).toBe(200);
    const s = lastSeen(fx, '/t');
    for (const [name, value] of SPOOFED.slice(1, -1)) expect(s.headers[name.toLowerCase()], name).toBe(value);
    expect(times(s, 'proxy-authorization')).toBe(0);
    // The address the split key uses (the right-most untrusted X-Forwarded-For entry), not 6.6.6.6.
    expect(times(s, 'x-real-ip')).toBe(1);
    expect(s.headers['x-real-ip']).toBe('203.0.113.7');
  });

  it('X-Real-IP is the proxy itself when it sends no X-Forwarded-For', async () => {
    const r = await rawRequest(
      fx.sluice.proxyPort,
      'GET /t2 HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n',
    );
    expect(r.status).toBe(200);
    expect(lastSeen(fx, '/t2').headers['x-real-ip']).toBe('127.0.0.1');
  });
});

describe('override cookie and header: exactly one plain blue or green forces a pool, anything else routes by the key', () => {
  // 0 % canary: the key always routes to blue, so green can only come from the override.
  const fx = sharedSluice({ split: { initialCanaryWeight: 0 } });
  it.each([
    ['one cookie (control)', 'green', 'Cookie: sluice-pool=green\r\n'],
    [
      'one cookie among others, in two Cookie headers (control)',
      'green',
      'Cookie: a=1\r\nCookie: b=2; sluice-pool=green\r\n',
    ],
    ['one header (control)', 'green', 'X-Sluice-Pool: green\r\n'],
    ['a quoted cookie', 'blue', 'Cookie: sluice-pool="green"\r\n'],
    ['two cookies that disagree', 'blue', 'Cookie: sluice-pool=green; sluice-pool=blue\r\n'],
    ['two cookies that agree', 'blue', 'Cookie: sluice-pool=green; sluice-pool=green\r\n'],
    ['the cookie in two Cookie headers', 'blue', 'Cookie: sluice-pool=green\r\nCookie: sluice-pool=green\r\n'],
    ['two headers', 'blue', 'X-Sluice-Pool: green\r\nX-Sluice-Pool: green\r\n'],
    ['two headers that disagree', 'blue', 'X-Sluice-Pool: blue\r\nX-Sluice-Pool: green\r\n'],
    // Already so before: kept beside the two-header rows as guards of the same rule.
    ['a header holding a list', 'blue', 'X-Sluice-Pool: green, blue\r\n'],
    ['a quoted header', 'blue', 'X-Sluice-Pool: "green"\r\n'],
  ])('%s → %s', async (_name, pool, lines) => {
    const r = await rawRequest(fx.sluice.proxyPort, `GET / HTTP/1.1\r\nHost: a\r\n${lines}Connection: close\r\n\r\n`);
    expect(r.status).toBe(200);
    expect(r.text).toContain(`"pool":"${pool}"`);
  });
});
