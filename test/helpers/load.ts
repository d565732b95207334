/**
 * Steady load from many distinct clients (X-Forwarded-For keys; sluice must trust 127.0.0.1) until
 * stopped: counts answers per pool and status, and when green last answered.
 */
import { Agent, request } from 'undici';

export interface Load {
  stop(): Promise<void>;
  counts: { blue: number; green: number; errors5xx: number; failed: number };
  /** Date.now() of the last response served by green. */
  lastGreenAt: number;
  /** Responses with status >= 500, and when. */
  errorTimes: number[];
}

export function startLoad(base: string, concurrency = 8, opts: { pauseMs?: number; clients?: number } = {}): Load {
  const agent = new Agent({ connections: concurrency });
  let running = true;
  let n = 0;
  const clients = opts.clients ?? 5000;
  const load: Load = {
    counts: { blue: 0, green: 0, errors5xx: 0, failed: 0 },
    lastGreenAt: 0,
    errorTimes: [],
    stop: async () => {
      running = false;
      await Promise.all(workers);
      await agent.close();
    },
  };
  const worker = async () => {
    while (running) {
      const i = n++ % clients;
      try {
        const r = await request(`${base}/load`, {
          dispatcher: agent,
          headers: { 'x-forwarded-for': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
        });
        await r.body.dump();
        const pool = r.headers['x-sluice-pool'];
        if (pool === 'green') {
          load.counts.green++;
          load.lastGreenAt = Date.now();
        } else if (pool === 'blue') load.counts.blue++;
        if (r.statusCode >= 500) {
          load.counts.errors5xx++;
          load.errorTimes.push(Date.now());
        }
      } catch {
        load.counts.failed++;
      }
      if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return load;
}

/** Poll `cond` every 20 ms until true or `timeoutMs` passes; returns whether it became true. */
export async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}
