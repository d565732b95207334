// What recording costs per request: Recorder.record() (HDR recordValue + counters, and the
// sequential check on errors) timed over millions of calls with realistic values, and a tick's
// interval hand-over and window queries. Three cases: the check disarmed (no rollout), armed on a
// healthy canary (1 error in 256), armed on a canary failing every request (the alarm fires once
// per interval, then a flag). With `--baseline <dir>` (a dist/ of another build, with
// node_modules reachable from it), the same cases of that build's Recorder, each round a fresh
// process per build (two Recorder classes in one process share hdr-histogram-js's call sites and
// slow whichever runs second), the order alternated, medians reported: a before/after on one
// machine at one time.
// Usage: npm run build && node bench/record-cost.mjs [--baseline /tmp/old/dist] [--rounds 7]
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const flag = (n, d) => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : d);
const rounds = Number(flag('--rounds', 7));
const baseline = flag('--baseline', undefined);
const N = 4_000_000;
const values = Float64Array.from({ length: 4096 }, () => 200 + Math.random() * 20_000); // 0.2–20 ms in µs

async function load(dist) {
  const url = (f) => pathToFileURL(resolve(dist, f)).href;
  const { Recorder } = await import(url('stats/recorder.js'));
  const { WindowRing } = await import(url('stats/window.js'));
  let limit = null;
  try {
    const { sequentialLimit } = await import(url('stats/sequential.js'));
    limit = sequentialLimit(0.01, 0.001, 5);
  } catch {
    // A build without the sequential check: "armed" is the same as disarmed there.
  }
  return { Recorder, WindowRing, limit };
}

/** ns per record() over N calls, half on each pool; `errorMask` picks the errors; a tick every 2^18 calls. */
function time(b, armed, errorEvery) {
  const rec = new b.Recorder();
  const ring = new b.WindowRing(10);
  if (armed && b.limit !== null) rec.guard(1, b.limit);
  rec.onAlarm = () => {};
  const run = () => {
    for (let i = 0; i < N; i++) {
      rec.record(i & 1, i % errorEvery === 0 ? 503 : 200, values[i & 4095], undefined);
      if ((i & 0x3ffff) === 0) ring.push(rec.takeInterval(ring.spare()));
    }
  };
  run(); // warm-up
  const t0 = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - t0) / N;
}

const cases = [
  ['disarmed', false, 256],
  ['armed, 1 error in 256', true, 256],
  ['armed, every request an error', true, 1],
];
const child = flag('--child', undefined);
if (child !== undefined) {
  // One build, one round, in this process: what the parent collects.
  const b = await load(child);
  console.log(JSON.stringify(Object.fromEntries(cases.map(([c, armed, every]) => [c, time(b, armed, every)]))));
  process.exit(0);
}
const here = fileURLToPath(new URL('../dist/', import.meta.url));
const builds = [['this', here]];
if (baseline !== undefined) builds.push(['baseline', resolve(baseline)]);
const samples = {};
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  for (const [name, dist] of order) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dist], { encoding: 'utf8' });
    for (const [c, ns] of Object.entries(JSON.parse(out))) (samples[`${name}: ${c}`] ??= []).push(ns);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const result = Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, +median(xs).toFixed(1)]));

// A tick: hand the interval over and query both pools with p95 bounds, as the controller does.
const { Recorder, WindowRing } = await load(here);
const rec = new Recorder();
const ring = new WindowRing(10);
for (let i = 0; i < 200_000; i++) rec.record(i & 1, 200, values[i & 4095], undefined);
let tickNs = 0n;
for (let i = 0; i < 200; i++) {
  for (let k = 0; k < 1000; k++) rec.record(k & 1, 200, values[k & 4095], undefined);
  const t1 = process.hrtime.bigint();
  ring.push(rec.takeInterval(ring.spare()));
  ring.query(0, { z: 2.58 });
  ring.query(1, { z: 2.58 });
  tickNs += process.hrtime.bigint() - t1;
}
const tickMicros = +(Number(tickNs) / 200 / 1000).toFixed(1);
console.log(JSON.stringify({ node: process.version, rounds, recordNsPerCall: result, tickMicros }, null, 1));
