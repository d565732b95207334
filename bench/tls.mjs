// npm run bench:tls: sluice at the edge over TLS, HTTP/2 against HTTP/1.1, with h2load (Debian's
// nghttp2-client). One origin (nginx `return 200`, else a node server) on core 1 with h2load;
// sluice pinned to core 0, TLS 1.3 with a P-256 certificate made here. Each protocol runs
// `--rounds` times (default 3) for `--seconds` (default 8); medians and the ratio h2 ÷ h1 are
// printed and written to bench/results/tls.{json,md}. Plain HTTP/1.1 through sluice is the baseline
// that shows what TLS itself costs.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canPin, has, startOrigin, startSluiceProcess, stop } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? def : Number(process.argv[i + 1]);
};
const rounds = arg('--rounds', 3);
const seconds = arg('--seconds', 8);
const log = (s) => process.stderr.write(`${s}\n`);

if (!has('h2load') || !has('openssl')) {
  log('bench:tls needs h2load (apt-get install nghttp2-client) and openssl: skipped');
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-tls-'));
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=bench.test',
    '-addext',
    'subjectAltName=DNS:bench.test',
  ],
  { stdio: 'ignore' },
);

/** h2load against `url`: req/s and mean latency (ms) from its summary. */
function h2load(url, extra) {
  const args = ['-D', String(seconds), '-c', '32', '-t', '1', '--warm-up-time', '1', ...extra, url];
  const cmd = canPin ? ['taskset', ['-c', '1', 'h2load', ...args]] : ['h2load', args];
  const r = spawnSync(cmd[0], cmd[1], { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const out = r.stdout ?? '';
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]);
  const mean = /time for request:\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1] ?? '';
  const ms = mean.endsWith('ms')
    ? Number(mean.slice(0, -2))
    : mean.endsWith('us')
      ? Number(mean.slice(0, -2)) / 1000
      : Number(mean.replace(/s$/, '')) * 1000;
  const failed = Number(/(\d+) failed/.exec(out)?.[1] ?? NaN);
  if (!(rps > 0)) log(out + (r.stderr ?? ''));
  return { rps, ms, failed };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const origin = await startOrigin(dir);
  const tls = await startSluiceProcess(origin.url, origin.url, {
    listen: { tls: { certificates: [{ cert, key }], minVersion: 'TLSv1.3' } },
  });
  const plain = await startSluiceProcess(origin.url, origin.url);
  const cases = [
    {
      name: 'HTTP/2 over TLS, 32 connections × 10 streams',
      url: `https://127.0.0.1:${tls.port}/`,
      extra: ['-m', '10'],
    },
    { name: 'HTTP/1.1 over TLS, 32 connections', url: `https://127.0.0.1:${tls.port}/`, extra: ['--h1'] },
    { name: 'HTTP/1.1 plain, 32 connections', url: `http://127.0.0.1:${plain.port}/`, extra: ['--h1'] },
  ];
  const results = [];
  try {
    for (const c of cases) {
      const runs = [];
      for (let i = 0; i < rounds; i++) runs.push(h2load(c.url, c.extra));
      const r = {
        name: c.name,
        rps: median(runs.map((x) => x.rps)),
        ms: median(runs.map((x) => x.ms)),
        failed: runs.reduce((n, x) => n + (Number.isNaN(x.failed) ? 0 : x.failed), 0),
        runs,
      };
      results.push(r);
      log(`${c.name.padEnd(48)} ${r.rps.toFixed(0).padStart(7)} req/s  mean ${r.ms.toFixed(2)} ms  failed ${r.failed}`);
    }
  } finally {
    await stop(tls.proc);
    await stop(plain.proc);
    await stop(origin.proc);
  }
  const [h2r, h1r, plainr] = results;
  const md = `TLS bench ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, h2load ${seconds} s × ${rounds} rounds (medians), sluice on core 0, origin and h2load on core 1${canPin ? '' : ' (not pinned: no taskset)'}.\n\n| case | req/s | mean latency | failed |\n| --- | --- | --- | --- |\n${results.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.ms.toFixed(2)} ms | ${r.failed} |`).join('\n')}\n\nHTTP/2 ÷ HTTP/1.1 over TLS: ${(h2r.rps / h1r.rps).toFixed(2)} (req/s); HTTP/1.1 over TLS ÷ plain: ${(h1r.rps / plainr.rps).toFixed(2)}.\n`;
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(
    join(here, 'results', 'tls.json'),
    JSON.stringify({ date: new Date().toISOString(), node: process.version, rounds, seconds, results }, null, 2),
  );
  writeFileSync(join(here, 'results', 'tls.md'), md);
  process.stdout.write(md);
}

main().catch((e) => {
  log(e.stack);
  process.exitCode = 1;
});
