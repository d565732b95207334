/**
 * A fault-injecting TCP proxy for tests: put it between sluice and a real upstream and change its
 * behaviour while traffic flows. Faults apply to the upstream → sluice direction (answers):
 * - latencyMs / jitterMs: delay each chunk of the answer;
 * - bytesPerSecond: throttle the answer;
 * - blackhole: accept connections, forward nothing, answer nothing;
 * - resetAfterBytes: after N answer bytes on a connection, reset both sides (RST);
 * - closeAfterBytes: after N answer bytes, close the connection cleanly (FIN) mid-answer.
 * `kill()` closes the listener and destroys every connection (an endpoint dying); `revive()`
 * listens again on the same port.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Faults {
  latencyMs: number;
  jitterMs: number;
  bytesPerSecond: number;
  blackhole: boolean;
  resetAfterBytes: number;
  closeAfterBytes: number;
}

export interface FaultProxy {
  url: string;
  port: number;
  faults: Faults;
  connections: number;
  /** Connections open right now. */
  readonly open: number;
  kill(): Promise<void>;
  revive(): Promise<void>;
  close(): Promise<void>;
}

const none = (): Faults => ({
  latencyMs: 0,
  jitterMs: 0,
  bytesPerSecond: 0,
  blackhole: false,
  resetAfterBytes: 0,
  closeAfterBytes: 0,
});

export async function startFaultProxy(target: string, faults: Partial<Faults> = {}): Promise<FaultProxy> {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  let server: Server;
  const fp: FaultProxy = {
    url: '',
    port: 0,
    faults: { ...none(), ...faults },
    connections: 0,
    get open() {
      return sockets.size;
    },
    kill: async () => {
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.resetAndDestroy();
      });
    },
    revive: async () => {
      server = make();
      await new Promise<void>((r) => server.listen(fp.port, '127.0.0.1', () => r()));
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (server.listening ? server.close(() => r()) : r()));
    },
  };

  const make = () =>
    createServer((client) => {
      fp.connections++;
      sockets.add(client);
      client.on('close', () => sockets.delete(client));
      client.on('error', () => {});
      if (fp.faults.blackhole) {
        client.resume(); // read and drop
        return;
      }
      const up = connect(Number(t.port), t.hostname);
      sockets.add(up);
      up.on('close', () => {
        sockets.delete(up);
        client.destroy();
      });
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
      client.pipe(up);
      let sent = 0;
      let chain = Promise.resolve();
      up.on('data', (chunk: Buffer) => {
        up.pause();
        chain = chain.then(async () => {
          const f = fp.faults;
          const delay = f.latencyMs + (f.jitterMs > 0 ? Math.random() * f.jitterMs : 0);
          if (delay > 0) await sleep(delay);
          let data = chunk;
          if (f.resetAfterBytes > 0 && sent + data.length >= f.resetAfterBytes) {
            const keep = Math.max(0, f.resetAfterBytes - sent);
            if (keep > 0) client.write(data.subarray(0, keep));
            await sleep(5);
            client.resetAndDestroy();
            up.destroy();
            return;
          }
          if (f.closeAfterBytes > 0 && sent + data.length >= f.closeAfterBytes) {
            const keep = Math.max(0, f.closeAfterBytes - sent);
            client.end(data.subarray(0, keep));
            up.destroy();
            return;
          }
          while (data.length > 0 && !client.destroyed) {
            const piece =
              f.bytesPerSecond > 0 ? data.subarray(0, Math.max(1, Math.floor(f.bytesPerSecond / 20))) : data;
            data = data.subarray(piece.length);
            sent += piece.length;
            if (!client.write(piece)) await new Promise((r) => client.once('drain', r));
            if (f.bytesPerSecond > 0) await sleep(50);
          }
          up.resume();
        });
      });
      up.on('end', () => void chain.then(() => client.end()));
    });

  server = make();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fp.port = (server.address() as { port: number }).port;
  fp.url = `http://127.0.0.1:${fp.port}`;
  return fp;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
