/**
 * WebSocket upgrades, proxied through http-proxy-3 on the same routing decision as HTTP requests.
 * A deadline bounds the wait for the upstream's 101 so a silent upstream cannot hold sockets.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import type { Logger } from 'pino';
import { classifyUpstreamError } from '../core/errors.js';
import type { Recorder } from '../stats/recorder.js';
import type { Prepared } from './proxy.js';
import { writeRaw } from './answers.js';

interface Pending {
  /** The deadline, running from the moment the upgrade request arrived. */
  timer: NodeJS.Timeout;
  start: number;
  prepared: Prepared;
  done: boolean;
  /** The request to the upstream, once http-proxy-3 has made it (destroyed at the deadline). */
  proxyReq?: ClientRequest;
}

const kPending = Symbol('sluice.ws');

export class WebSocketProxy {
  private readonly backend = createProxyServer({ ws: true, xfwd: false, prependPath: false });
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: { deadline: number; recorder: Recorder; logger: Logger }) {
    this.backend.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => {
      const pending = (req as unknown as Record<symbol, Pending | undefined>)[kPending];
      if (pending === undefined) return;
      proxyReq.once('upgrade', () => this.settle(pending, 101, undefined));
      proxyReq.once('response', (r: IncomingMessage) => this.settle(pending, r.statusCode ?? 502, undefined));
      pending.proxyReq = proxyReq;
    });
    // Errors without a per-call callback must not crash the process.
    this.backend.on('error', () => {});
  }

  /** A WebSocket handshake: the one upgrade sluice takes (the rest are answered as plain requests). */
  static wants(req: IncomingMessage): boolean {
    const up = req.headers.upgrade;
    return req.method === 'GET' && typeof up === 'string' && up.toLowerCase() === 'websocket';
  }

  isWebSocket(req: IncomingMessage): boolean {
    return WebSocketProxy.wants(req);
  }

  proxy(req: IncomingMessage, socket: Socket, head: Buffer, p: Prepared): void {
    const endpoint = p.pool.pick(p.pool.clock());
    const start = performance.now();
    const pending: Pending = {
      start,
      prepared: p,
      done: false,
      timer: setTimeout(() => {
        if (pending.done) return;
        this.settle(pending, 504, 'timeout');
        pending.proxyReq?.destroy();
        // writeRaw ends the socket once the 504 is flushed; destroying now could drop it.
        writeRaw(socket, 504, 'upstream_timeout');
      }, this.opts.deadline),
    };
    (req as unknown as Record<symbol, Pending>)[kPending] = pending;
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      clearTimeout(pending.timer);
    });
    req.headers = upgradeHeaders(p.scanned.out, req);
    req.url = p.path;
    this.backend.ws(req, socket, head, { target: endpoint.url }, (err: Error) => {
      const f = classifyUpstreamError(err);
      if (!pending.done) {
        this.settle(pending, f.status, f.kind);
        if (f.kind === 'connect') p.pool.connectFailed(endpoint);
        if (!socket.destroyed) writeRaw(socket, f.status, f.code);
      }
    });
  }

  private settle(pending: Pending, status: number, kind: Parameters<Recorder['record']>[3]): void {
    if (pending.done) return;
    pending.done = true;
    clearTimeout(pending.timer);
    this.opts.recorder.record(pending.prepared.pool.id, status, (performance.now() - pending.start) * 1000, kind);
  }

  /** At shutdown: close every proxied WebSocket. */
  closeAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

/** The scanned outgoing headers as the object http-proxy-3 sends, plus the upgrade itself. */
function upgradeHeaders(out: readonly string[], req: IncomingMessage): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i < out.length; i += 2) {
    const k = (out[i] as string).toLowerCase();
    const v = out[i + 1] as string;
    const prev = h[k];
    h[k] = prev === undefined ? v : `${prev}${k === 'cookie' ? '; ' : ', '}${v}`;
  }
  h.connection = 'Upgrade';
  h.upgrade = String(req.headers.upgrade);
  return h;
}
