/**
 * The client-facing listener: node:http in front, undici behind. Reads the routing table, writes
 * measurements; never awaits the controller and never logs synchronously per request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  constants as h2,
  createServer as createH2Server,
  type Http2Server,
  type Http2ServerRequest,
  type ServerHttp2Session,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { CLIENT_ERRORS, type SluiceError } from '../core/errors.js';
import { listenOn, TrustedSet } from '../core/net.js';
import { contextOptions, sameCertificates, SniContexts, type TlsMaterial } from '../core/tls.js';
import type { Recorder } from '../stats/recorder.js';
import type { AccessLog } from './access-log.js';
import { ClientConnections, type ConnColumn } from './client-conns.js';
import { ResponseDeadlines } from './deadlines.js';
import { BodyBudget } from './body.js';
import { ALLOW, sendError, sendMaintenance, writeRaw } from './answers.js';
import { Exchange, kSelfReset, type ForwardContext } from './forward.js';
import {
  headerNames,
  rawHeader,
  SAFE_REQUEST_ID,
  scanRequestHeaders,
  validHost,
  type HeaderNames,
  type ScannedRequest,
} from './headers.js';
import { choosePool, clientIp, FORCED, normalizeIp, parseSplitKey, routingKey, type Selector } from './select.js';
import type { PoolId, TableFaults, TableMaintenance, TableSource } from './table.js';
import type { UpstreamPool } from './upstream.js';
import { WebSocketProxy } from './upgrade.js';
import { Shadowing, type ShadowOptions } from './mirror.js';
import { bucketOf } from './murmur.js';

/**
 * The options the request path reads: nothing of the control plane's. `tls` is the certificates
 * as read by the main thread (core/tls.ts), or null for plain HTTP.
 */
export type ProxyOptions = Pick<Config, 'split' | 'forwarding' | 'timeouts' | 'limits' | 'log' | 'listen' | 'retry'> & {
  tls: TlsMaterial | null;
  /** rollout.shadow: what a shadow mirrors and how (the share comes with the routing table). */
  shadow: ShadowOptions;
};

export interface ProxyDeps {
  /** Replaced by a reload (configure). */
  config: ProxyOptions;
  table: TableSource;
  pools: readonly [UpstreamPool, UpstreamPool];
  recorder: Recorder;
  /** Written to while access logging is on (config log.access, then `accessLogging`). */
  accessLog: AccessLog;
  logger: Logger;
  /** Wall-clock time for access log lines: the same injected clock as everything else. */
  clock: Clock;
  /** This worker's column of the shared per-client connection counts (none: counted alone). */
  connColumn?: ConnColumn | undefined;
}

/** Prepared request, shared by the HTTP and WebSocket paths. */
export interface Prepared {
  scanned: ScannedRequest;
  pool: UpstreamPool;
  requestId: string;
  ip: string;
  path: string;
  /** Placed by the override: served and counted apart, never judged. */
  forced: boolean;
}

const ABSOLUTE_FORM = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/i;

export class ProxyServer {
  readonly server: Server;
  private readonly deps: ProxyDeps;
  private trusted!: TrustedSet;
  private selector!: Selector;
  private names!: HeaderNames;
  private readonly ctx: ForwardContext;
  private readonly ws: WebSocketProxy;
  /** Every HTTP/1.1 server that serves requests (the first listener, listen.http when it serves). */
  private readonly servers: Server[] = [];
  /** listen.http: the plain second listener (a redirect, or serving), and the TLS port it names. */
  private plain: Server | undefined;
  private tlsPort = 443;
  private conns: ClientConnections | undefined;
  private readonly idPrefix = `${randomBytes(4).toString('hex')}-`;
  private idCounter = 0;
  /** TLS material in force (null: plain HTTP), its SNI contexts, and the HTTP/2 server behind ALPN h2. */
  private tls: TlsMaterial | null;
  private sni: SniContexts | undefined;
  private h2: Http2Server | undefined;
  private readonly h2Sessions = new Set<ServerHttp2Session>();

  private maint: { table: TableMaintenance; allow: TrustedSet } | undefined;
  private inflight = 0;
  private closing = false;
  private drained: (() => void) | undefined;
  private readonly available: (id: PoolId) => boolean;

  constructor(deps: ProxyDeps) {
    this.deps = deps;
    const c = deps.config;
    const now = () => performance.now();
    // timeouts.response shorter than timeouts.idle (the defaults): sluice keeps it for body-less
    // requests (deadlines.ts), undici gets the longer one for both (Endpoint), and a request with
    // a body carries its own, since undici restarts it as the body goes out.
    const t = c.timeouts;
    this.ctx = {
      recorder: deps.recorder,
      accessLog: c.log.access ? deps.accessLog : undefined,
      now,
      clock: deps.clock,
      done: this.exchangeDone,
      idleMs: t.idle,
      deadlines: t.response < t.idle ? new ResponseDeadlines(t.response) : undefined,
      queue: new ResponseDeadlines(t.queue),
      body: { maxBytes: 0, timeoutMs: 0, minRate: 0 },
      bodyBudget: new BodyBudget(c.limits.bufferBodyTotalBytes),
      pace: { maxHeld: 0, minRate: 0, graceMs: 0 },
      responseBudget: new BodyBudget(c.limits.bufferResponseTotalBytes),
      retry: { toStable: false, budget: 0, minRetries: 0, active: 0, inflight: () => this.inflight },
      shadow: new Shadowing(c.shadow, deps.recorder, now),
    };
    this.derive(c);
    const pools = deps.pools;
    this.available = (id) => {
      const p = pools[id];
      return p.allUp || p.hasAvailable(p.clock());
    };
    const http1 = {
      maxHeaderSize: c.limits.maxHeaderBytes,
      headersTimeout: c.timeouts.clientHeaders,
      requestTimeout: 0,
      keepAliveTimeout: c.timeouts.idle,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(c.timeouts.clientHeaders / 4))),
      requireHostHeader: true,
      insecureHTTPParser: false,
      // Upgrade: h2c (curl --http2 on http://) is answered over HTTP/1.1, as nginx does; only
      // WebSocket upgrades are taken (Node >= 24.9; older lines answer the others 400).
      shouldUpgradeCallback: (req: IncomingMessage) => WebSocketProxy.wants(req),
    };
    const tls = c.tls;
    this.tls = tls;
    if (tls === null) this.server = createServer(http1, this.handle);
    else {
      this.sni = new SniContexts(tls);
      this.server = createHttpsServer(
        {
          ...http1,
          ...contextOptions(tls),
          ALPNProtocols: tls.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
          // A client that opens a connection and never completes the handshake is cut as one
          // that never sends its headers.
          handshakeTimeout: c.timeouts.clientHeaders,
          ticketKeys: tls.ticketKeys,
          SNICallback: (name, cb) => cb(null, (this.sni as SniContexts).pick(name)),
        },
        this.handle,
      );
      this.dispatchAlpn(tls);
    }
    this.ws = new WebSocketProxy({
      deadline: c.timeouts.connect + c.timeouts.response,
      recorder: deps.recorder,
      logger: deps.logger,
    });
    this.wire(this.server, tls !== null);
    // listen.http: a second, plain listener that redirects to https, or serves as the first does.
    const second = c.listen.http;
    if (tls !== null && second !== null) {
      if (second.redirect) {
        const r = createServer(
          http1,
          redirectToHttps(() => this.tlsPort),
        );
        r.maxConnections = c.limits.maxConnections;
        r.on('clientError', (_err: Error, socket: Socket) => socket.destroy());
        this.plain = r;
      } else {
        this.plain = createServer(http1, this.handle);
        this.wire(this.plain, false);
      }
    }
  }

  /** The handlers and limits every request-serving HTTP/1.1 server gets (plain, TLS, listen.http). */
  private wire(server: Server, encrypted: boolean): void {
    const c = this.deps.config;
    this.servers.push(server);
    // One more than allowed, so that "too many" is seen (Node silently truncates past the limit).
    server.maxHeadersCount = c.limits.maxHeaderCount + 1;
    // A connection flood must not exhaust descriptors: past this, Node closes new connections.
    server.maxConnections = c.limits.maxConnections;
    // No server-wide socket timeout: it would re-arm a timer on every read and write of every
    // request. Idle keep-alive connections close at keepAliveTimeout; a socket gets timeouts.idle
    // only while sluice waits on its client: a streamed request body arriving (Exchange.begin) or
    // a response the client does not read (Exchange.awaitDrain).
    // Per-connection request order (pipelining) is tracked on the socket the parser reads: the
    // TLS socket once the handshake is done (dispatchAlpn), else the TCP one.
    if (!encrypted) server.on('connection', onConnection);
    const perClient = c.limits.maxConnectionsPerClient;
    if (perClient > 0) this.limitPerClient(server, perClient, encrypted);
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
      onClientError(err, socket, this.deps.recorder),
    );
    server.on('connect', (_req: IncomingMessage, socket: Socket) => rejectSocket(socket, CLIENT_ERRORS.connect));
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (this.closing) return writeRaw(socket, 503, 'shutting_down');
      const p = this.prepare(req);
      if (!('pool' in p)) return rejectSocket(socket, p);
      const m = this.maintenance();
      if (m !== undefined && !m.allow.has(p.ip)) {
        this.deps.recorder.reject('maintenance');
        return writeRaw(socket, 503, 'maintenance');
      }
      if (!this.ws.isWebSocket(req)) return rejectSocket(socket, CLIENT_ERRORS.badUpgrade);
      this.ws.proxy(req, socket, head, p);
    });
  }

  /**
   * limits.maxConnectionsPerClient: count connections by peer address, over every worker
   * (client-conns.ts); one past the limit is answered 503 and closed before any request is read.
   */
  private limitPerClient(server: Server, max: number, encrypted: boolean): void {
    this.conns ??= new ClientConnections(max, this.deps.connColumn);
    const conns = this.conns;
    server.prependListener('connection', (socket: Socket) => {
      const slot = conns.slot(normalizeIp(socket.remoteAddress));
      if (!conns.open(slot)) {
        this.deps.recorder.reject('too_many_connections');
        // Before a TLS handshake there is nobody to answer: the connection is closed.
        if (encrypted) return socket.destroy();
        (socket as Tracked)[kConn] = { last: undefined, waiting: [], broken: true };
        writeRaw(socket, 503, 'too_many_connections');
        return;
      }
      socket.once('close', () => conns.close(slot));
    });
  }

  /** What the request path derives from its options: at start, and again on a reload. */
  private derive(c: ProxyOptions): void {
    this.trusted = new TrustedSet(c.split.trustedProxies);
    const key = parseSplitKey(c.split.key);
    const ov = c.split.override;
    this.selector = {
      key,
      overrideCookie: ov === false ? undefined : ov.cookie,
      overrideFrom: ov === false || ov.allowFrom === null ? undefined : new TrustedSet(ov.allowFrom),
    };
    this.names = headerNames(
      key.kind === 'header' ? key.name : undefined,
      ov === false ? undefined : ov.header,
      c.forwarding.stripFromUntrusted,
    );
    this.deps.accessLog.configure(c.log);
    const t = c.timeouts;
    const ctx = this.ctx;
    // New policy values, read from the next use on.
    ctx.body = { maxBytes: c.limits.bufferBodyBytes, timeoutMs: t.clientBody, minRate: c.limits.minBodyRate };
    ctx.pace = { maxHeld: c.limits.bufferResponseBytes, minRate: c.limits.minResponseRate, graceMs: t.clientBody };
    ctx.bodyBudget.total = c.limits.bufferBodyTotalBytes;
    ctx.responseBudget.total = c.limits.bufferResponseTotalBytes;
    ctx.queue.retime(t.queue);
    ctx.retry.toStable = c.retry.toStable;
    ctx.retry.budget = c.retry.budget;
    ctx.retry.minRetries = c.retry.minRetries;
    ctx.shadow.configure(c.shadow);
  }

  /**
   * A reload: the options that need no new listener take effect for the next request. The
   * listener's own (maxHeaderBytes, per-client counting) and undici's (timeouts.connect,
   * response, idle) need a restart; core/reload.ts refuses changes to them.
   */
  configure(c: ProxyOptions): void {
    this.deps.config = c;
    this.derive(c);
    // New certificates: the next handshake uses them; connections already open keep theirs.
    if (c.tls !== null && this.tls !== null && !sameCertificates(c.tls, this.tls)) {
      this.sni = new SniContexts(c.tls);
      (this.server as unknown as { setSecureContext(o: object): void }).setSecureContext(contextOptions(c.tls));
      this.tls = c.tls;
    }
    if (this.plain !== undefined) this.plain.maxConnections = c.limits.maxConnections;
    for (const server of this.servers) {
      server.headersTimeout = c.timeouts.clientHeaders;
      server.maxHeadersCount = c.limits.maxHeaderCount + 1;
      server.maxConnections = c.limits.maxConnections;
    }
  }

  /**
   * After the TLS handshake: ALPN h2 goes to an HTTP/2 server, everything else to the HTTP/1.1
   * one (the same server as plain HTTP, with its limits, timeouts and request order).
   */
  private dispatchAlpn(tls: TlsMaterial): void {
    const http1 = this.server.listeners('secureConnection') as ((s: TLSSocket) => void)[];
    this.server.removeAllListeners('secureConnection');
    if (tls.http2) this.h2 = this.http2Server(tls);
    const h2server = this.h2;
    this.server.on('secureConnection', (s: TLSSocket) => {
      if (s.alpnProtocol === 'h2' && h2server !== undefined) {
        h2server.emit('connection', s);
        return;
      }
      onConnection(s);
      for (const l of http1) l.call(this.server, s);
    });
  }

  /**
   * HTTP/2 from clients: each stream is one request on the same path as HTTP/1.1 (prepare maps
   * its pseudo-headers). Limits: concurrent streams, the header list, and rapid resets
   * (CVE-2023-44487): a session whose client resets more than maxResetsPerSecond streams in a
   * second is sent GOAWAY and closed.
   */
  private http2Server(tls: TlsMaterial): Http2Server {
    const c = this.deps.config;
    const server = createH2Server(
      {
        settings: { maxConcurrentStreams: tls.maxConcurrentStreams, maxHeaderListSize: c.limits.maxHeaderBytes },
        maxHeaderListPairs: c.limits.maxHeaderCount + 8,
        maxSessionRejectedStreams: 100,
        maxSessionInvalidFrames: 1000,
      },
      (req, res) => this.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse),
    );
    server.on('session', (session: ServerHttp2Session) => {
      this.h2Sessions.add(session);
      session.once('close', () => this.h2Sessions.delete(session));
      if (this.closing) session.close();
      // An HTTP/2 connection with no frames for timeouts.idle is closed (GOAWAY), as HTTP/1.1
      // keep-alive connections are: idle sessions must not hold maxConnections.
      session.setTimeout(this.deps.config.timeouts.idle, () => session.close());
      let second = 0;
      let resets = 0;
      session.on('stream', (stream) => {
        stream.once('aborted', () => {
          // sluice's own resets (a client too slow to read) are not the client's.
          if ((stream as { [kSelfReset]?: boolean })[kSelfReset] === true) return;
          const now = Math.floor(performance.now() / 1000);
          if (now !== second) {
            second = now;
            resets = 0;
          }
          if (++resets === tls.maxResetsPerSecond + 1 && !session.destroyed) {
            this.deps.recorder.reject('rapid_reset');
            this.deps.logger.warn(
              { remote: session.socket?.remoteAddress, resets },
              'HTTP/2 client reset too many streams: connection closed',
            );
            session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM);
            session.destroy();
          }
        });
      });
    });
    return server;
  }

  listen(port: number, host: string, reusePort = false): Promise<number> {
    this.ctx.deadlines?.start();
    this.ctx.queue.start();
    return listenOn(this.server, port, host, reusePort).then((p) => {
      this.tlsPort = p;
      return p;
    });
  }

  /** listen.http's listener (after the first one listens: a redirect names its port). */
  listenSecond(port: number, host: string, reusePort = false): Promise<number | undefined> {
    if (this.plain === undefined) return Promise.resolve(undefined);
    return listenOn(this.plain, port, host, reusePort);
  }

  get inFlight(): number {
    return this.inflight;
  }

  /** Whether exchanges finishing from now on write an access log line (PUT /api/v1/log). */
  get accessLogging(): boolean {
    return this.ctx.accessLog !== undefined;
  }

  set accessLogging(on: boolean) {
    this.ctx.accessLog = on ? this.deps.accessLog : undefined;
  }

  private readonly exchangeDone = (): void => {
    this.inflight--;
    if (this.closing && this.inflight === 0) this.drained?.();
  };

  /**
   * retry.toStable: stable, for a request the table sent to the canary that may be sent twice (a
   * safe method, or an Idempotency-Key); never for one the override placed.
   */
  private fallbackFor(req: IncomingMessage, p: Prepared): UpstreamPool | undefined {
    if (!this.ctx.retry.toStable || p.forced) return undefined;
    const t = this.deps.table.current;
    if (p.pool.id !== t.canary) return undefined;
    // A canary chosen because stable has no endpoint up: nowhere to retry.
    if (!this.available(t.stable)) return undefined;
    const m = req.method;
    if (m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS' && rawHeader(req.rawHeaders, 'idempotency-key') === undefined)
      return undefined;
    return this.deps.pools[t.stable];
  }

  /**
   * A shadow under way: the canary, when this request is one to mirror. Stable's requests whose
   * split key falls in the shadow's buckets (so a user's session is mirrored whole), of a method
   * rollout.shadow.methods allows; never one the override placed.
   */
  private mirrorTo(req: IncomingMessage, p: Prepared): UpstreamPool | undefined {
    const t = this.deps.table.current;
    if (p.forced || p.pool.id !== t.stable || !this.ctx.shadow.methods.has(req.method as string)) return undefined;
    if (bucketOf(routingKey(this.selector, p.scanned, p.ip)) >= t.shadowBuckets) return undefined;
    return this.deps.pools[t.canary];
  }

  /** An access line for an answer sluice made itself, before any upstream (no pool, no endpoint). */
  private logOwn(req: IncomingMessage, status: number, code: string, requestId: string, remote: string): void {
    this.ctx.accessLog?.log(
      this.deps.clock(),
      requestId,
      req.method ?? '-',
      req.url ?? '-',
      req.httpVersion,
      status,
      '-',
      '-',
      0,
      0,
      0,
      remote,
      rawHeader(req.rawHeaders, 'user-agent'),
      rawHeader(req.rawHeaders, 'referer'),
      code,
    );
  }

  /** The table's maintenance mode with its allowFrom compiled (once per table that has one). */
  private maintenance(): { table: TableMaintenance; allow: TrustedSet } | undefined {
    const t = this.deps.table.current.maintenance;
    if (t === null) return undefined;
    if (this.maint?.table !== t) this.maint = { table: t, allow: new TrustedSet(t.allowFrom) };
    return this.maint;
  }

  private nextId(): string {
    if (++this.idCounter > 0x7fffffff) this.idCounter = 1;
    return this.idPrefix + this.idCounter.toString(36);
  }

  private peerOf(req: IncomingMessage): string {
    return normalizeIp(req.socket.remoteAddress);
  }

  /** Validate the request, choose its pool and build its upstream headers; or the error to send. */
  prepare(req: IncomingMessage): Prepared | SluiceError {
    // Node's parser also takes HTTP/0.9 and HTTP/2.0 request lines: only 1.x is spoken there;
    // HTTP/2 comes only as streams of the HTTP/2 server (ALPN h2).
    const stream = (req as unknown as Http2ServerRequest).stream as Http2ServerRequest['stream'] | undefined;
    if (req.httpVersionMajor !== 1 && (req.httpVersionMajor !== 2 || stream === undefined))
      return CLIENT_ERRORS.httpVersion;
    // TRACE echoes the request, cookies and credentials included (cross-site tracing); nginx
    // answers 405. TRACK is IIS's alias (Node's parser already refuses it: this is a second lock).
    const method = req.method;
    if (method === 'TRACE' || method === 'TRACK') return CLIENT_ERRORS.traceMethod;
    let path = req.url as string;
    const peer = this.peerOf(req);
    const peerTrusted = this.trusted.has(peer);
    const scanned = scanRequestHeaders(
      stream === undefined ? req.rawHeaders : h2RawHeaders(req.rawHeaders),
      this.names,
      peerTrusted,
    );
    // HTTP/2 frames its body itself (DATA frames, END_STREAM): a body may come without a length.
    if (stream !== undefined && !stream.endAfterHeaders) scanned.hasBody = true;
    if (scanned.headerCount > this.deps.config.limits.maxHeaderCount) return CLIENT_ERRORS.tooManyHeaders;
    if (scanned.hostCount > 1) return CLIENT_ERRORS.duplicateHost;
    if (scanned.host !== undefined && !validHost(scanned.host)) return CLIENT_ERRORS.badHost;
    if (scanned.contentLengthCount > 1 || (scanned.transferEncoding && scanned.contentLengthCount > 0))
      return CLIENT_ERRORS.framing;
    // Only plain `chunked`: `chunked, chunked`, `gzip, chunked` and friends are how request
    // smuggling hides a second framing from one of the parsers in a chain (RFC 9112 §6.1).
    if (scanned.transferEncoding && (scanned.transferEncodingValue as string).trim().toLowerCase() !== 'chunked')
      return CLIENT_ERRORS.framing;
    if (path.charCodeAt(0) !== 47 /* / */) {
      // Absolute-form is accepted only when it names the same authority as Host (RFC 9112 §3.2.2
      // says Host is then replaced; refusing a disagreement closes cache/route confusion).
      const m = ABSOLUTE_FORM.exec(path);
      if (m === null) return CLIENT_ERRORS.badTarget;
      const scheme = (m[1] as string).toLowerCase();
      if (scheme !== 'http' && scheme !== 'https') return CLIENT_ERRORS.badScheme;
      if (scanned.host === undefined || (m[2] as string).toLowerCase() !== scanned.host.toLowerCase())
        return CLIENT_ERRORS.absoluteForm;
      path = m[3] === '' ? '/' : (m[3] as string);
      if (path.charCodeAt(0) !== 47) return CLIENT_ERRORS.badTarget;
    }
    const ip = clientIp(peer, peerTrusted, scanned.xff, this.trusted);
    const table = this.deps.table.current;
    const choice = choosePool(table, this.selector, scanned, ip, this.available);
    const requestId =
      peerTrusted && scanned.requestId !== undefined && SAFE_REQUEST_ID.test(scanned.requestId)
        ? scanned.requestId
        : this.nextId();
    const out = scanned.out;
    out.push('x-forwarded-for', peerTrusted && scanned.xff !== undefined ? `${scanned.xff}, ${peer}` : peer);
    const proto = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http';
    out.push('x-forwarded-proto', peerTrusted && scanned.xfProto !== undefined ? scanned.xfProto : proto);
    const xfHost = peerTrusted && scanned.xfHost !== undefined ? scanned.xfHost : scanned.host;
    if (xfHost !== undefined) out.push('x-forwarded-host', xfHost);
    out.push('x-request-id', requestId);
    // The address the split key uses. A trusted proxy's own X-Real-IP is overwritten, not believed:
    // its X-Forwarded-For already gave that address, and one answer (the key, the access log and
    // the application agreeing) beats two that may not; nginx's usual realip setup does the same.
    out.push('x-real-ip', ip);
    if (peerTrusted && scanned.forwarded !== undefined) out.push('forwarded', scanned.forwarded);
    return {
      scanned,
      pool: this.deps.pools[(choice & 1) as PoolId],
      requestId,
      ip,
      path,
      forced: (choice & FORCED) !== 0,
    };
  }

  private readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    // HTTP/2 streams share a connection without an order between them.
    const conn = req.httpVersionMajor === 2 ? undefined : (req.socket as Tracked)[kConn];
    // Refused by limitPerClient: its 503 is on the way and the socket closes after it.
    if (conn?.broken) return;
    if (this.closing) {
      res.shouldKeepAlive = false;
      this.deps.recorder.reject('shutting_down');
      sendError(res, 503, 'shutting_down', this.nextId());
      return;
    }
    const p = this.prepare(req);
    if (!('pool' in p)) {
      res.shouldKeepAlive = false;
      this.deps.recorder.reject(p.code);
      if (p.status === 405) res.setHeader('allow', ALLOW);
      const id = this.nextId();
      sendError(res, p.status, p.code, id, p.message);
      this.logOwn(req, p.status, p.code, id, this.peerOf(req));
      return;
    }
    const m = this.maintenance();
    if (m !== undefined && !m.allow.has(p.ip)) {
      // A body is not read: the connection closes after the answer.
      if (p.scanned.hasBody) res.shouldKeepAlive = false;
      this.deps.recorder.reject('maintenance');
      sendMaintenance(res, m.table, p.requestId, req.headers.accept);
      this.logOwn(req, 503, 'maintenance', p.requestId, p.ip);
      return;
    }
    const now = performance.now();
    this.inflight++;
    const s = p.scanned;
    const exchange = new Exchange(
      this.ctx,
      res,
      p.pool,
      {
        path: p.path,
        method: req.method as string,
        headers: s.out,
        req,
        hasBody: s.hasBody,
        declaredLength: s.hasBody && !s.transferEncoding ? Number(req.headers['content-length']) : -1,
        body: null,
        headersTimeout: undefined,
      },
      p.requestId,
      p.ip,
      p.forced,
      now,
      this.fallbackFor(req, p),
    );
    if (this.deps.table.current.shadowBuckets > 0) exchange.mirrorTo = this.mirrorTo(req, p);
    // Fault injection for rehearsals: only the split's own traffic to the fault's pool (what the
    // verdict judges); a request the override placed is someone checking that pool by hand.
    const f = this.deps.table.current.faults;
    if (f !== null && f.pool === p.pool.id && !p.forced) injectFaults(exchange, f);
    exchange.begin();
    if (conn !== undefined) {
      conn.last = exchange;
      if (exchange.waitingTurn) {
        const w = conn.waiting;
        while (w.length > 0 && !(w[0] as Exchange).waitingTurn) w.shift();
        w.push(exchange);
      }
    }
  };

  /** Stop accepting, let in-flight requests finish within `graceMs`, then cut the rest. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const closed = Promise.all(
      [this.server, ...(this.plain === undefined ? [] : [this.plain])].map(
        (srv) => new Promise<void>((r) => srv.close(() => r())),
      ),
    );
    for (const srv of this.servers) srv.closeIdleConnections();
    this.plain?.closeIdleConnections();
    // HTTP/2 clients hear GOAWAY: streams under way finish, no new one starts.
    for (const s of this.h2Sessions) s.close();
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        t.unref();
        this.drained = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.ws.closeAll();
    for (const s of this.h2Sessions) s.destroy();
    for (const srv of this.servers) srv.closeAllConnections();
    this.plain?.closeAllConnections();
    this.ctx.deadlines?.stop();
    this.ctx.queue.stop();
    await closed;
  }
}

/** Draw the delay and the abort apart (Envoy's fault filter: either, both, or neither). */
function injectFaults(x: Exchange, f: TableFaults): void {
  const delay = f.delayPer10k > 0 && Math.random() * 10_000 < f.delayPer10k ? f.delayMs : 0;
  const abort = f.abortPer10k > 0 && Math.random() * 10_000 < f.abortPer10k ? f.abortStatus : 0;
  if (delay !== 0 || abort !== 0) x.inject(delay, abort);
}

/** TRACK (IIS's TRACE): Node's parser refuses the method itself; it gets TRACE's 405 (prepare). */
function isTrack(err: NodeJS.ErrnoException & { rawPacket?: Buffer }): boolean {
  return err.code === 'HPE_INVALID_METHOD' && err.rawPacket?.subarray(0, 6).toString('latin1') === 'TRACK ';
}

/**
 * Per client connection: its newest exchange, and those pipelined behind an earlier response. A
 * queued response never sees its socket close, so the connection tells them (onConnectionClose).
 */
interface Connection {
  last: Exchange | undefined;
  waiting: Exchange[];
  /** The parser failed on this connection: one answer for it is under way. */
  broken: boolean;
}
const kConn = Symbol('sluice.connection');
type Tracked = Socket & { [kConn]?: Connection };

function onConnection(socket: Socket): void {
  if ((socket as Tracked)[kConn] !== undefined) return; // refused by limitPerClient
  (socket as Tracked)[kConn] = { last: undefined, waiting: [], broken: false };
  socket.once('close', onConnectionClose);
}

function onConnectionClose(this: Socket): void {
  const conn = (this as Tracked)[kConn];
  if (conn === undefined) return;
  for (const x of conn.waiting) x.clientClosed();
  conn.waiting.length = 0;
  conn.last = undefined;
}

/**
 * Parser-level errors (malformed requests, oversized headers, header timeout, a broken chunked
 * body): answer and close. When the bad bytes are a request's own body, that request gets the
 * answer (and its upstream request, if a streamed body had started one, is aborted). When they
 * follow complete requests, those are answered first: the 400 goes out after the last of them.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Socket, recorder: Recorder): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const conn = (socket as Tracked)[kConn];
  if (conn?.broken) return;
  if (conn !== undefined) conn.broken = true;
  const [status, code] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'headers_too_large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout']
        : isTrack(err)
          ? [405, CLIENT_ERRORS.traceMethod.code]
          : [400, err.code === undefined ? 'bad_request' : err.code.toLowerCase()];
  const last = conn?.last;
  if (last?.readingRequest) {
    last.cut(status, code, 'malformed request'); // counted as rejected when it finishes
    return;
  }
  recorder.reject(code);
  if (last !== undefined && !last.res.writableFinished && !last.res.destroyed) {
    const answer = (): void => {
      if (socket.writable) writeRaw(socket, status, code);
      else socket.destroy();
    };
    last.res.once('finish', answer);
    last.res.once('close', () => {
      if (!last.res.writableFinished) socket.destroy(); // ended without finishing: nothing to follow
    });
    return;
  }
  writeRaw(socket, status, code);
}

function rejectSocket(socket: Socket, e: SluiceError): void {
  writeRaw(socket, e.status, e.code);
}

/**
 * An HTTP/2 request's headers as HTTP/1.1 ones for the same scan: pseudo-headers dropped,
 * `:authority` as Host (RFC 9113 §8.3.1) unless a Host came too. Connection-specific headers
 * cannot arrive (nghttp2 refuses them).
 */
export function h2RawHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  let authority: string | undefined;
  let host = false;
  let cookie: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.charCodeAt(0) === 58 /* : */) {
      if (k === ':authority') authority = raw[i + 1];
      continue;
    }
    // Browsers split Cookie over HTTP/2; one HTTP/1.1 Cookie line joins them with "; " (§8.2.3).
    if (k === 'cookie') {
      cookie = cookie === undefined ? (raw[i + 1] as string) : `${cookie}; ${raw[i + 1] as string}`;
      continue;
    }
    if (k === 'host') host = true;
    out.push(k, raw[i + 1] as string);
  }
  if (cookie !== undefined) out.push('cookie', cookie);
  if (!host && authority !== undefined) out.push('host', authority);
  return out;
}

/**
 * listen.http with redirect: every request to its https URL, as nginx's `return 301
 * https://$host$request_uri` (308 for methods other than GET and HEAD, so a body is sent again).
 */
function redirectToHttps(tlsPort: () => number) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const host = req.headers.host;
    if (host === undefined || !validHost(host)) {
      res.shouldKeepAlive = false;
      sendError(res, 400, 'bad_host', '-');
      return;
    }
    const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] as string);
    const port = tlsPort();
    const location = `https://${name}${port === 443 ? '' : `:${port}`}${req.url ?? '/'}`;
    const body = `redirecting to ${location}\n`;
    res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 301 : 308, [
      'location',
      location,
      'content-type',
      'text/plain',
      'content-length',
      String(Buffer.byteLength(body)),
    ]);
    res.end(body);
  };
}
