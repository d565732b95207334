// What recording costs per request: Recorder.record() (HDR recordValue + counters) timed over
// millions of calls with realistic values, against the per-request CPU the main bench measures.
import { Recorder } from '../dist/stats/recorder.js';
import { WindowRing } from '../dist/stats/window.js';

const rec = new Recorder();
const ring = new WindowRing((recycle) => rec.takeInterval(recycle), 10);
const N = 5_000_000;
const values = Float64Array.from({ length: 4096 }, () => 200 + Math.random() * 20_000); // 0.2–20 ms in µs
function run() {
  for (let i = 0; i < N; i++) {
    rec.record(i & 1, (i & 255) === 0 ? 503 : 200, values[i & 4095], undefined);
    if ((i & 0xfffff) === 0) ring.rotate(); // a tick now and then, as in production
  }
}
run(); // warm-up
const t0 = process.hrtime.bigint();
run();
const ns = Number(process.hrtime.bigint() - t0) / N;
const t1 = process.hrtime.bigint();
for (let i = 0; i < 200; i++) {
  ring.rotate();
  ring.query(0, { z: 2.58 });
  ring.query(1, { z: 2.58 });
}
const tickUs = Number(process.hrtime.bigint() - t1) / 200 / 1000;
console.log(JSON.stringify({ recordNsPerCall: +ns.toFixed(1), tickMicros: +tickUs.toFixed(1) }));
