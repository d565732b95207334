/** GET /api/v1/series: the last 15 minutes per interval for both pools, with markers and thresholds. */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startUpstream } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';

const h = harness();

describe('GET /api/v1/series', () => {
  it('returns one point per interval for both pools, markers with reasons, and only what is new after since', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      split: { trustedProxies: ['127.0.0.1/32'] },
      rollout: { stepHold: '10m', analysis: { interval: '1h', window: '1h' } },
    }));
    const get = async (q = '') => {
      const r = await request(`${s.admin}/api/v1/series${q}`);
      return { status: r.statusCode, json: (await r.body.json()) as any };
    };
    await s.controller.setWeights({ blue: 50, green: 50 }, 'test');
    for (let tick = 0; tick < 3; tick++) {
      for (let i = 0; i < 10 * (tick + 1); i++) {
        const r = await request(`${s.base}/p${i}`, { headers: { 'x-forwarded-for': `10.0.${tick}.${i}` } });
        await r.body.dump();
      }
      await s.controller.tick();
    }
    const all = await get();
    expect(all.status).toBe(200);
    const { blue: b, green: g } = all.json.pools;
    expect(b.at.length).toBe(3);
    expect(g.at.length).toBe(3);
    // Each point is its own interval: 10, 20, 30 requests split between the pools.
    expect(b.requests.map((n: number, i: number) => n + g.requests[i])).toEqual([10, 20, 30]);
    expect(b.p95Ms.every((v: number) => v > 0)).toBe(true);
    expect(all.json.thresholds).toEqual({ maxErrorRate: 0.01, maxP95Ms: 500 });
    expect(all.json.intervalMs).toBe(3_600_000);
    expect(all.json.markers.map((m: { event: string }) => m.event)).toEqual(['weights']);
    expect(all.json.markers[0].reason).toMatch(/weights set by test/);
    const later = await get(`?since=${b.at[1]}`);
    expect(later.json.pools.blue.at).toEqual([b.at[2]]);
    expect(later.json.markers).toEqual([]);
    const bad = await get('?since=yesterday');
    expect([bad.status, bad.json.error.field]).toEqual([400, 'since']);
  });
});
