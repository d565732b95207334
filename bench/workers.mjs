// npm run bench:workers (and the last section of npm run bench): sluice with workers: 1 and 2,
// nginx with worker_processes 1 and 2, and the bare undici proxy with one and two threads, in one
// run, interleaved rounds. Unlike the main bench nothing is pinned to a core here: the proxy, wrk
// and the origin share both cores, and a 2-worker row reports what the load generator leaves it.
// Also measured: the cost of merging one worker's interval snapshot on the main thread (encode in
// the worker, decode + add in the main thread), and how long a table takes to reach every worker
// (the status document's table.appliedInMs after PUT /api/v1/weights).
// Flags: --quick, --rounds N, --seconds S, --connections C. Writes bench/results/workers-latest.{json,md}.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  childPids,
  cpuSeconds,
  freePort,
  load,
  loadOpenLoop,
  median,
  nginxBin,
  nginxConf,
  nodeFlags,
  openLoopBin,
  startOrigin,
  startPinned,
  stop,
  waitPort,
} from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (n, d) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
const quick = argv.includes('--quick');
const rounds = flag('--rounds', quick ? 1 : 3);
const seconds = flag('--seconds', quick ? 2 : 6);
const connections = flag('--connections', 64);
const warm = quick ? 1 : 2;
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-workers-'));
const log = (s) => process.stderr.write(`${s}\n`);
// Both cores, explicitly: `npm run bench` pins itself to core 1 and its children would inherit it.
const ALL = '0,1';
// Single-threaded GC only makes sense pinned to one core (lib.mjs adds it when pinning).
const flags = nodeFlags.filter((f) => f !== '--single-threaded-gc');

async function startSluice(upstream, workers) {
  const port = await freePort();
  const admin = await freePort();
  const file = join(dir, `sluice-${workers}-${port}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      admin: { host: '127.0.0.1', port: admin },
      pools: { blue: { endpoints: [upstream] }, green: { endpoints: [upstream] } },
      split: { initialCanaryWeight: 10 },
      stateFile: join(dir, `state-${port}.json`),
      audit: { file: null },
      log: { level: 'warn', access: false },
      workers,
    }),
  );
  const proc = startPinned(ALL, process.execPath, [...flags, join(here, '..', 'dist', 'cli.js'), '--config', file]);
  await waitPort(port);
  await waitPort(admin);
  return { port, proc, admin: `http://127.0.0.1:${admin}` };
}

/** How long a table takes to reach every worker: `n` weight changes, appliedInMs after each. */
async function broadcastTimes(admin, n) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const green = i % 2 === 0 ? 20 : 10;
    const r = await fetch(`${admin}/api/v1/weights`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ weights: { blue: 100 - green, green } }),
    });
    const doc = await r.json();
    times.push(doc.table.appliedInMs);
  }
  return times;
}

/** Main-thread cost of one worker's interval: decode its encoded histograms and add them. */
async function mergeCost() {
  const { Recorder, newHistogram } = await import('../dist/stats/recorder.js');
  const { encodeInterval, intervalJSON, mergeIntervals } = await import('../dist/stats/snapshot.js');
  const rec = new Recorder();
  // One second of one worker at 10k req/s: latencies 0.2-50 ms, 1 % errors, 90/10 split.
  let seed = 7;
  const r = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 10_000; i++)
    rec.record(r() < 0.9 ? 0 : 1, r() < 0.01 ? 503 : 200, 200 + r() ** 3 * 50_000, undefined);
  const encoded = encodeInterval(rec.takeInterval());
  const bytes = JSON.stringify(intervalJSON(encoded)).length;
  const pairs = encoded.pools.reduce((n, p) => n + p.buckets.length / 2, 0);
  const into = [newHistogram(), newHistogram()];
  const n = quick ? 200 : 2000;
  // As Members.interval does it: the encoded buckets added straight into the merged histograms
  // (after a structured clone, as a message from a worker arrives).
  for (let i = 0; i < 50; i++) mergeIntervals([structuredClone(encoded)], into);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) mergeIntervals([structuredClone(encoded)], into);
  const perMs = (performance.now() - t0) / n;
  const e0 = performance.now();
  const snap = { pools: [0, 1].map(() => ({ hist: newHistogram(), requests: 0, errors: 0 })) };
  for (const [id, p] of snap.pools.entries()) {
    p.hist.add(into[id]);
    p.requests = p.hist.totalCount;
  }
  for (let i = 0; i < n; i++) encodeInterval(snap);
  const encodeMs = (performance.now() - e0) / n;
  return { mergeMs: perMs, encodeMs, bytes, pairs, projected64Ms: perMs * 64 };
}

async function main() {
  if (process.platform !== 'linux') log('SO_REUSEPORT workers need Linux: sluice runs one thread here');
  const { proc: origin, port: upPort, url: upstream } = await startOrigin(dir);
  const contenders = [
    { name: 'direct', start: async () => ({ port: upPort, proc: null }) },
    { name: 'sluice workers: 1', start: () => startSluice(upstream, 1) },
    { name: 'sluice workers: 2', start: () => startSluice(upstream, 2) },
  ];
  const node = (threads) => async () => {
    const port = await freePort();
    const proc = startPinned(ALL, process.execPath, [...flags, join(here, 'contenders/bare-undici.mjs')], {
      PORT: String(port),
      UPSTREAM: upstream,
      WORKERS: String(threads),
    });
    await waitPort(port);
    return { port, proc };
  };
  contenders.push({ name: 'bare undici ×1', start: node(1) }, { name: 'bare undici ×2', start: node(2) });
  if (nginxBin) {
    for (const w of [1, 2])
      contenders.push({
        name: `nginx ×${w}`,
        start: async () => {
          const port = await freePort();
          const proc = startPinned(
            ALL,
            nginxBin,
            nginxConf(
              dir,
              `proxy-${port}`,
              `upstream up { server 127.0.0.1:${upPort}; keepalive 64; }
server { listen 127.0.0.1:${port} reuseport; keepalive_requests 1000000; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
              w,
            ),
          );
          await waitPort(port);
          return { port, proc };
        },
      });
  } else log('nginx not installed: its rows are skipped (npm run bench:setup installs it)');

  const running = new Map();
  for (const c of contenders) running.set(c.name, await c.start());
  const results = Object.fromEntries(contenders.map((c) => [c.name, []]));
  log(`workers bench: ${rounds} round(s) × ${seconds}s, ${connections} connections, nothing pinned`);
  for (let round = 0; round < rounds; round++) {
    const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]);
    for (const c of order) {
      const { port, proc } = running.get(c.name);
      const url = `http://127.0.0.1:${port}/`;
      await load(url, { seconds: warm, connections, cpus: ALL });
      const pids = proc === null ? [] : [proc.pid, ...childPids(proc.pid)];
      const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const r = await load(url, { seconds, connections, cpus: ALL });
      const cpu = pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0;
      const row = { ...r, cpuUsPerReq: pids.length ? (cpu / r.requests) * 1e6 : NaN };
      results[c.name].push(row);
      log(
        `round ${round + 1} ${c.name.padEnd(20)} ${row.rps.toFixed(0).padStart(7)} req/s  p99 ${row.p99.toFixed(2)}ms  cpu ${row.cpuUsPerReq.toFixed(1)}µs/req  errors ${row.errors}`,
      );
    }
  }
  const med = (name, k) => median((results[name] ?? []).map((x) => x[k]));

  // Moderate load: a third of sluice's one-worker maximum, open loop when bench/openloop.c builds.
  const rate = Math.round(med('sluice workers: 1', 'rps') / 3);
  const bin = openLoopBin(dir);
  const moderate = {};
  if (bin === null) log('no C compiler: the moderate-load rows are skipped');
  else {
    for (let round = 0; round < rounds; round++)
      for (const c of contenders) {
        const { port } = running.get(c.name);
        const r = await loadOpenLoop(bin, `http://127.0.0.1:${port}/`, {
          seconds: quick ? 2 : 5,
          warmup: 1,
          rate,
          seed: round + 1,
          cpus: ALL,
        });
        (moderate[c.name] ??= []).push(r.p99);
      }
  }
  const p99 = (name) => median(moderate[name] ?? []);
  const added = (name) => p99(name) - p99('direct');

  const sluice2 = running.get('sluice workers: 2');
  const times = await broadcastTimes(sluice2.admin, quick ? 20 : 200);
  const merge = await mergeCost();
  for (const [, r] of running) if (r.proc) await stop(r.proc);
  await stop(origin);

  const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const lines = [
    `| | req/s | p99 at max (ms) | CPU µs/req | p99 added at ${rate} req/s (ms) |`,
    '|---|---:|---:|---:|---:|',
    ...contenders.map(
      (c) =>
        `| ${c.name} | ${fmt(med(c.name, 'rps'))} | ${fmt(med(c.name, 'p99'), 2)} | ${fmt(med(c.name, 'cpuUsPerReq'), 1)} | ${c.name === 'direct' ? `${fmt(p99('direct'), 3)} (p99)` : fmt(added(c.name), 3)} |`,
    ),
  ];
  const ratio = (a, b, k) => med(a, k) / med(b, k);
  const sorted = [...times].sort((a, b) => a - b);
  const ratios = {
    'sluice 2 ÷ 1 workers, req/s (target ≥ 1.35)': ratio('sluice workers: 2', 'sluice workers: 1', 'rps'),
    'sluice 2 workers ÷ bare undici ×2, req/s (target ≥ 0.9)': ratio('sluice workers: 2', 'bare undici ×2', 'rps'),
    'sluice CPU per request, 2 ÷ 1 workers (target ≤ 1.1)': ratio(
      'sluice workers: 2',
      'sluice workers: 1',
      'cpuUsPerReq',
    ),
    'sluice 2 workers ÷ nginx ×2, req/s (context)': ratio('sluice workers: 2', 'nginx ×2', 'rps'),
    'p99 added, sluice − bare undici, 1 thread (ms; target ≤ 0.3)':
      added('sluice workers: 1') - added('bare undici ×1'),
    'p99 added, sluice − bare undici, 2 threads (ms; target ≤ 0.3)':
      added('sluice workers: 2') - added('bare undici ×2'),
  };
  lines.push(
    '',
    ...Object.entries(ratios).map(([k, v]) => `- ${k}: **${fmt(v, 2)}**`),
    `- a table reaching both workers (PUT /api/v1/weights → every ack; status table.appliedInMs, ${times.length} changes): median ${fmt(median(times), 3)} ms, max ${fmt(sorted.at(-1), 3)} ms`,
    `- merging one worker's interval on the main thread (10,000 requests, ${merge.pairs} non-empty buckets, ${merge.bytes} bytes as JSON; clone + add): ${fmt(merge.mergeMs * 1000, 0)} µs; 64 workers: ${fmt(merge.projected64Ms, 1)} ms per tick; encoding it in the worker: ${fmt(merge.encodeMs * 1000, 0)} µs`,
  );
  const md = lines.join('\n');
  process.stdout.write(`${md}\n`);
  const out = join(here, 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'workers-latest.json'),
    JSON.stringify({ rounds, seconds, connections, rate, results, moderate, times, merge, ratios }, null, 1),
  );
  writeFileSync(join(out, 'workers-latest.md'), `${md}\n`);
  const errors = Object.values(results)
    .flat()
    .reduce((n, r) => n + r.errors, 0);
  if (errors > 0) {
    log(`${errors} errors under load`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  log(err.stack);
  process.exit(1);
});
