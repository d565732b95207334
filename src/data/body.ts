/**
 * Request bodies, read before an upstream connection is taken (nginx `proxy_request_buffering
 * on`): a client that drips its body holds a buffer, never an upstream connection. A body up to
 * `limits.bufferBodyBytes` is read whole within `timeouts.clientBody`; a larger one (declared, or
 * chunked past the limit) streams, and must keep up `limits.minBodyRate` on average.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

export interface BodyPolicy {
  /** Bodies up to this are read whole; 0 streams every body. */
  maxBytes: number;
  /** Time a buffered body has to arrive whole. */
  timeoutMs: number;
  /** Average bytes per second a streamed body must keep up after its first timeoutMs. */
  minRate: number;
}

/**
 * Memory that buffered bodies hold together: one for request bodies (limits.bufferBodyTotalBytes)
 * and one for responses held for slow clients (limits.bufferResponseTotalBytes), per listener.
 */
export class BodyBudget {
  held = 0;
  /** Settable: a reload changes the budget for what is buffered from then on. */
  constructor(public total: number) {}
}

/** The body to send upstream: whole, or a stream (the request, or what was read then the rest). */
export type Body = Buffer | Readable;

/** How reading ended: a body to send, or why there is none. */
export type BodyResult = { body: Body; held: number } | { failed: 'timeout' | 'closed' };

/**
 * Read `req`'s body. `declared` is its Content-Length, or -1 when chunked. Calls `done` once;
 * the returned function cancels (the client went away), after which `done` is not called.
 * `held` is what the body holds of the budget: give it back when the exchange ends.
 */
export function readBody(
  req: IncomingMessage,
  declared: number,
  policy: BodyPolicy,
  budget: BodyBudget,
  done: (r: BodyResult) => void,
): () => void {
  const room = budget.total - budget.held;
  const limit = Math.min(policy.maxBytes, room);
  if (limit <= 0 || declared > limit) {
    done({ body: req, held: 0 });
    return noop;
  }
  const chunks: Buffer[] = [];
  let bytes = 0;
  let over = false;
  let settled = false;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    req.removeListener('data', onData);
    req.removeListener('end', onEnd);
    req.removeListener('close', onClosed);
    req.removeListener('error', onClosed);
    return true;
  };
  const finish = (r: BodyResult): void => {
    if (!settle()) return;
    if ('failed' in r) budget.held -= bytes;
    done(r);
  };
  const onData = (c: Buffer): void => {
    bytes += c.length;
    budget.held += c.length;
    chunks.push(c);
    if (bytes > limit && !over) {
      // A chunked body larger than the buffer: what was read goes first, the rest streams.
      over = true;
      req.pause();
      finish({ body: prefixThenRest(chunks, req), held: bytes });
    }
  };
  const onEnd = (): void =>
    finish({ body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, bytes), held: bytes });
  const onClosed = (): void => finish({ failed: 'closed' });
  const timer = setTimeout(() => finish({ failed: 'timeout' }), policy.timeoutMs);
  req.on('data', onData);
  req.on('end', onEnd);
  // 'close' before 'end': the client went away (the listeners are gone once the body ended).
  req.on('close', onClosed);
  req.on('error', onClosed);
  return () => {
    if (settle()) budget.held -= bytes;
  };
}

function prefixThenRest(prefix: Buffer[], req: IncomingMessage): Readable {
  return Readable.from(
    (async function* () {
      for (const c of prefix) yield c;
      for await (const c of req) yield c as Buffer;
    })(),
    { objectMode: false },
  );
}

/**
 * Watch a streamed body: after `policy.timeoutMs`, a body whose bytes so far fall below
 * `minRate` per second on average is too slow (`onTooSlow`). Checked once a second on the
 * socket's byte counter; the returned function stops the watch.
 */
export function watchRate(
  req: IncomingMessage,
  policy: BodyPolicy,
  now: () => number,
  onTooSlow: () => void,
): () => void {
  if (policy.minRate <= 0) return noop;
  const socket = req.socket;
  const start = now();
  const startBytes = socket.bytesRead;
  const timer = setInterval(() => {
    if (req.complete) return stop();
    const elapsed = now() - start;
    if (elapsed < policy.timeoutMs) return;
    if (socket.bytesRead - startBytes < (policy.minRate * elapsed) / 1000) {
      stop();
      onTooSlow();
    }
  }, 1000);
  timer.unref();
  const stop = (): void => clearInterval(timer);
  return stop;
}

function noop(): void {}
