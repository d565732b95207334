/**
 * A recording upstream for tests: a real node:http server on a listen(0) port that remembers every
 * request (method, url, raw headers, body bytes) and counts raw TCP bytes and connections, so a
 * test can assert that nothing reached it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: IncomingMessage['headers'];
  bodyBytes: number;
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export interface TestUpstream {
  url: string;
  port: number;
  seen: Seen[];
  connections: number;
  bytesReceived: number;
  sockets: Set<Socket>;
  behaviour: Behaviour;
  server: Server;
  close(): Promise<void>;
}

export const jsonOk =
  (name: string): Behaviour =>
  (req, res) => {
    const body = JSON.stringify({ pool: name, url: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

export async function startUpstream(
  name: string,
  behaviour: Behaviour = jsonOk(name),
  opts: { collectBody?: boolean } = {},
): Promise<TestUpstream> {
  const up: TestUpstream = {
    url: '',
    port: 0,
    seen: [],
    connections: 0,
    bytesReceived: 0,
    sockets: new Set(),
    behaviour,
    server: undefined as unknown as Server,
    close: async () => {
      for (const s of up.sockets) s.destroy();
      await new Promise<void>((r) => up.server.close(() => r()));
    },
  };
  up.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      if (opts.collectBody !== false && bytes < 1 << 20) chunks.push(c);
    });
    req.on('end', () => {
      up.seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: req.rawHeaders,
        headers: req.headers,
        bodyBytes: bytes,
      });
      up.behaviour(req, res, Buffer.concat(chunks));
    });
  });
  up.server.keepAliveTimeout = 30_000;
  up.server.on('connection', (s: Socket) => {
    up.connections++;
    up.sockets.add(s);
    s.on('data', (d: Buffer) => (up.bytesReceived += d.length));
    s.on('close', () => up.sockets.delete(s));
  });
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', () => r()));
  up.port = (up.server.address() as { port: number }).port;
  up.url = `http://127.0.0.1:${up.port}`;
  return up;
}

/** A port with nothing listening (bound then released). */
export async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const MIB = Buffer.alloc(1024 * 1024, 120);

/** Answer `total` bytes (whole MiBs) with backpressure, stopping if the client goes away. */
export function sendBytes(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-length': String(total) });
  let sent = 0;
  const more = (): void => {
    while (sent < total) {
      sent += MIB.length;
      if (!res.write(MIB)) return void res.once('drain', more);
    }
    res.end();
  };
  res.on('close', () => (sent = total));
  more();
}
