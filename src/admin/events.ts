/**
 * Server-Sent Events for GET /api/v1/events: a `status` event on every change and on every
 * refresh interval (so charts move), a comment every `keepAliveMs` so idle proxies keep the
 * connection, and a cap on clients. A client that stops reading is dropped, not buffered.
 */
import type { ServerResponse } from 'node:http';

const MAX_BUFFERED = 1 << 20;

export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private refresh: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly status: () => unknown,
    private readonly opts: { refreshMs: number; keepAliveMs: number; maxClients: number },
  ) {}

  get size(): number {
    return this.clients.size;
  }

  start(): void {
    this.refresh = setInterval(() => this.broadcast(), this.opts.refreshMs);
    this.refresh.unref();
    this.keepAlive = setInterval(() => this.send(': keep-alive\n\n'), this.opts.keepAliveMs);
    this.keepAlive.unref();
  }

  /** Take over `res` as an event stream; false when there are too many clients. */
  subscribe(res: ServerResponse): boolean {
    if (this.clients.size >= this.opts.maxClients) return false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    // Keep the admin server's idle timeouts away from a stream that is meant to stay open.
    res.socket?.setTimeout(0);
    res.write(`retry: 2000\nevent: status\ndata: ${JSON.stringify(this.status())}\n\n`);
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    return true;
  }

  /** Send the current status to every client. */
  broadcast(): void {
    if (this.clients.size === 0) return;
    this.send(`event: status\ndata: ${JSON.stringify(this.status())}\n\n`);
  }

  private send(text: string): void {
    for (const res of this.clients) {
      if (res.writableLength > MAX_BUFFERED) {
        res.destroy();
        continue;
      }
      res.write(text);
    }
  }

  close(): void {
    if (this.refresh !== undefined) clearInterval(this.refresh);
    if (this.keepAlive !== undefined) clearInterval(this.keepAlive);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
