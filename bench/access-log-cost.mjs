// The access log's cost per request, measured in ONE sluice process switched on and off through
// PUT /api/v1/log, in pairs whose order alternates (off-on, on-off, ...): identical processes stay
// a few per cent apart for their whole life, and of two adjacent measurements the later tended to
// cost more, so separate processes or a fixed order measure those as much as the access log.
// Usage: node bench/access-log-cost.mjs [--pairs N] [--seconds S]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, load, median, pinSelf, setAccessLog, startOrigin, startSluiceProcess, stop } from './lib.mjs';

const argv = process.argv.slice(2);
const flag = (n, d) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
const pairs = flag('--pairs', 8);
const seconds = flag('--seconds', 4);
pinSelf(1);
const dir = mkdtempSync(join(tmpdir(), 'sluice-access-'));
const { proc: origin, url: upstream } = await startOrigin(dir);
const s = await startSluiceProcess(upstream, upstream, {
  split: { initialCanaryWeight: 10 },
  log: { level: 'warn', access: false },
});
const url = `${s.base}/`;
await load(url, { seconds: 3, connections: 64 });
/** CPU µs per request with the access log switched to `access`, after a second of warm-up. */
async function measure(access) {
  await setAccessLog(s.admin, access);
  await load(url, { seconds: 1, connections: 64 });
  const c0 = cpuSeconds(s.proc.pid);
  const r = await load(url, { seconds, connections: 64 });
  if (r.errors > 0) throw new Error(`${r.errors} errors with the access log ${access ? 'on' : 'off'}`);
  return ((cpuSeconds(s.proc.pid) - c0) / r.requests) * 1e6;
}
const ratios = [];
const on = [];
const off = [];
for (let i = 0; i < pairs; i++) {
  const r = {};
  for (const a of i % 2 === 0 ? [false, true] : [true, false]) r[a] = await measure(a);
  off.push(r.false);
  on.push(r.true);
  ratios.push(r.true / r.false);
  console.log(
    `pair ${i + 1} (${i % 2 === 0 ? 'off first' : 'on first'}): off ${r.false.toFixed(1)} µs/req, on ${r.true.toFixed(1)}, on ÷ off ${(r.true / r.false).toFixed(3)}`,
  );
}
const pct = (x) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)} %`;
console.log(
  `access log: ${pct(median(ratios))} CPU per request (median of ${pairs} paired ratios; pairs ${pct(Math.min(...ratios))} to ${pct(Math.max(...ratios))}); medians off ${median(off).toFixed(1)}, on ${median(on).toFixed(1)} µs/req`,
);
await stop(s.proc);
await stop(origin);
