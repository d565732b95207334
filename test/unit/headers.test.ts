import { describe, expect, it } from 'vitest';
import {
  cookieValue,
  headerNames,
  rawHeader,
  responseHeaders,
  SAFE_REQUEST_ID,
  scanRequestHeaders,
  soleCookieValue,
  validHost,
} from '../../src/data/headers.js';
import { parseCidr, TrustedSet } from '../../src/core/net.js';

const names = headerNames(undefined, 'x-sluice-pool');
const outNames = (out: string[]) => out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());

describe('request headers', () => {
  it('drops hop-by-hop, forwarding and underscore headers and keeps the rest in order', () => {
    const r = scanRequestHeaders(
      [
        'Host',
        'a.example',
        'Connection',
        'keep-alive',
        'Keep-Alive',
        'timeout=5',
        'TE',
        'trailers',
        'Upgrade',
        'h2c',
        'Proxy-Connection',
        'x',
        'Expect',
        '100-continue',
        'X-Forwarded-For',
        '6.6.6.6',
        'X-Request-Id',
        'evil',
        'X_Forwarded_For',
        '7.7.7.7',
        'Accept',
        '*/*',
        'X-Sluice-Pool',
        'green',
      ],
      names,
    );
    expect(outNames(r.out)).toEqual(['host', 'accept']);
    expect(r.xff).toBe('6.6.6.6');
    expect(r.requestId).toBe('evil');
    expect(r.override).toBe('green');
  });

  it('drops every header named in Connection, but never Host or Content-Length', () => {
    const r = scanRequestHeaders(
      [
        'Host',
        'h',
        'X-Secret',
        '1',
        'Content-Length',
        '3',
        'Connection',
        'close, X-Secret, host, content-length, X-Forwarded-For',
        'X-Forwarded-For',
        '1.1.1.1',
      ],
      names,
    );
    expect(outNames(r.out)).toEqual(['host', 'content-length']);
    expect(r.xff).toBeUndefined();
  });

  // The client-address and rewrite headers the security review found (the default list's core).
  const strip = [
    'true-client-ip',
    'x-client-ip',
    'cf-connecting-ip',
    'x-forwarded-port',
    'x-forwarded-prefix',
    'x-original-url',
    'x-rewrite-url',
  ];
  const stripNames = headerNames(undefined, 'x-sluice-pool', strip);
  const clientHeaders = [
    ['X-Real-IP', '6.6.6.6'],
    ['True-Client-IP', '6.6.6.6'],
    ['X-Client-IP', '6.6.6.6'],
    ['CF-Connecting-IP', '6.6.6.6'],
    ['X-Forwarded-Port', '443'],
    ['X-Forwarded-Prefix', '/admin'],
    ['X-Original-URL', '/admin'],
    ['X-Rewrite-URL', '/admin'],
    ['Proxy-Authorization', 'Basic Zm9vOmJhcg=='],
  ];
  const raw = ['Host', 'h', ...clientHeaders.flat(), 'Accept', '*/*'];

  it('drops client-address and rewrite headers from an untrusted peer, Proxy-Authorization and X-Real-IP always', () => {
    expect(outNames(scanRequestHeaders(raw, stripNames, false).out)).toEqual(['host', 'accept']);
    // A peer is untrusted unless the caller says otherwise.
    expect(outNames(scanRequestHeaders(raw, stripNames).out)).toEqual(['host', 'accept']);
    // From a trusted proxy they pass, but for X-Real-IP (sluice sets its own) and Proxy-Authorization
    // (credentials for this hop).
    expect(outNames(scanRequestHeaders(raw, stripNames, true).out)).toEqual([
      'host',
      'true-client-ip',
      'x-client-ip',
      'cf-connecting-ip',
      'x-forwarded-port',
      'x-forwarded-prefix',
      'x-original-url',
      'x-rewrite-url',
      'accept',
    ]);
    // Without a list, only the two fixed ones go.
    expect(outNames(scanRequestHeaders(raw, names, false).out)).not.toContain('x-real-ip');
    expect(outNames(scanRequestHeaders(raw, names, false).out)).not.toContain('proxy-authorization');
    expect(outNames(scanRequestHeaders(raw, names, false).out)).toContain('true-client-ip');
  });

  it('matches listed names in any case, and never lets the list take over a name sluice handles', () => {
    const own = headerNames('x-user', 'x-sluice-pool', [
      'x-custom',
      'host',
      'x-forwarded-for',
      'x-user',
      'x-sluice-pool',
    ]);
    const r = scanRequestHeaders(
      [
        'HOST',
        'h',
        'X-CUSTOM',
        '1',
        'x-Custom',
        '2',
        'X-User',
        'u',
        'X-Forwarded-For',
        '1.1.1.1',
        'X-Sluice-Pool',
        'green',
      ],
      own,
      false,
    );
    expect(outNames(r.out)).toEqual(['host', 'x-user']);
    expect([r.host, r.keyHeader, r.xff, r.override]).toEqual(['h', 'u', '1.1.1.1', 'green']);
  });

  it('a second override header forces nothing', () => {
    expect(scanRequestHeaders(['X-Sluice-Pool', 'green'], names).override).toBe('green');
    expect(scanRequestHeaders(['X-Sluice-Pool', 'green', 'x-sluice-pool', 'blue'], names).override).toBe('');
    expect(scanRequestHeaders(['X-Sluice-Pool', 'green', 'x-sluice-pool', 'green'], names).override).toBe('');
  });

  it('detects bodies and framing', () => {
    expect(scanRequestHeaders(['Content-Length', '0'], names).hasBody).toBe(false);
    expect(scanRequestHeaders(['Content-Length', '5'], names).hasBody).toBe(true);
    const te = scanRequestHeaders(['Transfer-Encoding', 'chunked'], names);
    expect(te.hasBody && te.transferEncoding).toBe(true);
    expect(outNames(te.out)).toEqual([]);
    expect(scanRequestHeaders(['Content-Length', '1', 'content-length', '1'], names).contentLengthCount).toBe(2);
    expect(scanRequestHeaders(['Host', 'a', 'host', 'b'], names).hostCount).toBe(2);
  });
});

describe('response headers', () => {
  const b = (...xs: string[]) => xs.map((x) => Buffer.from(x, 'latin1'));
  it('drops hop-by-hop and Connection-named headers', () => {
    const out = responseHeaders(
      b(
        'Content-Type',
        'text/plain',
        'Connection',
        'X-Internal',
        'X-Internal',
        'x',
        'Transfer-Encoding',
        'chunked',
        'Keep-Alive',
        'timeout=5',
        'Set-Cookie',
        'a=1',
        'Set-Cookie',
        'b=2',
      ),
      { bodyLength: 7 },
    );
    expect(out).toEqual(['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
  });

  it.each([
    ['keep-alive', ['X-Internal', 'x', 'Close', 'y']],
    ['Keep-Alive', ['X-Internal', 'x', 'Close', 'y']],
    ['close', ['X-Internal', 'x', 'Close', 'y']],
    ['keep-alive, Upgrade', ['X-Internal', 'x', 'Close', 'y']],
    ['keep-alive, X-Internal', ['Close', 'y']],
    [' close ,x-internal', ['Close', 'y']],
    ['X-Internal', ['Close', 'y']],
  ])('Connection: %s keeps only what it does not name', (connection, kept) => {
    expect(responseHeaders(b('Connection', connection, 'X-Internal', 'x', 'Close', 'y'), { bodyLength: -1 })).toEqual(
      kept,
    );
  });

  // The exact body length lets the last chunk end the response; any doubt about framing is -1.
  it.each([
    [['Content-Length', '11'], 11],
    [['content-length', '0'], 0],
    [['CONTENT-LENGTH', '123456789012345'], 123456789012345],
    [['Content-Type', 'text/plain'], -1],
    [['Transfer-Encoding', 'chunked'], -1],
    [['Content-Length', '11', 'Transfer-Encoding', 'chunked'], -1],
    [['Transfer-Encoding', 'chunked', 'Content-Length', '11'], -1],
    [['Content-Length', '11', 'Content-Length', '11'], -1],
    [['Content-Length', ''], -1],
    [['Content-Length', '1e3'], -1],
    [['Content-Length', '-1'], -1],
    [['Content-Length', ' 11'], -1],
    [['Content-Length', '1234567890123456'], -1],
  ])('body length of %j is %d', (headers, length) => {
    const meta = { bodyLength: 99 };
    const out = responseHeaders(b(...headers), meta);
    expect(meta.bodyLength).toBe(length);
    expect(out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())).not.toContain('transfer-encoding');
  });
});

describe('cookies', () => {
  it.each([
    ['a=1; uid=7', 'uid', '7'],
    ['uid=7', 'uid', '7'],
    ['xuid=1; uid=2', 'uid', '2'],
    ['uid="quoted"', 'uid', 'quoted'],
    ['uid=', 'uid', ''],
    ['a=uid=3', 'uid', undefined],
    ['', 'uid', undefined],
    [undefined, 'uid', undefined],
  ])('%j[%s] → %j', (c, n, v) => {
    expect(cookieValue(c, n)).toBe(v);
  });
});

describe('override cookie: exactly one, as sent', () => {
  it.each([
    ['sluice-pool=green', 'green'],
    ['a=1; sluice-pool=green; b=2', 'green'],
    ['a=1;sluice-pool= green ', 'green'],
    ['sluice-pool="green"', '"green"'],
    ['sluice-pool=blue; sluice-pool=green', undefined],
    ['sluice-pool=green; sluice-pool=green', undefined],
    ['sluice-pool=green;sluice-pool=blue', undefined],
    ['sluice-pool=green; x=sluice-pool=blue', 'green'],
    ['xsluice-pool=blue; sluice-pool=green', 'green'],
    ['xsluice-pool=blue', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%j → %j', (c, v) => {
    expect(soleCookieValue(c, 'sluice-pool')).toBe(v);
  });
});

describe('Host', () => {
  it.each([
    'a',
    'api.example.com',
    'API.Example.COM:8080',
    'localhost:65535',
    '127.0.0.1',
    '127.0.0.1:80',
    '[::1]',
    '[::1]:8080',
    '[2001:db8::1]',
    'xn--bcher-kva.example',
    'my_host.internal',
    'a-b.c~d',
    'h%41st',
    "a!$&'()*+;=b",
    'h:',
  ])('accepts %j', (h) => {
    expect(validHost(h)).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['a space', 'a b'],
    ['a list', 'a, b'],
    ['a comma', 'a,b'],
    ['userinfo', 'user@evil.com'],
    ['userinfo with a password', 'user:pw@evil.com'],
    ['a path', 'evil.com/path'],
    ['a query', 'evil.com?x'],
    ['a fragment', 'evil.com#x'],
    ['a backslash', 'evil.com\\x'],
    ['a tab', 'a\tb'],
    ['quotes', 'a"b'],
    ['angle brackets', '<script>'],
    ['only a port', ':80'],
    ['a port with letters', 'a:8o'],
    ['a port of 6 digits', 'a:123456'],
    ['two ports', 'a:1:2'],
    ['non-ASCII', 'bücher.example'],
    ['a NUL', 'a\u0000b'],
    ['a bad percent-escape', 'a%zz'],
    ['a cut percent-escape', 'a%4'],
    ['an unclosed IP literal', '[::1'],
    ['an IP literal that is not IPv6', '[evil.com]'],
    ['junk after an IP literal', '[::1]x'],
    ['IPvFuture', '[v1.x]'],
  ])('refuses %s', (_name, h) => {
    expect(validHost(h)).toBe(false);
  });
});

describe('trusted proxies', () => {
  it.each([
    ['10.0.0.0/8', '10.200.1.1', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['10.0.0.0/8', '::ffff:10.1.2.3', true],
    ['192.168.1.7', '192.168.1.7', true],
    ['192.168.1.7', '192.168.1.8', false],
    ['fd00::/8', 'fd12::1', true],
    ['fd00::/8', 'fe80::1', false],
    ['::1', '::1', true],
    ['0.0.0.0/0', '8.8.8.8', true],
  ])('%s contains %s: %s', (cidr, ip, expected) => {
    expect(new TrustedSet([cidr]).has(ip)).toBe(expected);
  });

  it.each(['10.0.0.0/33', 'nope', '1.2.3.4/x', '::1/129', '1.2.3.4/8/9'])('rejects %j', (c) => {
    expect(parseCidr(c)).toBeUndefined();
  });
});

describe('request headers: repeated, colliding and odd names', () => {
  const user = headerNames('x-user', 'x-sluice-pool');
  const pairs = (out: string[]) => out.flatMap((v, i) => (i % 2 === 0 ? [[v, out[i + 1]]] : []));

  it('joins repeated X-Forwarded-For, Forwarded and Transfer-Encoding, keeps each Cookie, takes the first Host', () => {
    const r = scanRequestHeaders(
      [
        'Host',
        'a.example',
        'X-Forwarded-For',
        '1.1.1.1',
        'Cookie',
        'a=1',
        'x-forwarded-for',
        '2.2.2.2, 3.3.3.3',
        'Forwarded',
        'for=1.1.1.1',
        'forwarded',
        'for=2.2.2.2',
        'Transfer-Encoding',
        'gzip',
        'cookie',
        'b=2',
        'transfer-encoding',
        'chunked',
        'host',
        'b.example',
      ],
      names,
    );
    expect(r.xff).toBe('1.1.1.1, 2.2.2.2, 3.3.3.3');
    expect(r.forwarded).toBe('for=1.1.1.1, for=2.2.2.2');
    expect(r.transferEncodingValue).toBe('gzip, chunked');
    expect(r.transferEncoding && r.hasBody).toBe(true);
    expect(r.cookie).toBe('a=1; b=2');
    expect([r.host, r.hostCount]).toEqual(['a.example', 2]);
    expect(r.headerCount).toBe(10);
    expect(pairs(r.out)).toEqual([
      ['Host', 'a.example'],
      ['Cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['host', 'b.example'],
    ]);
  });

  it('takes the last X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id, forwarding none of them as sent', () => {
    const r = scanRequestHeaders(
      [
        'X-Forwarded-Proto',
        'http',
        'X-Forwarded-Host',
        'a',
        'X-Request-Id',
        'r1',
        'x-forwarded-proto',
        'https',
        'x-forwarded-host',
        'b',
        'x-request-id',
        'r2',
      ],
      names,
    );
    expect([r.xfProto, r.xfHost, r.requestId]).toEqual(['https', 'b', 'r2']);
    expect(r.out).toEqual([]);
    const none = scanRequestHeaders(['Accept', '*/*'], names);
    expect([none.xff, none.xfProto, none.xfHost, none.requestId, none.forwarded, none.cookie, none.host]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect([none.hostCount, none.contentLengthCount, none.hasBody, none.transferEncoding]).toEqual([
      0,
      0,
      false,
      false,
    ]);
    expect(none.transferEncodingValue).toBeUndefined();
  });

  it('drops names with an underscore, on the fast path and the slow one', () => {
    // `my_header` shares no length and first letter with a name sluice acts on; `x_forwarded_for` does.
    const r = scanRequestHeaders(
      ['My_Header', '1', 'X_Forwarded_For', '6.6.6.6', 'X_User', 'u', 'Accept', '*/*'],
      user,
    );
    expect(pairs(r.out)).toEqual([['Accept', '*/*']]);
    expect(r.xff).toBeUndefined();
    expect(r.keyHeader).toBeUndefined();
  });

  it('passes headers that only look like the key or override header, and never lets them set either', () => {
    // Same length and first letter as x-user / x-sluice-pool: they take the slow path.
    const r = scanRequestHeaders(
      ['X-User', 'alice', 'X-Flag', '1', 'X-Sluice-Rule', 'r', 'x-sluice-pool', 'green', 'Xx-User', 'bob'],
      user,
    );
    expect(r.keyHeader).toBe('alice');
    expect(r.override).toBe('green');
    expect(pairs(r.out)).toEqual([
      ['X-User', 'alice'],
      ['X-Flag', '1'],
      ['X-Sluice-Rule', 'r'],
      ['Xx-User', 'bob'],
    ]);
  });

  it('drops hop-by-hop headers from a trusted peer too', () => {
    const strip = headerNames(undefined, 'x-sluice-pool', ['true-client-ip']);
    const r = scanRequestHeaders(
      ['TE', 'trailers', 'Trailer', 'x', 'Keep-Alive', '5', 'Upgrade', 'h2c', 'True-Client-IP', '1.1.1.1'],
      strip,
      true,
    );
    expect(pairs(r.out)).toEqual([['True-Client-IP', '1.1.1.1']]);
  });

  it('joins repeated Connection headers before dropping what they name', () => {
    const raw = ['Connection', 'X-Secret', 'X-Secret', '1', 'Connection', 'close', 'Accept', '*/*'];
    expect(outNames(scanRequestHeaders(raw, names).out)).toEqual(['accept']);
    // Options name no header: nothing is dropped (not even a header called "undefined").
    const opts = scanRequestHeaders(['Connection', 'close', 'Connection', 'keep-alive', 'Undefined', '1'], names);
    expect(outNames(opts.out)).toEqual(['undefined']);
  });

  it('forgets the forwarding headers and cookie that Connection names, in any case', () => {
    const r = scanRequestHeaders(
      [
        'Connection',
        'X-Forwarded-Proto, x-forwarded-host, X-REQUEST-ID, Forwarded, Cookie, Keep-Alive, Upgrade, ,',
        'X-Forwarded-Proto',
        'https',
        'X-Forwarded-Host',
        'h',
        'X-Request-Id',
        'r',
        'Forwarded',
        'for=1.1.1.1',
        'Cookie',
        'uid=1',
        'Accept',
        '*/*',
      ],
      names,
    );
    expect([r.xfProto, r.xfHost, r.requestId, r.forwarded, r.cookie]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect(outNames(r.out)).toEqual(['accept']);
    // Unnamed, they stay.
    const kept = scanRequestHeaders(
      [
        'Connection',
        'X-Other',
        'X-Forwarded-For',
        '1.1.1.1',
        'X-Forwarded-Proto',
        'https',
        'X-Forwarded-Host',
        'h',
        'X-Request-Id',
        'r',
        'Forwarded',
        'for=1.1.1.1',
        'Cookie',
        'uid=1',
      ],
      names,
    );
    expect([kept.xff, kept.xfProto, kept.xfHost, kept.requestId, kept.forwarded, kept.cookie]).toEqual([
      '1.1.1.1',
      'https',
      'h',
      'r',
      'for=1.1.1.1',
      'uid=1',
    ]);
    expect(outNames(kept.out)).toEqual(['cookie']);
  });

  it('counts Content-Length headers and forwards them; only a non-zero one means a body', () => {
    const r = scanRequestHeaders(['Content-Length', '0', 'content-length', '0'], names);
    expect([r.contentLengthCount, r.hasBody]).toEqual([2, false]);
    expect(r.out).toEqual(['Content-Length', '0', 'content-length', '0']);
    expect(scanRequestHeaders(['Content-Length', '00'], names).hasBody).toBe(true);
  });

  it('headerNames ignores an empty or absurdly long configured name without breaking the scan', () => {
    const long = `x-${'a'.repeat(300)}`;
    const n = headerNames(long, '', [long]);
    const r = scanRequestHeaders([long, 'v', 'Host', 'h', 'X-Sluice-Pool', 'green'], n);
    expect(outNames(r.out)).toEqual([long, 'host', 'x-sluice-pool']);
    expect(r.override).toBeUndefined();
  });
});

describe('response headers: lengths and names at the edges', () => {
  const b = (...xs: string[]) => xs.map((x) => Buffer.from(x, 'latin1'));

  it.each([
    ['9', 9],
    ['0', 0],
    ['1/', -1],
    ['1:', -1],
    ['/', -1],
    [':', -1],
    ['100000000000000', 100000000000000],
  ])('Content-Length %j → body length %d', (v, length) => {
    const meta = { bodyLength: 99 };
    expect(responseHeaders(b('Content-Length', v), meta)).toEqual(['Content-Length', v]);
    expect(meta.bodyLength).toBe(length);
  });

  it('drops each hop-by-hop header in any case, and keeps names of other lengths', () => {
    const out = responseHeaders(
      b(
        'TE',
        'x',
        'Trailer',
        'x',
        'UPGRADE',
        'x',
        'Proxy-Connection',
        'x',
        'keep-alive',
        'x',
        'X-A-Header-Name-Of-Length-32-abc',
        'long',
        'ETag',
        '"1"',
      ),
      { bodyLength: -1 },
    );
    expect(out).toEqual(['X-A-Header-Name-Of-Length-32-abc', 'long', 'ETag', '"1"']);
  });

  it('only Transfer-Encoding makes the framing chunked, and only Content-Length gives a length', () => {
    // Names of the same lengths as those the rewrite acts on (7, 10, 14, 17).
    const meta = { bodyLength: -1 };
    const out = responseHeaders(
      b(
        'Keep-Alive',
        '5',
        'Upgrade',
        'x',
        'Expires',
        '0',
        'Set-Cookie',
        'a=1',
        'Accept-Charset',
        '9',
        'X-Frame-Options-1',
        'x',
        'Content-Length',
        '5',
      ),
      meta,
    );
    expect(meta.bodyLength).toBe(5);
    expect(out).toEqual([
      'Expires',
      '0',
      'Set-Cookie',
      'a=1',
      'Accept-Charset',
      '9',
      'X-Frame-Options-1',
      'x',
      'Content-Length',
      '5',
    ]);
  });

  it('a Connection header naming Content-Length drops it, though the length was read', () => {
    const meta = { bodyLength: 0 };
    expect(responseHeaders(b('Content-Length', '5', 'Connection', 'content-length, close'), meta)).toEqual([]);
    expect(meta.bodyLength).toBe(5);
  });
});

describe('cookies: quotes and separators', () => {
  it.each([
    ['uid=""', 'uid', ''],
    ['uid="', 'uid', '"'],
    ['uid="abc', 'uid', '"abc'],
    ['uid=abc"', 'uid', 'abc"'],
    ['a=1;uid=2', 'uid', '2'],
    ['uidx=1; uid=2', 'uid', '2'],
    ['uid = 1; uid=2', 'uid', '2'],
    ['a=1; uid= 7 ;b=2', 'uid', '7'],
    ['uid', 'uid', undefined],
  ])('%j[%s] → %j', (c, n, v) => {
    expect(cookieValue(c, n)).toBe(v);
  });
});

describe('cookies: an empty name', () => {
  // split.override.cookie may be configured as ''. The search for an empty name used to never
  // return: every request with a Cookie header hung the event loop.
  it.each(['a=1', 'a=1; b=2', '=1', ''])('%j has no cookie named ""', (c) => {
    expect(cookieValue(c, '')).toBeUndefined();
    expect(soleCookieValue(c, '')).toBeUndefined();
  });
});

describe('SAFE_REQUEST_ID', () => {
  it.each(['a', 'req-42', 'A.b_c:d-9', 'x'.repeat(128)])('keeps %j', (id) => {
    expect(SAFE_REQUEST_ID.test(id)).toBe(true);
  });
  it.each(['', 'x'.repeat(129), 'a b', 'abc!', '!abc', '!!!', 'a\nb', 'id;drop', '\u00e9t\u00e9'])(
    'refuses %j',
    (id) => {
      expect(SAFE_REQUEST_ID.test(id)).toBe(false);
    },
  );
});

describe('Host: the edges of the byte classes', () => {
  it.each(['h%09', 'h%af', 'h%AF', 'h%fA', 'a:0', 'a:9', 'a:12345', 'z', 'Z', '0', '9'])('accepts %j', (h) => {
    expect(validHost(h)).toBe(true);
  });
  it.each([
    'a\u0080',
    'a\u00ff',
    'h%g0',
    'h%G0',
    'h%/0',
    'h%:0',
    'h%@0',
    'h%`0',
    'h%0g',
    'a:/',
    'a:123456',
    '[::1]:123456',
    '[::1]:x',
    'a:-1',
  ])('refuses %j', (h) => {
    expect(validHost(h)).toBe(false);
  });
});

describe('rawHeader', () => {
  it('finds the first value of a name in any case, and nothing for an absent one', () => {
    const raw = [
      'Host',
      'a',
      'User-Agent',
      'curl/8',
      'user-agent',
      'second',
      'REFERER',
      'https://r/',
      'X-Long-Name',
      'v',
    ];
    expect(rawHeader(raw, 'user-agent')).toBe('curl/8');
    expect(rawHeader(raw, 'referer')).toBe('https://r/');
    expect(rawHeader(raw, 'cookie')).toBeUndefined();
    expect(rawHeader([], 'referer')).toBeUndefined();
  });
});
