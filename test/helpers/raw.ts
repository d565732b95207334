/** Raw TCP exchanges, for requests no HTTP client would send. */
import { connect, type Socket } from 'node:net';

export interface RawResult {
  /** Everything the server sent before closing (or before the timeout). */
  text: string;
  status: number;
  closed: boolean;
  /** Milliseconds until the server closed the connection (if it did). */
  closedAfterMs: number;
}

/** Send `payload`, read until the server closes or `timeoutMs` passes. */
export function rawRequest(
  port: number,
  payload: string | Buffer | (string | Buffer)[],
  timeoutMs = 3000,
  gapMs = 0,
): Promise<RawResult> {
  return new Promise((resolve) => {
    const start = Date.now();
    const sock: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : 0, closed, closedAfterMs: Date.now() - start });
      sock.destroy();
    };
    const timer = setTimeout(done, timeoutMs);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('close', () => {
      closed = true;
      done();
    });
    sock.on('error', () => {});
    sock.on('connect', async () => {
      const parts = Array.isArray(payload) ? payload : [payload];
      for (const p of parts) {
        if (sock.destroyed) return;
        sock.write(p);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}
