/**
 * The controller: the one writer of the routing table. Commands from the admin plane arrive
 * here, are checked against the current state, persisted, and applied by swapping the table whole.
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { SluiceError } from '../core/errors.js';
import { makeTable, type TableCell } from '../data/table.js';
import { canaryOf, MAX_HISTORY, type ControllerState, type HistoryEntry, type WeightsState } from './state.js';
import type { StateStore } from './state-store.js';

export interface ControllerDeps {
  config: Config;
  table: TableCell;
  store: StateStore<ControllerState>;
  clock: Clock;
  logger: Logger;
}

export type Listener = (s: Readonly<ControllerState>) => void;

export function initialState(config: Config): ControllerState {
  const stable = config.stable;
  const c = config.split.initialCanaryWeight;
  const weights = stable === 'blue' ? { blue: 100 - c, green: c } : { blue: c, green: 100 - c };
  return {
    version: 1,
    stable,
    weights,
    phase: 'idle',
    stepIndex: 0,
    steps: [...config.rollout.steps],
    stepHold: config.rollout.stepHold,
    stepStartedAt: null,
    reason: null,
    rollbacks: 0,
    history: [],
  };
}

export class Controller {
  private s: ControllerState;
  private readonly listeners = new Set<Listener>();

  constructor(private readonly deps: ControllerDeps) {
    const loaded = deps.store.load();
    if (loaded.state !== undefined) {
      this.s = loaded.state;
      deps.logger.info({ version: this.s.version, phase: this.s.phase, weights: this.s.weights, stable: this.s.stable }, 'state restored');
    } else {
      if ('problem' in loaded && loaded.problem !== undefined) {
        deps.logger.error({ problem: loaded.problem, movedTo: loaded.movedTo }, 'saved state unreadable: starting on 100% stable');
      }
      this.s = initialState(deps.config);
      if ('problem' in loaded && loaded.problem !== undefined) this.s.weights = deps.config.stable === 'blue' ? { blue: 100, green: 0 } : { blue: 0, green: 100 };
    }
    this.applyTable();
  }

  get state(): Readonly<ControllerState> {
    return this.s;
  }

  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Set weights by hand. A stale `expectedVersion` is refused with 409. */
  setWeights(weights: WeightsState, by: string, expectedVersion?: number): Readonly<ControllerState> {
    this.checkVersion(expectedVersion);
    if (Math.abs(weights.blue + weights.green - 100) > 1e-6) {
      throw new SluiceError('invalid_weights', 400, 'weights must sum to 100', { field: 'weights' });
    }
    const next: ControllerState = { ...this.s, weights: { ...weights } };
    if (next.phase === 'progressing') {
      next.phase = 'paused';
      next.reason = `paused by a manual weight change (${by})`;
    }
    this.commit(next, { event: 'weights', by, reason: null });
    return this.s;
  }

  private checkVersion(expected: number | undefined): void {
    if (expected !== undefined && expected !== this.s.version) {
      throw new SluiceError('stale_version', 409, `expectedVersion ${expected} is stale: current version is ${this.s.version}`, { field: 'expectedVersion' });
    }
  }

  /** Bump the version, record history, persist, swap the table, notify. */
  private commit(next: ControllerState, h: Pick<HistoryEntry, 'event' | 'by' | 'reason'> & { evidence?: unknown }): void {
    next.version = this.s.version + 1;
    const entry: HistoryEntry = { at: this.deps.clock(), ...h, weights: { ...next.weights }, phase: next.phase, stepIndex: next.stepIndex };
    next.history = [entry, ...this.s.history].slice(0, MAX_HISTORY);
    // Persist before the change takes effect: a crash right after never loses an applied change.
    try {
      this.deps.store.save(next);
    } catch (err) {
      this.deps.logger.error({ err }, 'could not persist state; the change still applies in memory');
    }
    this.s = next;
    this.applyTable();
    this.deps.logger.info({ event: h.event, by: h.by, version: next.version, weights: next.weights, phase: next.phase, reason: h.reason }, 'state changed');
    for (const l of this.listeners) l(this.s);
  }

  private applyTable(): void {
    this.deps.table.current = makeTable(this.s.version, this.s.stable, this.s.weights);
  }

  get canary() {
    return canaryOf(this.s.stable);
  }
}
