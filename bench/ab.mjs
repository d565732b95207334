// A/B of two sluice builds against a bare undici proxy in one run, interleaved rounds: proxy CPU
// per request and req/s. Usage: node bench/ab.mjs <old dist dir> [--rounds N] [--seconds S]
// (e.g. cp -r dist /tmp/dist-old before a change, rebuild, then compare).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  nodeFlags,
  cpuSeconds,
  freePort,
  load,
  median,
  pinSelf,
  startOrigin,
  startPinned,
  startSluiceProcess,
  stop,
  waitPort,
} from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (n, d) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
const oldDist = resolve(argv[0] ?? '/tmp/dist-old');
const rounds = flag('--rounds', 5);
const seconds = flag('--seconds', 5);
pinSelf(1);
const dir = mkdtempSync(join(tmpdir(), 'sluice-ab-'));
const { proc: origin, url: upstream } = await startOrigin(dir);
async function sluice(dist, name) {
  const s = await startSluiceProcess(upstream, upstream, { split: { initialCanaryWeight: 10 } }, join(dist, 'cli.js'));
  return { name, port: s.port, proc: s.proc };
}
const barePort = await freePort();
const cs = [
  {
    name: 'bare undici',
    port: barePort,
    proc: startPinned(0, process.execPath, [...nodeFlags, join(here, 'contenders/bare-undici.mjs')], {
      PORT: String(barePort),
      UPSTREAM: upstream,
    }),
  },
  await sluice(oldDist, 'old'),
  await sluice(join(here, '..', 'dist'), 'new'),
];
for (const c of cs) await waitPort(c.port);
const res = Object.fromEntries(cs.map((c) => [c.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const c of cs) {
    const url = `http://127.0.0.1:${c.port}/`;
    await load(url, { seconds: 1, connections: 64 });
    const c0 = cpuSeconds(c.proc.pid);
    const x = await load(url, { seconds, connections: 64 });
    res[c.name].push({ rps: x.rps, cpu: ((cpuSeconds(c.proc.pid) - c0) / x.requests) * 1e6 });
  }
}
const bare = median(res['bare undici'].map((x) => x.cpu));
for (const c of cs) {
  const cpu = median(res[c.name].map((x) => x.cpu));
  console.log(
    `${c.name.padEnd(12)} ${median(res[c.name].map((x) => x.rps))
      .toFixed(0)
      .padStart(
        6,
      )} req/s  ${cpu.toFixed(1)} µs/req  ×${(cpu / bare).toFixed(3)} bare  [${res[c.name].map((x) => x.cpu.toFixed(1)).join(' ')}]`,
  );
}
for (const c of cs) await stop(c.proc);
await stop(origin);
