/** A minimal WebSocket upstream (RFC 6455 handshake, then echo of raw bytes) and a raw client. */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';

export const acceptKey = (key: string) =>
  createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC11B85`).digest('base64');

export interface WsUpstream {
  url: string;
  server: Server;
  upgrades: IncomingMessage[];
  sockets: Set<Socket>;
  close(): Promise<void>;
}

/** `mode: 'echo'` answers 101 and echoes; `'silent'` accepts the upgrade request and never answers. */
export async function startWsUpstream(name: string, mode: 'echo' | 'silent' = 'echo'): Promise<WsUpstream> {
  const up: WsUpstream = {
    url: '',
    server: createServer((_q, s) => s.end(name)),
    upgrades: [],
    sockets: new Set(),
    close: async () => {},
  };
  up.server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    up.upgrades.push(req);
    up.sockets.add(socket);
    socket.on('close', () => up.sockets.delete(socket));
    // Upgraded sockets allow half-open: close our side when the peer closes its own, as WebSocket
    // servers do. A proxy that never closes its side leaves this socket open.
    socket.on('end', () => socket.destroy());
    if (mode === 'silent') return;
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(String(req.headers['sec-websocket-key']))}\r\nX-Pool: ${name}\r\n\r\n`,
    );
    socket.on('data', (d) => socket.write(d));
  });
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', () => r()));
  up.url = `http://127.0.0.1:${(up.server.address() as { port: number }).port}`;
  up.close = async () => {
    for (const s of up.sockets) s.destroy();
    await new Promise<void>((r) => up.server.close(() => r()));
  };
  return up;
}

/** Open a WebSocket through `port`; resolves with the socket and the response head. */
export function wsConnect(
  port: number,
  extraHeaders = '',
): Promise<{ socket: Socket; head: string; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - start)));
    let buf = '';
    socket.on('error', () => {});
    socket.on('data', function onData(d) {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.removeListener('data', onData);
        resolve({ socket, head: buf.slice(0, end), closed });
      }
    });
    socket.once('close', () => resolve({ socket, head: buf, closed }));
    socket.once('connect', () =>
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extraHeaders}\r\n`,
      ),
    );
    setTimeout(() => reject(new Error('ws connect timeout')), 10_000).unref();
  });
}
