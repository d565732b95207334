/** WebSocket upgrades: same routing decision as HTTP, forwarding headers, and an upgrade deadline. */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startTestSluice } from '../helpers/sluice.js';
import { startUpstream } from '../helpers/upstream.js';
import { harness } from '../helpers/harness.js';
import { acceptKey, startWsUpstream, wsConnect } from '../helpers/ws.js';

const h = harness();
const pair = async (blueMode: 'echo' | 'silent' = 'echo') =>
  [h.track(await startWsUpstream('blue', blueMode)), h.track(await startWsUpstream('green'))] as const;

describe('websocket', () => {
  it('proxies the upgrade and the bytes both ways, to the pool the split chooses', async () => {
    const ups = await pair();
    const sluice = (h.sluice = await startTestSluice(ups[0]!.url, ups[1]!.url, {
      split: { initialCanaryWeight: 100 },
    }));
    const { socket, head } = await wsConnect(sluice.proxyPort);
    expect(head).toMatch(/^HTTP\/1\.1 101/);
    expect(head.toLowerCase()).toContain(
      `sec-websocket-accept: ${acceptKey('dGhlIHNhbXBsZSBub25jZQ==')}`.toLowerCase(),
    );
    expect(head.toLowerCase()).toContain('x-pool: green');
    const echoed = new Promise<string>((r) => socket.once('data', (d) => r(d.toString())));
    socket.write('ping-123');
    expect(await echoed).toBe('ping-123');
    const up = ups[1]!.upgrades[0]!;
    expect(up.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(up.headers['x-request-id']).toBeDefined();
    expect(up.headers['sec-websocket-key']).toBe('dGhlIHNhbXBsZSBub25jZQ==');
    expect(ups[0]!.upgrades.length).toBe(0);
    socket.destroy();
  });

  it('honours the override header on upgrades', async () => {
    const ups = await pair();
    const sluice = (h.sluice = await startTestSluice(ups[0]!.url, ups[1]!.url));
    const { socket, head } = await wsConnect(sluice.proxyPort, 'X-Sluice-Pool: green\r\n');
    expect(head.toLowerCase()).toContain('x-pool: green');
    socket.destroy();
  });

  it('releases both sockets at the deadline when the upstream never answers the upgrade', async () => {
    const ups = await pair('silent');
    const sluice = (h.sluice = await startTestSluice(ups[0]!.url, ups[1]!.url, {
      timeouts: { connect: '200ms', response: '300ms' },
    }));
    const { head, closed } = await wsConnect(sluice.proxyPort);
    expect(head).toMatch(/^HTTP\/1\.1 504/);
    expect(await closed).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 100));
    expect(ups[0]!.sockets.size).toBe(0);
    expect(sluice.recorder.errorCount(0, 'timeout')).toBe(1);
  });

  it('accepts no new upgrade while shutting down, and still finishes the request in flight', async () => {
    const ups = await pair();
    let arrived!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    const slow = h.track(
      await startUpstream('blue', (q, res) => {
        if (q.url === '/slow') arrived();
        setTimeout(() => res.end('late'), 800);
      }),
    );
    const sluice = (h.sluice = await startTestSluice([slow.url], ups[1]!.url));
    // A request in flight keeps the shutdown waiting (up to shutdownGrace). Wait until the
    // upstream has it: a connection whose request has not been read yet is idle, and shutdown
    // closes idle connections.
    const inflight = request(`${sluice.base}/slow`).then((r) => r.body.text());
    await reached;
    const stopping = sluice.stop();
    // The listener is closed: the connection is refused (an upgrade racing on a kept-alive
    // connection would get 503), never switched to a WebSocket.
    const { head } = await wsConnect(sluice.proxyPort).catch(() => ({ head: '' }));
    expect(head === '' || /^HTTP\/1\.1 503/.test(head)).toBe(true);
    expect(ups[0]!.upgrades.length + ups[1]!.upgrades.length).toBe(0);
    expect(await inflight).toBe('late');
    await stopping;
    h.sluice = undefined;
  });
});
