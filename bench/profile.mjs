// CPU profile of one proxy under load: node --cpu-prof, then the functions with the most self time.
// Usage: node bench/profile.mjs [sluice|bare|<contender.mjs>] [--seconds S] [--top N] [--canary W] [--access]
// (a .mjs contender is started like the bare one: PORT and UPSTREAM in its environment).
// Writes the .cpuprofile to bench/results/ (open it in Chrome DevTools for the full picture).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
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
const argv = process.argv.slice(2);
const flag = (n, d) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
const which = argv[0] && !argv[0].startsWith('--') ? argv[0] : 'sluice';
const seconds = flag('--seconds', 8);
const top = flag('--top', 40);
const canary = flag('--canary', 0);
const access = argv.includes('--access');
pinSelf(1);
const dir = mkdtempSync(join(tmpdir(), 'sluice-prof-'));
const profDir = join(here, 'results', 'profile');
mkdirSync(profDir, { recursive: true });
for (const f of readdirSync(profDir)) if (f.endsWith('.cpuprofile')) rmSync(join(profDir, f));

const { proc: origin, url: upstream } = await startOrigin(dir);
let port = await freePort();
const profArgs = ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '200'];
let proc;
if (which === 'bare' || which.endsWith('.mjs')) {
  const script = which === 'bare' ? join(here, 'contenders/bare-undici.mjs') : which;
  proc = startPinned(0, process.execPath, [...nodeFlags, ...profArgs, script], {
    PORT: String(port),
    UPSTREAM: upstream,
  });
  await waitPort(port);
} else {
  const s = await startSluiceProcess(
    upstream,
    upstream,
    { split: { initialCanaryWeight: canary }, log: { level: 'warn', access } },
    undefined,
    profArgs,
  );
  proc = s.proc;
  port = s.port;
}
const url = `http://127.0.0.1:${port}/`;
const w = await load(url, { seconds: 2, connections: 64 });
const r = await load(url, { seconds, connections: 64 });
const requests = w.requests + r.requests;
await stop(proc);
if (proc.errors()) process.stderr.write(proc.errors());
await stop(origin);
const file = readdirSync(profDir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .map((f) => join(profDir, f))
  .find((f) => statSync(f).size > 0);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const counts = new Map();
for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
const self = new Map();
let total = 0;
for (const [id, c] of counts) {
  const n = byId.get(id);
  const f = n.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${f.url
    .replace(/^.*node_modules\//, '')
    .replace(/^file:\/\/.*\/dist\//, 'dist/')
    .replace(/^node:/, '')}:${f.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + c);
  total += c;
}
// Per request: sampled time (interval 200 µs) over every request served while profiling.
const perReq = (c) => (c * 200) / requests;
const busy = total - (self.get('(idle) :0') ?? 0);
console.log(
  `${which}: ${r.rps.toFixed(0)} req/s over ${seconds}s; ${requests} requests; busy ${perReq(busy).toFixed(2)} µs/req; profile ${file}`,
);
for (const [k, c] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`${perReq(c).toFixed(3).padStart(7)} µs ${((c / total) * 100).toFixed(2).padStart(6)}%  ${k}`);
writeFileSync(
  join(profDir, `${which.replace(/^.*\//, '').replace(/\.mjs$/, '')}${access ? '-access' : ''}.json`),
  JSON.stringify({ requests, perRequest: Object.fromEntries([...self].map(([k, c]) => [k, perReq(c)])) }),
);
