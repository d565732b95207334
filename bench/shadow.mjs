// npm run bench:shadow: what a shadow costs the clients. One sluice (core 0) in front of two
// origins (nginx `return 200` when installed, else node; core 1, with the load generator):
// Poisson arrivals at --rate req/s (default 1000) for --seconds (default 8) per round, with the
// shadow off, at 10 % and at 100 % of stable's requests mirrored to green, in turn, --rounds times
// (default 5). Reports the clients' p50/p99 medians and the p99 difference from "off" in the same
// run; the target is within 0.2 ms. Writes bench/results/shadow.{json,md}.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAtRate, loadOpenLoop, median, openLoopBin, startOrigin, startSluiceProcess, stop } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? def : Number(process.argv[i + 1]);
};
const rounds = arg('--rounds', 5);
const seconds = arg('--seconds', 8);
const rate = arg('--rate', 1000);
const log = (s) => process.stderr.write(`${s}\n`);

function post(admin, path, body) {
  return new Promise((resolve, reject) => {
    const req = request(
      `${admin}${path}`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${path}: ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-shadow-'));
const blue = await startOrigin(join(dir, 'blue'));
const green = await startOrigin(join(dir, 'green'));
const sluice = await startSluiceProcess(blue.url, green.url, {
  // A verdict never ends the shadow during the bench (a healthy green; no end).
  rollout: { shadow: { duration: 0 } },
});
const bin = openLoopBin(dir);
const run = (url) =>
  bin === null
    ? loadAtRate(url, { seconds, rate })
    : loadOpenLoop(bin, url, { seconds, warmup: 1, rate, connections: 32, seed: 1 });
const modes = [
  { name: 'off', percent: 0 },
  { name: '10 %', percent: 10 },
  { name: '100 %', percent: 100 },
];
const results = Object.fromEntries(modes.map((m) => [m.name, []]));
try {
  log(
    `bench:shadow: ${rate} req/s, ${seconds} s x ${rounds} rounds per mode, ${bin === null ? 'undici' : 'openloop'} load`,
  );
  await run(`${sluice.base}/warm`);
  for (let r = 0; r < rounds; r++) {
    for (const m of modes) {
      if (m.percent > 0) await post(sluice.admin, '/api/v1/shadow/start', { percent: m.percent, duration: 0 });
      const res = await run(`${sluice.base}/x`);
      if (m.percent > 0) await post(sluice.admin, '/api/v1/shadow/stop', {});
      results[m.name].push(res);
      log(
        `  round ${r + 1} ${m.name.padEnd(6)} p50 ${res.p50.toFixed(3)} ms  p99 ${res.p99.toFixed(3)} ms  errors ${res.errors}`,
      );
    }
  }
  const status = await (await fetch(`${sluice.admin}/api/v1/status`)).json();
  const off = median(results.off.map((x) => x.p99));
  const rows = modes.map((m) => {
    const p99 = median(results[m.name].map((x) => x.p99));
    return {
      mode: m.name,
      p50: median(results[m.name].map((x) => x.p50)),
      p99,
      deltaP99: p99 - off,
      errors: results[m.name].reduce((n, x) => n + x.errors, 0),
    };
  });
  const md = [
    `Shadow cost to clients: ${rate} req/s, ${rounds} rounds of ${seconds} s per mode, medians (ms)`,
    '',
    '| shadow | p50 | p99 | p99 − off | client errors |',
    '|---|---:|---:|---:|---:|',
    ...rows.map(
      (x) =>
        `| ${x.mode} | ${x.p50.toFixed(3)} | ${x.p99.toFixed(3)} | ${x.deltaP99 >= 0 ? '+' : ''}${x.deltaP99.toFixed(3)} | ${x.errors} |`,
    ),
    '',
    `mirrored ${status.shadow.totals.mirrored}, dropped ${status.shadow.totals.dropped}, mismatched ${status.shadow.totals.failed + status.shadow.totals.status + status.shadow.totals.slow}`,
  ].join('\n');
  process.stdout.write(`${md}\n`);
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(
    join(here, 'results', 'shadow.json'),
    JSON.stringify({ rate, seconds, rounds, rows, results }, null, 2),
  );
  writeFileSync(join(here, 'results', 'shadow.md'), `${md}\n`);
} finally {
  await stop(sluice.proc);
  await stop(blue.proc);
  await stop(green.proc);
}
