/**
 * A fleet: several sluice instances sharing one rollout through Redis. Another instance is a
 * member like a worker, with Redis in place of the in-thread channel:
 * - the state is one versioned hash, written only by compare-and-set (`FleetStore`); a new
 *   version is announced on a channel and also polled every second (a lost message is caught up);
 * - one leader, by lease (`SET NX PX`, renewed every third of its time), runs the decisions; each
 *   lease increases a fencing epoch, and a decision written with an old epoch is refused, so a
 *   paused or partitioned former leader cannot undo a newer one;
 * - every instance pushes its interval snapshot each tick; the leader consumes them and judges the
 *   merge (a fleet-wide p95 is the p95 of the merged histogram), and writes a summary that the
 *   others show;
 * - Redis away: every instance keeps its last table and serves; nothing advances; each judges its
 *   own traffic and may only roll back (always safe), which is written to the fleet when Redis
 *   returns (a rollback wins over progress). Redis back empty: re-seeded from the instances'
 *   states, the highest version winning.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Clock } from '../core/clock.js';
import type { PoolName } from '../core/config.js';
import type { Logger } from '../core/log.js';
import type { AnalysisStatus } from '../control/controller.js';
import type { ControllerState } from '../control/state.js';
import {
  type Loaded,
  type PendingOf,
  StaleWriteError,
  StoreUnavailableError,
  type StateStore,
  writeFileAtomic,
} from '../control/state-store.js';
import { newHistogram } from '../stats/recorder.js';
import { addCounts, type PoolCounts } from '../stats/sequential.js';
import {
  encodeInterval,
  type EncodedInterval,
  type IntervalSnapshot,
  intervalJSON,
  mergeIntervals,
} from '../stats/snapshot.js';
import type { WindowStats } from '../stats/window.js';
import {
  fleetKeys,
  type FleetKeys,
  LEASE_SCRIPT,
  type RedisClient,
  redisClient,
  SAVE_SCRIPT,
  SEED_SCRIPT,
} from './redis.js';

export interface FleetOptions {
  url: string;
  name: string;
  /** Leader lease (ms). */
  leaseMs: number;
  /** How often the stored version is read, besides the channel (ms). */
  pollMs: number;
}

/** Redis cannot be reached: the fleet's state cannot change now. */
export class FleetUnavailableError extends StoreUnavailableError {}

/** What the leader tells the fleet each tick, and every member shows. */
export interface FleetSummary {
  at: number;
  leader: string;
  windows: { blue: WindowStats; green: WindowStats };
  analysis: AnalysisStatus;
  /** Each member's share of the intervals merged in the last window, in all and per pool. */
  members: MemberShare[];
}

export interface Counts {
  requests: number;
  errors: number;
}

export interface MemberShare extends Counts {
  id: string;
  pools: Record<PoolName, Counts>;
  lastSnapshotAt: number;
}

export interface FleetStatus {
  name: string;
  instance: string;
  connected: boolean;
  /** When Redis was last lost (ms), while it is away. */
  disconnectedSince: number | null;
  leader: boolean;
  epoch: number;
  /** A rollback decided while Redis was away, not yet written to the fleet. */
  pendingRollback: boolean;
  summary: FleetSummary | null;
}

/** One member's counts in one interval, per pool (blue, green). */
interface Share {
  pools: readonly [Counts, Counts];
  lastSnapshotAt: number;
  /** How many of the member's intervals arrived in this one of the leader's (0, 1, or 2 when ticks drift). */
  intervals: number;
}

export class Fleet {
  readonly id = `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
  readonly keys: FleetKeys;
  private readonly client: RedisClient;
  private readonly sub: RedisClient;
  private epochHeld = -1;
  /**
   * Until when the lease is ours by our own clock: counted from before the renewal was sent, so it
   * ends no later than Redis's. A process paused past it (SIGSTOP, a long GC) wakes as a follower
   * whichever of its timers runs first; the fencing epoch refuses what slips past even this.
   */
  private heldUntil = 0;
  private lostAt: number | null = null;
  private timers: NodeJS.Timeout[] = [];
  private summaryCache: FleetSummary | null = null;
  /** Per member: counts merged per interval over the window (the leader's view). */
  private readonly shares = new Map<string, Share[]>();
  /** Called with a newer state than the one held (set by the controller's owner). */
  onState: (s: ControllerState) => void = () => {};
  /** Called when Redis is reachable again (flush a pending rollback, re-seed). */
  onReconnect: () => void = () => {};
  /** The leader heard a member's alarm (its counts are in `forwarded`): judge now. */
  onUrgent: () => void = () => {};
  /** The latest live counts each member sent with an alarm, and when they came (the leader's clock). */
  private readonly alarms = new Map<string, { counts: PoolCounts; at: number }>();
  /** The version held here, to tell a newer one. */
  held: () => number = () => 0;
  /** The rollout a rollback applied here while Redis was away ended, until the fleet has it. */
  pendingOf: PendingOf | null = null;
  get pendingRollback(): boolean {
    return this.pendingOf !== null;
  }

  constructor(
    private readonly o: FleetOptions,
    private readonly validate: (raw: unknown) => ControllerState | undefined,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly windowSlots: number,
  ) {
    this.keys = fleetKeys(o.name);
    const onError = (err: Error) => this.lost(err);
    this.client = redisClient(o.url, onError);
    this.sub = redisClient(o.url, () => {});
    this.client.on('ready', () => this.found());
  }

  get connected(): boolean {
    return this.client.isReady;
  }

  /** Whether this instance decides: it holds the lease and Redis is reachable. */
  get leader(): boolean {
    return this.epochHeld >= 0 && this.connected && this.clock() < this.heldUntil;
  }

  get epoch(): number {
    return this.epochHeld;
  }

  private lost(err: Error): void {
    if (this.lostAt === null) {
      this.lostAt = this.clock();
      this.epochHeld = -1;
      this.logger.error(
        { err: err.message, fleet: this.o.name },
        'fleet: Redis unreachable: serving with the last table, nothing advances',
      );
    }
  }

  private found(): void {
    if (this.lostAt !== null) {
      this.logger.warn({ fleet: this.o.name, awayMs: this.clock() - this.lostAt }, 'fleet: Redis reachable again');
      this.lostAt = null;
      this.onReconnect();
    }
  }

  /** Connect (a first failure is not fatal: the instance starts on its cached state and keeps trying). */
  async start(): Promise<void> {
    const first = Promise.all([this.client.connect(), this.sub.connect()]);
    const ok = await Promise.race([
      first.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1500).unref()),
    ]).catch(() => false);
    const subscribe = async () => {
      await this.sub.subscribe(this.keys.changed, (msg) => {
        if (Number(msg) > this.held()) void this.fetch();
      });
      await this.sub.subscribe(this.keys.urgent, (msg) => this.heard(msg));
    };
    if (ok) await subscribe();
    else {
      this.lost(new Error('cannot connect at start'));
      void first.then(subscribe).catch(() => {});
    }
    await this.renew();
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => void fn().catch(() => {}), ms);
      t.unref();
      this.timers.push(t);
    };
    every(Math.max(100, Math.floor(this.o.leaseMs / 3)), () => this.renew());
    every(this.o.pollMs, () => this.poll());
  }

  /** Hold or take the lease; a lost renewal (Redis away, another holder) ends leadership here. */
  private async renew(): Promise<void> {
    if (!this.connected) {
      this.epochHeld = -1;
      return;
    }
    const sent = this.clock();
    try {
      const e = Number(
        await this.client.eval(LEASE_SCRIPT, {
          keys: [this.keys.lease, this.keys.epoch],
          arguments: [this.id, String(this.o.leaseMs)],
        }),
      );
      if (e >= 0 && this.epochHeld !== e)
        this.logger.info({ fleet: this.o.name, epoch: e, instance: this.id }, 'fleet: leader');
      if (e < 0 && this.epochHeld >= 0)
        this.logger.warn({ fleet: this.o.name, instance: this.id }, 'fleet: no longer the leader');
      this.epochHeld = e;
      this.heldUntil = sent + this.o.leaseMs;
    } catch {
      this.epochHeld = -1;
    }
  }

  private async poll(): Promise<void> {
    if (!this.connected) return;
    // A rollback from an outage that could not be written yet (a failed catch-up): again.
    if (this.pendingRollback) {
      this.onReconnect();
      return;
    }
    const v = await this.client.hGet(this.keys.state, 'version');
    if (v !== null && v !== undefined && Number(v) > this.held()) await this.fetch();
  }

  private async fetch(): Promise<void> {
    const r = await this.load();
    if (r.state !== undefined && r.state.version > this.held()) this.onState(r.state);
  }

  async load(): Promise<Loaded<ControllerState>> {
    if (!this.connected) throw new FleetUnavailableError('Redis unreachable');
    const json = await this.client.hGet(this.keys.state, 'json');
    if (json === null || json === undefined) return { state: undefined };
    let state: ControllerState | undefined;
    try {
      state = this.validate(JSON.parse(String(json)));
    } catch {
      state = undefined;
    }
    return state === undefined ? { state: undefined, problem: 'the fleet state does not match the schema' } : { state };
  }

  /** Compare-and-set; `fence` for the leader's own decisions (its epoch). */
  async save(state: ControllerState, expected: number, fence = -1): Promise<void> {
    if (!this.connected) throw new FleetUnavailableError('Redis unreachable');
    let r: unknown;
    try {
      r = await this.client.eval(SAVE_SCRIPT, {
        keys: [this.keys.state, this.keys.epoch, this.keys.changed],
        arguments: [JSON.stringify(state), String(state.version), String(expected), String(fence)],
      });
    } catch (err) {
      throw new FleetUnavailableError((err as Error).message);
    }
    const [code, v] = (r as [number, number]).map(Number) as [number, number];
    if (code === -1) throw new StaleWriteError(expected, v);
    if (code === -2) throw new StaleWriteError(expected, state.version, `epoch ${fence} was superseded by ${v}`);
  }

  /** After Redis came back empty: write ours unless a newer version is there. */
  async seed(state: ControllerState): Promise<boolean> {
    if (!this.connected) return false;
    const r = await this.client.eval(SEED_SCRIPT, {
      keys: [this.keys.state, this.keys.changed],
      arguments: [JSON.stringify(state), String(state.version)],
    });
    return Number(r) === 1;
  }

  /**
   * One tick's interval for the fleet: a follower pushes its own and keeps judging its own (used
   * only while Redis is away); the leader adds every member's pushed intervals to its own.
   */
  async exchange(local: IntervalSnapshot): Promise<IntervalSnapshot> {
    if (!this.connected) return local;
    const now = this.clock();
    try {
      if (!this.leader) {
        const json = JSON.stringify(intervalJSON(encodeInterval(local)));
        const r = await this.client
          .multi()
          .rPush(this.keys.snaps(this.id), json)
          .pExpire(this.keys.snaps(this.id), 30_000)
          .zAdd(this.keys.members, { score: now, value: this.id })
          .get(this.keys.summary)
          .exec();
        // The leader's latest verdict, in the same round trip: what this instance's page shows.
        this.takeSummary(r[3]);
        return local;
      }
      await this.client.zAdd(this.keys.members, { score: now, value: this.id });
      const ids = (await this.client.zRangeByScore(this.keys.members, now - 15_000, '+inf')).map(String);
      const parts: (IntervalSnapshot | EncodedInterval)[] = [local];
      this.share(this.id, local, now);
      for (const id of ids) {
        if (id === this.id) continue;
        const items = await this.client.lPopCount(this.keys.snaps(id), 1000);
        const counts: [Counts, Counts] = [
          { requests: 0, errors: 0 },
          { requests: 0, errors: 0 },
        ];
        for (const raw of items ?? []) {
          const e = JSON.parse(String(raw)) as EncodedInterval;
          parts.push(e);
          e.pools.forEach((p, i) => {
            const c = counts[i];
            if (c === undefined) return;
            c.requests += p.requests;
            c.errors += p.errors;
          });
        }
        this.pushShare(id, counts, items?.length ? now : undefined, items?.length ?? 0);
      }
      for (const id of this.shares.keys()) if (!ids.includes(id) && id !== this.id) this.shares.delete(id);
      if (parts.length === 1) return local;
      // New histograms: the local snapshot may hold the window's spare ones.
      return mergeIntervals(parts, [newHistogram(), newHistogram()]);
    } catch {
      return local;
    }
  }

  private share(id: string, s: IntervalSnapshot, now: number): void {
    const counts = s.pools.map((p) => ({ requests: p.requests, errors: p.errors })) as [Counts, Counts];
    this.pushShare(id, counts, now, 1);
  }

  private pushShare(id: string, pools: readonly [Counts, Counts], at: number | undefined, intervals: number): void {
    const ring = this.shares.get(id) ?? [];
    const last = ring.at(-1)?.lastSnapshotAt ?? 0;
    ring.push({ pools, lastSnapshotAt: at ?? last, intervals });
    while (ring.length > this.windowSlots) ring.shift();
    this.shares.set(id, ring);
  }

  /**
   * A follower's sequential check crossed: its live counts go to the leader, which judges them
   * with its own (Controller.urgent). Resolves whether the message was sent.
   */
  async askLeader(counts: PoolCounts): Promise<boolean> {
    if (!this.connected) return false;
    try {
      await this.client.publish(this.keys.urgent, JSON.stringify({ id: this.id, counts }));
      return true;
    } catch {
      return false;
    }
  }

  /** An alarm on the channel: kept (checked, not trusted) and judged when this instance leads. */
  private heard(msg: string): void {
    let m: { id?: unknown; counts?: unknown };
    try {
      m = JSON.parse(msg) as typeof m;
    } catch {
      return;
    }
    const ok = (c: unknown): c is { requests: number; errors: number } => {
      const x = c as { requests?: unknown; errors?: unknown } | null;
      return (
        typeof x === 'object' &&
        x !== null &&
        Number.isInteger(x.requests) &&
        Number.isInteger(x.errors) &&
        (x.errors as number) >= 0 &&
        (x.errors as number) <= (x.requests as number)
      );
    };
    const c = m.counts as unknown[] | undefined;
    if (typeof m.id !== 'string' || m.id === this.id || !Array.isArray(c) || c.length !== 2 || !c.every(ok)) return;
    const now = this.clock();
    // Kept by every instance (a follower may lead next); members that left age out.
    for (const [id, a] of this.alarms) if (now - a.at > 60_000) this.alarms.delete(id);
    this.alarms.set(m.id, { counts: c as unknown as PoolCounts, at: now });
    if (this.leader) this.onUrgent();
  }

  /**
   * The fleet's recent traffic for an urgent verdict, less the leader's live counts (the caller
   * adds them): every member's latest interval to arrive here, the leader's own included, plus the live
   * counts each member sent with an alarm within the last `maxAgeMs` (one interval: older ones
   * belong to an interval a tick has judged). Each member then counts over one interval or a bit
   * more, so one member's alarm early in another's interval is not judged on a span where that
   * member's traffic dominates; and a leader whose own path to the canary is broken is judged on
   * the fleet's traffic as a follower is (fleet.md). The cost: a canary that breaks mid-step is
   * cut a few failures later in a fleet, its clean intervals still counting.
   */
  forwarded(maxAgeMs: number): { counts: PoolCounts; members: number } {
    const now = this.clock();
    let counts: PoolCounts = [
      { requests: 0, errors: 0 },
      { requests: 0, errors: 0 },
    ];
    let members = 0;
    for (const [id, a] of this.alarms) {
      if (now - a.at > maxAgeMs) this.alarms.delete(id);
      else counts = addCounts(counts, a.counts);
    }
    for (const ring of this.shares.values()) {
      // The member's latest interval that arrived: a leader's tick may find none of a member's
      // (the two clocks drift), and an empty slot would leave the leader's own counts alone.
      let last: Share | undefined;
      for (let i = ring.length - 1; i >= 0 && last === undefined; i--)
        if ((ring[i] as Share).intervals > 0) last = ring[i];
      if (last === undefined) continue;
      members++;
      counts = addCounts(counts, last.pools);
    }
    return { counts, members };
  }

  /** The leader's verdict and window for every member to show (fire and forget). */
  publishSummary(s: Omit<FleetSummary, 'members' | 'leader'>): void {
    if (!this.leader) return;
    const members = [...this.shares].map(([id, ring]): MemberShare => {
      const sum = (i: 0 | 1): Counts => ({
        requests: ring.reduce((n, x) => n + x.pools[i].requests, 0),
        errors: ring.reduce((n, x) => n + x.pools[i].errors, 0),
      });
      const blue = sum(0);
      const green = sum(1);
      return {
        id,
        requests: blue.requests + green.requests,
        errors: blue.errors + green.errors,
        pools: { blue, green },
        lastSnapshotAt: ring.at(-1)?.lastSnapshotAt ?? 0,
      };
    });
    const summary: FleetSummary = { ...s, leader: this.id, members };
    this.summaryCache = summary;
    void this.client.set(this.keys.summary, JSON.stringify(summary), { PX: 10_000 }).catch(() => {});
  }

  /** Read the leader's latest summary (before a status is built). */
  async refresh(): Promise<void> {
    if (!this.connected || this.leader) return;
    try {
      this.takeSummary(await this.client.get(this.keys.summary));
    } catch {
      /* keep the last one */
    }
  }

  private takeSummary(raw: unknown): void {
    this.summaryCache = raw === null || raw === undefined ? null : (JSON.parse(String(raw)) as FleetSummary);
  }

  get summary(): FleetSummary | null {
    return this.summaryCache;
  }

  status(): FleetStatus {
    return {
      name: this.o.name,
      instance: this.id,
      connected: this.connected,
      disconnectedSince: this.lostAt,
      leader: this.leader,
      epoch: this.epochHeld,
      pendingRollback: this.pendingRollback,
      summary: this.summaryCache,
    };
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    // Give the lease up so another instance takes over at once rather than after its time.
    if (this.leader)
      await this.client
        .eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", {
          keys: [this.keys.lease],
          arguments: [this.id],
        })
        .catch(() => {});
    this.client.destroy();
    this.sub.destroy();
  }
}

/**
 * The controller's store in a fleet: Redis first (compare-and-set, fenced for the leader's own
 * decisions), with the state file as this instance's copy, read when Redis cannot be at start.
 * A rollback this instance applied alone while Redis was away is kept in the copy, with a marker
 * beside it (`pendingFile`) naming the rollout it ended: a restart before the fleet has it starts
 * rolled back, and writes it to the fleet once Redis is reachable (Controller.adopt).
 */
export class FleetStore implements StateStore<ControllerState> {
  constructor(
    private readonly fleet: Fleet,
    private readonly file: StateStore<ControllerState>,
    private readonly logger: Logger,
    private readonly pendingFile: string | null = null,
  ) {}

  async load(): Promise<Loaded<ControllerState>> {
    const pending = await this.restorePending();
    if (pending !== undefined) return pending;
    try {
      const r = await this.fleet.load();
      if (r.state !== undefined) return r;
      // An empty fleet: this instance's copy (if any) seeds it.
      const local = await this.file.load();
      if (local.state !== undefined) await this.fleet.seed(local.state);
      return local;
    } catch (err) {
      if (!(err instanceof FleetUnavailableError)) throw err;
      this.logger.warn(
        { err: err.message },
        "fleet: Redis unreachable at start: starting on this instance's saved state",
      );
      return this.file.load();
    }
  }

  /** The copy, when the marker says it holds a rollback the fleet has not got (then pending again). */
  private async restorePending(): Promise<{ state: ControllerState } | undefined> {
    if (this.pendingFile === null) return undefined;
    let m: { version?: unknown; stable?: unknown; rollbacks?: unknown };
    try {
      m = JSON.parse(await readFile(this.pendingFile, 'utf8')) as typeof m;
    } catch {
      return undefined; // none (or unreadable: nothing to restore)
    }
    const local = await this.file.load();
    if (
      local.state === undefined ||
      local.state.version !== m.version ||
      typeof m.stable !== 'string' ||
      !Number.isInteger(m.rollbacks)
    ) {
      await this.clearPending();
      return undefined;
    }
    this.fleet.pendingOf = { stable: m.stable, rollbacks: m.rollbacks as number };
    this.logger.warn(
      { version: local.state.version, reason: local.state.reason },
      'fleet: starting on the rollback this instance applied while Redis was away; the fleet gets it when Redis is reachable',
    );
    return { state: local.state };
  }

  /**
   * The marker first, then the copy: a crash between the two leaves a marker that does not match
   * the copy, which load drops (the instance starts on the fleet's last state, as without this);
   * the other order would leave a copy rolled back with no marker, which never reaches the fleet.
   */
  async keepPending(state: ControllerState, of: PendingOf): Promise<void> {
    if (this.pendingFile !== null)
      await writeFileAtomic(this.pendingFile, JSON.stringify({ version: state.version, ...of }));
    await this.keepCopy(state);
  }

  async clearPending(): Promise<void> {
    if (this.pendingFile !== null) await rm(this.pendingFile, { force: true });
  }

  async save(state: ControllerState, expected: number, fence = -1): Promise<void> {
    await this.fleet.save(state, expected, fence);
    await this.keepCopy(state);
  }

  /** This instance's copy of a state it saved or adopted (never compared: it follows the fleet). */
  async keepCopy(state: ControllerState): Promise<void> {
    await this.file.save(state, state.version).catch(async (err: unknown) => {
      if (!(err instanceof StaleWriteError)) throw err;
      // The copy lags (an adopted state): overwrite it whatever it held.
      await this.file.save(state, err.actual);
    });
  }
}
