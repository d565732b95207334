/** Weight changes under load lose nothing: thousands of keep-alive requests, weights changing every 100 ms. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestSluice, type TestSluice } from '../helpers/sluice.js';

let blue: TestUpstream;
let green: TestUpstream;
let sluice: TestSluice;
beforeAll(async () => {
  // A little latency so many requests are in flight when the table is swapped.
  const slowish = (name: string) => (_req: unknown, res: import('node:http').ServerResponse) =>
    setTimeout(() => res.end(name), Math.random() * 3);
  blue = await startUpstream('blue', slowish('blue'));
  green = await startUpstream('green', slowish('green'));
  sluice = await startTestSluice(blue.url, green.url, { split: { trustedProxies: ['127.0.0.1/32'] } });
});
afterAll(async () => {
  await sluice.stop();
  await blue.close();
  await green.close();
});

describe('weight changes under load', () => {
  it('fails zero of 4,000 keep-alive requests while weights change every 100 ms through the admin API', async () => {
    const agent = new Agent({ connections: 32, pipelining: 1 });
    const total = 4000;
    let failed = 0;
    let done = 0;
    const pools = { blue: 0, green: 0 };
    let changes = 0;
    let stop = false;
    const changer = (async () => {
      const ws = [0, 10, 25, 50, 75, 100, 33.33, 5];
      while (!stop) {
        const green = ws[changes++ % ws.length] as number;
        const r = await request(`${sluice.admin}/api/v1/weights`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ weights: { green } }),
        });
        expect(r.statusCode).toBe(200);
        await r.body.text();
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        try {
          const r = await request(`${sluice.base}/item/${i}`, {
            dispatcher: agent,
            headers: { 'x-forwarded-for': `10.1.${(i >> 8) & 255}.${i & 255}` },
          });
          const body = await r.body.text();
          if (r.statusCode !== 200 || (body !== 'blue' && body !== 'green')) failed++;
          else pools[body]++;
        } catch {
          failed++;
        }
        done++;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    stop = true;
    await changer;
    await agent.close();
    expect(done).toBe(total);
    expect(failed).toBe(0);
    expect(changes).toBeGreaterThan(3);
    // Both pools served: the weights really changed during the run.
    expect(pools.blue).toBeGreaterThan(0);
    expect(pools.green).toBeGreaterThan(0);
  }, 60_000);
});
