/**
 * Shadow traffic: a copy of a stable request sent to the canary, whose answer is read, judged and
 * dropped. The client only ever gets stable's answer, and nothing on its path waits for the
 * mirror: the copy is dispatched beside the real request, with its own timeouts, and a bounded
 * number are in flight at once (past it, a mirror is dropped and counted, never queued).
 *
 * Each mirror is paired with its original: once both answered, the pair is compared (status
 * class, latency) and counted in the recorder's shadow tally, which crosses to the controller in
 * the interval snapshot like everything else measured here (stats/snapshot.ts).
 */
import type { Dispatcher } from 'undici';
import type { Config } from '../core/config.js';
import { classifyUpstreamError, type UpstreamErrorKind } from '../core/errors.js';
import type { Recorder } from '../stats/recorder.js';
import { emptyTally, MAX_SHADOW_SAMPLES, type ShadowSample, type ShadowTally } from '../stats/snapshot.js';
import type { Body } from './body.js';
import type { Endpoint, UpstreamPool } from './upstream.js';

export type ShadowOptions = Config['rollout']['shadow'];

/** How a pair compares (a mismatch kind, or a match). */
export type PairKind = ShadowSample['kind'] | 'match';

/**
 * Compare the answers to one request. Errors are status >= 500 or no answer at all; when both
 * pools failed it is not the canary's fault (a shared dependency). `slow` needs both the ratio and
 * the absolute difference, so sub-millisecond noise never counts.
 */
export function comparePair(
  stable: number,
  stableMicros: number,
  canary: number,
  canaryKind: UpstreamErrorKind | undefined,
  canaryMicros: number,
  o: Pick<ShadowOptions, 'slowRatio' | 'slowDeltaMs'>,
): PairKind {
  const canaryFailed = canaryKind !== undefined || canary >= 500;
  if (stable >= 500) return 'match';
  if (canaryFailed) return 'failed';
  if (Math.floor(stable / 100) !== Math.floor(canary / 100)) return 'status';
  if (canaryMicros >= o.slowRatio * stableMicros && canaryMicros - stableMicros >= o.slowDeltaMs * 1000) return 'slow';
  return 'match';
}

/**
 * A request's path as a sample in a verdict (history, webhooks, Redis): without its query string,
 * which may carry tokens or signatures, and at most 200 characters.
 */
export function samplePath(path: string): string {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  return p.length > 200 ? `${p.slice(0, 200)}…` : p;
}

/** The request being mirrored, as the exchange holds it. */
export interface MirrorSource {
  readonly path: string;
  readonly method: string;
  /** The headers sent upstream (flat name, value list): copied, never changed. */
  readonly headers: readonly string[];
}

/** The member's shadow: its options (replaced by a reload) and the mirrors under way. */
export class Shadowing {
  methods: ReadonlySet<string>;
  /** Mirrors under way now. */
  active = 0;

  constructor(
    public options: ShadowOptions,
    private readonly recorder: Recorder,
    readonly now: () => number,
  ) {
    this.methods = new Set(options.methods);
  }

  configure(o: ShadowOptions): void {
    this.options = o;
    this.methods = new Set(o.methods);
  }

  /**
   * Send a copy of `src` (its body read whole, or none) to `canary`; undefined when it is not
   * sent, counted as skipped (a body too large or streamed) or dropped (no room).
   */
  launch(src: MirrorSource, requestId: string, body: Body | null, canary: UpstreamPool): Mirror | undefined {
    const o = this.options;
    const rec = this.recorder;
    const tally = this.tally();
    if (body !== null && (!Buffer.isBuffer(body) || body.length > o.maxBodyBytes)) {
      tally.skipped++;
      rec.shadowTotals.skipped++;
      return undefined;
    }
    const ep = this.active < o.maxInFlight ? canary.acquire(canary.allUp ? 0 : canary.clock()) : undefined;
    if (ep === undefined) {
      tally.dropped++;
      rec.shadowTotals.dropped++;
      return undefined;
    }
    tally.mirrored++;
    rec.shadowTotals.mirrored++;
    this.active++;
    const m = new Mirror(this, canary, ep, src, requestId, body, this.now());
    ep.inflight++;
    ep.dispatcher.dispatch(m, m);
    return m;
  }

  /** The interval's tally, made at the first mirror of the interval. */
  private tally(): ShadowTally {
    if (this.recorder.shadow === undefined) this.recorder.shadow = emptyTally();
    return this.recorder.shadow;
  }

  /** A mirror and its original both answered: count the pair, keep a sample of a mismatch. */
  paired(m: Mirror, stable: number, stableMicros: number): void {
    const o = this.options;
    const kind = comparePair(stable, stableMicros, m.status, m.kind, m.micros, o);
    const rec = this.recorder;
    const tally = this.tally();
    tally.pairs++;
    if (kind === 'match') return;
    tally[kind]++;
    rec.shadowTotals[kind]++;
    if (tally.samples.length < MAX_SHADOW_SAMPLES)
      tally.samples.push({
        kind,
        method: m.method,
        path: samplePath(m.path),
        requestId: m.requestId,
        stable,
        canary: m.status,
        stableMs: Math.round(stableMicros) / 1000,
        canaryMs: Math.round(m.micros) / 1000,
      });
  }

  /** A mirror is done (its answer, or its failure): judged for the canary, its slot freed. */
  ended(m: Mirror, pool: UpstreamPool, ep: Endpoint): void {
    this.active--;
    ep.inflight--;
    pool.released();
    this.recorder.recordShadow(pool.id, m.status, m.micros, m.kind);
  }
}

/** The options undici dispatches with and the handler of its answer, in one object. */
export class Mirror implements Dispatcher.DispatchHandler {
  readonly path: string;
  readonly method: string;
  readonly headers: string[];
  /** Dropped once the mirror is done (the exchange that made it may be kept a while). */
  body: Buffer | null;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  /** The canary's status, or the one its failure maps to; its kind when it failed. */
  status = 0;
  kind: UpstreamErrorKind | undefined;
  /** Time to the canary's response headers (or to its failure), µs. */
  micros = 0;
  private done = false;
  private controller: Dispatcher.DispatchController | undefined;
  /** rollout.shadow.timeout over the whole mirror: a canary trickling its body cannot hold a slot. */
  private timer: NodeJS.Timeout | undefined;
  /** The original's status and time to headers, once it finished (-1: not yet). */
  private stable = -1;
  private stableMicros = 0;

  constructor(
    private readonly shadow: Shadowing,
    private readonly pool: UpstreamPool,
    private readonly ep: Endpoint,
    src: MirrorSource,
    readonly requestId: string,
    body: Buffer | null,
    private readonly start: number,
  ) {
    this.path = src.path;
    this.method = src.method;
    // Marked, so a canary can tell a mirror from a user (and skip side effects it knows of).
    this.headers = [...src.headers, 'x-sluice-shadow', '1'];
    this.body = body;
    this.headersTimeout = shadow.options.timeout;
    this.bodyTimeout = shadow.options.timeout;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) {
      controller.abort(new Error('mirror done'));
      return;
    }
    this.timer = setTimeout(() => this.controller?.abort(new Error('shadow timeout')), this.headersTimeout);
    this.timer.unref();
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) return;
    this.status = statusCode;
    this.micros = (this.shadow.now() - this.start) * 1000;
    this.pool.answered(this.ep);
  }

  /** The canary's body is read to its end (the connection stays reusable) and dropped. */
  onResponseData(): void {}

  onResponseEnd(): void {
    this.end();
  }

  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    if (this.done) return;
    const f = classifyUpstreamError(err);
    this.kind = f.kind;
    if (this.status === 0) {
      this.status = f.status;
      this.micros = (this.shadow.now() - this.start) * 1000;
      if (f.kind === 'connect') this.pool.connectFailed(this.ep);
    }
    this.end();
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.controller = undefined;
    this.body = null;
    this.shadow.ended(this, this.pool, this.ep);
    if (this.stable >= 0) this.shadow.paired(this, this.stable, this.stableMicros);
  }

  /** The original finished with `status` after `micros` to its headers; -1: no answer to compare. */
  original(status: number, micros: number): void {
    if (status < 0) return;
    if (this.done) {
      this.shadow.paired(this, status, micros);
      return;
    }
    this.stable = status;
    this.stableMicros = micros;
  }
}
