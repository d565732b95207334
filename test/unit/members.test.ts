/**
 * What the control plane decides from members' values: endpoint availability (one writer), totals
 * that never go back when a member is replaced, merged intervals, the restart backoff, and the
 * state store's compare-and-set.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EndpointBook, type EndpointChange } from '../../src/control/endpoints.js';
import { Members, type Member, type MemberInfo } from '../../src/control/members.js';
import { FileStateStore, MemoryStateStore, StaleWriteError } from '../../src/control/state-store.js';
import type { MemberReport } from '../../src/data/plane.js';
import type { Availability, RoutingTable } from '../../src/data/table.js';
import { DURATION_BUCKETS, Recorder } from '../../src/stats/recorder.js';
import { addTotals, emptyTotals, type PoolTotals, served, type Totals, TotalsBook } from '../../src/stats/totals.js';
import { restartDelay } from '../../src/worker/member.js';

const URLS = ['http://a', 'http://b'];

describe('EndpointBook', () => {
  const book = () => {
    let now = 1000;
    const b = new EndpointBook([['http://a/', 'http://b'], ['http://g']], { ejectFor: 500 }, () => now);
    const changes: EndpointChange['change'][] = [];
    b.onChange((_a, c) => changes.push(c.change));
    return { b, changes, at: (t: number) => (now = t) };
  };

  it('ejects on a failing report for ejectFor, extends on another, restores on an answer', () => {
    const { b, changes, at } = book();
    expect(b.current.health).toBe(0);
    b.report({ kind: 'failing', pool: 0, index: 1, url: URLS[1] as string });
    expect(b.state(0, 1)).toEqual({ up: true, ejectedUntil: 1500 });
    expect(b.available(0, 1, 1499)).toBe(false);
    expect(b.available(0, 1, 1500)).toBe(true);
    expect(b.hasAvailable(0, 1200)).toBe(true); // endpoint 0 is still up
    at(1300);
    b.report({ kind: 'failing', pool: 0, index: 1, url: URLS[1] as string });
    expect(b.state(0, 1)!.ejectedUntil).toBe(1800);
    b.report({ kind: 'answered', pool: 0, index: 1, url: URLS[1] as string });
    expect(b.state(0, 1)).toEqual({ up: true, ejectedUntil: 0 });
    // An answer from an endpoint that is not ejected changes nothing.
    b.report({ kind: 'answered', pool: 0, index: 0, url: URLS[0] as string });
    expect(changes).toEqual(['ejected', 'extended', 'restored']);
    expect(b.current.health).toBe(3);
  });

  it('a reload keeps the state of endpoints that stay; new ones wait for a check when checks run; old events find theirs by URL', () => {
    const { b, changes } = book();
    b.report({ kind: 'failing', pool: 0, index: 1, url: 'http://b' });
    const health = b.current.health;
    b.setUrls([['http://c', 'http://b/'], ['http://g']], true);
    expect(b.urls).toEqual([['http://c', 'http://b'], ['http://g']]);
    expect(b.current.health).toBe(health + 1);
    // b stays ejected (moved from 1 to... 1), c is new and checked first, g unchanged.
    expect(b.state(0, 1)).toEqual({ up: true, ejectedUntil: 1500 });
    expect(b.state(0, 0)).toEqual({ up: false, ejectedUntil: 0 });
    expect(b.state(1, 0)).toEqual({ up: true, ejectedUntil: 0 });
    // An event sent before the reload, for a's old place: a is gone, nothing changes.
    b.report({ kind: 'failing', pool: 0, index: 0, url: 'http://a' });
    expect(b.state(0, 0)).toEqual({ up: false, ejectedUntil: 0 });
    // For b at an old index that now names c: found by URL.
    b.setUrls([['http://b', 'http://c'], ['http://g']], false);
    b.report({ kind: 'answered', pool: 0, index: 1, url: 'http://b' });
    expect(b.state(0, 0)).toEqual({ up: true, ejectedUntil: 0 });
    expect(b.state(0, 1)).toEqual({ up: false, ejectedUntil: 0 });
    expect(changes).toEqual(['ejected', 'restored']);
    // Without checks, a new endpoint takes traffic at once.
    b.setUrls([['http://b', 'http://c', 'http://d'], ['http://g']], false);
    expect(b.state(0, 2)).toEqual({ up: true, ejectedUntil: 0 });
    // A pool whose endpoints are all new keeps taking traffic while their checks run: emptying
    // it would move its traffic to the other pool, or fail a canary with no endpoint healthy.
    b.setUrls([['http://b'], ['http://x', 'http://y']], true);
    expect([b.state(1, 0)?.up, b.state(1, 1)?.up]).toEqual([true, true]);
  });

  it('turning health checks off puts every endpoint they took out back, keeping ejections', () => {
    const { b } = book();
    b.setActive(0, 0, false);
    b.report({ kind: 'failing', pool: 0, index: 1, url: 'http://b' });
    const v = b.current.health;
    b.clearActive();
    expect(b.state(0, 0)).toEqual({ up: true, ejectedUntil: 0 });
    expect(b.state(0, 1)).toEqual({ up: true, ejectedUntil: 1500 });
    expect(b.current.health).toBe(v + 1);
    b.clearActive(); // nothing left to clear: no new version
    expect(b.current.health).toBe(v + 1);
  });

  it('takes active verdicts, and a pool with none available says so', () => {
    const { b, changes } = book();
    b.setActive(1, 0, false);
    b.setActive(1, 0, false); // the same verdict again: no change, no new version
    expect(b.hasAvailable(1, 0)).toBe(false);
    expect(b.current.health).toBe(1);
    b.setActive(1, 0, true);
    expect(b.hasAvailable(1, 0)).toBe(true);
    expect(changes).toEqual(['unhealthy', 'healthy']);
  });

  it('hands out values: an availability taken earlier does not change later', () => {
    const { b } = book();
    const before = b.current;
    b.report({ kind: 'failing', pool: 0, index: 0, url: URLS[0] as string });
    expect(before.endpoints[0][0]).toEqual({ up: true, ejectedUntil: 0 });
    expect(b.current.endpoints[0][0]!.ejectedUntil).toBe(1500);
    // Reports about endpoints that do not exist are ignored.
    b.report({ kind: 'failing', pool: 1, index: 7, url: 'http://nowhere' });
    b.setActive(1, 7, false);
    expect(b.current.health).toBe(1);
  });
});

describe('totals', () => {
  const counted = (n: number, code = 200) => {
    const r = new Recorder();
    for (let i = 0; i < n; i++) r.record(0, code, 1000, undefined);
    r.recordForced(1, 502, 'connect');
    r.reject('queue_timeout');
    return r.totals();
  };

  it('add exactly: codes, kinds, buckets, forced and rejected', () => {
    const a = counted(3);
    const b = counted(2, 503);
    const t = addTotals(a, b);
    expect(t.pools[0].codes).toEqual([
      [200, 3],
      [503, 2],
    ]);
    expect(t.pools[0].count).toBe(5);
    expect(t.pools[0].buckets.reduce((x, y) => x + y, 0)).toBe(5);
    expect(t.pools[1].forced).toEqual({ requests: 2, errors: 2 });
    expect(t.rejected).toEqual([['queue_timeout', 2]]);
    expect(served(t)).toBe(7);
    expect(addTotals(emptyTotals(), a)).toEqual(a);
  });

  it('never go back: a retired member stays counted, a repeated report is not counted twice', () => {
    const book = new TotalsBook();
    book.set('w0.0', counted(10));
    book.set('w1.0', counted(5));
    book.set('w1.0', counted(5)); // cumulative: the same report twice is the same count
    expect(book.sum().pools[0].count).toBe(15);
    book.retire('w0.0');
    book.set('w0.1', counted(1)); // the replacement starts from zero
    expect(book.sum().pools[0].count).toBe(16);
    book.retire('nobody');
    expect(book.sum().pools[0].count).toBe(16);
  });
});

/** A member that answers with what it is given (no thread): the merge and retire logic only. */
class FakeMember implements Member {
  info: MemberInfo;
  onRetire?: (id: string) => void;
  tables: number[] = [];
  constructor(
    public id: string,
    public rec: Recorder,
  ) {
    this.info = { id, state: 'running', restarts: 0, inflight: 0, requests: 0 };
  }
  async publish(t: RoutingTable) {
    this.tables.push(t.version);
  }
  async configure(_o: unknown, t: RoutingTable) {
    this.tables.push(t.version);
  }
  async collect(interval: boolean): Promise<MemberReport> {
    return {
      counts: this.rec.counts(),
      interval: interval ? this.rec.takeInterval() : undefined,
      totals: this.rec.totals(),
      inflight: 2,
      connections: [
        { busy: 1, idle: 2, queued: 0 },
        { busy: 0, idle: 1, queued: 1 },
      ],
      endpointInflight: [[2], [0]],
    };
  }
  setLog() {}
  async close() {}
}

describe('Members', () => {
  it('merges intervals and gauges over members, and keeps a replaced member counted', async () => {
    const a = new FakeMember('w0.0', new Recorder());
    const b = new FakeMember('w1.0', new Recorder());
    const m = new Members([a, b]);
    for (let i = 0; i < 30; i++) a.rec.record(1, i < 3 ? 500 : 200, 2000, undefined);
    for (let i = 0; i < 10; i++) b.rec.record(1, 500, 9000, undefined);
    // The urgent look: the sums of the interval under way, which stays open.
    expect(await m.counts()).toEqual([
      { requests: 0, errors: 0 },
      { requests: 40, errors: 13 },
    ]);
    const s = await m.interval([undefined, undefined]);
    expect(s.pools[1]).toMatchObject({ requests: 40, errors: 13 });
    expect(s.pools[1].hist.totalCount).toBe(40);
    // p95 of the merge: 38th of 40 sorted values is one of b's 9 ms (not an average of p95s).
    expect(s.pools[1].hist.getValueAtPercentile(95)).toBeGreaterThan(8900);
    const v = m.view();
    expect(v.inflight).toBe(4);
    expect(v.connections[0]).toEqual({ busy: 2, idle: 4, queued: 0 });
    expect(v.endpointInflight).toEqual([[4], [0]]);
    expect(v.totals.pools[1].count).toBe(40);
    a.onRetire?.('w0.0');
    a.id = 'w0.1';
    a.rec = new Recorder();
    await m.refresh();
    expect(m.view().totals.pools[1].count).toBe(40);
    await m.publish({ version: 7 } as RoutingTable);
    expect([a.tables, b.tables]).toEqual([[7], [7]]);
  });
});

describe('restartDelay', () => {
  it.each([
    [1, 100],
    [2, 200],
    [4, 800],
    [8, 10_000],
    [50, 10_000],
  ])('after %i deaths in a minute: %i ms', (deaths, ms) => expect(restartDelay(deaths)).toBe(ms));
});

describe('state stores: compare-and-set on version', () => {
  const st = (version: number) => ({ version, note: `v${version}` });

  it.each([
    ['memory', () => new MemoryStateStore<ReturnType<typeof st>>()],
    [
      'file',
      () => {
        const file = join(mkdtempSync(join(tmpdir(), 'sluice-store-')), 'state.json');
        return new FileStateStore<ReturnType<typeof st>>(file, (x) => x as ReturnType<typeof st>);
      },
    ],
  ])('%s: an empty store takes any write; then only one based on what it holds', async (_name, make) => {
    const s = make();
    expect((await s.load()).state).toBeUndefined();
    await s.save(st(2), 1);
    await s.save(st(3), 2);
    await expect(s.save(st(4), 2)).rejects.toBeInstanceOf(StaleWriteError);
    await expect(s.save(st(4), 2)).rejects.toThrow(/expected version 2 but the store holds 3/);
    expect((await s.load()).state).toEqual(st(3));
    // Saving the same version again (persist at shutdown) is a write based on what it holds.
    await s.save(st(3), 3);
  });

  it('file: what it wrote is what the next process reads, and that process continues the versions', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sluice-store-')), 'state.json');
    const a = new FileStateStore<ReturnType<typeof st>>(file, (x) => x as ReturnType<typeof st>);
    await a.save(st(5), 4);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(st(5));
    const b = new FileStateStore<ReturnType<typeof st>>(file, (x) => x as ReturnType<typeof st>);
    expect((await b.load()).state).toEqual(st(5));
    await expect(b.save(st(6), 4)).rejects.toBeInstanceOf(StaleWriteError);
    await b.save(st(6), 5);
  });
});

describe('EndpointBook: what listeners get, and what each change keeps', () => {
  const make = () => {
    let now = 0;
    const b = new EndpointBook([['http://b0', 'http://b1'], ['http://g0']], { ejectFor: 100 }, () => now);
    return { b, at: (t: number) => (now = t) };
  };

  it('starts with every endpoint up and version 0', () => {
    const { b } = make();
    expect(b.current).toEqual({
      health: 0,
      endpoints: [
        [
          { up: true, ejectedUntil: 0 },
          { up: true, ejectedUntil: 0 },
        ],
        [{ up: true, ejectedUntil: 0 }],
      ],
    });
    expect(b.available(0, 1, 0)).toBe(true);
    expect(b.available(0, 2, 0)).toBe(false); // no such endpoint
    expect(b.state(1, 1)).toBeUndefined();
  });

  it('tells listeners the new availability with the pool name and url, until they unsubscribe', () => {
    const { b, at } = make();
    const seen: [number, EndpointChange][] = [];
    const off = b.onChange((a, c) => seen.push([a.health, c]));
    at(50);
    b.report({ kind: 'failing', pool: 1, index: 0, url: 'http://g0' });
    b.setActive(0, 1, false);
    expect(seen).toEqual([
      [1, { pool: 'green', url: 'http://g0', change: 'ejected' }],
      [2, { pool: 'blue', url: 'http://b1', change: 'unhealthy' }],
    ]);
    let last: Availability | undefined;
    b.onChange((a) => (last = a));
    off();
    b.setActive(0, 1, true);
    expect(seen).toHaveLength(2);
    expect(last).toEqual(b.current);
    expect(last!.endpoints[1][0]).toEqual({ up: true, ejectedUntil: 150 });
  });

  it('an ejection keeps the active verdict, and an active verdict keeps the ejection', () => {
    const { b, at } = make();
    b.setActive(0, 0, false);
    at(10);
    b.report({ kind: 'failing', pool: 0, index: 0, url: 'http://b0' });
    expect(b.state(0, 0)).toEqual({ up: false, ejectedUntil: 110 });
    b.setActive(0, 0, true);
    expect(b.state(0, 0)).toEqual({ up: true, ejectedUntil: 110 });
    expect(b.available(0, 0, 109)).toBe(false);
    b.setActive(0, 0, false);
    b.report({ kind: 'answered', pool: 0, index: 0, url: 'http://b0' });
    expect(b.state(0, 0)).toEqual({ up: false, ejectedUntil: 0 });
    expect(b.available(0, 0, 1000)).toBe(false);
    // States are frozen values; the other endpoint was never touched.
    expect(Object.isFrozen(b.state(0, 0))).toBe(true);
    expect(b.state(0, 1)).toEqual({ up: true, ejectedUntil: 0 });
  });

  it('a pool is available while any endpoint is', () => {
    const { b } = make();
    b.setActive(0, 0, false);
    expect(b.hasAvailable(0, 0)).toBe(true);
    b.setActive(0, 1, false);
    expect(b.hasAvailable(0, 0)).toBe(false);
    expect(b.hasAvailable(1, 0)).toBe(true);
  });
});

describe('totals: the arithmetic', () => {
  const pool = (over: Partial<PoolTotals>): PoolTotals => ({ ...emptyTotals().pools[0], ...over });

  it('an empty total is zeros of the right shape', () => {
    expect(emptyTotals()).toEqual({
      pools: [0, 1].map(() => ({
        codes: [],
        errorKinds: [0, 0, 0, 0, 0],
        buckets: Array(DURATION_BUCKETS.length + 1).fill(0),
        sumSeconds: 0,
        count: 0,
        forced: { requests: 0, errors: 0 },
        injected: { aborts: 0, delays: 0 },
      })),
      rejected: [],
      retried: { toStable: 0, refused: 0 },
      shadow: { mirrored: 0, dropped: 0, skipped: 0, failed: 0, status: 0, slow: 0 },
    });
    expect(served(emptyTotals())).toBe(0);
  });

  it('adds every field, sorting codes and reasons', () => {
    const a: Totals = {
      pools: [
        pool({
          codes: [
            [503, 1],
            [200, 4],
          ],
          errorKinds: [1, 0, 2, 0, 0],
          sumSeconds: 0.5,
          count: 5,
          forced: { requests: 2, errors: 1 },
          injected: { aborts: 4, delays: 1 },
        }),
        pool({ codes: [[404, 1]], count: 1 }),
      ],
      rejected: [['queue_timeout', 1]],
      retried: { toStable: 3, refused: 1 },
      shadow: { mirrored: 4, dropped: 1, skipped: 0, failed: 2, status: 0, slow: 1 },
    };
    const b: Totals = {
      pools: [
        pool({
          codes: [
            [302, 2],
            [200, 1],
            [0, 1],
          ],
          errorKinds: [0, 3, 1, 0, 4],
          buckets: [1, ...Array(DURATION_BUCKETS.length).fill(0)],
          sumSeconds: 0.25,
          count: 4,
          forced: { requests: 1, errors: 1 },
          injected: { aborts: 1, delays: 2 },
        }),
        emptyTotals().pools[1],
      ],
      rejected: [
        ['too_many_connections', 2],
        ['body_too_slow', 3],
        ['queue_timeout', 4],
      ],
      retried: { toStable: 2, refused: 0 },
      shadow: { mirrored: 3, dropped: 0, skipped: 2, failed: 1, status: 1, slow: 0 },
    };
    const t = addTotals(a, b);
    expect(t.retried).toEqual({ toStable: 5, refused: 1 });
    expect(t.shadow).toEqual({ mirrored: 7, dropped: 1, skipped: 2, failed: 3, status: 1, slow: 1 });
    expect(t.pools[0]).toEqual({
      codes: [
        [0, 1],
        [200, 5],
        [302, 2],
        [503, 1],
      ],
      errorKinds: [1, 3, 3, 0, 4],
      buckets: [1, ...Array(DURATION_BUCKETS.length).fill(0)],
      sumSeconds: 0.75,
      count: 9,
      forced: { requests: 3, errors: 2 },
      injected: { aborts: 5, delays: 3 },
    });
    expect(t.pools[1]).toEqual(pool({ codes: [[404, 1]], count: 1 }));
    expect(t.rejected).toEqual([
      ['body_too_slow', 3],
      ['queue_timeout', 5],
      ['too_many_connections', 2],
    ]);
    // Served: judged and forced, both pools.
    expect(served(t)).toBe(9 + 3 + 1);
    // Values: the inputs are untouched.
    expect(a.pools[0].count).toBe(5);
    expect(b.rejected[0]).toEqual(['too_many_connections', 2]);
  });

  it('a book recomputes its sum after every set, and an empty book sums to zeros', () => {
    const book = new TotalsBook();
    expect(book.sum()).toEqual(emptyTotals());
    const one = (count: number): Totals => ({ ...emptyTotals(), pools: [pool({ count }), pool({})] });
    book.set('a', one(1));
    expect(book.sum().pools[0].count).toBe(1);
    book.set('a', one(4));
    expect(book.sum().pools[0].count).toBe(4);
    book.set('b', one(2));
    expect(book.sum().pools[0].count).toBe(6);
    book.retire('a');
    expect(book.sum().pools[0].count).toBe(6);
    book.set('a', one(1)); // a new member under the old id starts from zero
    expect(book.sum().pools[0].count).toBe(7);
  });
});
