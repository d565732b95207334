/**
 * The members of the data plane as the control plane sees them: each takes routing tables and
 * hands back reports, whether it runs in this thread (`LocalMember`), in a worker thread
 * (worker/pool.ts) or, later, in another instance. `Members` broadcasts a table and waits for
 * every member to have it, and merges their reports: intervals exactly (HDR histograms add),
 * cumulative totals through a TotalsBook (never backwards, also when a member is replaced).
 */
import type { Histogram } from 'hdr-histogram-js';
import type { DataPlane, MemberReport, PlaneOptions } from '../data/plane.js';
import type { RoutingTable } from '../data/table.js';
import type { UpstreamConnections } from '../data/upstream.js';
import { newHistogram } from '../stats/recorder.js';
import { addCounts, type PoolCounts } from '../stats/sequential.js';

const NO_COUNTS: PoolCounts = [
  { requests: 0, errors: 0 },
  { requests: 0, errors: 0 },
];
import { type EncodedInterval, type IntervalSnapshot, mergeIntervals } from '../stats/snapshot.js';
import { served, type Totals, TotalsBook } from '../stats/totals.js';
import type { Spare } from '../stats/window.js';

export interface MemberInfo {
  id: string;
  state: 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped';
  restarts: number;
  /** The member's requests in flight as of its last report. */
  inflight: number;
  /** Requests it served since it (this thread) started, as of its last report. */
  requests: number;
}

export interface Member {
  /** Changes when the member is replaced (a restarted worker is a new member to the totals). */
  readonly id: string;
  readonly info: MemberInfo;
  /** Resolves once the member routes by `t` (or is gone: a new one starts on the current table). */
  publish(t: RoutingTable): Promise<void>;
  /** A reload: new options and the table with the new endpoint lists; resolves once applied. */
  configure(options: PlaneOptions, t: RoutingTable): Promise<void>;
  /**
   * Its report; `undefined` when it is gone or did not answer in time. The interval is live (in
   * this thread) or encoded (from a worker; merged without decoding it first).
   */
  collect(interval: boolean, spare?: Spare): Promise<MemberReport<IntervalSnapshot | EncodedInterval> | undefined>;
  setLog(s: { level?: string; access?: boolean }): void;
  close(graceMs: number): Promise<void>;
  /** Set by Members: called with the old id when the member is replaced or gone for good. */
  onRetire?: (id: string) => void;
  /** Set by Members: the member's last report as it stops (its final counts). */
  lastReport?: (r: MemberReport<IntervalSnapshot | EncodedInterval>) => void;
}

/** The data plane in this thread (`workers: 1`): calls, no messages. */
export class LocalMember implements Member {
  readonly id = 'main';
  readonly info: MemberInfo = { id: 'main', state: 'running', restarts: 0, inflight: 0, requests: 0 };

  constructor(readonly plane: DataPlane) {}

  async publish(t: RoutingTable): Promise<void> {
    this.plane.apply(t);
  }

  async configure(options: PlaneOptions, t: RoutingTable): Promise<void> {
    this.plane.configure(options, t);
  }

  collect(interval: boolean, spare?: Spare): Promise<MemberReport> {
    return Promise.resolve(this.reportNow(interval, spare));
  }

  /** The same report, synchronously (the status document of a one-member plane needs no wait). */
  reportNow(interval: boolean, spare?: Spare): MemberReport {
    const r = this.plane.report(interval, spare);
    this.info.inflight = r.inflight;
    this.info.requests = served(r.totals);
    return r;
  }

  setLog(s: { access?: boolean }): void {
    if (s.access !== undefined) this.plane.accessLogging = s.access;
  }

  async close(graceMs: number): Promise<void> {
    this.info.state = 'stopping';
    await this.plane.close(graceMs);
    this.info.state = 'stopped';
  }
}

/** Gauges summed over the members, as of their last reports. */
export interface PlaneView {
  inflight: number;
  connections: [UpstreamConnections, UpstreamConnections];
  endpointInflight: [number[], number[]];
  totals: Totals;
}

export class Members {
  readonly totals = new TotalsBook();
  private readonly latest = new Map<Member, MemberReport<unknown>>();

  constructor(readonly list: readonly Member[]) {
    for (const m of list) {
      m.onRetire = (id) => this.retire(m, id);
      m.lastReport = (r) => this.keep(m, r);
    }
  }

  /** In-thread members report at once: their gauges are read fresh (workers: as of their last report). */
  refreshLocal(): void {
    for (const m of this.list) if (m instanceof LocalMember) this.keep(m, m.reportNow(false));
  }

  /** Every member has `t` when this resolves. */
  async configure(options: PlaneOptions, t: RoutingTable): Promise<void> {
    await Promise.all(this.list.map((m) => m.configure(options, t)));
  }

  async publish(t: RoutingTable): Promise<void> {
    await Promise.all(this.list.map((m) => m.publish(t)));
  }

  /** Refresh the gauges and totals from every member (before a status or a scrape). */
  async refresh(): Promise<void> {
    await Promise.all(this.list.map(async (m) => this.keep(m, await m.collect(false))));
  }

  /**
   * Both pools' counts of the interval under way, summed over the members, without closing it
   * (the controller's urgent look; the window keeps its fixed-length slots). A member that does
   * not answer in time is left out.
   */
  async counts(): Promise<PoolCounts> {
    const reports = await Promise.all(
      this.list.map(async (m) => {
        const r = await m.collect(false);
        this.keep(m, r);
        return r;
      }),
    );
    return reports.reduce<PoolCounts>((sum, r) => (r === undefined ? sum : addCounts(sum, r.counts)), NO_COUNTS);
  }

  /**
   * Close the interval on every member and merge what they measured. One member: its own
   * snapshot (the window's spare histograms go back to its recorder). Several: added into the
   * spare histograms (or new ones).
   */
  async interval(spare: Spare): Promise<IntervalSnapshot> {
    const alone = this.list.length === 1;
    const reports = await Promise.all(
      this.list.map(async (m) => {
        const r = await m.collect(true, alone ? spare : undefined);
        this.keep(m, r);
        return r;
      }),
    );
    const parts = reports.flatMap((r) => (r?.interval === undefined ? [] : [r.interval]));
    const only = parts[0];
    // The in-thread member alone: its snapshot already holds the spare histograms.
    if (alone && only !== undefined && !('buckets' in only.pools[0])) return only as IntervalSnapshot;
    return mergeIntervals(parts, [spare[0] ?? newHistogram(), spare[1] ?? newHistogram()] as [Histogram, Histogram]);
  }

  private keep(m: Member, r: MemberReport<unknown> | undefined): void {
    if (r === undefined) return;
    this.latest.set(m, r);
    this.totals.set(m.id, r.totals);
  }

  /** A member left (died, or was replaced): its counts join the base; its gauges go. */
  retire(m: Member, id: string): void {
    this.totals.retire(id);
    this.latest.delete(m);
  }

  view(): PlaneView {
    const conn = (): UpstreamConnections => ({ busy: 0, idle: 0, queued: 0 });
    const v: PlaneView = {
      inflight: 0,
      connections: [conn(), conn()],
      endpointInflight: [[], []],
      totals: this.totals.sum(),
    };
    for (const r of this.latest.values()) {
      v.inflight += r.inflight;
      for (const id of [0, 1] as const) {
        const c = v.connections[id];
        c.busy += r.connections[id].busy;
        c.idle += r.connections[id].idle;
        c.queued += r.connections[id].queued;
        r.endpointInflight[id].forEach((n, i) => {
          v.endpointInflight[id][i] = (v.endpointInflight[id][i] ?? 0) + n;
        });
      }
    }
    return v;
  }

  setLog(s: { level?: string; access?: boolean }): void {
    for (const m of this.list) m.setLog(s);
  }

  async close(graceMs: number): Promise<void> {
    await Promise.all(this.list.map((m) => m.close(graceMs)));
  }
}
