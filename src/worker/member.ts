/**
 * One worker slot, as a member of the data plane (control/members.ts): it starts a worker thread,
 * passes tables and collects reports by message, and replaces the thread when it dies, with a
 * backoff that grows while it keeps dying (a crash loop is logged on every attempt, never silent).
 * A replaced thread is a new member id, so the totals it had reported stay counted.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../core/log.js';
import type { MemberReport, PlaneOptions } from '../data/plane.js';
import type { RoutingTable } from '../data/table.js';
import type { EndpointEvent } from '../data/upstream.js';
import type { LogSink } from '../data/access-log.js';
import { clearColumn } from '../data/client-conns.js';
import type { Member, MemberInfo } from '../control/members.js';
import { newHistogram } from '../stats/recorder.js';
import { type EncodedInterval, encodeInterval, type IntervalSnapshot, mergeIntervals } from '../stats/snapshot.js';
import { served } from '../stats/totals.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

export interface WorkerMemberOptions {
  index: number;
  options: PlaneOptions;
  host: string;
  reusePort: boolean;
  /** The table a new thread starts on (the current one). */
  table: () => RoutingTable;
  level: () => string;
  access: () => boolean;
  /** Where the thread's log lines go: the main thread's one ordered writer. */
  sink: LogSink;
  /** Where its access lines go. */
  accessSink: LogSink;
  onEvent: (e: EndpointEvent) => void;
  /** The thread's sequential check crossed: the controller judges now (Controller.urgent). */
  onAlarm?: () => void;
  logger: Logger;
  /** The per-client connection counts shared by every worker; this worker's column is its index. */
  conns?: SharedArrayBuffer | undefined;
  columns?: number;
  /** How long a report may take before the thread is passed over for that tick (ms, default 1000). */
  answerMs?: number;
  /** How long a table's acknowledgement is awaited before going on with a warning (ms, default 2000). */
  tableMs?: number;
}

/** Restart backoff: 100 ms, doubling per death in the last minute, at most 10 s. */
export function restartDelay(recentDeaths: number): number {
  return Math.min(10_000, 100 * 2 ** Math.max(0, recentDeaths - 1));
}

// Under vitest this module is TypeScript source; the thread then runs the build (npm test builds).
const THREAD = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/worker/thread.js', import.meta.url)
  : new URL('./thread.js', import.meta.url);

export class WorkerMember implements Member {
  id: string;
  readonly info: MemberInfo;
  onRetire?: (id: string) => void;
  lastReport?: (r: MemberReport<IntervalSnapshot | EncodedInterval>) => void;
  private worker: Worker | undefined;
  private generation = 0;
  private seq = 0;
  private readonly pending = new Map<number, { done: (r: MemberReport<EncodedInterval> | undefined) => void }>();
  /** Intervals that arrived after their collect gave up: merged into the next one, not lost. */
  private late: MemberReport<EncodedInterval>['interval'][] = [];
  private port = 0;
  /** listen.http's port (as bound by the first worker). */
  httpPort = 0;
  private stopping = false;
  private deaths: number[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped: ((r: MemberReport<EncodedInterval> | undefined) => void) | undefined;

  /** The options a new thread starts with: the config's share, then each reload's. */
  private options: PlaneOptions;

  constructor(private readonly o: WorkerMemberOptions) {
    this.options = o.options;
    this.id = `w${o.index}.0`;
    this.info = { id: `w${o.index}`, state: 'starting', restarts: 0, inflight: 0, requests: 0 };
  }

  /**
   * Start the thread on `port` (0: any; the first worker's port is then given to the others), and
   * listen.http's listener on `httpPort`. Resolves with the ports it listens on.
   */
  start(port: number, httpPort = this.httpPort): Promise<number> {
    this.port = port;
    this.httpPort = httpPort;
    return new Promise((resolve, reject) => {
      const w = this.spawn();
      const onExit = (code: number) => reject(new Error(`worker ${this.o.index} exited with code ${code} at start`));
      const onError = (err: Error) => reject(err);
      w.once('error', onError);
      w.once('exit', onExit);
      const onMessage = (m: FromWorker) => {
        if (m.t !== 'listening') return;
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
        this.port = m.port;
        if (m.httpPort !== undefined) this.httpPort = m.httpPort;
        this.watch(w);
        resolve(m.port);
      };
      w.on('message', onMessage);
    });
  }

  private spawn(): Worker {
    const init: WorkerInit = {
      index: this.o.index,
      options: this.options,
      table: this.o.table(),
      port: this.port,
      httpPort: this.httpPort,
      host: this.o.host,
      reusePort: this.o.reusePort,
      level: this.o.level(),
      access: this.o.access(),
      conns:
        this.o.conns === undefined
          ? undefined
          : { buffer: this.o.conns, column: this.o.index, columns: this.o.columns ?? 1 },
    };
    const w = new Worker(THREAD, { workerData: init });
    this.worker = w;
    w.on('message', (m: FromWorker) => this.receive(m));
    return w;
  }

  /** After the thread listens: its death is a restart, not a failed start. */
  private watch(w: Worker): void {
    this.info.state = 'running';
    let reason: unknown;
    w.on('error', (err) => {
      reason = err;
    });
    w.once('exit', (code) => this.exited(w, code, reason));
  }

  private exited(w: Worker, code: number, reason: unknown): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    for (const p of this.pending.values()) p.done(undefined);
    this.pending.clear();
    this.stopped?.(undefined);
    // Its connections died with it: their places go back before a new thread counts again.
    if (this.o.conns !== undefined) clearColumn(this.o.conns, this.o.index);
    const old = this.id;
    this.generation++;
    this.id = `w${this.o.index}.${this.generation}`;
    this.onRetire?.(old);
    this.info.inflight = 0;
    if (this.stopping) {
      this.info.state = 'stopped';
      return;
    }
    const now = Date.now();
    this.deaths = this.deaths.filter((t) => now - t < 60_000);
    this.deaths.push(now);
    const delay = restartDelay(this.deaths.length);
    this.info.state = 'restarting';
    this.o.logger.error(
      { worker: this.o.index, code, err: reason, restartInMs: delay, deathsLastMinute: this.deaths.length },
      'worker thread died: starting a new one',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.info.restarts++;
      this.start(this.port).catch((err: unknown) => {
        this.o.logger.error({ worker: this.o.index, err }, 'worker thread failed to start');
        this.exited(this.worker as Worker, 1, err);
      });
    }, delay);
    this.restartTimer.unref();
  }

  private receive(m: FromWorker): void {
    switch (m.t) {
      case 'ack':
      case 'report': {
        const p = this.pending.get(m.seq);
        this.pending.delete(m.seq);
        if (m.t === 'report') {
          if (p !== undefined) p.done(m.report);
          else if (m.report.interval !== undefined) this.late.push(m.report.interval);
        } else p?.done(undefined);
        break;
      }
      case 'event':
        this.o.onEvent(m.event);
        break;
      case 'alarm':
        this.o.onAlarm?.();
        break;
      case 'access':
        this.o.accessSink.write(m.chunk);
        break;
      case 'out':
        this.o.sink.write(m.chunk);
        break;
      case 'stopped':
        this.stopped?.(m.report);
        break;
    }
  }

  /** Send and wait for the answer to `seq`, at most `waitMs`; `answered` runs if it came. */
  private ask(
    msg: (seq: number) => ToWorker,
    waitMs: number,
    answered?: () => void,
  ): Promise<MemberReport<EncodedInterval> | undefined> {
    const w = this.worker;
    if (w === undefined) return Promise.resolve(undefined);
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        resolve(undefined);
      }, waitMs);
      this.pending.set(seq, {
        done: (r) => {
          clearTimeout(timer);
          answered?.();
          resolve(r);
        },
      });
      w.postMessage(msg(seq));
    });
  }

  async publish(t: RoutingTable): Promise<void> {
    const w = this.worker;
    let acked = false;
    await this.ask(
      (seq) => ({ t: 'table', seq, table: t }),
      this.o.tableMs ?? 2000,
      () => {
        acked = true;
      },
    );
    // A live thread that did not answer in time is stuck (its event loop blocked): it routes
    // nothing meanwhile, and reads this table before its next request. Say so.
    if (!acked && w !== undefined && this.worker === w)
      this.o.logger.warn(
        { worker: this.o.index, version: t.version, health: t.health, waitedMs: this.o.tableMs ?? 2000 },
        'worker did not acknowledge a routing table in time',
      );
  }

  async configure(options: PlaneOptions, t: RoutingTable): Promise<void> {
    this.options = options;
    await this.ask((seq) => ({ t: 'configure', seq, options, table: t }), this.o.tableMs ?? 2000);
  }

  async collect(interval: boolean): Promise<MemberReport<EncodedInterval> | undefined> {
    const r = await this.ask((seq) => ({ t: 'collect', seq, interval }), this.o.answerMs ?? 1000);
    if (r === undefined) return undefined;
    this.info.inflight = r.inflight;
    this.info.requests = served(r.totals);
    return this.withLate(r);
  }

  /** A report's interval with any that arrived late merged in (rare: a tick that gave up waiting). */
  private withLate(r: MemberReport<EncodedInterval>): MemberReport<EncodedInterval> {
    if (r.interval === undefined || this.late.length === 0) return r;
    const parts = [r.interval, ...this.late.splice(0).filter((e) => e !== undefined)];
    return { ...r, interval: encodeInterval(mergeIntervals(parts, [newHistogram(), newHistogram()])) };
  }

  /** End the thread abruptly, as a crash would: it is replaced like one (tests use this). */
  async kill(): Promise<void> {
    await this.worker?.terminate();
  }

  setLog(s: { level?: string; access?: boolean }): void {
    this.worker?.postMessage({ t: 'log', level: s.level, access: s.access } satisfies ToWorker);
  }

  /** Drain: the thread stops accepting and finishes in-flight requests within graceMs. */
  async close(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    const w = this.worker;
    if (w === undefined) {
      this.info.state = 'stopped';
      return;
    }
    this.info.state = 'stopping';
    const last = new Promise<MemberReport<EncodedInterval> | undefined>((r) => {
      this.stopped = r;
    });
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    w.postMessage({ t: 'stop', graceMs } satisfies ToWorker);
    // Past the grace, the thread gets 3 s more (its upstream connections close in 1 s), then ends.
    const timer = setTimeout(() => void w.terminate(), graceMs + 3000);
    const report = await last;
    if (report !== undefined) this.lastReport?.(report);
    await exited;
    clearTimeout(timer);
    this.info.state = 'stopped';
  }
}
