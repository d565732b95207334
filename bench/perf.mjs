// Where a proxy's CPU goes, kernel included: Linux perf (software cpu-clock, so it works without
// hardware counters) sampling the whole process under load, with V8's JIT symbols
// (--perf-basic-prof). --cpu-prof sees only JavaScript on the main thread; this also sees the
// kernel's share of each socket write and the thread switches behind asynchronous file writes.
// Usage:
//   node bench/perf.mjs [sluice|bare] [--access] [--seconds S] [--paced N]
//       record, print the top symbols, save bench/results/perf/<name>.json. --paced N: N wrk
//       connections each pausing 2 ms between requests (the bench's moderate load) instead of 64
//       back to back; the name gets -paced.
//   node bench/perf.mjs --diff <a> <b> [--top N]                   µs per request by symbol, a − b
// Needs `perf` (Debian: linux-perf). Names: sluice, sluice-access, bare.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import {
  has,
  nodeFlags,
  freePort,
  load,
  pinSelf,
  startOrigin,
  startPinned,
  startSluiceProcess,
  stop,
  waitPort,
} from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, 'results', 'perf');
const argv = process.argv.slice(2);
const flag = (n, d) => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : d);
const HZ = 4000;

if (argv[0] === '--diff') {
  const [an, bn] = argv.slice(1, 3);
  const top = Number(flag('--top', 30));
  const read = (n) => JSON.parse(readFileSync(join(outDir, `${n}.json`), 'utf8'));
  const a = read(an);
  const b = read(bn);
  const sum = (o) => Object.values(o).reduce((s, v) => s + v, 0);
  console.log(
    `µs/request sampled: ${an} ${sum(a.perRequest).toFixed(2)}, ${bn} ${sum(b.perRequest).toFixed(2)}; kernel ${a.kernel.toFixed(2)} vs ${b.kernel.toFixed(2)}; thread switches per 1,000 requests ${a.switchesPer1000.toFixed(1)} vs ${b.switchesPer1000.toFixed(1)}`,
  );
  const keys = [...new Set([...Object.keys(a.perRequest), ...Object.keys(b.perRequest)])];
  const d = (k) => (a.perRequest[k] ?? 0) - (b.perRequest[k] ?? 0);
  for (const k of keys.sort((x, y) => Math.abs(d(y)) - Math.abs(d(x))).slice(0, top)) {
    console.log(
      `${d(k) >= 0 ? '+' : ''}${d(k).toFixed(3).padStart(7)}  ${(a.perRequest[k] ?? 0).toFixed(3).padStart(6)} ${(b.perRequest[k] ?? 0).toFixed(3).padStart(6)}  ${k}`,
    );
  }
  process.exit(0);
}

if (!has('perf')) {
  console.log('perf not installed (apt-get install -y linux-perf): skipped');
  process.exit(0);
}
const which = argv[0] && !argv[0].startsWith('--') ? argv[0] : 'sluice';
const access = argv.includes('--access');
const seconds = Number(flag('--seconds', 5));
const paced = flag('--paced', undefined);
const name = `${which}${access ? '-access' : ''}${paced ? '-paced' : ''}`;
const shape = paced ? { connections: Number(paced), delayMs: 2 } : { connections: 64 };
pinSelf(1);
mkdirSync(outDir, { recursive: true });
const dir = mkdtempSync(join(tmpdir(), 'sluice-perf-'));
// --perf-basic-prof also turns on V8's log: keep it out of the working directory.
const v8Flags = ['--perf-basic-prof', '--no-logfile-per-isolate', `--logfile=${join(dir, 'v8.log')}`];
const { proc: origin, url: upstream } = await startOrigin(dir);
let proc;
let port;
if (which === 'bare') {
  port = await freePort();
  proc = startPinned(0, process.execPath, [...nodeFlags, ...v8Flags, join(here, 'contenders/bare-undici.mjs')], {
    PORT: String(port),
    UPSTREAM: upstream,
  });
  await waitPort(port);
} else {
  const s = await startSluiceProcess(
    upstream,
    upstream,
    { split: { initialCanaryWeight: 10 }, log: { level: 'warn', access } },
    undefined,
    v8Flags,
  );
  ({ proc, port } = s);
}
const url = `http://127.0.0.1:${port}/`;
/** Voluntary and involuntary switches over all the process's threads. */
const switches = () =>
  readdirSync(`/proc/${proc.pid}/task`).reduce((n, t) => {
    const st = readFileSync(`/proc/${proc.pid}/task/${t}/status`, 'utf8');
    return (
      n +
      Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)[1]) +
      Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)[1])
    );
  }, 0);
await load(url, { seconds: 3, connections: 64 });
// After a change of load pattern V8 recompiles for a few seconds (on its worker threads).
if (paced) await load(url, { seconds: 5, ...shape });
const data = join(dir, 'perf.data');
const rec = spawn('perf', ['record', '-e', 'cpu-clock', '-F', String(HZ), '-p', String(proc.pid), '-o', data], {
  stdio: 'ignore',
});
await new Promise((r) => setTimeout(r, 300));
const sw0 = switches();
const r = await load(url, { seconds, ...shape });
const switchesPer1000 = ((switches() - sw0) * 1000) / r.requests;
rec.kill('SIGINT');
await new Promise((res) => rec.once('exit', res));
await stop(proc);
await stop(origin);
const report = spawnSync('perf', ['report', '-i', data, '--stdio', '-n', '--sort', 'dso,sym'], {
  encoding: 'utf8',
  maxBuffer: 1 << 28,
}).stdout;
rmSync(`/tmp/perf-${proc.pid}.map`, { force: true }); // V8's JIT symbol map, read by perf report
// Samples are counted over slightly more than the load (recording starts 300 ms early and stops
// after it): per-request figures are a little high, alike for every contender.
const perRequest = {};
let kernel = 0;
for (const line of report.split('\n')) {
  const m = /^\s+[\d.]+%\s+(\d+)\s+(\S.*?)\s+\[(.)\]\s+(.*)$/.exec(line);
  if (!m) continue;
  const us = (Number(m[1]) * (1e6 / HZ)) / r.requests;
  const key = `${m[2].replace(/ tid \d+/, '')} ${m[4]
    .replace(/^JS:[*~^]?/, 'JS:')
    .replace(/file:\/\/.*\/dist\//, 'dist/')
    .replace(/\/.*\/node_modules\//, '')}`;
  perRequest[key] = (perRequest[key] ?? 0) + us;
  if (m[3] === 'k') kernel += us;
}
writeFileSync(
  join(outDir, `${name}.json`),
  JSON.stringify({ requests: r.requests, rps: r.rps, kernel, switchesPer1000, perRequest }),
);
const total = Object.values(perRequest).reduce((s, v) => s + v, 0);
console.log(
  `${name}: ${r.rps.toFixed(0)} req/s; sampled ${total.toFixed(2)} µs/request, kernel ${kernel.toFixed(2)}; thread switches per 1,000 requests ${switchesPer1000.toFixed(1)}`,
);
for (const [k, v] of Object.entries(perRequest)
  .sort((x, y) => y[1] - x[1])
  .slice(0, Number(flag('--top', 25))))
  console.log(`${v.toFixed(3).padStart(7)} µs  ${k}`);
