/**
 * Per-test resources closed in afterEach: upstreams, servers and one sluice. Call `harness()` at
 * the top of a test file; `h.track(x)` registers anything with a close().
 */
import { afterEach } from 'vitest';
import type { ServerResponse } from 'node:http';
import type { TestSluice } from './sluice.js';

interface Closeable {
  close(): unknown;
}

export interface Harness {
  sluice: TestSluice | undefined;
  track<T extends Closeable>(x: T): T;
}

export function harness(): Harness {
  const tracked: Closeable[] = [];
  const h: Harness = {
    sluice: undefined,
    track(x) {
      tracked.push(x);
      return x;
    },
  };
  afterEach(async () => {
    await h.sluice?.stop();
    h.sluice = undefined;
    await Promise.all(tracked.splice(0).map((x) => x.close()));
  });
  return h;
}

/** Write `total` bytes of `chunk` to `res` honouring backpressure, then end; `onWrite` sees progress. */
export function pump(
  res: ServerResponse,
  chunk: Buffer,
  total: number,
  onWrite: (sent: number) => void = () => {},
): void {
  let sent = 0;
  const go = () => {
    while (sent < total) {
      sent += chunk.length;
      onWrite(sent);
      if (!res.write(chunk)) return void res.once('drain', go);
    }
    res.end();
  };
  go();
}
