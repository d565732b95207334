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
import { errors, type Dispatcher } from 'undici';
import { classifyUpstreamError, type UpstreamFailure } from '../core/errors.js';
import type { Recorder } from '../stats/recorder.js';
import type { AccessLog } from './access-log.js';
import type { Awaiting, ResponseDeadlines } from './deadlines.js';
import { responseHeaders, type ResponseMeta } from './headers.js';
import type { Endpoint, UpstreamPool } from './upstream.js';

/** What every exchange shares: set once at start. */
export interface ForwardContext {
  recorder: Recorder;
  accessLog: AccessLog | undefined;
  now: () => number;
  /** Called when the exchange finishes, however it finishes (in-flight tracking). */
  done: () => void;
  /** timeouts.idle: how long a client that stopped reading gets before its socket is closed. */
  idleMs: number;
  /**
   * timeouts.response for body-less requests, when sluice keeps it rather than undici (see
   * deadlines.ts); undefined when undici keeps it for every request.
   */
  deadlines: ResponseDeadlines | undefined;
}

export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  requestId: string,
  message?: string,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `{"error":{"code":"${code}","status":${status},"requestId":"${requestId}"${message === undefined ? '' : `,"message":${JSON.stringify(message)}`}}}\n`;
  res.writeHead(status, [
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    'x-request-id',
    requestId,
  ]);
  res.end(body);
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The exchange a response belongs to, so one shared 'close' listener serves every request. */
const kExchange = Symbol('sluice.exchange');

/** res 'close' before the exchange finished: the client went away. Shared: no closure per request. */
function onResponseClose(this: ServerResponse): void {
  (this as ServerResponse & { [kExchange]?: Exchange })[kExchange]?.clientClosed();
}

export class Exchange implements ResponseMeta, Awaiting {
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
  private finished = false;
  private clientGone = false;
  private headerMicros = 0;
  private status = 0;
  private attempts = 0;
  private endpoint: Endpoint;
  awaitPrev: Awaiting | undefined = undefined;
  awaitNext: Awaiting | undefined = undefined;
  awaitLinked = false;
  sentTick = 0;

  constructor(
    private readonly ctx: ForwardContext,
    readonly res: ServerResponse,
    readonly pool: UpstreamPool,
    endpoint: Endpoint,
    readonly opts: {
      path: string;
      method: string;
      headers: string[];
      body: IncomingMessage | null;
      headersTimeout: number | undefined;
    },
    readonly requestId: string,
    readonly remote: string,
    private readonly start: number,
  ) {
    this.endpoint = endpoint;
    (res as ServerResponse & { [kExchange]?: Exchange })[kExchange] = this;
    res.on('close', onResponseClose);
  }

  /** Send (or re-send, on a retryable failure) to `this.endpoint`. */
  dispatch(): void {
    this.attempts++;
    this.endpoint.inflight++;
    this.endpoint.dispatcher.dispatch(this.opts, this);
  }

  /** The client went away before we finished: abort the upstream request. Not an upstream error. */
  clientClosed(): void {
    if (this.finished) return;
    this.clientGone = true;
    this.controller?.abort(new Error('client closed'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) {
      controller.abort(new Error('client closed'));
      return;
    }
    // undici calls this as it writes the request: the response timeout starts now.
    const deadlines = this.ctx.deadlines;
    if (deadlines !== undefined && this.opts.body === null) deadlines.add(this);
  }

  /** No response headers within timeouts.response: as undici's own headers timeout would fail it. */
  headersTimedOut(): void {
    this.controller?.abort(new errors.HeadersTimeoutError());
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    _headers: unknown,
    statusText?: string,
  ): void {
    if (statusCode < 200) return; // 1xx informational: not forwarded
    if (this.awaitLinked) this.ctx.deadlines?.remove(this);
    this.headerMicros = (this.ctx.now() - this.start) * 1000;
    this.status = statusCode;
    this.pool.answered(this.endpoint);
    const res = this.res;
    if (this.clientGone || res.destroyed) {
      this.clientGone = true;
      controller.abort(new Error('client closed'));
      return;
    }
    res.sendDate = false; // keep the upstream's Date
    const headers = responseHeaders(controller.rawHeaders as Buffer[], this);
    headers.push('x-sluice-pool', this.pool.name, 'x-request-id', this.requestId);
    if (statusText) res.writeHead(statusCode, statusText, headers);
    else res.writeHead(statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const left = this.bodyLength;
    if (left === chunk.length) {
      this.bodyLength = -1;
      this.res.end(chunk);
      return;
    }
    if (left > 0) this.bodyLength = left - chunk.length;
    if (this.res.write(chunk)) return;
    controller.pause();
    if (this.onDrainBound === undefined) this.onDrainBound = () => this.drained();
    this.res.once('drain', this.onDrainBound);
    // The client is not keeping up: it gets timeouts.idle to read again, else its socket is
    // closed (nginx send_timeout); undici's body timeout does not run while paused.
    this.res.socket?.setTimeout(this.ctx.idleMs);
  }

  private drained(): void {
    // A request body still arriving keeps its own idle timer (ProxyServer.handle).
    if (this.opts.body === null) this.res.socket?.setTimeout(0);
    this.controller?.resume();
  }

  onResponseEnd(): void {
    if (!this.res.writableEnded) this.res.end(); // else the last chunk ended it (onResponseData)
    this.finish(undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.finished) return;
    if (this.awaitLinked) this.ctx.deadlines?.remove(this);
    if (this.clientGone) {
      this.finish(undefined, true);
      return;
    }
    const failure = classifyUpstreamError(err);
    if (this.status === 0) {
      if (failure.kind === 'connect') this.pool.connectFailed(this.endpoint);
      if (this.mayRetry(failure)) {
        // Ejection deadlines are wall-clock times: pick() takes Date.now(), not ctx.now().
        const next = this.pool.pick(Date.now(), this.endpoint);
        // A refused connect must go elsewhere; a reset may repeat on the same endpoint (a
        // keep-alive race with the upstream closing an idle connection).
        if (next !== this.endpoint || failure.kind === 'reset') {
          this.endpoint.inflight--;
          this.endpoint = next;
          this.dispatch();
          return;
        }
      }
      this.headerMicros = (this.ctx.now() - this.start) * 1000;
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
   * (nginx proxy_next_upstream error). Bodies are streamed, so only body-less requests retry:
   * - a failed connect, up to once per endpoint: nothing reached the application;
   * - a reset, once, for idempotent methods only (RFC 9110 §9.2.2): the request may have reached
   *   it, but repeating it is safe; once only, so a request that crashes its upstream cannot take
   *   the whole pool down with it.
   */
  private mayRetry(f: UpstreamFailure): boolean {
    if (this.opts.body !== null || this.clientGone) return false;
    if (f.retryable) return this.attempts < this.pool.endpoints.length;
    return f.kind === 'reset' && this.attempts === 1 && IDEMPOTENT.has(this.opts.method);
  }

  /** Record, log and release, exactly once. */
  private finish(failure: UpstreamFailure | undefined, clientAborted = false): void {
    if (this.finished) return;
    this.finished = true;
    this.endpoint.inflight--;
    if (this.onDrainBound !== undefined) this.res.removeListener('drain', this.onDrainBound);
    // The 'close' listener stays: it is shared, and a finished exchange ignores it.
    if (!clientAborted) this.ctx.recorder.record(this.pool.id, this.status, this.headerMicros, failure?.kind);
    const log = this.ctx.accessLog;
    if (log !== undefined) {
      log.log(
        Date.now(),
        this.requestId,
        this.opts.method,
        this.opts.path,
        clientAborted ? 499 : this.status,
        this.pool.name,
        this.endpoint.url,
        this.ctx.now() - this.start,
        this.remote,
        clientAborted ? 'client_abort' : failure?.code,
      );
    }
    this.ctx.done();
  }
}
