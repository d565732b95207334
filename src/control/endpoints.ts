/**
 * Endpoint availability, owned here (one writer): the health checker's verdicts and the request
 * path's reports (`failing`, `answered`) become one availability table with its own version,
 * which the controller publishes inside the routing table to every worker. An ejection one
 * worker saw therefore applies to all of them at once.
 */
import type { Clock } from '../core/clock.js';
import type { PoolName } from '../core/config.js';
import { poolNameOf, type Availability, type EndpointState, type PoolId } from '../data/table.js';
import type { EndpointEvent } from '../data/upstream.js';

export interface EjectionPolicy {
  /** How long an endpoint stays out after a reported streak of connect failures (ms). */
  ejectFor: number;
}

/** One endpoint's change, for the log line and the live page. */
export interface EndpointChange {
  pool: PoolName;
  url: string;
  /**
   * `ejected` / `restored`: passive; `extended`: a further streak of failures moved an ejection's
   * end; `unhealthy` / `healthy`: active checks.
   */
  change: 'ejected' | 'extended' | 'restored' | 'unhealthy' | 'healthy';
}

export class EndpointBook {
  private readonly states: [EndpointState[], EndpointState[]];
  private version = 0;
  private readonly listeners = new Set<(a: Availability, c: EndpointChange) => void>();

  private lists: [readonly string[], readonly string[]];

  constructor(
    urls: readonly [readonly string[], readonly string[]],
    private readonly policy: EjectionPolicy,
    private readonly clock: Clock,
  ) {
    this.lists = [urls[0].map(trimUrl), urls[1].map(trimUrl)];
    const up = (n: number) => Array.from({ length: n }, () => ({ up: true, ejectedUntil: 0 }));
    this.states = [up(urls[0].length), up(urls[1].length)];
  }

  /** The endpoints of each pool, in table order (without a trailing slash). */
  get urls(): readonly [readonly string[], readonly string[]] {
    return this.lists;
  }

  /**
   * A reload's endpoint lists: an endpoint that stays keeps its state; a new one starts out of
   * rotation when `checked` (the health checks admit it once it passes), else in it. The new
   * availability has a new version, and goes out with the table that carries the new lists.
   */
  setUrls(urls: readonly [readonly string[], readonly string[]], checked: boolean): void {
    for (const pool of [0, 1] as const) {
      const before = new Map(this.lists[pool].map((u, i) => [u, this.states[pool][i]]));
      const list = urls[pool].map(trimUrl);
      // A pool whose every endpoint is new is not emptied while their first checks run: that
      // would send all its traffic to the other pool, or fail a canary for having none healthy.
      const keepsOne = list.some((u) => before.get(u)?.up === true);
      const fresh = Object.freeze({ up: !checked || !keepsOne, ejectedUntil: 0 });
      this.lists[pool] = list;
      this.states[pool] = list.map((u) => before.get(u) ?? fresh);
    }
    this.version++;
  }

  /** Health checks were turned off: no endpoint stays out for a verdict nobody will revise. */
  clearActive(): void {
    let changed = false;
    for (const pool of [0, 1] as const)
      if (this.states[pool].some((s) => !s.up)) {
        this.states[pool] = this.states[pool].map((s) =>
          s.up ? s : Object.freeze({ up: true, ejectedUntil: s.ejectedUntil }),
        );
        changed = true;
      }
    if (changed) this.version++;
  }

  /** The current availability: a value (the arrays are copied on every change, never mutated). */
  get current(): Availability {
    return { health: this.version, endpoints: [this.states[0], this.states[1]] };
  }

  onChange(fn: (a: Availability, c: EndpointChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  state(pool: PoolId, index: number): EndpointState | undefined {
    return this.states[pool][index];
  }

  /** Whether the endpoint may take traffic at `now`. */
  available(pool: PoolId, index: number, now: number): boolean {
    const s = this.states[pool][index];
    return s?.up === true && now >= s.ejectedUntil;
  }

  /** Whether at least one endpoint of the pool may take traffic at `now`. */
  hasAvailable(pool: PoolId, now: number): boolean {
    return this.states[pool].some((_, i) => this.available(pool, i, now));
  }

  /** A report from the request path (any worker). */
  report(e: EndpointEvent): void {
    // Sent before a reload moved the list: found by its URL, or gone.
    const index = this.lists[e.pool][e.index] === e.url ? e.index : this.lists[e.pool].indexOf(e.url);
    if (index !== e.index) {
      if (index >= 0) this.report({ ...e, index });
      return;
    }
    const s = this.states[e.pool][e.index];
    if (s === undefined) return;
    const now = this.clock();
    if (e.kind === 'failing') {
      const wasOut = s.ejectedUntil !== 0;
      this.set(
        e.pool,
        e.index,
        { up: s.up, ejectedUntil: now + this.policy.ejectFor },
        wasOut ? 'extended' : 'ejected',
      );
    } else if (s.ejectedUntil !== 0) {
      this.set(e.pool, e.index, { up: s.up, ejectedUntil: 0 }, 'restored');
    }
  }

  /** The active health checker's verdict. */
  setActive(pool: PoolId, index: number, healthy: boolean): void {
    const s = this.states[pool][index];
    if (s === undefined || s.up === healthy) return;
    this.set(pool, index, { up: healthy, ejectedUntil: s.ejectedUntil }, healthy ? 'healthy' : 'unhealthy');
  }

  private set(pool: PoolId, index: number, next: EndpointState, change: EndpointChange['change']): void {
    const row = [...this.states[pool]];
    row[index] = Object.freeze(next);
    this.states[pool] = row;
    this.version++;
    const a = this.current;
    const c: EndpointChange = { pool: poolNameOf(pool), url: this.lists[pool][index] as string, change };
    for (const fn of this.listeners) fn(a, c);
  }
}

const trimUrl = (u: string) => u.replace(/\/$/, '');
