// npm run soak: 10 minutes (--minutes N) of mixed traffic through one sluice process: keep-alive
// requests from many clients, large downloads and uploads, WebSocket sessions, downloads aborted
// mid-body, a weight change every 5 s and a rollout whose canary breaks and is rolled back; among
// them hostile clients: connections that pipeline downloads and never read, and request bodies
// that drip a byte a second. At the end the idle invariant must hold (nothing in flight, no
// upstream connection busy or queued, within timeouts.idle + 1 s of the load stopping) and no
// normal request may have failed for a reason of sluice's (canary 503s by design are apart).
// Samples the sluice process's RSS, V8 heap and open file descriptors; reports their values after
// warm-up and at the end, the slope after warm-up (target: under 1 MiB/min), and descriptors
// against the idle baseline once the load stops (target: no leak). Writes bench/results/soak.json.
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { createHash } from 'node:crypto';
import { writeFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { freePort, rssMiB, startSluiceProcess, stop } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const minutes = argv.includes('--minutes') ? Number(argv[argv.indexOf('--minutes') + 1]) : 10;
const warmupMs = Math.min(60_000, (minutes * 60_000) / 5);
const log = (s) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** timeouts.idle and timeouts.clientBody of the soaked sluice: how long a hostile client may hold on. */
const IDLE_MS = 5000;

/** A connection that pipelines `n` large downloads and never reads; closed by the client after `holdMs` (or by sluice). */
function pipelinedNeverReads(port, n, holdMs) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.pause();
      s.write(`GET /big?size=${32 << 20} HTTP/1.1\r\nHost: a\r\n\r\n`.repeat(n));
    });
    s.on('error', () => {});
    s.on('close', () => resolve());
    setTimeout(() => s.destroy(), holdMs).unref();
  });
}

/** A request body that drips a byte a second: sluice answers 408 at timeouts.clientBody. */
function drippingBody(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () =>
      s.write('POST /drip HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n'),
    );
    let got = '';
    const t = setInterval(() => s.writable && s.write('x'), 1000);
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(t);
      resolve(got.startsWith('HTTP/1.1 408'));
    });
    setTimeout(() => s.destroy(), IDLE_MS * 3).unref();
  });
}

/** Exchanges in flight and upstream connections busy or queued, from the status document. */
async function held(admin) {
  const s = await (await request(`${admin}/api/v1/status`)).body.json();
  const c = Object.values(s.pools).map((p) => p.connections);
  return { inflight: s.inflight, busy: c.reduce((n, x) => n + x.busy, 0), queued: c.reduce((n, x) => n + x.queued, 0) };
}

/** An upstream with small answers, large downloads, uploads, WebSocket echo, and a switchable failure rate. */
async function upstream(name) {
  const st = { failRate: 0 };
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const server = createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/big') {
      const size = Number(u.searchParams.get('size') ?? 1 << 20);
      res.writeHead(200, { 'content-length': String(size) });
      let sent = 0;
      const go = () => {
        while (sent < size) {
          const n = Math.min(chunk.length, size - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', go);
        }
        res.end();
      };
      res.on('close', () => (sent = size));
      return go();
    }
    let bytes = 0;
    req.on('data', (d) => (bytes += d.length));
    req.on('end', () => {
      const fail = Math.random() < st.failRate;
      res.writeHead(fail ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ pool: name, bytes }));
    });
  });
  server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC11B85`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.destroy());
    socket.on('error', () => {});
  });
  server.keepAliveTimeout = 30_000;
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    st,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        server.close(r);
        server.closeAllConnections();
      }),
  };
}

function wsSession(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('error', () => resolve(false));
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n') && !got.includes('ping')) s.write('ping');
      if (got.includes('ping')) s.end();
    });
    s.on('close', () => resolve(got.includes('ping')));
    s.write(
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    setTimeout(() => s.destroy(), 5000).unref();
  });
}

function fds(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** V8 heap used and external memory (Buffers: held bodies and responses live there), MiB. */
async function heapMiB(admin) {
  const text = await (await request(`${admin}/metrics`)).body.text();
  const read = (name) => {
    const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)`, 'm').exec(text);
    return m ? Number(m[1]) / 1048576 : NaN;
  };
  return { heap: read('nodejs_heap_size_used_bytes'), external: read('nodejs_external_memory_bytes') };
}

function slope(points) {
  // least squares, MiB per minute
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const num = points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main() {
  const blue = await upstream('blue');
  const green = await upstream('green');
  const { proc, dir, port, base, admin } = await startSluiceProcess(blue.url, green.url, {
    split: { trustedProxies: ['127.0.0.1/32'], initialCanaryWeight: 20 },
    rollout: { stepHold: '20s' },
    log: { level: 'warn', access: true },
    timeouts: { idle: `${IDLE_MS}ms`, clientBody: `${IDLE_MS}ms` },
  });
  writeFileSync(join(dir, 'soak-started'), new Date().toISOString());
  const idleFds = fds(proc.pid);
  log(`soak: ${minutes} min, sluice pid ${proc.pid}, idle fds ${idleFds}, RSS ${rssMiB(proc.pid).toFixed(1)} MiB`);

  const agent = new Agent({ connections: 32 });
  const counts = {
    ok: 0,
    failed: 0,
    canary5xx: 0,
    big: 0,
    uploads: 0,
    aborted: 0,
    ws: 0,
    wsFailed: 0,
    weightChanges: 0,
    hostilePipelines: 0,
    drips: 0,
    drips408: 0,
  };
  let running = true;
  const started = Date.now();
  const end = started + minutes * 60_000;
  const loops = [];
  // Keep-alive requests from many clients (~300 req/s).
  for (let w = 0; w < 12; w++)
    loops.push(
      (async () => {
        let i = w;
        while (running) {
          i += 12;
          try {
            const r = await request(`${base}/api/${i % 97}`, {
              dispatcher: agent,
              headers: { 'x-forwarded-for': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
            });
            const body = await r.body.text();
            // A 5xx with the upstream's own body is the breaking canary (by design); any other is sluice's.
            if (r.statusCode < 500) counts.ok++;
            else counts[body.includes('"pool"') ? 'canary5xx' : 'failed']++;
          } catch {
            counts.failed++;
          }
          await sleep(35);
        }
      })(),
    );
  // Downloads (1–4 MiB), uploads (1 MiB), aborted downloads, WebSocket sessions.
  loops.push(
    (async () => {
      while (running) {
        try {
          const r = await request(`${base}/big?size=${(1 + Math.floor(Math.random() * 4)) << 20}`, {
            dispatcher: agent,
          });
          await r.body.dump({ limit: Infinity });
          counts.big++;
          const up = await request(`${base}/upload`, {
            method: 'POST',
            dispatcher: agent,
            body: Readable.from([Buffer.alloc(512 * 1024), Buffer.alloc(512 * 1024)]),
          });
          await up.body.dump();
          counts.uploads++;
          const ab = new AbortController();
          const a = await request(`${base}/big?size=${16 << 20}`, { dispatcher: agent, signal: ab.signal });
          let got = 0;
          try {
            for await (const c of a.body) {
              got += c.length;
              if (got > 256 * 1024) ab.abort();
            }
          } catch {
            counts.aborted++;
          }
          counts[(await wsSession(port)) ? 'ws' : 'wsFailed']++;
        } catch {
          counts.failed++;
        }
        await sleep(200);
      }
    })(),
  );
  // Hostile clients: pipelining connections that never read (three at a time, each held 1-8 s or
  // until sluice cuts it at timeouts.idle), and dripping bodies (two at a time).
  for (let w = 0; w < 3; w++)
    loops.push(
      (async () => {
        while (running) {
          await pipelinedNeverReads(port, 5, 1000 + Math.random() * 7000);
          counts.hostilePipelines++;
        }
      })(),
    );
  for (let w = 0; w < 2; w++)
    loops.push(
      (async () => {
        while (running) {
          counts.drips++;
          if (await drippingBody(port)) counts.drips408++;
        }
      })(),
    );
  // Weight changes every 5 s; a rollout with a breaking canary in the middle.
  loops.push(
    (async () => {
      let k = 0;
      let rolloutDone = false;
      while (running) {
        await sleep(5000);
        if (!running) break;
        const phase = (await (await request(`${admin}/api/v1/status`)).body.json()).rollout.phase;
        if (!rolloutDone && Date.now() - started > (minutes * 60_000) / 2 && phase !== 'progressing') {
          rolloutDone = true;
          await (
            await request(`${admin}/api/v1/rollout/start`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: '{}',
            })
          ).body.dump();
          await sleep(8000);
          green.st.failRate = 0.3;
          for (let t = 0; t < 60; t++) {
            const s = await (await request(`${admin}/api/v1/status`)).body.json();
            if (s.rollout.phase === 'rolled_back') {
              log(`rollout: rolled back as expected: ${s.rollout.reason}`);
              break;
            }
            await sleep(500);
          }
          green.st.failRate = 0;
          continue;
        }
        if (phase === 'progressing') continue;
        const weight = [10, 30, 50, 20, 0, 40][k++ % 6];
        await (
          await request(`${admin}/api/v1/weights`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ weights: { green: weight } }),
          })
        ).body.dump();
        counts.weightChanges++;
      }
    })(),
  );

  const samples = [];
  while (Date.now() < end) {
    await sleep(10_000);
    const t = (Date.now() - started) / 60_000;
    const mem = await heapMiB(admin);
    const s = {
      t: +t.toFixed(2),
      rssMiB: rssMiB(proc.pid),
      heapMiB: mem.heap,
      externalMiB: mem.external,
      fds: fds(proc.pid),
    };
    samples.push(s);
    log(
      `t=${s.t.toFixed(1)}m RSS ${s.rssMiB.toFixed(1)} MiB heap ${s.heapMiB.toFixed(1)} MiB external ${s.externalMiB.toFixed(1)} MiB fds ${s.fds} | ok ${counts.ok} failed ${counts.failed} big ${counts.big} up ${counts.uploads} aborted ${counts.aborted} ws ${counts.ws}/${counts.ws + counts.wsFailed} weights ${counts.weightChanges}`,
    );
  }
  running = false;
  await Promise.all(loops);
  await agent.close();
  // The idle invariant: everything hostile clients held is released within timeouts.idle + 1 s.
  const loadStopped = Date.now();
  let h = await held(admin);
  while ((h.inflight || h.busy || h.queued) && Date.now() - loadStopped < IDLE_MS + 1000) {
    await sleep(100);
    h = await held(admin);
  }
  const idleInvariant = { ...h, afterMs: Date.now() - loadStopped, holds: !(h.inflight || h.busy || h.queued) };
  log(`idle invariant: ${JSON.stringify(idleInvariant)}`);
  // Idle keep-alive connections close on their own: clients' at once, the upstream pools' when the
  // upstreams' keep-alive hint (30 s here) runs out. A leak is what stays after that.
  const stoppedAt = Date.now();
  let afterFds = fds(proc.pid);
  const atStop = afterFds;
  while (afterFds > idleFds + 2 && Date.now() - stoppedAt < 45_000) {
    await sleep(1000);
    afterFds = fds(proc.pid);
  }
  const settleS = Math.round((Date.now() - stoppedAt) / 1000);
  const after = { fds: afterFds, rssMiB: rssMiB(proc.pid), heapMiB: (await heapMiB(admin)).heap };
  const warm = samples.filter((s) => s.t * 60_000 >= warmupMs);
  const first = warm[0] ?? samples[0];
  const last = samples.at(-1);
  const result = {
    date: new Date().toISOString(),
    minutes,
    counts,
    idleInvariant,
    afterWarmup: first,
    end: last,
    rssSlopeMiBPerMin: +slope(warm.map((s) => [s.t, s.rssMiB])).toFixed(3),
    heapSlopeMiBPerMin: +slope(warm.map((s) => [s.t, s.heapMiB])).toFixed(3),
    externalSlopeMiBPerMin: +slope(warm.map((s) => [s.t, s.externalMiB])).toFixed(3),
    fds: {
      idleBaseline: idleFds,
      duringLoadMax: Math.max(...samples.map((s) => s.fds)),
      atStop,
      afterLoad: after.fds,
      settleSeconds: settleS,
    },
    samples,
  };
  await stop(proc);
  await blue.close();
  await green.close();
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'soak.json'), JSON.stringify(result, null, 2));
  const md = `Soak ${result.date.slice(0, 10)}, ${minutes} min: ${counts.ok} requests ok, ${counts.failed} failed (sluice's), ${counts.canary5xx} canary 5xx by design, ${counts.hostilePipelines} never-reading pipelined connections, ${counts.drips408}/${counts.drips} dripping bodies answered 408, idle invariant ${idleInvariant.holds ? `held ${idleInvariant.afterMs} ms after the load stopped` : `FAILED: ${JSON.stringify(h)}`}, ${counts.big} downloads, ${counts.uploads} uploads, ${counts.aborted} aborted downloads, ${counts.ws} WebSocket sessions, ${counts.weightChanges} weight changes, one rollback.\n\n| | after warm-up | end | slope after warm-up |\n| --- | --- | --- | --- |\n| RSS | ${first.rssMiB.toFixed(1)} MiB | ${last.rssMiB.toFixed(1)} MiB | ${result.rssSlopeMiBPerMin} MiB/min |\n| V8 heap used | ${first.heapMiB.toFixed(1)} MiB | ${last.heapMiB.toFixed(1)} MiB | ${result.heapSlopeMiBPerMin} MiB/min |\n| external (Buffers) | ${first.externalMiB.toFixed(1)} MiB | ${last.externalMiB.toFixed(1)} MiB | ${result.externalSlopeMiBPerMin} MiB/min |\n| open file descriptors | idle ${idleFds} | ${after.fds} ${settleS} s after the load stopped (${atStop} at once, pooled keep-alive connections; max under load ${result.fds.duringLoadMax}) | |\n`;
  writeFileSync(join(here, 'results', 'soak.md'), md);
  process.stdout.write(md);
  if (
    !(Math.abs(result.rssSlopeMiBPerMin) < 1 && after.fds <= idleFds + 2 && idleInvariant.holds && counts.failed === 0)
  )
    process.exitCode = 1;
}

main().catch((e) => {
  log(e.stack);
  process.exit(1);
});
