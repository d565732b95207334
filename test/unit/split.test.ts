import { describe, expect, it } from 'vitest';
import { rng } from '../helpers/sim.js';
import { bucketOf, BUCKETS, murmurHash2 } from '../../src/data/murmur.js';
import {
  choosePool,
  clientIp,
  FORCED,
  normalizeIp,
  overridePool,
  parseSplitKey,
  poolForBucket,
  routingKey,
  type Selector,
} from '../../src/data/select.js';
import { makeTable } from '../../src/data/table.js';
import { headerNames, scanRequestHeaders } from '../../src/data/headers.js';
import { TrustedSet } from '../../src/core/net.js';

const randomIp = (r: () => number) =>
  `${1 + Math.floor(r() * 223)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`;

/** An independent byte-wise MurmurHash2 (seed 0) over a Buffer, to check the string version. */
function murmurRef(buf: Buffer): number {
  const m = 0x5bd1e995;
  let h = buf.length >>> 0;
  let i = 0;
  let len = buf.length;
  while (len >= 4) {
    let k = buf.readUInt32LE(i);
    k = Math.imul(k, m) >>> 0;
    k = (k ^ (k >>> 24)) >>> 0;
    k = Math.imul(k, m) >>> 0;
    h = (Math.imul(h, m) ^ k) >>> 0;
    i += 4;
    len -= 4;
  }
  if (len === 3) h ^= buf[i + 2]! << 16;
  if (len >= 2) h ^= buf[i + 1]! << 8;
  if (len >= 1) h = Math.imul(h ^ buf[i]!, m) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, m) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

const noOverride: Selector = { key: { kind: 'ip' }, overrideCookie: undefined };
const defaultNames = headerNames(undefined, 'x-sluice-pool');
const scan = (raw: string[] = []) => scanRequestHeaders(raw, defaultNames);
const always = () => true;

describe('murmurHash2', () => {
  it.each(['', 'a', 'ab', 'abc', 'abcd', 'abcde', '127.0.0.1', '2001:db8::1', 'user-42', '\u00ff\u00fe\u0080'])(
    'matches a byte-wise reference for %j',
    (s) => {
      expect(murmurHash2(s)).toBe(murmurRef(Buffer.from(s, 'latin1')));
    },
  );

  it('matches the reference on 2,000 random strings of every length up to 40', () => {
    const r = rng(7);
    for (let n = 0; n < 2000; n++) {
      const len = n % 41;
      let s = '';
      for (let i = 0; i < len; i++) s += String.fromCharCode(Math.floor(r() * 256));
      expect(murmurHash2(s)).toBe(murmurRef(Buffer.from(s, 'latin1')));
    }
  });

  it('puts every key in [0, 10000)', () => {
    const r = rng(1);
    for (let i = 0; i < 5000; i++) {
      const b = bucketOf(randomIp(r));
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
      expect(Number.isInteger(b)).toBe(true);
    }
  });
});

describe('split: share of keys on the canary', () => {
  it.each([1, 10, 33.33, 50, 90])('green at %s %% gets that share of 10,000 random keys within ±1.5 points', (w) => {
    const r = rng(Math.round(w * 100));
    const table = makeTable(1, 'blue', { blue: 100 - w, green: w });
    let green = 0;
    for (let i = 0; i < 10_000; i++) if (poolForBucket(table, bucketOf(randomIp(r))) === 1) green++;
    expect(Math.abs((green / 10_000) * 100 - w)).toBeLessThanOrEqual(1.5);
  });

  it.each([
    [0, 0],
    [100, 10_000],
  ])('green at %s %% owns %s buckets: none or all', (w, owned) => {
    const table = makeTable(1, 'blue', { blue: 100 - w, green: w });
    expect(table.canaryBuckets).toBe(owned);
    expect(poolForBucket(table, 0)).toBe(w === 0 ? 0 : 1);
    expect(poolForBucket(table, BUCKETS - 1)).toBe(w === 100 ? 1 : 0);
  });

  it('uses 0.01 % resolution: 33.33 owns exactly 3333 buckets', () => {
    expect(makeTable(1, 'blue', { blue: 66.67, green: 33.33 }).canaryBuckets).toBe(3333);
  });

  it('follows the roles: with green stable, blue is the canary and owns the low buckets', () => {
    const t = makeTable(1, 'green', { blue: 10, green: 90 });
    expect(t.canary).toBe(0);
    expect(poolForBucket(t, 999)).toBe(0);
    expect(poolForBucket(t, 1000)).toBe(1);
  });
});

describe('split: monotonic and sticky', () => {
  it('raising the canary weight never moves a key from canary back to stable', () => {
    const r = rng(99);
    const keys = Array.from({ length: 5000 }, () => randomIp(r));
    const weights = [0, 0.01, 1, 5, 10, 10.5, 25, 33.33, 50, 75, 99.99, 100];
    let prev = keys.map(() => 0);
    for (const w of weights) {
      const t = makeTable(1, 'blue', { blue: 100 - w, green: w });
      const now = keys.map((k) => poolForBucket(t, bucketOf(k)));
      now.forEach((p, i) => {
        if (prev[i] === 1) expect(p).toBe(1);
      });
      prev = now;
    }
  });

  it('gives one key the same pool every time and under every table with the same weights', () => {
    const r = rng(3);
    for (let i = 0; i < 500; i++) {
      const k = randomIp(r);
      const a = poolForBucket(makeTable(1, 'blue', { blue: 70, green: 30 }), bucketOf(k));
      const b = poolForBucket(makeTable(99, 'blue', { blue: 70, green: 30 }), bucketOf(k));
      expect(a).toBe(b);
    }
  });
});

describe('split: keys and overrides', () => {
  const table = makeTable(1, 'blue', { blue: 50, green: 50 });

  it.each([
    ['blue', 0],
    ['green', 1],
    [' GREEN ', 1],
    ['purple', -1],
    ['', -1],
    [undefined, -1],
  ] as const)('override value %j → %s', (v, expected) => {
    expect(overridePool(v)).toBe(expected);
  });

  it('forces a pool with the override header even at 0 % canary, marked FORCED', () => {
    const t0 = makeTable(1, 'blue', { blue: 100, green: 0 });
    expect(choosePool(t0, noOverride, scan(['X-Sluice-Pool', 'green']), '1.2.3.4', always)).toBe(1 | FORCED);
    expect(choosePool(t0, noOverride, scan(['X-Sluice-Pool', 'blue']), '1.2.3.4', always)).toBe(0 | FORCED);
    expect(choosePool(t0, noOverride, scan(), '1.2.3.4', always)).toBe(0);
  });

  it('forces a pool only for clients in split.override.allowFrom when it is set', () => {
    const t0 = makeTable(1, 'blue', { blue: 100, green: 0 });
    const sel: Selector = { ...noOverride, overrideFrom: new TrustedSet(['10.0.0.0/8', '::1/128']) };
    const forcing = scan(['X-Sluice-Pool', 'green']);
    expect(choosePool(t0, sel, forcing, '10.1.2.3', always)).toBe(1 | FORCED);
    expect(choosePool(t0, sel, forcing, '::1', always)).toBe(1 | FORCED);
    // Anyone else is routed by the key, unmarked, as if no override were sent.
    expect(choosePool(t0, sel, forcing, '192.168.1.1', always)).toBe(0);
    expect(choosePool(t0, sel, forcing, '11.0.0.1', always)).toBe(0);
  });

  it('keeps the FORCED mark when the forced pool has no endpoint and the other takes the request', () => {
    const t0 = makeTable(1, 'blue', { blue: 100, green: 0 });
    expect(choosePool(t0, noOverride, scan(['X-Sluice-Pool', 'green']), '1.2.3.4', (id) => id === 0)).toBe(0 | FORCED);
  });

  it('forces a pool with the override cookie', () => {
    const t0 = makeTable(1, 'blue', { blue: 100, green: 0 });
    const sel: Selector = { key: { kind: 'ip' }, overrideCookie: 'sluice-pool' };
    expect(choosePool(t0, sel, scan(['Cookie', 'a=1; sluice-pool=green; b=2']), '1.2.3.4', always)).toBe(1 | FORCED);
  });

  it('ignores garbage override values and routes by key', () => {
    const sel: Selector = { key: { kind: 'ip' }, overrideCookie: 'sluice-pool' };
    const expected = poolForBucket(table, bucketOf('1.2.3.4'));
    expect(
      choosePool(
        table,
        sel,
        scan(['X-Sluice-Pool', 'x'.repeat(5000), 'Cookie', 'sluice-pool=\u0000;;=']),
        '1.2.3.4',
        always,
      ),
    ).toBe(expected);
  });

  it('keys by header and by cookie, falling back to the ip when absent or empty', () => {
    const hs: Selector = { key: { kind: 'header', name: 'x-user' }, overrideCookie: undefined };
    const userKey = headerNames('x-user', undefined);
    const withHeader = scanRequestHeaders(['X-User', 'alice'], userKey);
    expect(routingKey(hs, withHeader, '9.9.9.9')).toBe('alice');
    const emptyHeader = scanRequestHeaders(['X-User', ''], userKey);
    expect(routingKey(hs, emptyHeader, '9.9.9.9')).toBe('9.9.9.9');
    expect(routingKey(hs, scanRequestHeaders(['Accept', '*/*'], userKey), '9.9.9.9')).toBe('9.9.9.9');
    const cs: Selector = { key: { kind: 'cookie', name: 'uid' }, overrideCookie: undefined };
    expect(routingKey(cs, scan(['Cookie', 'x=1; uid=u-77']), '9.9.9.9')).toBe('u-77');
    expect(routingKey(cs, scan(['Cookie', 'xuid=nope']), '9.9.9.9')).toBe('9.9.9.9');
    expect(routingKey(cs, scan([]), '9.9.9.9')).toBe('9.9.9.9');
  });

  it('sends traffic to the other pool when the chosen one has no available endpoint, and not when neither has', () => {
    const t = makeTable(1, 'blue', { blue: 0, green: 100 });
    expect(choosePool(t, noOverride, scan(), '1.1.1.1', (id) => id === 0)).toBe(0);
    expect(choosePool(t, noOverride, scan(), '1.1.1.1', () => false)).toBe(1);
  });
});

describe('client ip', () => {
  const trusted = new TrustedSet(['10.0.0.0/8', '::1/128']);
  it.each([
    ['untrusted peer: XFF ignored', '203.0.113.9', false, '1.1.1.1', '203.0.113.9'],
    ['trusted peer without XFF', '10.0.0.2', true, undefined, '10.0.0.2'],
    ['trusted peer: right-most untrusted entry', '10.0.0.2', true, '6.6.6.6, 1.1.1.1, 10.9.9.9', '1.1.1.1'],
    ['all entries trusted: the left-most', '10.0.0.2', true, '10.1.1.1, 10.2.2.2', '10.1.1.1'],
    ['mapped addresses normalised', '10.0.0.2', true, '::ffff:1.2.3.4', '1.2.3.4'],
  ] as const)('%s', (_name, peer, isTrusted, xff, expected) => {
    expect(clientIp(peer, isTrusted, xff, trusted)).toBe(expected);
  });
});

describe('split: an ambiguous override forces nothing', () => {
  // 0 % canary: the key routes to blue (0), so only the override can give green (1).
  const t0 = makeTable(1, 'blue', { blue: 100, green: 0 });
  const sel: Selector = { key: { kind: 'ip' }, overrideCookie: 'sluice-pool' };
  const pool = (raw: string[]) => choosePool(t0, sel, scan(raw), '1.2.3.4', always);

  it('a single plain cookie or header forces (control)', () => {
    expect(pool(['Cookie', 'sluice-pool=green']) & 1).toBe(1);
    expect(pool(['X-Sluice-Pool', 'green']) & 1).toBe(1);
  });

  it.each([
    ['a quoted cookie', ['Cookie', 'sluice-pool="green"']],
    ['two cookies that disagree', ['Cookie', 'sluice-pool=green; sluice-pool=blue']],
    ['two cookies that agree', ['Cookie', 'sluice-pool=green;sluice-pool=green']],
    ['the cookie in two Cookie headers', ['Cookie', 'sluice-pool=green', 'Cookie', 'a=1; sluice-pool=green']],
    ['two headers that disagree', ['X-Sluice-Pool', 'blue', 'X-Sluice-Pool', 'green']],
    ['two headers that agree', ['X-Sluice-Pool', 'green', 'x-sluice-pool', 'green']],
  ])('%s: routed by the key, unforced', (_name, raw) => {
    expect(pool(raw)).toBe(0);
  });

  it('two override headers fall to the cookie, as a garbage header does', () => {
    expect(pool(['X-Sluice-Pool', 'blue', 'X-Sluice-Pool', 'blue', 'Cookie', 'sluice-pool=green']) & 1).toBe(1);
  });
});

describe('parseSplitKey', () => {
  it.each([
    ['ip', { kind: 'ip' }],
    ['', { kind: 'ip' }],
    ['header:X-User-Id', { kind: 'header', name: 'x-user-id' }],
    ['cookie:Session_ID', { kind: 'cookie', name: 'Session_ID' }],
    ['Header:X-User', { kind: 'ip' }],
    ['x-header:a', { kind: 'ip' }],
    ['a cookie:b', { kind: 'ip' }],
  ] as const)('%j → %o', (spec, key) => {
    expect(parseSplitKey(spec)).toEqual(key);
  });
});

describe('normalizeIp', () => {
  it.each([
    [undefined, ''],
    ['1.2.3.4', '1.2.3.4'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::ffff:7f00:1', '::ffff:7f00:1'],
    ['2001:db8::ffff:1.2.3.4', '2001:db8::ffff:1.2.3.4'],
    ['::1', '::1'],
  ])('%j → %j', (ip, expected) => {
    expect(normalizeIp(ip)).toBe(expected);
  });
});

describe('client ip: empty and padded X-Forwarded-For entries', () => {
  const trusted = new TrustedSet(['10.0.0.0/8']);
  it.each([
    ['a trailing empty entry is skipped', '1.1.1.1, ', '1.1.1.1'],
    ['empty entries between are skipped', '1.1.1.1,,  ,10.0.0.9', '1.1.1.1'],
    ['an empty header: the peer', '', '10.0.0.2'],
    ['only commas: the peer', ' , ,', '10.0.0.2'],
    ['a leading empty entry behind trusted ones: the peer', ',10.1.1.1', '10.0.0.2'],
    ['padding is trimmed', '  2.2.2.2  ', '2.2.2.2'],
  ])('%s', (_name, xff, expected) => {
    expect(clientIp('10.0.0.2', true, xff, trusted)).toBe(expected);
  });
});

describe('choosePool: failover and which override counts', () => {
  const sel: Selector = { key: { kind: 'ip' }, overrideCookie: 'sluice-pool' };

  it('fails over from either pool to the other, and keeps the choice when both or neither are available', () => {
    const allBlue = makeTable(1, 'blue', { blue: 100, green: 0 });
    const allGreen = makeTable(1, 'blue', { blue: 0, green: 100 });
    const onlyGreen = (id: number) => id === 1;
    const onlyBlue = (id: number) => id === 0;
    expect(choosePool(allBlue, noOverride, scan(), '1.1.1.1', onlyGreen)).toBe(1);
    expect(choosePool(allGreen, noOverride, scan(), '1.1.1.1', onlyBlue)).toBe(0);
    expect(choosePool(allBlue, noOverride, scan(), '1.1.1.1', always)).toBe(0);
    expect(choosePool(allBlue, noOverride, scan(), '1.1.1.1', () => false)).toBe(0);
    // A forced request fails over too, still marked.
    expect(choosePool(allGreen, noOverride, scan(['X-Sluice-Pool', 'blue']), '1.1.1.1', onlyGreen)).toBe(1 | FORCED);
  });

  it('the override header wins over the override cookie', () => {
    const t = makeTable(1, 'blue', { blue: 100, green: 0 });
    expect(choosePool(t, sel, scan(['X-Sluice-Pool', 'green', 'Cookie', 'sluice-pool=blue']), '1.1.1.1', always)).toBe(
      1 | FORCED,
    );
    expect(choosePool(t, sel, scan(['X-Sluice-Pool', 'blue', 'Cookie', 'sluice-pool=green']), '1.1.1.1', always)).toBe(
      0 | FORCED,
    );
  });

  it('without an override cookie configured, no cookie forces (not even one named "undefined")', () => {
    const t = makeTable(1, 'blue', { blue: 100, green: 0 });
    expect(choosePool(t, noOverride, scan(['Cookie', 'undefined=green; sluice-pool=green']), '1.1.1.1', always)).toBe(
      0,
    );
  });

  it('an override cookie configured as "" forces nothing (and does not hang on a Cookie header)', () => {
    const t = makeTable(1, 'blue', { blue: 100, green: 0 });
    const empty: Selector = { key: { kind: 'ip' }, overrideCookie: '' };
    expect(choosePool(t, empty, scan(['Cookie', 'a=1; =green']), '1.1.1.1', always)).toBe(0);
  });

  it('routes by the ip when the key is the ip, whatever cookies and headers say', () => {
    const r = rng(5);
    const t = makeTable(1, 'blue', { blue: 50, green: 50 });
    for (let i = 0; i < 200; i++) {
      const ip = randomIp(r);
      const s = scan(['Cookie', `undefined=${randomIp(r)}`, 'X-User', randomIp(r)]);
      expect(routingKey(noOverride, s, ip)).toBe(ip);
      expect(choosePool(t, noOverride, s, ip, always)).toBe(poolForBucket(t, bucketOf(ip)));
    }
  });

  it('a cookie key that is present but empty falls back to the ip', () => {
    const cs: Selector = { key: { kind: 'cookie', name: 'uid' }, overrideCookie: undefined };
    expect(routingKey(cs, scan(['Cookie', 'uid=; a=1']), '9.9.9.9')).toBe('9.9.9.9');
    expect(routingKey(cs, scan(['Cookie', 'uid="u-1"']), '9.9.9.9')).toBe('u-1');
  });
});

describe('bucketOf', () => {
  it('is the hash scaled onto 10,000 buckets, as split_clients does (property)', () => {
    const r = rng(21);
    for (let i = 0; i < 2000; i++) {
      const k = randomIp(r);
      expect(bucketOf(k)).toBe(Math.floor((murmurRef(Buffer.from(k, 'latin1')) / 2 ** 32) * 10_000));
    }
  });

  it('hashes a char code above 255 as its low byte, as latin1 bytes are', () => {
    const r = rng(8);
    for (let n = 0; n < 500; n++) {
      let s = '';
      for (let i = 0; i < n % 23; i++) s += String.fromCharCode(Math.floor(r() * 0x10000));
      expect(murmurHash2(s)).toBe(murmurRef(Buffer.from(s, 'latin1')));
    }
  });
});
