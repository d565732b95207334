/**
 * A demo upstream: answers JSON naming its color, with `/health`. Used by `npm run demo`, the
 * tests and the benches. Its failure rate and latency can be changed while it runs.
 */
import { createServer, type Server } from 'node:http';

export interface DemoUpstream {
  server: Server;
  port: number;
  url: string;
  /** Release label in every answer. */
  version: string;
  /** Share of requests answered 500 (0..1). */
  failRate: number;
  /** Added latency in ms (and jitter up to this much again). */
  delayMs: number;
  jitterMs: number;
  requests: number;
  close(): Promise<void>;
}

export async function startDemoUpstream(color: string, port = 0, host = '127.0.0.1'): Promise<DemoUpstream> {
  const up: DemoUpstream = {
    server: undefined as unknown as Server,
    port: 0,
    url: '',
    version: 'v1',
    failRate: 0,
    delayMs: 0,
    jitterMs: 0,
    requests: 0,
    close: () =>
      new Promise<void>((r) => {
        up.server.close(() => r());
        up.server.closeAllConnections();
      }),
  };
  up.server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"status":"ok","color":"${color}","version":"${up.version}"}`);
      return;
    }
    up.requests++;
    const answer = () => {
      const fail = up.failRate > 0 && Math.random() < up.failRate;
      const body = JSON.stringify({ color, version: up.version, path: req.url, ok: !fail });
      res.writeHead(fail ? 500 : 200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    };
    req.resume();
    const d = up.delayMs + (up.jitterMs > 0 ? Math.random() * up.jitterMs : 0);
    if (d > 0) setTimeout(answer, d);
    else answer();
  });
  up.server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => up.server.listen(port, host, () => r()));
  const a = up.server.address();
  up.port = typeof a === 'object' && a !== null ? a.port : port;
  up.url = `http://${host}:${up.port}`;
  return up;
}
