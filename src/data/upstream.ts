/**
 * Upstream pools: keep-alive undici connection pools per endpoint, balanced least-busy with a
 * round-robin tie-break. Which endpoints may take traffic is the control plane's decision, read
 * from the routing table (`apply`): the request path only reports what it sees (a streak of
 * connect failures, an ejected endpoint answering) as events, and the control plane
 * (control/endpoints.ts) ejects for every worker at once, as nginx does with a shared `zone`.
 */
import { Pool } from 'undici';
import type { Clock } from '../core/clock.js';
import type { PoolName } from '../core/config.js';
import type { EndpointState, PoolId } from './table.js';

/**
 * What the request path reports about an endpoint: `failing` after every `ejectAfter` connect
 * failures in a row, `answered` when an endpoint the table ejected answered again.
 */
export interface EndpointEvent {
  readonly kind: 'failing' | 'answered';
  readonly pool: PoolId;
  readonly index: number;
  /** The endpoint's URL: after a reload moved the list, the index alone could name another. */
  readonly url: string;
}

export interface UpstreamOptions {
  connections: number;
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
  ejectAfter: number;
}

/** A request waiting for a free connection of the pool (an exchange, forward.ts). */
export interface Waiter {
  /** False once it no longer waits (it timed out, its client left, or it was resumed). */
  readonly waiting: boolean;
  /** A connection of the pool freed up: try again. */
  resume(): void;
}

export interface UpstreamConnections {
  busy: number;
  idle: number;
  queued: number;
}

export class Endpoint {
  readonly url: string;
  readonly dispatcher: Pool;
  inflight = 0;
  consecutiveFailures = 0;
  /** From the routing table: ejected until this time (ms); 0 when not ejected. */
  ejectedUntil = 0;
  /** From the routing table: the active health checks' verdict; true when none are configured. */
  activeHealthy = true;
  /** An `answered` event for the current ejection went out (one per ejection, not per response). */
  reportedBack = false;

  constructor(
    url: string,
    opts: UpstreamOptions,
    /** Its place in the pool's list (and in the table's availability row); moves on a reload. */
    public index = 0,
  ) {
    this.url = url.replace(/\/$/, '');
    this.dispatcher = new Pool(this.url, {
      connections: opts.connections,
      connectTimeout: opts.connectTimeout,
      // One timeout for headers and body when response < idle: undici then refreshes one timer
      // per connection rather than arming a second per response; sluice keeps the shorter
      // response timeout itself (data/deadlines.ts).
      headersTimeout: Math.max(opts.headersTimeout, opts.bodyTimeout),
      bodyTimeout: opts.bodyTimeout,
      // Idle upstream connections are kept 4 s unless the upstream's Keep-Alive says otherwise:
      // longer than Node's 5 s server default would race the upstream's own close.
      keepAliveTimeout: 4000,
      keepAliveMaxTimeout: 600_000,
      pipelining: 1,
    });
  }

  available(now: number): boolean {
    return this.activeHealthy && (this.ejectedUntil === 0 || now >= this.ejectedUntil);
  }
}

export class UpstreamPool {
  readonly id: PoolId;
  readonly name: PoolName;
  /** Replaced whole by a reload (setEndpoints), never changed in place. */
  endpoints: readonly Endpoint[];
  private rr = 0;
  /**
   * True while no endpoint is ejected or actively unhealthy: the request path then skips the
   * clock and the per-endpoint availability checks. Recomputed on every health change.
   */
  allUp = true;
  private readonly ejectAfter: number;
  /** The one clock of ejection deadlines (injected): every reader of availability uses it. */
  readonly clock: Clock;
  /** Where endpoint events go (the control plane); never called on the hot path otherwise. */
  report: (e: EndpointEvent) => void = () => {};
  /** upstream.connections: requests an endpoint carries at once (one per connection, no pipelining). */
  readonly capacity: number;
  /**
   * Requests waiting for a free connection, oldest first. They wait here, not in undici's queue:
   * undici cannot drop a request before it starts it, and aborting it then destroys a healthy
   * connection. Entries that stopped waiting stay until they reach the head (no search).
   */
  private line: (Waiter | undefined)[] = [];
  private lineHead = 0;
  /** How many in `line` still wait. */
  waitingCount = 0;

  constructor(
    id: PoolId,
    name: PoolName,
    urls: readonly string[],
    private readonly opts: UpstreamOptions,
    clock: Clock,
  ) {
    this.id = id;
    this.name = name;
    this.endpoints = urls.map((u, i) => new Endpoint(u, opts, i));
    this.ejectAfter = opts.ejectAfter;
    this.clock = clock;
    this.capacity = opts.connections;
  }

  /** The endpoint for a new request, or undefined when every one it could take is full. */
  acquire(now: number): Endpoint | undefined {
    const ep = this.pick(now);
    return ep.inflight < this.capacity ? ep : undefined;
  }

  /** Wait for a free connection (see `line`). */
  wait(w: Waiter): void {
    this.line.push(w);
    this.waitingCount++;
  }

  /** A waiter stopped waiting on its own (timed out, client gone): count it out. */
  left(): void {
    this.waitingCount--;
    if (this.waitingCount === 0) {
      // Nothing waits: drop the entries that stopped waiting at once.
      this.line = [];
      this.lineHead = 0;
    }
  }

  /** A request of the pool ended: the oldest waiter, if any, takes its place. */
  released(): void {
    if (this.waitingCount === 0) return;
    const line = this.line;
    while (this.lineHead < line.length) {
      const w = line[this.lineHead];
      line[this.lineHead++] = undefined;
      if (w?.waiting) {
        w.resume();
        return;
      }
    }
  }

  /** True when at least one endpoint may take traffic now. */
  hasAvailable(now: number): boolean {
    if (this.allUp) return true;
    for (const ep of this.endpoints) if (ep.available(now)) return true;
    return false;
  }

  /**
   * A reload's endpoint list: an endpoint that stays keeps its connections and counters; a new
   * one gets its own pool; a removed one takes no new request and closes once the requests it
   * carries are done (within `graceMs`). Availability follows in the table applied next.
   */
  setEndpoints(urls: readonly string[], graceMs: number): void {
    const old = new Map(this.endpoints.map((e) => [e.url, e]));
    this.endpoints = urls.map((u, i) => {
      const url = u.replace(/\/$/, '');
      const kept = old.get(url);
      if (kept === undefined) return new Endpoint(url, this.opts, i);
      old.delete(url);
      kept.index = i;
      return kept;
    });
    for (const e of old.values()) void closeEndpoint(e, graceMs);
  }

  /** The control plane's availability of this pool's endpoints (a new routing table). */
  apply(states: readonly EndpointState[]): void {
    for (const ep of this.endpoints) {
      const s = states[ep.index];
      if (s === undefined) continue;
      ep.activeHealthy = s.up;
      if (s.ejectedUntil !== ep.ejectedUntil) ep.reportedBack = false;
      ep.ejectedUntil = s.ejectedUntil;
    }
    this.allUp = this.endpoints.every((e) => e.activeHealthy && e.ejectedUntil === 0);
  }

  /**
   * The least-busy available endpoint, ties broken round-robin. When none is available it still
   * returns one (panic mode, as nginx and Envoy do): a refused connection answers faster than a 503
   * guess, and ejection may be stale. `exclude` skips an endpoint that just failed (retry).
   */
  pick(now: number, exclude?: Endpoint): Endpoint {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 1 && exclude === undefined) return eps[0] as Endpoint;
    const start = this.rr++ % n;
    if (this.rr > 1e9) this.rr = 0;
    let best: Endpoint | undefined;
    for (let i = 0; i < n; i++) {
      const ep = eps[(start + i) % n] as Endpoint;
      if (ep === exclude || !ep.available(now)) continue;
      if (best === undefined || ep.inflight < best.inflight) best = ep;
    }
    if (best !== undefined) return best;
    for (let i = 0; i < n; i++) {
      const ep = eps[(start + i) % n] as Endpoint;
      if (ep !== exclude) return ep;
    }
    return eps[start] as Endpoint;
  }

  /** A connect-level failure: count it; every `ejectAfter` in a row, report it for ejection. */
  connectFailed(ep: Endpoint): void {
    ep.consecutiveFailures++;
    if (ep.consecutiveFailures % this.ejectAfter === 0)
      this.report({ kind: 'failing', pool: this.id, index: ep.index, url: ep.url });
  }

  /** Any answer from the endpoint resets its failure streak; an ejected one is reported back. */
  answered(ep: Endpoint): void {
    if (ep.consecutiveFailures !== 0) ep.consecutiveFailures = 0;
    if (ep.ejectedUntil !== 0 && !ep.reportedBack) {
      ep.reportedBack = true;
      this.report({ kind: 'answered', pool: this.id, index: ep.index, url: ep.url });
    }
  }

  /**
   * Upstream connections now, summed over the endpoints (undici's pool stats, read off the
   * request path): `busy` carry a request, `idle` are kept alive for the next, `queued` are
   * requests waiting for one of them.
   */
  connections(): UpstreamConnections {
    const c = { busy: 0, idle: 0, queued: 0 };
    for (const e of this.endpoints) {
      const s = e.dispatcher.stats;
      c.busy += s.connected - s.free;
      c.idle += s.free;
      c.queued += s.queued;
    }
    c.queued += this.waitingCount;
    return c;
  }

  /**
   * Close the connections once their requests are done, within `graceMs`; past it, destroy
   * them (a request paused on a client that never reads must not hold shutdown).
   */
  async close(graceMs = 1000): Promise<void> {
    await Promise.all(this.endpoints.map((e) => closeEndpoint(e, graceMs)));
  }

  destroy(): void {
    for (const e of this.endpoints) void e.dispatcher.destroy().catch(() => {});
  }
}

/** Close an endpoint's connections once their requests are done; past `graceMs`, destroy them. */
async function closeEndpoint(e: Endpoint, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => {
    timer = setTimeout(() => r('late'), graceMs);
  });
  const r = await Promise.race([e.dispatcher.close().catch(() => 'late' as const), late]);
  clearTimeout(timer);
  if (r === 'late') await e.dispatcher.destroy().catch(() => {});
}
