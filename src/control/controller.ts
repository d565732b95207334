/**
 * The controller: the one writer of the routing table. A thin runner around the pure state machine
 * (decide.ts): each tick it collects an interval of measurements from every member of the data
 * plane, builds the observation, asks `decide`, and applies the outcome; operator commands go
 * through `command` the same way. Ticks and commands run one at a time (a queue), so a command
 * never interleaves with a tick's decision. Applying = persist (compare-and-set on the version),
 * publish the routing table to every member and wait until each has it, record history, log,
 * notify. An automatic rollback, and each step of a walk down (rollout.onFailure: rampDown),
 * publishes first and persists after: going back toward stable is always safe, and it must not wait
 * on a disk (or, in a fleet, a network).
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { SluiceError } from '../core/errors.js';
import { makeTable, poolIdOf, type TablePublisher } from '../data/table.js';
import type { RoutingTable } from '../data/table.js';
import { addCounts, type PoolCounts, sequentialLimit } from '../stats/sequential.js';
import type { IntervalSnapshot } from '../stats/snapshot.js';
import type { Spare, WindowSource, WindowStats } from '../stats/window.js';
import type { EndpointBook } from './endpoints.js';
import {
  FAST_MIN_ERRORS,
  recentSuffix,
  zFor,
  type Observation,
  type SequentialObservation,
  type Verdict,
} from './analysis.js';
import {
  command,
  decide,
  pauseWaiting,
  guarded,
  rollback,
  type Change,
  type Command,
  type CommandDefaults,
  type Outcome,
  type RolloutPolicy,
} from './decide.js';
import {
  canaryOf,
  MAINTENANCE_OFF,
  MAX_HISTORY,
  weightsFor,
  type ControllerState,
  type HistoryEntry,
  type Maintenance,
} from './state.js';
import { cutShort } from './ramp.js';
import { type PendingOf, StaleWriteError, type StateStore, StoreUnavailableError } from './state-store.js';
import type { Notifier } from './webhooks.js';
import { SeriesRing } from '../stats/series.js';
import { evidenceOf, judgeShadow, type ShadowEvidence, type ShadowPolicy } from './shadow.js';
import { addTally, emptyTally, type ShadowTally } from '../stats/snapshot.js';

/** What the controller reads of the config: the rollout, the first stable and the first split. */
export type ControlOptions = Pick<Config, 'stable' | 'rollout' | 'maintenance' | 'faults'> & {
  split: Pick<Config['split'], 'initialCanaryWeight'>;
};

/**
 * The fleet as the controller sees it (fleet/fleet.ts): whether it decides (the leader), whether
 * Redis is reachable, the leader's fencing epoch, and the fleet-wide interval.
 */
export interface FleetLink {
  readonly connected: boolean;
  readonly leader: boolean;
  readonly epoch: number;
  /** A rollback applied here that the fleet does not have yet: `pendingOf !== null`. */
  readonly pendingRollback: boolean;
  /** The rollout that pending rollback ended; null: none pending. */
  pendingOf: PendingOf | null;
  /** The leader's interval: its own plus every member's; a follower's: its own. */
  exchange(local: IntervalSnapshot): Promise<IntervalSnapshot>;
  publishSummary(s: { at: number; windows: { blue: WindowStats; green: WindowStats }; analysis: AnalysisStatus }): void;
  /** A follower's alarm: its live counts to the leader, which judges (resolves whether sent). */
  askLeader?(counts: PoolCounts): Promise<boolean>;
  /** The leader: the fleet's recent traffic for an urgent verdict, less the leader's live counts (every member's latest interval, alarms' live counts). */
  forwarded?(maxAgeMs: number): { counts: PoolCounts; members: number };
}

export interface ControllerDeps {
  config: ControlOptions;
  table: TablePublisher;
  store: StateStore<ControllerState>;
  window: WindowSource;
  /** Endpoint availability (the controller publishes it inside the table). */
  endpoints: EndpointBook;
  /** The next interval, merged over every member; `spare` are histograms the window gives back. */
  intervals: (spare: Spare) => IntervalSnapshot | Promise<IntervalSnapshot>;
  /** Hand a new table to every member; resolves once each has it (default: nothing to wait for). */
  broadcast?: (t: RoutingTable) => Promise<void>;
  /**
   * Both pools' counts of the interval under way over this instance's members, without closing
   * it: what an urgent verdict reads (absent: urgent() does nothing).
   */
  peek?: () => PoolCounts | Promise<PoolCounts>;
  clock: Clock;
  logger: Logger;
  notifier?: Notifier;
  /** Several instances share this rollout (fleet:): only the leader decides. */
  fleet?: FleetLink | undefined;
}

export type Listener = (s: Readonly<ControllerState>) => void;

/** The latest judgement, for the status document (not persisted; changes every tick). */
export interface AnalysisStatus {
  at: number;
  verdict: Verdict['kind'] | null;
  reason: string | null;
}

export function initialState(config: ControlOptions, now = 0): ControllerState {
  return {
    version: 1,
    stable: config.stable,
    weights: weightsFor(config.stable, config.split.initialCanaryWeight),
    phase: 'idle',
    stepIndex: 0,
    steps: [...config.rollout.steps],
    stepHold: config.rollout.stepHold,
    stepStartedAt: null,
    reason: null,
    rollbacks: 0,
    maintenance: maintenanceOf(config.maintenance, now),
    endpoints: null,
    faults: null,
    dryRun: false,
    wouldRollBack: null,
    shadow: null,
    lastShadow: null,
    rampDown: null,
    history: [],
  };
}

/** The config's `maintenance:` as state (on from now, or off). */
export function maintenanceOf(m: Config['maintenance'], now: number): Maintenance {
  if (!m.enabled) return { ...MAINTENANCE_OFF, allowFrom: [] };
  return { enabled: true, message: m.message, retryAfter: m.retryAfter, allowFrom: [...m.allowFrom], since: now };
}

export function policyOf(config: Pick<Config, 'rollout'>): RolloutPolicy {
  const a = config.rollout.analysis;
  const fastConfidence = 1 - (1 - a.confidence) / 10;
  return {
    steps: config.rollout.steps,
    stepHold: config.rollout.stepHold,
    dryRun: config.rollout.dryRun,
    onFailure: config.rollout.onFailure,
    rampDownOver: config.rollout.rampDownOver,
    minRequests: a.minRequests,
    maxErrorRate: a.maxErrorRate,
    maxP95Ms: a.maxP95Ms,
    maxP95Ratio: a.maxP95Ratio,
    minP95DeltaMs: a.minP95DeltaMs,
    maxErrorRatio: a.maxErrorRatio,
    minErrorDelta: a.minErrorDelta,
    onSharedFailure: a.onSharedFailure,
    maxInconclusive: a.maxInconclusive,
    confidence: a.confidence,
    // Ten times stricter for the fast check (0.99 → 0.999).
    fastConfidence,
    // The sequential check between ticks: its false alarms per interval bounded by the fast
    // check's miss rate, and as many errors at least (stats/sequential.ts).
    // (Rounded: 1 − 0.99 is 0.010000000000000009 in binary floating point.)
    sequential: sequentialLimit(a.maxErrorRate, +(1 - fastConfidence).toPrecision(12), FAST_MIN_ERRORS),
  };
}

const WEBHOOK_EVENTS: Record<Change['event'], string> = {
  started: 'rollout.started',
  step: 'rollout.step',
  paused: 'rollout.paused',
  resumed: 'rollout.resumed',
  promoted: 'rollout.promoted',
  rolled_back: 'rollout.rolled_back',
  aborted: 'rollout.aborted',
  weights: 'weights.changed',
  maintenance: 'maintenance.changed',
  endpoints: 'endpoints.changed',
  faults: 'faults.changed',
  would_roll_back: 'rollout.would_roll_back',
  shadow_started: 'shadow.started',
  shadow_stopped: 'shadow.stopped',
  shadow_passed: 'shadow.passed',
  shadow_failed: 'shadow.failed',
  ramp_down: 'rollout.ramp_down',
};

/** rollout.shadow as the shadow's judgement reads it. */
export function shadowPolicyOf(config: Pick<Config, 'rollout'>): ShadowPolicy {
  const sh = config.rollout.shadow;
  return {
    percent: sh.percent,
    duration: sh.duration,
    thenRollout: sh.thenRollout,
    maxMismatchRate: sh.maxMismatchRate,
  };
}

/** Changes that move the canary's weight down on the controller's own decision. */
const goesDown = (c: Change): boolean => c.event === 'rolled_back' || c.event === 'ramp_down';

/** The outcome's state as the next version of `prev`, its changes at the head of the history. */
function recorded(prev: Readonly<ControllerState>, r: Outcome, by: string, at: number): ControllerState {
  const next: ControllerState = { ...r.state, version: prev.version + 1 };
  const entries: HistoryEntry[] = r.changes.map((c) => ({
    at,
    event: c.event,
    by,
    reason: c.reason,
    weights: { ...next.weights },
    phase: next.phase,
    stepIndex: next.stepIndex,
    ...(c.evidence === undefined ? {} : { evidence: c.evidence }),
  }));
  next.history = [...entries.reverse(), ...prev.history].slice(0, MAX_HISTORY);
  return next;
}

export class Controller {
  private s: ControllerState;
  private readonly listeners = new Set<Listener>();
  private policy: RolloutPolicy;
  private shadowPolicy: ShadowPolicy;
  /** The shadow under way's pairs and mirrors so far (in memory: a restart counts again). */
  private shadowTally: { startedAt: number; tally: ShadowTally; ticks: number } | undefined;
  /** config faults.enabled: whether the state's fault spec reaches the table, and may be set. */
  private faultsOn: boolean;
  private timer: NodeJS.Timeout | undefined;
  /** Window statistics of both pools as of the last tick. */
  windows: { blue: WindowStats; green: WindowStats };
  analysis: AnalysisStatus = { at: 0, verdict: null, reason: null };
  /** Per-interval points of the last 15 minutes (GET /api/v1/series, the live page). */
  readonly series = new SeriesRing();

  /** Ticks and commands, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  /** A controller on the saved state (or the config's initial one), its table published. */
  static async create(deps: ControllerDeps): Promise<Controller> {
    const c = new Controller(deps);
    await c.restore();
    return c;
  }

  private constructor(private readonly deps: ControllerDeps) {
    this.policy = policyOf(deps.config);
    this.shadowPolicy = shadowPolicyOf(deps.config);
    this.faultsOn = deps.config.faults.enabled;
    this.s = initialState(deps.config, deps.clock());
    this.lastTickAt = deps.clock();
    const empty = deps.window.query(0);
    this.windows = { blue: empty, green: empty };
  }

  private async restore(): Promise<void> {
    const { deps } = this;
    const loaded = await deps.store.load();
    if (loaded.state !== undefined) {
      this.s = loaded.state;
      deps.logger.info(
        { version: this.s.version, phase: this.s.phase, weights: this.s.weights, stable: this.s.stable },
        'state restored',
      );
    } else {
      this.s = initialState(deps.config, deps.clock());
      if ('problem' in loaded && loaded.problem !== undefined) {
        deps.logger.error(
          { problem: loaded.problem, movedTo: loaded.movedTo },
          'saved state unreadable: starting on 100% stable',
        );
        this.s.weights = weightsFor(this.s.stable, 0);
      }
    }
    await this.publish();
  }

  /** Whether config faults.enabled lets the state's fault spec apply. */
  get faultsEnabled(): boolean {
    return this.faultsOn;
  }

  get state(): Readonly<ControllerState> {
    return this.s;
  }

  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Start the tick loop (every analysis.interval). */
  start(): void {
    let running = false;
    this.timer = setInterval(() => {
      // A tick still waiting on a slow member is not queued behind: the next one starts after it.
      if (running) return;
      running = true;
      this.tick()
        .catch((err: unknown) => this.deps.logger.error({ err }, 'controller tick failed'))
        .finally(() => {
          running = false;
        });
    }, this.deps.config.rollout.analysis.interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The span the window covers now (ms): grows to analysis.window after start. */
  get windowMs(): number {
    return Math.max(1, this.deps.window.length) * this.deps.config.rollout.analysis.interval;
  }

  /**
   * Build the observation of the current canary from the window (percentile math happens here).
   * Also keeps both pools' window numbers in `windows`, which the status document and metrics read.
   * The sequential check reads the newest interval's counts, or `live` ones (an urgent look),
   * which in a fleet also hold every member's latest interval (`withLastInterval`).
   */
  observe(live?: PoolCounts, withLastInterval = false): Observation {
    const { window, endpoints, clock } = this.deps;
    const canaryId = poolIdOf(canaryOf(this.s.stable));
    const stableId = canaryId === 0 ? 1 : 0;
    const z = zFor(this.policy.confidence);
    const zFast = zFor(this.policy.fastConfidence);
    const canary = window.query(canaryId, { z });
    const stable = window.query(stableId, { z });
    const k = recentSuffix((n) => window.recent(canaryId, n), window.length, this.policy.minRequests);
    const interval = this.deps.config.rollout.analysis.interval;
    this.windows = canaryId === 0 ? { blue: canary, green: stable } : { blue: stable, green: canary };
    const fastSlice = k !== undefined && k < window.length;
    const sequential: SequentialObservation =
      live === undefined
        ? {
            canary: window.recent(canaryId, 1),
            stable: window.recent(stableId, 1),
            spanMs: interval,
            live: false,
          }
        : {
            canary: live[canaryId],
            stable: live[stableId],
            spanMs: clock() - this.lastTickAt + (withLastInterval ? interval : 0),
            live: !withLastInterval,
          };
    return {
      sequential,
      canary,
      stable,
      canaryRecent: fastSlice ? window.query(canaryId, { intervals: k, z: zFast }) : undefined,
      stableRecent: fastSlice ? window.query(stableId, { intervals: k, z: zFast }) : undefined,
      canaryHealthy: endpoints.hasAvailable(canaryId, clock()),
      windowMs: this.windowMs,
      recentMs: (k ?? 0) * interval,
    };
  }

  /** Since when the rollout has had no verdict (in memory: a restart or a new leader starts again). */
  private inconclusiveSince: number | undefined;

  /** analysis.maxInconclusive: a rollout waiting for a verdict too long is paused (decide.pauseWaiting). */
  private limitWaiting(r: ReturnType<typeof decide>, now: number): ReturnType<typeof decide> {
    const max = this.policy.maxInconclusive;
    if (max <= 0 || r.verdict?.kind !== 'inconclusive' || r.state !== this.s || this.s.phase !== 'progressing') {
      this.inconclusiveSince = undefined;
      return r;
    }
    this.inconclusiveSince ??= now;
    const since = this.inconclusiveSince;
    if (now - since < max) return r;
    this.inconclusiveSince = undefined;
    return { ...pauseWaiting(this.s, r.verdict.reason, now - since), verdict: r.verdict };
  }

  /** Add an interval's shadow traffic to the tally of the shadow under way (none: undefined). */
  private tallyShadow(t: ShadowTally | undefined): ShadowTally | undefined {
    const run = this.s.shadow;
    if (run === null) {
      this.shadowTally = undefined;
      return undefined;
    }
    if (this.shadowTally?.startedAt !== run.startedAt)
      this.shadowTally = { startedAt: run.startedAt, tally: emptyTally(), ticks: 0 };
    this.shadowTally.ticks++;
    return addTally(this.shadowTally.tally, t);
  }

  /**
   * The observation a shadow is judged on: only the intervals since it started, so the canary's
   * own traffic before it (a rollout just rolled back, say) does not decide the shadow's verdict.
   */
  private observeShadow(o: Observation): Observation {
    // The first interval is not the shadow's alone (see tick).
    const ticks = (this.shadowTally?.ticks ?? 1) - 1;
    const { window } = this.deps;
    if (ticks >= window.length) return o;
    const canaryId = poolIdOf(canaryOf(this.s.stable));
    const stableId = canaryId === 0 ? 1 : 0;
    const z = zFor(this.policy.confidence);
    const intervals = Math.max(1, ticks);
    return {
      ...o,
      canary: window.query(canaryId, { intervals, z }),
      stable: window.query(stableId, { intervals, z }),
      canaryRecent: undefined,
      stableRecent: undefined,
      windowMs: intervals * this.deps.config.rollout.analysis.interval,
    };
  }

  /** The shadow under way's numbers so far (this instance's tally; the leader's in a fleet), or null. */
  shadowEvidence(): ShadowEvidence | null {
    const t = this.s.shadow === null ? undefined : this.shadowTally?.tally;
    return t === undefined ? null : evidenceOf(t, zFor(this.policy.confidence));
  }

  /** What commands fall back on (the config's rollout and shadow, the shadow's tally so far). */
  private defaults(): CommandDefaults {
    return {
      steps: this.policy.steps,
      stepHold: this.policy.stepHold,
      dryRun: this.policy.dryRun,
      shadow: this.shadowPolicy,
      shadowTally: this.shadowTally?.tally,
      confidence: this.policy.confidence,
    };
  }

  /** Run `fn` after every tick and command before it. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** When the last tick closed an interval: the start of the interval under way. */
  private lastTickAt: number;
  /** An urgent verdict queued and not started yet: further alarms join it. */
  private urgentQueued: Promise<void> | undefined;
  /** Members' alarms, and the urgent verdicts that confirmed them (for the log and tests). */
  readonly urgentChecks = { alarms: 0, confirmed: 0 };

  /**
   * A member's sequential check crossed (stats/sequential.ts): judge the interval under way now
   * instead of at the next tick, through the same queue as ticks and commands. Rate-limited by
   * construction: each member alarms at most once per interval, and alarms that arrive while one
   * is queued join it. The verdict reads the members' counts without closing the interval (so the
   * window keeps fixed-length slots and `windowMs` stays true) and re-checks their sum with the
   * same critical line; only a failure changes anything, through `decide` as at a tick (dry run,
   * onSharedFailure and the rollback itself are the tick's).
   */
  urgent(): Promise<void> {
    this.urgentChecks.alarms++;
    if (this.urgentQueued !== undefined) return this.urgentQueued;
    const run = this.serial(async () => {
      this.urgentQueued = undefined;
      await this.judgeNow();
    });
    this.urgentQueued = run;
    return run;
  }

  private async judgeNow(): Promise<void> {
    const { peek, fleet, logger } = this.deps;
    if (peek === undefined || !guarded(this.s)) return;
    let counts = await peek();
    let members = 1;
    let merged = false;
    if (fleet?.connected) {
      // In a fleet the leader judges, on the merged traffic as at its ticks: a follower's alarm
      // sends its live counts to the leader, which adds them to its own and to every member's
      // latest interval (Fleet.forwarded). So one instance whose own path to the canary is
      // broken, the leader's included, does not roll back a release the fleet's traffic finds
      // healthy (the fleet's rule since issue 17), while a canary failing everywhere is cut as
      // the members' alarms come in, a message each. Deciding on the follower instead would
      // save that message (a few ms) and give up the rule. Redis away: the local guard below.
      if (!fleet.leader) {
        const sent = (await fleet.askLeader?.(counts)) ?? false;
        logger.info({ counts, sent }, 'sequential check: alarm sent to the fleet leader');
        return;
      }
      const f = fleet.forwarded?.(this.deps.config.rollout.analysis.interval);
      if (f !== undefined) {
        members = Math.max(1, f.members);
        counts = addCounts(counts, f.counts);
        merged = true;
      }
    }
    const now = this.deps.clock();
    const r = decide(this.s, this.observe(counts, merged), this.policy, now);
    if (r.verdict?.kind !== 'fail') {
      logger.info({ counts, members }, 'sequential check: an alarm the merged counts do not confirm');
      return;
    }
    this.urgentChecks.confirmed++;
    this.analysis = { at: now, verdict: 'fail', reason: r.verdict.reason };
    if (r.state === this.s) return; // dry run already recorded at this step, or already paused
    if (fleet === undefined) return this.apply(r, 'auto');
    if (!fleet.connected) {
      // Redis away: the local guard on this instance's own traffic, as at a tick.
      if (r.changes.some((c) => c.event === 'rolled_back')) await this.applyLocally(r, 'auto');
      return;
    }
    try {
      await this.apply(r, 'auto', fleet.epoch);
    } catch (err) {
      if (!(err instanceof SluiceError)) throw err;
      logger.warn({ err: err.message }, 'fleet: urgent decision not written (no longer the leader, or Redis away)');
    }
  }

  /** One control step: close the interval, observe, decide, apply. Tests call this by hand. */
  tick(): Promise<void> {
    return this.serial(async () => {
      const { window, fleet } = this.deps;
      const local = await this.deps.intervals(window.spare());
      this.lastTickAt = this.deps.clock();
      const merged = fleet === undefined ? local : await fleet.exchange(local);
      window.push(merged);
      const now = this.deps.clock();
      this.series.push(now, merged);
      const o = this.observe();
      const tally = this.tallyShadow(merged.shadow);
      let r = this.limitWaiting(decide(this.s, o, this.policy, now), now);
      // The interval a shadow started in holds traffic from before it: judged from the next one.
      if (tally !== undefined && r.state === this.s && (this.shadowTally?.ticks ?? 0) > 1)
        r = judgeShadow(this.s, this.observeShadow(o), tally, { ...this.policy, shadow: this.shadowPolicy }, now, (s) =>
          command(s, { type: 'start' }, 'auto', now, this.defaults()),
        );
      this.analysis = { at: now, verdict: r.verdict?.kind ?? null, reason: r.verdict?.reason ?? null };
      if (fleet === undefined) {
        if (r.state !== this.s) await this.apply(r, 'auto');
        return;
      }
      if (fleet.connected && !fleet.leader) return; // the leader judges the merged traffic
      if (!fleet.connected) {
        // Redis away: the local guard. Rolling back is always safe; nothing else changes. A walk
        // down is not taken alone: whatever lowers the canary takes it to 0 here (ramp.ts).
        if (r.changes.some(goesDown))
          await this.applyLocally(cutShort(r, 'Redis is unreachable: no walk down on this instance alone'), 'auto');
        return;
      }
      if (r.state !== this.s) {
        try {
          await this.apply(r, 'auto', fleet.epoch);
        } catch (err) {
          if (!(err instanceof SluiceError)) throw err;
          this.deps.logger.warn(
            { err: err.message },
            'fleet: decision not written (no longer the leader, or Redis away)',
          );
        }
      }
      fleet.publishSummary({ at: now, windows: this.windows, analysis: this.analysis });
    });
  }

  /**
   * An operator command; a stale expectedVersion or a phase that does not allow it throws 409.
   * Resolves once the change is saved and every member routes by it.
   */
  command(cmd: Command, by: string, expectedVersion?: number): Promise<Readonly<ControllerState>> {
    return this.serial(async () => {
      try {
        return await this.run(cmd, by, expectedVersion);
      } catch (err) {
        // In a fleet, this instance's copy may lag another's write by a message: a command that
        // named no version is run once more on the fleet's current state.
        if (this.deps.fleet === undefined || expectedVersion !== undefined) throw err;
        if (!(err instanceof SluiceError) || err.code !== 'stale_version') throw err;
        const r = await this.deps.store.load();
        if (r.state === undefined) throw err;
        this.s = r.state;
        await this.publish();
        return this.run(cmd, by);
      }
    });
  }

  private async run(cmd: Command, by: string, expectedVersion?: number): Promise<Readonly<ControllerState>> {
    if (expectedVersion !== undefined && expectedVersion !== this.s.version) {
      throw new SluiceError(
        'stale_version',
        409,
        `expectedVersion ${expectedVersion} is stale: current version is ${this.s.version}`,
        { field: 'expectedVersion' },
      );
    }
    // Ending a rehearsal is always allowed; starting one only where the config says so.
    if (cmd.type === 'faults' && cmd.spec !== null && !this.faultsOn) {
      throw new SluiceError(
        'faults_disabled',
        403,
        'fault injection is off here: set faults.enabled: true in the config (staging, never production) and reload',
      );
    }
    if (cmd.type === 'weights' && Math.abs(cmd.weights.blue + cmd.weights.green - 100) > 1e-6) {
      throw new SluiceError('invalid_weights', 400, 'weights must sum to 100', { field: 'weights' });
    }
    const r = command(this.s, cmd, by, this.deps.clock(), this.defaults());
    // Nothing to change (ending a fault injection that is not set): no new version, no record.
    if (r.state === this.s && r.changes.length === 0) return this.s;
    const fleet = this.deps.fleet;
    if (fleet !== undefined && !fleet.connected) {
      // An abort (a rollback) is always safe: here now, written to the fleet when Redis returns.
      if (cmd.type !== 'abort')
        throw new SluiceError(
          'fleet_unavailable',
          503,
          'Redis is unreachable: the fleet state cannot change now (abort still works)',
        );
      await this.applyLocally(r, by);
      return this.s;
    }
    await this.apply(r, by);
    return this.s;
  }

  /** Redis away: apply a rollback on this instance only, and write it to the fleet later. */
  private async applyLocally(r: Outcome, by: string): Promise<void> {
    const of = { stable: this.s.stable, rollbacks: this.s.rollbacks };
    this.s = recorded(this.s, r, by, this.deps.clock());
    await this.publish();
    await this.pend(of);
    this.deps.logger.warn(
      { by, weights: this.s.weights, reason: this.s.reason },
      'fleet: Redis away: rolled back on this instance; the fleet gets it when Redis returns',
    );
    this.emit();
  }

  /**
   * A rollback applied here that the fleet does not have yet: flushed when Redis is reachable
   * (adopt), and kept with this instance's copy of the state, so that a restart meanwhile starts
   * rolled back and still flushes it (FleetStore.load).
   */
  private async pend(of: PendingOf): Promise<void> {
    const fleet = this.deps.fleet as FleetLink;
    fleet.pendingOf = of;
    await this.deps.store
      .keepPending?.(this.s, of)
      .catch((err: unknown) =>
        this.deps.logger.error({ err }, 'fleet: the pending rollback could not be kept on disk; it is held in memory'),
      );
  }

  /**
   * A state written by another instance (or found after a reconnect): adopt it when newer.
   * With a rollback pending from an outage, the rollback is written on top of it first, unless
   * the fleet is already safe (a rollback wins over progress).
   */
  adopt(fleetState: ControllerState): Promise<void> {
    return this.serial(async () => {
      const fleet = this.deps.fleet;
      let next = fleetState;
      const of = fleet?.pendingOf ?? null;
      if (fleet !== undefined && of !== null) {
        // Only the rollout it ended: one the fleet started after it (an abort or a promotion
        // meanwhile, then a new start) is not this instance's to roll back.
        const same = of.stable === fleetState.stable && of.rollbacks === fleetState.rollbacks;
        if (guarded(fleetState) && same) {
          const r = rollback(fleetState, this.s.reason ?? 'rolled back while Redis was unreachable', 'rolled_back');
          next = recorded(fleetState, r, 'auto', this.deps.clock());
          try {
            await this.deps.store.save(next, fleetState.version);
          } catch (err) {
            this.deps.logger.warn({ err: (err as Error).message }, 'fleet: pending rollback not written yet');
            return;
          }
        }
        fleet.pendingOf = null;
        await this.deps.store.clearPending?.().catch(() => {});
      } else if (fleetState.version <= this.s.version) return;
      this.s = next;
      await this.publish();
      this.emit();
    });
  }

  /** Shorthand for the weights command. */
  setWeights(
    weights: { blue: number; green: number },
    by: string,
    expectedVersion?: number,
  ): Promise<Readonly<ControllerState>> {
    return this.command({ type: 'weights', weights }, by, expectedVersion);
  }

  /** Bump the version, record history, persist, publish the table, log, notify. */
  private async apply(r: Outcome, by: string, fence?: number): Promise<void> {
    const next = recorded(this.s, r, by, this.deps.clock());
    const prev = this.s.version;
    const of = { stable: this.s.stable, rollbacks: this.s.rollbacks };
    const rollback = by === 'auto' && r.changes.some(goesDown);
    if (rollback) {
      // Safety first: every member routes to stable now; the write follows.
      this.s = next;
      await this.publish();
      await this.save(next, prev, fence).catch(async (err: unknown) => {
        this.deps.logger.error({ err }, 'could not persist the rollback; it applies in memory');
        if (this.deps.fleet !== undefined) await this.pend(of);
      });
    } else {
      // Persist before the change takes effect: a crash right after never loses an applied change.
      await this.save(next, prev, fence);
      this.s = next;
      await this.publish();
    }
    for (const c of r.changes) {
      const level = c.event === 'rolled_back' ? 'warn' : 'info';
      this.deps.logger[level](
        {
          event: c.event,
          by,
          version: next.version,
          weights: next.weights,
          phase: next.phase,
          stable: next.stable,
          evidence: c.evidence,
          appliedInMs: this.appliedInMs,
        },
        c.reason ?? c.event,
      );
      this.deps.notifier?.notify(WEBHOOK_EVENTS[c.event], {
        by,
        reason: c.reason,
        evidence: c.evidence ?? null,
        version: next.version,
        stable: next.stable,
        canary: canaryOf(next.stable),
        weights: next.weights,
        phase: next.phase,
        stepIndex: next.stepIndex,
        steps: next.steps,
      });
    }
    this.emit();
  }

  /** Tell listeners (SSE, status) about a change that is not a state change (endpoint health). */
  emit(): void {
    for (const l of this.listeners) l(this.s);
  }

  /**
   * Save with compare-and-set. A stale write means another writer changed the state: the change
   * is refused (409). Any other failure is logged and the change still applies in memory.
   */
  private async save(next: ControllerState, expected: number, fence?: number): Promise<void> {
    try {
      await this.deps.store.save(next, expected, fence);
    } catch (err) {
      if (err instanceof StaleWriteError)
        throw new SluiceError('stale_version', 409, `the saved state moved on: ${err.message}`, {
          field: 'expectedVersion',
        });
      if (err instanceof StoreUnavailableError)
        throw new SluiceError('fleet_unavailable', 503, `the fleet state cannot change now: ${err.message}`);
      this.deps.logger.error({ err }, 'could not persist state; the change still applies in memory');
    }
  }

  /** The table for the current state and endpoint availability. */
  private table(): RoutingTable {
    const s = this.s;
    const faults = this.faultsOn ? s.faults : null;
    return makeTable(s.version, s.stable, s.weights, this.deps.endpoints.current, {
      maintenance: s.maintenance,
      faults,
      shadowPercent: s.shadow?.percent ?? 0,
      // The sequential check is armed only while the canary is guarded (decide.guarded).
      sequential: guarded(s) ? (this.policy.sequential ?? null) : null,
    });
  }

  /** How long the last table took to reach every member (ms): a rollback's time to take hold. */
  appliedInMs = 0;

  /** Publish the current table here and to every member; resolves once each has it. */
  private async publish(): Promise<void> {
    const t = this.table();
    const start = performance.now();
    this.deps.table.publish(t);
    await this.deps.broadcast?.(t);
    this.appliedInMs = Math.round((performance.now() - start) * 1000) / 1000;
  }

  /**
   * A reload: the new policy from the next tick on (a rollout under way keeps the steps it
   * started with), and the table with the new endpoint lists handed over by `apply` (every
   * member's new options with it). Runs between ticks and commands, never beside one.
   */
  reconfigure(
    config: Pick<Config, 'rollout' | 'faults'>,
    apply: (t: RoutingTable) => Promise<void>,
    before: () => void = () => {},
  ): Promise<void> {
    return this.serial(async () => {
      this.policy = policyOf(config);
      this.shadowPolicy = shadowPolicyOf(config);
      // faults.enabled turned off: the table below carries no fault, whatever the state holds.
      this.faultsOn = config.faults.enabled;
      // The new endpoint lists, the table that carries them and its hand-over, in one synchronous
      // run: no other table can reach a member between them.
      before();
      const t = this.table();
      this.deps.table.publish(t);
      await apply(t);
    });
  }

  /** Endpoint availability changed: the same state, a newer health version, to every member. */
  republish(): void {
    void this.publish().catch((err: unknown) => this.deps.logger.error({ err }, 'could not publish the table'));
  }

  /**
   * Persist the current state (at shutdown); waits for any tick or command under way. In a fleet
   * the fleet holds the state, and this instance's copy was kept at each change.
   */
  persist(): Promise<void> {
    if (this.deps.fleet !== undefined) return this.serial(async () => {});
    return this.serial(() => this.deps.store.save(this.s, this.s.version));
  }
}
