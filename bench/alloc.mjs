// Young-generation GC of one proxy under a fixed load (--trace-gc): bytes allocated per request,
// and each scavenge's pause; with --nvp (--trace-gc-nvp) also what each scavenge kept (survived)
// and moved to the old generation (promoted), and the allocation is V8's own count. Steadier than
// CPU time on a noisy machine: an allocation saved shows whatever the neighbours do.
// Usage: node bench/alloc.mjs [sluice|bare|bare-headers|<dist dir>] [--access] [--nvp] [--seconds S]
//   [--extra '<sluice config JSON>']
// Without --nvp each scavenge counts as one semi-space (32 MiB) of allocation, an upper bound:
// V8 starts a scavenge a little before the semi-space is full.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  freePort,
  launchFlags,
  load,
  nodeFlags,
  pinSelf,
  startOrigin,
  startPinned,
  startSluiceProcess,
  stop,
  waitPort,
} from './lib.mjs';

const argv = process.argv.slice(2);
const which = argv[0] && !argv[0].startsWith('--') ? argv[0] : 'sluice';
const seconds = argv.includes('--seconds') ? Number(argv[argv.indexOf('--seconds') + 1]) : 6;
const access = argv.includes('--access');
const semiSpaceMiB = Number(/--max-semi-space-size=(\d+)/.exec(launchFlags.join(' '))?.[1] ?? 16);
pinSelf(1);
const dir = mkdtempSync(join(tmpdir(), 'sluice-alloc-'));
const { proc: origin, url: upstream } = await startOrigin(dir);
// V8 prints its GC trace on stdout: into a file read below.
const gcLog = join(dir, 'gc.txt');
const gcFlags = ['--trace-gc', ...(argv.includes('--nvp') ? ['--trace-gc-nvp'] : [])];
let proc;
let port;
if (which === 'bare' || which === 'bare-headers') {
  port = await freePort();
  const env = { PORT: String(port), UPSTREAM: upstream, HEADERS: which === 'bare-headers' ? 'sluice' : '' };
  proc = startPinned(
    0,
    process.execPath,
    [...nodeFlags, ...gcFlags, new URL('contenders/bare-undici.mjs', import.meta.url).pathname],
    env,
    gcLog,
  );
  await waitPort(port);
} else {
  const dist = which === 'sluice' ? new URL('../dist', import.meta.url).pathname : resolve(which);
  const extra = {
    split: { initialCanaryWeight: 10 },
    log: { level: 'warn', access },
    ...(argv.includes('--extra') ? JSON.parse(argv[argv.indexOf('--extra') + 1]) : {}),
  };
  ({ proc, port } = await startSluiceProcess(upstream, upstream, extra, join(dist, 'cli.js'), gcFlags, gcLog));
}
const url = `http://127.0.0.1:${port}/`;
const scavenges = () =>
  readFileSync(gcLog, 'utf8')
    .split('\n')
    .filter((l) => l.includes('Scavenge') || l.includes(' gc=s '));
await load(url, { seconds: 3, connections: 64 });
const before = scavenges().length;
const r = await load(url, { seconds, connections: 64 });
const during = scavenges().slice(before);
const n = during.length;
const pauses = during
  .map((l) => Number((/MB, ([\d.]+) \//.exec(l) ?? /pause=([\d.]+)/.exec(l))?.[1]))
  .filter(Number.isFinite)
  .sort((a, b) => a - b);
await stop(proc);
await stop(origin);
if (r.errors) console.error(`${r.errors} errors`);
const nvp = (k) => during.map((l) => Number(new RegExp(`${k}=([\\d.]+)`).exec(l)?.[1])).filter(Number.isFinite);
const avgKB = (k) => (nvp(k).reduce((a, b) => a + b, 0) / Math.max(1, nvp(k).length) / 1024).toFixed(0);
if (argv.includes('--nvp'))
  console.log(`per scavenge: survived ${avgKB('new_space_survived')} KB, promoted ${avgKB('promoted')} KB`);
const allocatedKB = argv.includes('--nvp')
  ? nvp('allocated').reduce((a, b) => a + b, 0) / 1024
  : n * semiSpaceMiB * 1024;
console.log(
  `${which}${access ? ' (access log on)' : ''}: ${r.requests} requests, ${n} scavenges, ${(allocatedKB / r.requests).toFixed(2)} KB a request; scavenge pause median ${pauses[pauses.length >> 1]} ms, max ${pauses.at(-1)} ms`,
);
