/**
 * One member of the data plane: a listener, its request path, its upstream pools and its
 * recorder. It runs in the main thread (`workers: 1`) or in a worker thread (worker/thread.ts);
 * either way the control plane reaches it only through values: routing tables in, reports and
 * endpoint events out.
 */
import type { Histogram } from 'hdr-histogram-js';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/log.js';
import type { TlsMaterial } from '../core/tls.js';
import { Recorder } from '../stats/recorder.js';
import type { PoolCounts } from '../stats/sequential.js';
import type { IntervalSnapshot } from '../stats/snapshot.js';
import type { Totals } from '../stats/totals.js';
import { AccessLog, type LogSink } from './access-log.js';
import type { ConnColumn } from './client-conns.js';
import { ProxyServer, type ProxyOptions } from './proxy.js';
import { TablePublisher, type RoutingTable, type TableSource } from './table.js';
import { type EndpointEvent, type UpstreamConnections, UpstreamPool } from './upstream.js';

/** What a member needs from the config: the request path's options, its pools and upstream settings. */
export type PlaneOptions = ProxyOptions & Pick<Config, 'upstream' | 'pools' | 'listen'>;

/** How long an endpoint removed by a reload may finish the requests it carries (a long download). */
export const DRAIN_MS = 300_000;

/** A member's options from the config, with the TLS material the main thread read (or null). */
export function planeOptions(c: Config, tls: TlsMaterial | null = null): PlaneOptions {
  const { split, forwarding, timeouts, limits, log, upstream, pools, listen, retry } = c;
  return { split, forwarding, timeouts, limits, log, upstream, pools, listen, retry, tls, shadow: c.rollout.shadow };
}

/**
 * One worker's share of the limits that hold for the whole process: upstream connections per
 * endpoint, client connections and the two memory budgets are divided over `workers` (rounded
 * up), so that N threads together keep what the config says, as one thread did. Each worker's
 * pool then caps its own share; a request waits in its own worker's line.
 */
export function workerShare(o: PlaneOptions, workers: number): PlaneOptions {
  if (workers <= 1) return o;
  const part = (n: number) => Math.max(1, Math.ceil(n / workers));
  return {
    ...o,
    upstream: { ...o.upstream, connections: part(o.upstream.connections) },
    limits: {
      ...o.limits,
      maxConnections: part(o.limits.maxConnections),
      bufferBodyTotalBytes: o.limits.bufferBodyTotalBytes === 0 ? 0 : part(o.limits.bufferBodyTotalBytes),
      bufferResponseTotalBytes: o.limits.bufferResponseTotalBytes === 0 ? 0 : part(o.limits.bufferResponseTotalBytes),
    },
  };
}

/**
 * What a member tells the control plane on each tick (with the interval) and on a read of the
 * status or the metrics (without). `I` is the interval as a live snapshot in-process, or encoded
 * when it crosses a thread.
 */
export interface MemberReport<I = IntervalSnapshot> {
  interval: I | undefined;
  totals: Totals;
  inflight: number;
  connections: [UpstreamConnections, UpstreamConnections];
  /** Requests in flight per endpoint, per pool. */
  endpointInflight: [number[], number[]];
  /** Both pools' counts of the interval under way (before it was closed, when `interval` is set). */
  counts: PoolCounts;
}

export interface PlaneDeps {
  clock: Clock;
  logger: Logger;
  /** Where access log batches go (one ordered writer: stdout's, or log.accessFile's). */
  access: LogSink;
  /** Endpoint events, to the control plane. */
  report: (e: EndpointEvent) => void;
  /** With workers: this one's column of the shared per-client connection counts. */
  connColumn?: ConnColumn | undefined;
  /**
   * The sequential check crossed on this member's canary traffic (once per interval): ask the
   * controller for a verdict now. The controller decides; the request path never changes a table.
   */
  alarm?: (() => void) | undefined;
}

export class DataPlane {
  readonly table: TablePublisher;
  readonly recorder = new Recorder();
  readonly pools: readonly [UpstreamPool, UpstreamPool];
  readonly proxy: ProxyServer;
  private readonly accessLog: AccessLog;

  constructor(opts: PlaneOptions, first: RoutingTable, deps: PlaneDeps) {
    const u = {
      connections: opts.upstream.connections,
      connectTimeout: opts.timeouts.connect,
      headersTimeout: opts.timeouts.response,
      bodyTimeout: opts.timeouts.idle,
      ejectAfter: opts.upstream.ejectAfter,
    };
    this.pools = [
      new UpstreamPool(0, 'blue', opts.pools.blue.endpoints, u, deps.clock),
      new UpstreamPool(1, 'green', opts.pools.green.endpoints, u, deps.clock),
    ];
    for (const p of this.pools) p.report = deps.report;
    this.table = new TablePublisher(first);
    this.applyHealth(first);
    // The sequential check follows the table: armed on its canary while the controller guards it.
    this.recorder.onAlarm = deps.alarm;
    this.recorder.guard(first.canary, first.sequential);
    this.table.subscribe((t) => this.recorder.guard(t.canary, t.sequential));
    this.accessLog = new AccessLog(deps.access);
    this.proxy = new ProxyServer({
      config: opts,
      table: this.table as TableSource,
      pools: this.pools,
      recorder: this.recorder,
      accessLog: this.accessLog,
      logger: deps.logger,
      clock: deps.clock,
      connColumn: deps.connColumn,
    });
  }

  /** A new routing table: the next request reads it. An older one than held is ignored. */
  apply(t: RoutingTable): void {
    const cur = this.table.current;
    if (t.version < cur.version || t.health < cur.health) return;
    if (t.health !== cur.health) this.applyHealth(t);
    this.table.publish(t);
  }

  /**
   * A reload: new options and the table that carries the new endpoint lists' availability, in
   * one step, so no request sees a list without its availability. Removed endpoints finish what
   * they carry (up to DRAIN_MS) and take nothing new.
   */
  configure(opts: PlaneOptions, t: RoutingTable): void {
    this.pools[0].setEndpoints(opts.pools.blue.endpoints, DRAIN_MS);
    this.pools[1].setEndpoints(opts.pools.green.endpoints, DRAIN_MS);
    this.applyHealth(t);
    this.table.publish(t);
    this.proxy.configure(opts);
  }

  private applyHealth(t: RoutingTable): void {
    this.pools[0].apply(t.endpoints[0]);
    this.pools[1].apply(t.endpoints[1]);
  }

  /** This member's numbers; with `interval`, the current interval is closed and handed over. */
  report(interval: boolean, recycle?: readonly [Histogram | undefined, Histogram | undefined]): MemberReport {
    const [b, g] = this.pools;
    const counts = this.recorder.counts();
    return {
      counts,
      interval: interval ? this.recorder.takeInterval(recycle) : undefined,
      totals: this.recorder.totals(),
      inflight: this.proxy.inFlight,
      connections: [b.connections(), g.connections()],
      endpointInflight: [b.endpoints.map((e) => e.inflight), g.endpoints.map((e) => e.inflight)],
    };
  }

  get accessLogging(): boolean {
    return this.proxy.accessLogging;
  }

  set accessLogging(on: boolean) {
    this.proxy.accessLogging = on;
  }

  listen(port: number, host: string, reusePort = false): Promise<number> {
    return this.proxy.listen(port, host, reusePort);
  }

  /** listen.http's listener, after `listen` (undefined when there is none). */
  listenSecond(port: number, host: string, reusePort = false): Promise<number | undefined> {
    return this.proxy.listenSecond(port, host, reusePort);
  }

  /** Stop accepting, drain within `graceMs`, then close the upstream connections. */
  async close(graceMs: number): Promise<void> {
    await this.proxy.close(graceMs);
    await Promise.all(this.pools.map((p) => p.close(1000)));
    this.accessLog.close();
  }

  destroy(): void {
    for (const p of this.pools) p.destroy();
  }
}
