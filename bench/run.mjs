// npm run bench: proxy overhead of sluice against direct, a bare undici proxy, http-proxy-3,
// @fastify/http-proxy (a dev dependency) and nginx (when installed), same load, interleaved
// rounds. Flags: --quick, --rounds N, --seconds S, --connections C, --fresh (a new process per
// contender and round), --only a,b (direct, sluice and the contenders whose names contain a or b),
// --no-workers (skip the last section, bench/workers.mjs: workers 1 and 2 against nginx and the
// bare undici proxy with as many, unpinned).
// sluice with the access log off and on is one process, switched through the admin API and measured
// in ABBA slices (below). The moderate load (a third of sluice's max) is measured with wrk's paced
// connections and, when a C compiler builds bench/openloop.c, open loop with Poisson arrivals.
// Writes bench/results/latest.json and latest.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir, cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  nodeFlags,
  canPin,
  childPids,
  cpuSeconds,
  freePort,
  has,
  load,
  loadAtRate,
  loadOpenLoop,
  median,
  openLoopBin,
  nginxBin,
  nginxConf,
  pinSelf,
  rssMiB,
  setAccessLog,
  startOrigin,
  startPinned,
  startSluiceProcess,
  stop,
  waitPort,
} from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (n, d) => {
  const i = argv.indexOf(n);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const quick = argv.includes('--quick');
const rounds = flag('--rounds', quick ? 1 : 3);
const seconds = flag('--seconds', quick ? 2 : 8);
const connections = flag('--connections', 64);
/** Seconds of warm-up before each measurement. */
const warm = quick ? 1 : 2;
/** Seconds at the moderate load before measuring it. */
const moderateWarm = quick ? 1 : 5;
const fresh = argv.includes('--fresh');
const only = argv.includes('--only') ? String(argv[argv.indexOf('--only') + 1]).split(',') : undefined;
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
const log = (s) => process.stderr.write(`${s}\n`);
const resolvable = (name) => {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
};

async function main() {
  pinSelf(1);
  log(
    `sluice bench: ${rounds} round(s) × ${seconds}s, ${connections} connections, load ${has('wrk') ? 'wrk' : 'autocannon'}, pinning ${canPin ? 'on (proxy cpu 0; upstream + load cpu 1)' : 'off'}`,
  );
  // The origin: nginx `return 200` when installed (cheap), else a tight node:http server.
  const { proc: origin, port: upPort, url: upstream } = await startOrigin(dir);

  // By default each proxy is started once and measured warm, as a long-lived proxy runs. With
  // --fresh each is started afresh for every round and stopped after it: one process can stay a
  // few per cent faster or slower than another of the same build for its whole life (JIT and
  // memory layout), so rounds then sample processes too, not only time (at moderate load a young
  // process also carries its heap's early growth).
  const contenders = [{ name: 'direct', start: async () => ({ port: upPort, proc: null }) }];
  const add = (name, make) =>
    contenders.push({
      name,
      start: async () => {
        const port = await freePort();
        const proc = await make(port);
        await waitPort(port);
        return { port, proc };
      },
    });
  // sluice's default config with a 90/10 split: measurement and metrics on, as in production. The
  // access log on and off is one process, switched through the admin API before each measurement,
  // so that their ratio compares the access log and not two processes (identical processes stay a
  // few per cent apart for their whole life); with --fresh each gets its own process.
  let shared;
  const startSluice = async (access) => {
    const s = await startSluiceProcess(upstream, upstream, {
      split: { initialCanaryWeight: 10 },
      log: { level: 'warn', access },
    });
    return { port: s.port, proc: s.proc, admin: s.admin };
  };
  const addSluice = (name, access) =>
    contenders.push({
      name,
      start: () => (fresh ? startSluice(access) : (shared ??= startSluice(access))),
      prepare: ({ admin }) => setAccessLog(admin, access),
    });
  const node = (script, port, env = {}) =>
    startPinned(0, process.execPath, [...nodeFlags, script], { PORT: String(port), UPSTREAM: upstream, ...env });
  add('bare undici', (p) => node(join(here, 'contenders/bare-undici.mjs'), p));
  add("bare undici + sluice's headers", (p) =>
    node(join(here, 'contenders/bare-undici.mjs'), p, { HEADERS: 'sluice' }),
  );
  addSluice('sluice (access log off)', false);
  addSluice('sluice (access log on)', true);
  add('http-proxy-3', (p) => node(join(here, 'contenders/http-proxy-3.mjs'), p));
  if (resolvable('@fastify/http-proxy') && resolvable('fastify'))
    add('@fastify/http-proxy', (p) => node(join(here, 'contenders/fastify-http-proxy.mjs'), p));
  else log('@fastify/http-proxy not installed (a dev dependency): skipped');
  if (nginxBin) {
    add('nginx', (p) =>
      startPinned(
        0,
        nginxBin,
        nginxConf(
          dir,
          `proxy-${p}`,
          `upstream up { server 127.0.0.1:${upPort}; keepalive 64; }
server { listen 127.0.0.1:${p}; keepalive_requests 1000000; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
        ),
      ),
    );
  } else log('nginx not installed: skipped (npm run bench:setup installs it)');
  // --only a,b: direct, sluice and the contenders whose names contain one of them (a quicker look).
  if (only !== undefined) {
    const keep = contenders.filter(
      (c) => c.name === 'direct' || c.name.startsWith('sluice') || only.some((o) => c.name.includes(o)),
    );
    contenders.splice(0, contenders.length, ...keep);
  }
  /** Run `fn` against a contender: started for it (--fresh) or once for the whole bench. */
  const running = new Map();
  const during = async (c, fn) => {
    if (!running.has(c)) running.set(c, await c.start());
    const { port, proc } = running.get(c);
    await c.prepare?.(running.get(c));
    try {
      return await fn(`http://127.0.0.1:${port}/`, proc);
    } finally {
      if (fresh) {
        running.delete(c);
        if (proc) await stop(proc);
      }
    }
  };

  const results = Object.fromEntries(contenders.map((c) => [c.name, []]));
  // Each round starts one contender later, so no contender always runs right after the same one.
  const rotated = (xs, k) => xs.map((_, i) => xs[(i + k) % xs.length]);
  // The access log off and on (one process) run back to back, off first in even rounds and on
  // first in odd ones: of two adjacent measurements of one process the later tended to cost more
  // (`node bench/access-log-cost.mjs`).
  const pair = ['sluice (access log off)', 'sluice (access log on)'];
  const withPairOrder = (cs, k) => {
    const at = cs.findIndex((c) => pair.includes(c.name));
    if (at < 0) return cs;
    const rest = cs.filter((c) => !pair.includes(c.name));
    rest.splice(at, 0, ...(k % 2 === 0 ? pair : [...pair].reverse()).map((n) => cs.find((c) => c.name === n)));
    return rest;
  };
  /** One measurement: `warmS` seconds of warm-up, then `s` seconds measured with the proxy's CPU. */
  const measure = (c, warmS, s) =>
    during(c, async (url, proc) => {
      await load(url, { seconds: warmS, connections });
      const pids = proc === null ? [] : [proc.pid, ...childPids(proc.pid)];
      const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const r = await load(url, { seconds: s, connections });
      const cpu = pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0;
      const rss = pids.length ? pids.reduce((a, p) => a + rssMiB(p), 0) : NaN;
      return { ...r, cpu: pids.length ? cpu : NaN, rssMiB: rss };
    });
  const report = (round, name, row, what = '') =>
    log(
      `round ${round + 1} ${`${name}${what}`.padEnd(24)} ${row.rps.toFixed(0).padStart(7)} req/s  p50 ${row.p50.toFixed(2)}ms  p99 ${row.p99.toFixed(2)}ms  cpu ${row.cpuUsPerReq.toFixed(1)}µs/req  errors ${row.errors}`,
    );
  const perReq = (r) => ({ ...r, cpuUsPerReq: (r.cpu / r.requests) * 1e6 });
  // In one shared process the access log off and on is measured in interleaved slices, ABBA (off,
  // on, on, off; BAAB in odd rounds), each half the round's seconds: the machine drifts by tens
  // of per cent within a minute here (bare undici 42-66 µs a request over one run's rounds), and
  // an ABBA sequence cancels a steady drift that a back-to-back pair of 6 s still takes for the
  // access log. Each side's figures join its two slices: CPU and requests summed, req/s and
  // percentiles averaged. With --fresh (a process per measurement) the pair stays one of each.
  const slicedPair = !fresh && seconds >= 2;
  const joined = (a, b) => ({
    ...a,
    rps: (a.rps + b.rps) / 2,
    requests: a.requests + b.requests,
    p50: (a.p50 + b.p50) / 2,
    p99: (a.p99 + b.p99) / 2,
    errors: a.errors + b.errors,
    cpu: a.cpu + b.cpu,
    rssMiB: b.rssMiB,
  });
  for (let round = 0; round < rounds; round++) {
    const order = withPairOrder(rotated(contenders, round), round);
    for (let i = 0; i < order.length; i++) {
      const c = order[i];
      const next = order[i + 1];
      if (slicedPair && pair.includes(c.name) && next !== undefined && pair.includes(next.name)) {
        // A B B A: the first slice gets the full warm-up, the others a second after the switch.
        const slices = [];
        for (const [k, x] of [c, next, next, c].entries()) {
          const row = await measure(x, k === 0 ? warm : 1, seconds / 2);
          slices.push(row);
          report(round, x.name, perReq(row), ` slice ${k + 1}`);
        }
        for (const [x, a, b] of [
          [c, slices[0], slices[3]],
          [next, slices[1], slices[2]],
        ]) {
          const row = perReq(joined(a, b));
          results[x.name].push(row);
          report(round, x.name, row);
        }
        i++;
        continue;
      }
      const row = perReq(await measure(c, warm, seconds));
      results[c.name].push(row);
      report(round, c.name, row);
    }
  }
  // Latency added at a moderate load: a third of sluice's max, same fixed rate for each contender.
  const sluiceMax = median(results['sluice (access log off)'].map((r) => r.rps));
  const rate = Math.max(100, Math.round(sluiceMax / 3 / 100) * 100);
  // nginx, when installed: what a proxy without Node's event loop adds on this host (context).
  const atModerate = contenders.filter((c) =>
    ['direct', 'bare undici', 'sluice (access log off)', 'sluice (access log on)', 'nginx'].includes(c.name),
  );
  const moderate = Object.fromEntries(atModerate.map((c) => [c.name, []]));
  // The same rate open loop as well, when a C compiler builds bench/openloop.c: Poisson arrivals
  // independent of the answers, each latency from its scheduled time (no coordinated omission),
  // not batched onto wrk's millisecond timer tick. Same seed for every contender within a round.
  const olBin = openLoopBin(dir);
  if (olBin === null) log('no C compiler (cc): the moderate load is measured with wrk only, not open loop');
  const openLoop = Object.fromEntries(atModerate.map((c) => [c.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const c of withPairOrder(rotated(atModerate, round), round)) {
      const name = c.name;
      await during(c, async (url) => {
        // wrk with a 2 ms pause per connection between requests: ~500 req/s a connection, µs latencies.
        // Warm-up at the measured rate: after a change of load pattern V8 recompiles for a few
        // seconds on its worker threads, on the proxy's core (the bare proxy under --trace-opt,
        // going from full load to ~1,600 req/s: 222 lines in the first 5 s, 28 in the next 5),
        // and GC settles; a fresh process gets full load first (JIT, heap growth).
        const conns = Math.max(1, Math.round(rate / 500));
        if (fresh) await load(url, { seconds: warm, connections });
        await (has('wrk')
          ? load(url, { seconds: moderateWarm, connections: conns, delayMs: 2 })
          : loadAtRate(url, { seconds: moderateWarm, rate }));
        const r = has('wrk')
          ? await load(url, { seconds: Math.min(seconds, 5), connections: conns, delayMs: 2 })
          : await loadAtRate(url, { seconds: Math.min(seconds, 5), rate });
        moderate[name].push(r);
        log(
          `moderate ~${rate} req/s round ${round + 1} ${name.padEnd(24)} ${r.rps.toFixed(0)} req/s  p50 ${r.p50.toFixed(3)}ms  p99 ${r.p99.toFixed(3)}ms  errors ${r.errors}`,
        );
        if (olBin === null) return;
        const o = await loadOpenLoop(olBin, url, {
          seconds: Math.min(seconds, 4),
          warmup: quick ? 0.5 : 1,
          rate,
          seed: round + 1,
        });
        openLoop[name].push(o);
        log(
          `open loop ${rate} req/s round ${round + 1} ${name.padEnd(24)} ${o.rps.toFixed(0)} req/s  p50 ${o.p50.toFixed(3)}ms  p99 ${o.p99.toFixed(3)}ms  p99.9 ${o.p999.toFixed(3)}ms  errors ${o.errors}`,
        );
      });
    }
  }
  for (const { proc } of running.values()) if (proc) await stop(proc);
  await stop(origin);

  const summary = contenders.map((c) => {
    const rs = results[c.name];
    const pick = (k) => ({
      median: median(rs.map((r) => r[k])),
      min: Math.min(...rs.map((r) => r[k])),
      max: Math.max(...rs.map((r) => r[k])),
    });
    return {
      name: c.name,
      rps: pick('rps'),
      p50: pick('p50'),
      p99: pick('p99'),
      cpuUsPerReq: pick('cpuUsPerReq'),
      rssMiB: pick('rssMiB'),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      requests: rs.reduce((a, r) => a + r.requests, 0),
    };
  });
  const by = Object.fromEntries(summary.map((s) => [s.name, s]));
  const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
  const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const rng = (m, d = 0) => (Number.isFinite(m.median) ? `${f(m.median, d)} (${f(m.min, d)}–${f(m.max, d)})` : '–');
  const lines = [
    `| contender | req/s | p50 ms | p99 ms | proxy CPU µs/req | RSS MiB | req/s ÷ direct | CPU ÷ bare undici | CPU ÷ nginx | errors |`,
    `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
    ...summary.map(
      (s) =>
        `| ${s.name} | ${rng(s.rps)} | ${rng(s.p50, 2)} | ${rng(s.p99, 2)} | ${rng(s.cpuUsPerReq, 1)} | ${f(s.rssMiB.median)} | ${f(ratio(s.rps.median, by.direct.rps.median), 2)} | ${f(ratio(s.cpuUsPerReq.median, by['bare undici']?.cpuUsPerReq.median), 2)} | ${f(ratio(s.cpuUsPerReq.median, by.nginx?.cpuUsPerReq.median), 2)} | ${s.errors} |`,
    ),
  ];
  /** Per contender: the median of each of `keys` over its rounds, and its errors summed. */
  const medianRows = (byName, keys) =>
    Object.entries(byName).map(([name, rs]) => ({
      name,
      ...Object.fromEntries(keys.map((k) => [k, median(rs.map((r) => r[k]))])),
      errors: rs.reduce((a, r) => a + r.errors, 0),
    }));
  const mod = medianRows(moderate, ['rps', 'p50', 'p99']);
  const direct99 = mod.find((m) => m.name === 'direct').p99;
  lines.push(
    '',
    `Latency at a moderate load (target ${rate} req/s, a third of sluice's max; ${has('wrk') ? 'wrk, each connection pausing 2 ms between requests' : 'open-loop node generator'}; medians of ${rounds}):`,
    '',
    '| contender | req/s | p50 ms | p99 ms | p99 added over direct | errors |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const m of mod)
    lines.push(
      `| ${m.name} | ${f(m.rps)} | ${f(m.p50, 3)} | ${f(m.p99, 3)} | ${m.name === 'direct' ? '–' : `${f(m.p99 - direct99, 3)} ms`} | ${m.errors} |`,
    );
  const ol = olBin === null ? [] : medianRows(openLoop, ['rps', 'p50', 'p99', 'p999']);
  const olDirect99 = ol.find((m) => m.name === 'direct')?.p99 ?? NaN;
  if (ol.length) {
    lines.push(
      '',
      `The same rate open loop (bench/openloop.c: Poisson arrivals at ${rate} req/s, latency from each request's scheduled time; medians of ${rounds}):`,
      '',
      '| contender | req/s | p50 ms | p99 ms | p99.9 ms | p99 added over direct | errors |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const m of ol)
      lines.push(
        `| ${m.name} | ${f(m.rps)} | ${f(m.p50, 3)} | ${f(m.p99, 3)} | ${f(m.p999, 3)} | ${m.name === 'direct' ? '–' : `${f(m.p99 - olDirect99, 3)} ms`} | ${m.errors} |`,
      );
  }
  const olOf = (n) => ol.find((m) => m.name === n)?.p99 ?? NaN;
  // The targets of issue #5, as ratios within this run (no pass/fail: a report, not a test).
  const cpuOf = (n) => by[n]?.cpuUsPerReq.median;
  const off = cpuOf('sluice (access log off)');
  const modOf = (n) => mod.find((m) => m.name === n);
  const verdict = (ok) => (ok === undefined ? 'n/a' : ok ? 'met' : 'NOT met');
  const cmp = (x, ok) => (Number.isFinite(x) ? verdict(ok(x)) : 'n/a');
  const targets = [
    ['CPU per request ÷ bare undici (access log off)', ratio(off, cpuOf('bare undici')), (x) => x <= 1.15, '≤ 1.15', 2],
    [
      "CPU per request ÷ bare undici with sluice's headers",
      ratio(off, cpuOf("bare undici + sluice's headers")),
      undefined,
      '(context)',
      2,
    ],
    [
      'req/s ÷ http-proxy-3',
      ratio(by['sluice (access log off)'].rps.median, by['http-proxy-3']?.rps.median),
      (x) => x >= 2,
      '≥ 2',
      2,
    ],
    [
      'req/s ÷ @fastify/http-proxy',
      ratio(by['sluice (access log off)'].rps.median, by['@fastify/http-proxy']?.rps.median),
      undefined,
      '(context)',
      2,
    ],
    [
      'access log: added CPU per request (%)',
      (ratio(cpuOf('sluice (access log on)'), off) - 1) * 100,
      (x) => x < 10,
      '< 10',
      1,
    ],
    // The same, paired: each round's on ÷ off, so drift between rounds cancels (context only).
    [
      'access log: added CPU, median of per-round ratios (%)',
      (median(
        results['sluice (access log on)'].map(
          (r, i) => r.cpuUsPerReq / results['sluice (access log off)'][i].cpuUsPerReq,
        ),
      ) -
        1) *
        100,
      undefined,
      '(context)',
      1,
    ],
    [
      'p99 added over direct at a moderate load (ms)',
      modOf('sluice (access log off)').p99 - direct99,
      (x) => x < 1,
      '< 1',
      3,
    ],
    // Node's floor on this host, for context: sluice's p99 against the bare undici proxy's.
    [
      'p99 over the bare undici proxy at a moderate load (ms)',
      modOf('sluice (access log off)').p99 - (modOf('bare undici')?.p99 ?? NaN),
      undefined,
      '(context)',
      3,
    ],
    [
      'p99 added over direct by nginx at a moderate load (ms)',
      (modOf('nginx')?.p99 ?? NaN) - direct99,
      undefined,
      '(context)',
      3,
    ],
    [
      'p99 added over direct at a moderate load, open loop (ms)',
      olOf('sluice (access log off)') - olDirect99,
      undefined,
      '(context)',
      3,
    ],
    ['same, the bare undici proxy (ms)', olOf('bare undici') - olDirect99, undefined, '(context)', 3],
    ['same, nginx (ms)', olOf('nginx') - olDirect99, undefined, '(context)', 3],
  ];
  lines.push('', '| target | this run | goal | |', '| --- | --- | --- | --- |');
  for (const [name, x, ok, goal, d] of targets)
    lines.push(`| ${name} | ${f(x, d)} | ${goal} | ${ok === undefined ? '' : cmp(x, ok)} |`);
  lines.push('', 'Measurement and metrics per request: `node bench/record-cost.mjs`.');
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    rounds,
    seconds,
    connections,
    tool: has('wrk') ? 'wrk' : 'autocannon',
    pinned: canPin,
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(
    join(here, 'results', 'latest.json'),
    JSON.stringify(
      {
        meta,
        summary,
        rounds: results,
        moderate: { rate, results: moderate, openLoop: olBin === null ? null : openLoop },
      },
      null,
      2,
    ),
  );
  const md = `Bench ${meta.date.slice(0, 10)}, Node ${meta.node}, ${meta.cpus} cores (${meta.cpu}), ${meta.tool} ${connections} connections, ${rounds} × ${seconds}s rounds, medians (min–max).\n\n${lines.join('\n')}\n`;
  writeFileSync(join(here, 'results', 'latest.md'), md);
  process.stdout.write(md);
  const bad = [
    ...summary.filter((s) => s.errors > 0 || !(s.requests > 0)),
    ...mod.filter((m) => m.errors > 0),
    ...ol.filter((m) => m.errors > 0 || !(m.rps > 0)),
  ];
  if (bad.length) {
    log(`contenders with errors or no requests: ${bad.map((b) => b.name).join(', ')}`);
    process.exitCode = 1;
  }
  // The last section: every core (bench/workers.mjs, unpinned), unless --only narrowed the run.
  if (only === undefined && !argv.includes('--no-workers')) {
    const pass = ['--quick', '--rounds', '--seconds', '--connections'].flatMap((f) => {
      const i = argv.indexOf(f);
      return i < 0 ? [] : f === '--quick' ? [f] : [f, argv[i + 1]];
    });
    log('\nworkers section: node bench/workers.mjs');
    const w = spawnSync(process.execPath, [join(here, 'workers.mjs'), ...pass], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const text = w.stdout.toString();
    process.stdout.write(`\n## Every core (workers)\n\n${text}`);
    writeFileSync(join(here, 'results', 'latest.md'), `${md}\n## Every core (workers)\n\n${text}`);
    if (w.status !== 0) process.exitCode = 1;
  }
}

main().catch((e) => {
  log(e.stack);
  process.exit(1);
});
