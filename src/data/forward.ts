/**
 * One proxied exchange: an undici `dispatch` handler that streams the upstream response into the
 * client response with backpressure. This is the cheapest undici path measured here
 * (PERF-NOTES.md); undici marks the handler shape as subject to change, so it stays in this file.
 *
 * It speaks undici's controller shape (onRequestStart, onResponseStart, onResponseData,
 * onResponseEnd, onResponseError): the older onConnect/onHeaders/onData shape is deprecated in
 * undici 7 and gone from dispatch in undici 8. Response headers are read from the controller's
 * raw array, never from the object undici parses for this shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as h2constants, type ServerHttp2Stream } from 'node:http2';
import { errors, type Dispatcher } from 'undici';
import { classifyUpstreamError, QUEUE_TIMEOUT, type UpstreamErrorKind, type UpstreamFailure } from '../core/errors.js';
import type { Recorder } from '../stats/recorder.js';
import type { AccessLog } from './access-log.js';
import { type Body, type BodyBudget, type BodyPolicy, readBody, watchRate } from './body.js';
import type { Awaiting, ResponseDeadlines } from './deadlines.js';
import { sendError, sendFault } from './answers.js';
import { ClientPace, type PacePolicy } from './pace.js';
import { rawHeader, responseHeaders, type ResponseMeta } from './headers.js';
import type { Mirror, Shadowing } from './mirror.js';
import type { Endpoint, UpstreamPool, Waiter } from './upstream.js';

/** What every exchange shares: set once at start. */
export interface ForwardContext {
  recorder: Recorder;
  accessLog: AccessLog | undefined;
  /** Monotonic milliseconds, for latencies. */
  now: () => number;
  /** Wall-clock milliseconds (the injected clock), for access log times. */
  clock: () => number;
  /** Called when the exchange finishes, however it finishes (in-flight tracking). */
  done: () => void;
  /** timeouts.idle: how long a client that stopped reading gets before its socket is closed. */
  idleMs: number;
  /**
   * timeouts.response for body-less requests, when sluice keeps it rather than undici (see
   * deadlines.ts); undefined when undici keeps it for every request.
   */
  deadlines: ResponseDeadlines | undefined;
  /** timeouts.queue: requests waiting for a free upstream connection, on the same coarse clock. */
  queue: ResponseDeadlines;
  body: BodyPolicy;
  bodyBudget: BodyBudget;
  /** Slow clients: limits.bufferResponseBytes, limits.minResponseRate (pace.ts). */
  pace: PacePolicy;
  /** retry.toStable, its budget, and the retries under way in this member. */
  retry: RetryBudget;
  /** limits.bufferResponseTotalBytes: what all responses may hold together for slow clients. */
  responseBudget: BodyBudget;
  /** Shadow traffic: mirrors of stable requests to the canary (mirror.ts). */
  shadow: Shadowing;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * retry.toStable's budget (Envoy's retry budget, whose default is 20 % of active requests with
 * at least 3 at once): a failing canary may add at most that share of stable's load in retries.
 */
export interface RetryBudget {
  toStable: boolean;
  budget: number;
  minRetries: number;
  /** Retries to stable under way now. */
  active: number;
  /** Client requests in flight now. */
  inflight: () => number;
}

/** The exchange a response belongs to, so shared listeners serve every request. */
const kExchange = Symbol('sluice.exchange');
type Tagged = ServerResponse & { [kExchange]?: Exchange };

/**
 * res 'close': the response's buffered bytes are flushed or dropped (its budget share comes
 * back); before the exchange finished, the client went away. Shared: no closure per request.
 */
function onResponseClose(this: ServerResponse): void {
  const x = (this as Tagged)[kExchange];
  if (x === undefined) return;
  x.releaseBuffered();
  x.clientClosed();
}

/** A response queued behind another on its connection got the socket: its turn has come. */
function onResponseSocket(this: ServerResponse): void {
  (this as Tagged)[kExchange]?.begin();
}

/** Where an exchange is: each stage may end early, for any reason, and still finishes once. */
enum Stage {
  /** Pipelined behind an earlier request on the same connection: nothing is read or sent yet. */
  Turn = 0,
  /** Held by an injected delay (PUT /api/v1/faults) before anything is read or sent. */
  Delayed = 1,
  /** Reading the request body before any upstream is involved (body.ts). */
  Body = 2,
  /** Waiting in the pool's line for a free upstream connection (timeouts.queue). */
  Waiting = 3,
  /** Handed to undici: connecting, or about to be written. */
  Dispatched = 4,
  /** Written to an upstream connection: waiting for or relaying its answer. */
  Sent = 5,
}

/** An injected delay is over: the exchange goes on as if it had just begun. */
function delayOver(x: Exchange): void {
  x.afterDelay();
}

/** The request, and also what undici is given to dispatch (it reads the fields it knows). */
export interface ExchangeRequest {
  path: string;
  method: string;
  headers: string[];
  /** The client request; its body is read only when `hasBody`. */
  req: IncomingMessage;
  hasBody: boolean;
  /** Content-Length of the body, or -1 when chunked. */
  declaredLength: number;
  /** The body undici sends: set once read (null without one). */
  body: Body | null;
  /** Set for a streamed body, which restarts undici's headers timeout as it goes out. */
  headersTimeout: number | undefined;
}

export class Exchange implements ResponseMeta, Awaiting, Waiter {
  /**
   * Response body bytes still to come when the upstream gave an exact Content-Length, else -1.
   * The chunk that completes the body goes out with res.end(chunk): one corked write of head,
   * body and end, where write() then end() corks the socket, schedules a tick to uncork it and
   * passes through the stream machinery twice.
   */
  bodyLength = -1;
  /** undici's handle on the upstream request: abort, pause, resume (set on each attempt). */
  private controller: Dispatcher.DispatchController | undefined;
  private onDrainBound: (() => void) | undefined;
  private stage = Stage.Turn;
  private finished = false;
  private clientGone = false;
  private headerMicros = 0;
  /** Response body bytes relayed to the client (the access log's bytes). */
  private sent = 0;
  private status = 0;
  private attempts = 0;
  /** A canary's 5xx being read and dropped: stable answers instead (retry.toStable). */
  private discarding = false;
  /** The canary's failure is in its verdict already (recorded when it was seen). */
  private canaryRecorded = false;
  /** When the answering pool was asked: latencies are each pool's own, not a retry's total. */
  private attemptStart: number;
  /** This exchange holds a place in the retry budget. */
  private reserved = false;
  private endpoint: Endpoint | undefined;
  /** Stops reading the body (Stage.Body) or watching a streamed body's rate. */
  private stopBody: (() => void) | undefined;
  /** Budget bytes the buffered body holds. */
  private held = 0;
  /** Made at the first stall: what the response holds for a slow client, and its pace (pace.ts). */
  private pace: ClientPace | undefined;
  /**
   * Injected faults (PUT /api/v1/faults), drawn by the proxy for this request: a delay (ms) to
   * hold it before it begins, and a status its pool answers "at once" when it would be sent.
   * 0: none; negated once applied (the access log names them).
   */
  private faultDelayMs = 0;
  private faultAbort = 0;
  private delayTimer: NodeJS.Timeout | undefined = undefined;
  /** Which coarse-clock list the exchange is linked into, if any. */
  private list: ResponseDeadlines | undefined;
  awaitPrev: Awaiting | undefined = undefined;
  awaitNext: Awaiting | undefined = undefined;
  awaitLinked = false;
  sentTick = 0;
  /** The canary, when this request is to be mirrored there once its body is known (a shadow). */
  mirrorTo: UpstreamPool | undefined = undefined;
  private mirror: Mirror | undefined;

  constructor(
    private readonly ctx: ForwardContext,
    readonly res: ServerResponse,
    /** The pool answering: the one chosen, or stable after a canary failure (retry.toStable). */
    public pool: UpstreamPool,
    readonly request: ExchangeRequest,
    readonly requestId: string,
    readonly remote: string,
    /** Placed by the override: served, counted apart, never judged. */
    readonly forced: boolean,
    private readonly start: number,
    /**
     * Stable, when this request went to the canary and may be sent again (retry.toStable: a safe
     * method or an Idempotency-Key, the override not used); spent by the retry.
     */
    private fallback?: UpstreamPool | undefined,
  ) {
    this.attemptStart = start;
    (res as Tagged)[kExchange] = this;
    res.on('close', onResponseClose);
  }

  /** True while the exchange waits for an earlier response on its connection (pipelining). */
  get waitingTurn(): boolean {
    return this.stage === Stage.Turn && !this.finished;
  }

  /** True while this request's own bytes are still arriving (its body, or the parser on it). */
  get readingRequest(): boolean {
    return !this.finished && !this.request.req.complete;
  }

  /**
   * Start: at once when the response owns the connection, else once the responses before it
   * are done (Node queues pipelined responses; sending the request upstream before then would
   * hold an upstream connection for an answer that cannot be written yet).
   */
  begin(): void {
    if (this.finished || this.stage !== Stage.Turn) return;
    if (this.res.socket === null) {
      this.res.once('socket', onResponseSocket);
      return;
    }
    if (this.faultDelayMs > 0) {
      // Held before its body is read or a connection is taken: the client's bytes wait in its
      // socket, and the latency recorded for the pool includes the delay (it is judged).
      this.stage = Stage.Delayed;
      this.delayTimer = setTimeout(delayOver, this.faultDelayMs, this);
      this.faultDelayMs = -this.faultDelayMs;
      this.ctx.recorder.pools[this.pool.id].injected.delays++;
      return;
    }
    this.proceed();
  }

  /**
   * Faults for this request, set before begin(): hold it `delayMs` first, and/or answer
   * `abortStatus` in place of its pool's upstream (0: not this fault).
   */
  inject(delayMs: number, abortStatus: number): void {
    this.faultDelayMs = delayMs;
    this.faultAbort = abortStatus;
  }

  /** From the delay's timer. */
  afterDelay(): void {
    this.delayTimer = undefined;
    if (this.finished) return;
    this.proceed();
  }

  /** Read the body (if any), then send. */
  private proceed(): void {
    const r = this.request;
    if (!r.hasBody) {
      this.send(null);
      return;
    }
    this.stage = Stage.Body;
    const cancel = readBody(r.req, r.declaredLength, this.ctx.body, this.ctx.bodyBudget, (b) => {
      this.stopBody = undefined;
      if ('failed' in b) {
        if (b.failed === 'closed') return this.finish(undefined, true);
        return this.reject(408, 'body_timeout', 'request body not received within timeouts.clientBody');
      }
      this.held = b.held;
      if (!Buffer.isBuffer(b.body)) {
        // Streamed: the socket gets timeouts.idle between chunks and the body a minimum rate.
        clientTimeout(this.res, this.ctx.idleMs);
        this.stopBody = watchRate(r.req, this.ctx.body, this.ctx.now, () =>
          this.cut(408, 'body_too_slow', 'request body slower than limits.minBodyRate'),
        );
      }
      this.send(b.body);
    });
    // readBody may have called back already (a body that streams at once): keep its rate watch.
    if (this.stage === Stage.Body && !this.finished) this.stopBody = cancel;
  }

  private send(body: Body | null): void {
    const r = this.request;
    r.body = body;
    // A streamed body restarts undici's headers timeout as it goes out: give it its own.
    if (body !== null && !Buffer.isBuffer(body)) r.headersTimeout = this.ctx.deadlines?.timeoutMs;
    if (this.faultAbort > 0) {
      this.launchMirror(body);
      this.injectedAnswer(this.faultAbort);
      return;
    }
    this.go();
    // The client's request first; its mirror after, so nothing of the mirror's runs before it.
    this.launchMirror(body);
  }

  /** A shadow's copy of this request to the canary (mirror.ts), once the request is on its way. */
  private launchMirror(body: Body | null): void {
    if (this.mirrorTo === undefined || this.finished) return;
    const canary = this.mirrorTo;
    this.mirrorTo = undefined;
    this.mirror = this.ctx.shadow.launch(this.request, this.requestId, body, canary);
  }

  /**
   * An injected abort: the pool "answers" `status` at once, before any connection is taken. It
   * takes the path an upstream's answer would: recorded for the pool (so it is judged), and a 5xx
   * from the canary goes to stable when retry.toStable would send a real one there. No endpoint
   * is involved, so passive health never ejects one for it.
   */
  private injectedAnswer(status: number): void {
    this.faultAbort = -status;
    this.ctx.recorder.pools[this.pool.id].injected.aborts++;
    this.headerMicros = (this.ctx.now() - this.attemptStart) * 1000;
    this.status = status;
    if (status >= 500 && this.fallback !== undefined && this.reserveRetry()) {
      this.faultAbort = 0; // not the answer the client gets: stable's is
      this.toStable(status, undefined);
      return;
    }
    // A streamed body not read to its end: the connection closes after the answer.
    if (!this.request.req.complete) this.res.shouldKeepAlive = false;
    sendFault(this.res, status, this.pool.name, this.requestId);
    this.finish(undefined);
  }

  /** To an endpoint with a free connection, or into the pool's line until one frees up. */
  private go(): void {
    const pool = this.pool;
    const ep = pool.acquire(pool.allUp ? 0 : pool.clock());
    if (ep === undefined) {
      this.stage = Stage.Waiting;
      this.link(this.ctx.queue);
      pool.wait(this);
      return;
    }
    this.endpoint = ep;
    this.dispatch();
  }

  get waiting(): boolean {
    return this.stage === Stage.Waiting && !this.finished;
  }

  /** From the pool: a connection freed up. */
  resume(): void {
    if (!this.waiting) return;
    this.unlink();
    this.pool.left();
    this.go();
  }

  /** Send (or re-send, on a retryable failure) to `this.endpoint`. */
  private dispatch(): void {
    const ep = this.endpoint as Endpoint;
    this.stage = Stage.Dispatched;
    this.attempts++;
    ep.inflight++;
    ep.dispatcher.dispatch(this.request, this);
  }

  private link(list: ResponseDeadlines): void {
    this.unlink();
    this.list = list;
    list.add(this);
  }

  private unlink(): void {
    if (this.list === undefined) return;
    this.list.remove(this);
    this.list = undefined;
  }

  /** The client went away before we finished: abort the upstream request. Not an upstream error. */
  clientClosed(): void {
    if (this.finished) return;
    this.clientGone = true;
    if (this.stage < Stage.Dispatched) {
      this.finish(undefined, true);
      return;
    }
    // Connecting at undici, without a controller yet: aborted in onRequestStart.
    this.controller?.abort(new Error('client closed'));
  }

  /**
   * The request itself is bad (a malformed body the parser refused, a body too slow): answer
   * `status` if nothing was answered yet and end the exchange, aborting the upstream request if
   * one was sent.
   */
  cut(status: number, code: string, message: string): void {
    if (this.finished) return;
    if (this.stage < Stage.Dispatched) {
      this.reject(status, code, message);
      return;
    }
    this.clientGone = true;
    this.res.shouldKeepAlive = false;
    if (!this.res.headersSent) sendError(this.res, status, code, this.requestId, message);
    else this.res.destroy();
    // Finished first: undici's onResponseError for this abort then finds nothing left to do.
    this.finish(undefined, false, code);
    this.controller?.abort(new Error(code));
  }

  /** Answer without any upstream: nothing was sent, nothing is recorded. */
  private reject(status: number, code: string, message: string): void {
    this.status = status;
    this.res.shouldKeepAlive = false;
    sendError(this.res, status, code, this.requestId, message);
    this.finish(undefined, false, code);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.unlink();
    if (this.clientGone || this.finished) {
      controller.abort(new Error('client closed'));
      return;
    }
    this.stage = Stage.Sent;
    // undici calls this as it writes the request: the response timeout starts now.
    const deadlines = this.ctx.deadlines;
    if (deadlines !== undefined && this.request.headersTimeout === undefined) this.link(deadlines);
  }

  /**
   * Past a coarse-clock deadline: waiting, no upstream connection freed up within timeouts.queue
   * (503, never sent); sent, no response headers within timeouts.response (as undici's own
   * headers timeout would fail it).
   */
  deadlinePassed(list: ResponseDeadlines): void {
    this.list = undefined;
    if (list !== this.ctx.queue) {
      this.controller?.abort(new errors.HeadersTimeoutError());
      return;
    }
    this.headerMicros = (this.ctx.now() - this.attemptStart) * 1000;
    this.status = QUEUE_TIMEOUT.status;
    this.res.shouldKeepAlive = false;
    sendError(this.res, QUEUE_TIMEOUT.status, QUEUE_TIMEOUT.code, this.requestId, undefined, 1);
    this.finish(QUEUE_TIMEOUT);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    _headers: unknown,
    statusText?: string,
  ): void {
    if (statusCode < 200) return; // 1xx informational: not forwarded
    this.unlink();
    this.headerMicros = (this.ctx.now() - this.attemptStart) * 1000;
    this.status = statusCode;
    this.pool.answered(this.endpoint as Endpoint);
    const res = this.res;
    if (this.clientGone || res.destroyed) {
      this.clientGone = true;
      controller.abort(new Error('client closed'));
      return;
    }
    // A canary's 5xx before any byte reached the client: read it to its end, drop it, ask stable.
    if (statusCode >= 500 && this.fallback !== undefined && this.reserveRetry()) {
      this.discarding = true;
      // Judged now: a client that leaves while the body is dropped does not hide it.
      this.recordCanary(statusCode, undefined);
      return;
    }
    res.sendDate = false; // keep the upstream's Date
    const headers = responseHeaders(controller.rawHeaders as Buffer[], this);
    headers.push('x-sluice-pool', this.pool.name, 'x-request-id', this.requestId);
    // HTTP/2 has no reason phrase (Node warns if one is given).
    if (statusText && this.request.req.httpVersionMajor !== 2) res.writeHead(statusCode, statusText, headers);
    else res.writeHead(statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.discarding) return;
    this.sent += chunk.length;
    const left = this.bodyLength;
    if (left === chunk.length) {
      this.bodyLength = -1;
      this.res.end(chunk);
      return;
    }
    if (left > 0) this.bodyLength = left - chunk.length;
    const res = this.res;
    if (res.write(chunk)) return;
    // The client is behind (pace.ts): hold the chunk in memory if allowed, else pause the upstream.
    if (this.pace === undefined) this.pace = new ClientPace(this.ctx.pace, this.ctx.responseBudget, this.ctx.now);
    const pace = this.pace;
    if (!pace.hold(chunk.length, res.writableLength)) controller.pause();
    if (pace.stalled) return;
    pace.begin(res.socket);
    if (this.onDrainBound === undefined) this.onDrainBound = () => this.drained();
    res.once('drain', this.onDrainBound);
    // The client is not keeping up: it gets timeouts.idle to read again, else its socket is
    // closed (nginx send_timeout); undici's body timeout does not run while paused.
    clientTimeout(res, this.ctx.idleMs);
  }

  /** Give back what the response held in memory: flushed, or dropped with it (res 'close'). */
  releaseBuffered(): void {
    this.pace?.release();
  }

  private drained(): void {
    const socket = this.res.socket;
    if ((this.pace as ClientPace).end(socket)) {
      this.ctx.recorder.reject('response_too_slow');
      this.res.destroy(); // 'close' aborts the upstream request (clientClosed)
      return;
    }
    // A request body still streaming keeps its own idle timer (begin).
    if (this.request.req.complete) clientTimeout(this.res, 0);
    this.controller?.resume();
  }

  onResponseEnd(): void {
    if (this.discarding) {
      this.toStable(this.status, undefined);
      return;
    }
    if (!this.res.writableEnded) this.res.end(); // else the last chunk ended it (onResponseData)
    this.finish(undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.finished) return;
    this.unlink();
    if (this.clientGone) {
      this.finish(undefined, true);
      return;
    }
    if (this.discarding) {
      this.toStable(this.status, undefined);
      return;
    }
    const failure = classifyUpstreamError(err);
    const ep = this.endpoint as Endpoint;
    if (this.status === 0) {
      if (failure.kind === 'connect') this.pool.connectFailed(ep);
      if (this.mayRetry(failure)) {
        // Ejection deadlines are on the pool's clock, not ctx.now() (a monotonic one for latencies).
        const next = this.pool.pick(this.pool.clock(), ep);
        // A refused connect must go elsewhere; a reset may repeat on the same endpoint (a
        // keep-alive race with the upstream closing an idle connection).
        if (next !== ep || failure.kind === 'reset') {
          ep.inflight--;
          this.endpoint = next;
          this.controller = undefined;
          this.dispatch();
          if (next !== ep) this.pool.released(); // the failed endpoint's slot is free for a waiter
          return;
        }
      }
      this.headerMicros = (this.ctx.now() - this.attemptStart) * 1000;
      if (this.fallback !== undefined && this.reserveRetry()) {
        this.toStable(failure.status, failure.kind);
        return;
      }
      this.status = failure.status;
      sendError(this.res, failure.status, failure.code, this.requestId);
    } else {
      // Failed mid-body: the client must see truncation, never a clean end.
      this.res.destroy(err);
    }
    this.finish(failure);
  }

  /**
   * Whether a failure before any response byte may be retried on another endpoint of the pool
   * (nginx proxy_next_upstream error). Only requests whose body can be sent again retry (none,
   * or buffered whole):
   * - a failed connect, up to once per endpoint: nothing reached the application;
   * - a reset, once, for idempotent methods only (RFC 9110 §9.2.2): the request may have reached
   *   it, but repeating it is safe; once only, so a request that crashes its upstream cannot take
   *   the whole pool down with it.
   */
  private mayRetry(f: UpstreamFailure): boolean {
    if (!this.resendable()) return false;
    if (f.retryable) return this.attempts < this.pool.endpoints.length;
    return f.kind === 'reset' && this.attempts === 1 && IDEMPOTENT.has(this.request.method);
  }

  /** Whether the request can be sent again: no body, or one buffered whole, and its client still here. */
  private resendable(): boolean {
    const body = this.request.body;
    return (body === null || Buffer.isBuffer(body)) && !this.clientGone;
  }

  /** A place in the retry budget for this exchange, if the budget and its body allow one. */
  private reserveRetry(): boolean {
    if (!this.resendable()) return false;
    const r = this.ctx.retry;
    if (r.active >= Math.max(r.minRetries, r.budget * r.inflight())) {
      this.ctx.recorder.retried.refused++;
      this.fallback = undefined;
      return false;
    }
    r.active++;
    this.reserved = true;
    return true;
  }

  /**
   * The canary failed before any byte reached the client: its failure counts in its verdict, as
   * if the client had seen it, and the request goes to stable, once.
   */
  private toStable(status: number, kind: UpstreamErrorKind | undefined): void {
    const canary = this.pool;
    const stable = this.fallback as UpstreamPool;
    this.fallback = undefined;
    this.discarding = false;
    this.recordCanary(status, kind);
    // An injected abort took no endpoint.
    if (this.endpoint !== undefined) {
      this.endpoint.inflight--;
      canary.released();
    }
    // Its client left while the canary's answer was dropped: nothing to send anywhere.
    if (this.clientGone || this.res.destroyed) {
      this.endpoint = undefined;
      this.finish(undefined, true);
      return;
    }
    this.ctx.recorder.retried.toStable++;
    this.attemptStart = this.ctx.now();
    this.pool = stable;
    this.endpoint = undefined;
    this.controller = undefined;
    this.status = 0;
    this.attempts = 0;
    this.headerMicros = 0;
    this.go();
  }

  /** The canary's failure, in its verdict as if the client had seen it (once). */
  private recordCanary(status: number, kind: UpstreamErrorKind | undefined): void {
    if (this.canaryRecorded) return;
    this.canaryRecorded = true;
    this.ctx.recorder.record(this.pool.id, status, this.headerMicros, kind);
  }

  /** The access log's code for an injected fault: the abort the client got, else the delay. */
  private faultCode(): string | undefined {
    if (this.faultAbort < 0) return 'fault_injected';
    if (this.faultDelayMs < 0) return 'fault_delayed';
    return undefined;
  }

  /**
   * Record, log and release, exactly once. `rejected` names why sluice answered without any
   * upstream (nothing is recorded for the pool then).
   */
  private finish(failure: UpstreamFailure | undefined, clientAborted = false, rejected?: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.reserved) {
      this.reserved = false;
      this.ctx.retry.active--;
    }
    this.unlink();
    if (this.delayTimer !== undefined) {
      clearTimeout(this.delayTimer);
      this.delayTimer = undefined;
    }
    this.stopBody?.();
    this.stopBody = undefined;
    if (this.held !== 0) {
      this.ctx.bodyBudget.held -= this.held;
      this.held = 0;
    }
    this.request.body = null; // the exchange may outlive its budget share (conn.last)
    if (this.stage === Stage.Waiting) this.pool.left();
    else if (this.stage >= Stage.Dispatched && this.endpoint !== undefined) {
      this.endpoint.inflight--;
      this.pool.released();
    }
    if (this.onDrainBound !== undefined) this.res.removeListener('drain', this.onDrainBound);
    // The 'close' listener stays: it is shared, still gives back a held response's budget, and a
    // finished exchange ignores the rest.
    // The mirror's pair: stable's answer as the client got it (none when it left or was refused).
    this.mirror?.original(rejected !== undefined || clientAborted ? -1 : this.status, this.headerMicros);
    this.mirror = undefined; // the exchange may outlive its answer (conn.last): the mirror need not
    const rec = this.ctx.recorder;
    if (rejected !== undefined) rec.reject(rejected);
    else if (!clientAborted) {
      if (this.forced) rec.recordForced(this.pool.id, this.status, failure?.kind);
      else rec.record(this.pool.id, this.status, this.headerMicros, failure?.kind);
      if (failure === QUEUE_TIMEOUT) rec.reject('queue_timeout');
    }
    const log = this.ctx.accessLog;
    if (log !== undefined) {
      const req = this.request.req;
      log.log(
        this.ctx.clock(),
        this.requestId,
        this.request.method,
        this.request.path,
        req.httpVersion,
        clientAborted ? 499 : this.status,
        this.pool.name,
        this.endpoint?.url ?? '-',
        this.ctx.now() - this.start,
        this.headerMicros / 1000,
        this.sent,
        this.remote,
        rawHeader(req.rawHeaders, 'user-agent'),
        rawHeader(req.rawHeaders, 'referer'),
        clientAborted ? 'client_abort' : (rejected ?? failure?.code ?? this.faultCode()),
      );
    }
    this.ctx.done();
  }
}

/**
 * timeouts.idle on what the client holds: its socket, or with HTTP/2 its stream, since one
 * connection carries many (a stream past it is reset; 0 turns it off).
 */
function clientTimeout(res: ServerResponse, ms: number): void {
  const stream = (res as unknown as { stream?: ServerHttp2Stream & Marked }).stream;
  if (stream === undefined) {
    res.socket?.setTimeout(ms);
    return;
  }
  // One handler per stream, however often the client falls behind.
  if (ms !== 0 && stream[kIdleHandler] === undefined) {
    stream[kIdleHandler] = true;
    stream.on('timeout', () => {
      stream[kSelfReset] = true;
      stream.close(h2constants.NGHTTP2_CANCEL);
    });
  }
  stream.setTimeout(ms);
}

const kIdleHandler = Symbol('sluice.idleHandler');
/** Set on an HTTP/2 stream sluice resets itself, so the rapid-reset guard does not count it. */
export const kSelfReset = Symbol('sluice.selfReset');
type Marked = { [kIdleHandler]?: true; [kSelfReset]?: boolean };
