// Shared bench plumbing: free ports, pinned child processes, /proc CPU and RSS, load generators.
import { spawn, spawnSync } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';

export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
export const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => spawnSync(p, ['-v']).status === 0);
export const canPin = has('taskset');

/**
 * Node flags for every Node proxy in a bench (sluice and the Node baselines alike, so that ratios
 * compare code, not GC settings): sluice's launch flags (package.json config.nodeFlags, as npm
 * start and the Dockerfile use them), plus --single-threaded-gc when pinned to one core, as the
 * README advises for one-CPU deployments (src/core/gc.ts).
 */
export const launchFlags = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
).config.nodeFlags.split(' ');
export const nodeFlags = canPin ? [...launchFlags, '--single-threaded-gc'] : launchFlags;

/** An nginx config under `dir/name` with `workers` workers (1) and no disk logs; returns nginx's arguments. */
export function nginxConf(dir, name, body, workers = 1) {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${d};`).join(' ');
  writeFileSync(
    join(d, 'nginx.conf'),
    `daemon off; master_process ${workers > 1 ? 'on' : 'off'}; worker_processes ${workers}; pid ${d}/nginx.pid; error_log ${d}/error.log;
events { worker_connections 4096; }
http { access_log off; ${temp}
${body} }`,
  );
  return ['-p', d, '-c', join(d, 'nginx.conf')];
}

/**
 * The origin every contender forwards to, pinned to core 1: nginx `return 200` when installed
 * (cheap), else a tight node:http server. Resolves with its process and URL.
 */
export async function startOrigin(dir) {
  const port = await freePort();
  const proc = nginxBin
    ? startPinned(
        1,
        nginxBin,
        nginxConf(
          dir,
          'origin',
          `server { listen 127.0.0.1:${port} reuseport; keepalive_requests 1000000; location / { return 200 "hello world"; } }`,
        ),
      )
    : startPinned(1, process.execPath, [new URL('./upstream.mjs', import.meta.url).pathname], { PORT: String(port) });
  await waitPort(port);
  return { proc, port, url: `http://127.0.0.1:${port}` };
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function waitPort(port, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise((r) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        r(true);
      });
      c.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${port}`);
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Start a process pinned to `cpu` (when taskset exists), stdout to a file (/dev/null). */
export function startPinned(cpu, cmd, args, env = {}, stdout = '/dev/null') {
  const out = openSync(stdout, 'w');
  const full = canPin ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
  const proc = spawn(full[0], full[1], { stdio: ['ignore', out, 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  proc.stderr.on('data', (d) => (err += d.toString()));
  proc.errors = () => err;
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return proc;
}

export async function stop(proc) {
  if (proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  await Promise.race([new Promise((r) => proc.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]);
  if (proc.exitCode === null) proc.kill('SIGKILL');
}

/** utime+stime of a pid and its threads, in seconds. With taskset the pid is the target itself. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

export function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Child pids (nginx master → worker). */
export function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const toMs = (v, unit) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? 1);

/** Run wrk (pinned to cpu 1) or autocannon; returns { rps, requests, p50, p99, errors }. `delayMs`: each wrk connection waits that long between requests (a steady, moderate rate). */
export async function load(url, { seconds, connections, rate, delayMs, cpus = '1' }) {
  if (has('wrk') && rate === undefined) {
    const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', url];
    if (delayMs !== undefined) {
      const script = join(tmpdir(), `sluice-wrk-delay-${delayMs}.lua`);
      writeFileSync(script, `function delay() return ${delayMs} end\n`);
      args.unshift('-s', script);
    }
    // `cpus: null`: unpinned (the workers bench, where every process shares both cores).
    const full = canPin && cpus !== null ? ['taskset', ['-c', cpus, 'wrk', ...args]] : ['wrk', args];
    const r = spawnSync(full[0], full[1], { encoding: 'utf8' });
    const out = r.stdout;
    const num = (re) => Number(re.exec(out)?.[1] ?? NaN);
    const lat = (p) => {
      const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
      return m ? toMs(m[1], m[2]) : NaN;
    };
    const non2xx = num(/Non-2xx or 3xx responses: (\d+)/) || 0;
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const sockErr = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
    return {
      tool: 'wrk',
      rps: num(/Requests\/sec:\s+([\d.]+)/),
      requests: num(/(\d+) requests in/),
      p50: lat(50),
      p99: lat(99),
      errors: non2xx + sockErr,
    };
  }
  const { default: autocannon } = await import('autocannon');
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    ...(rate === undefined ? {} : { overallRate: rate }),
  });
  return {
    tool: 'autocannon',
    rps: r.requests.average,
    requests: r.requests.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

/**
 * The open-loop generator (bench/openloop.c: Poisson arrivals, latency from each request's
 * scheduled time), compiled into `dir` with the system C compiler; null when there is none.
 */
export function openLoopBin(dir) {
  const cc = ['cc', 'gcc', 'clang'].find(has);
  if (cc === undefined) return null;
  const out = join(dir, 'openloop');
  const r = spawnSync(cc, ['-O2', '-o', out, new URL('./openloop.c', import.meta.url).pathname, '-lm'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? out : null;
}

/**
 * Poisson arrivals at `rate` req/s to `url` (IPv4 literal) for `seconds` after `warmup` seconds,
 * pinned to cpu 1; returns { rps, requests, p50, p90, p99, p999, max, errors } (ms).
 */
export function loadOpenLoop(bin, url, { seconds, warmup, rate, connections = 32, seed = 1, cpus = '1' }) {
  const u = new URL(url);
  const args = [u.hostname, u.port, String(rate), String(seconds), String(warmup), String(connections), String(seed)];
  const [cmd, full] = canPin && cpus !== null ? ['taskset', ['-c', cpus, bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      const kv = Object.fromEntries([...out.matchAll(/(\w+)=([\d.]+)/g)].map((m) => [m[1], Number(m[2])]));
      if (code !== 0 || kv.requests === undefined)
        reject(new Error(`openloop exited ${code}: ${err.trim() || out.trim()}`));
      else
        resolve({
          tool: 'openloop',
          rps: kv.rps,
          requests: kv.requests,
          p50: kv.p50,
          p90: kv.p90,
          p99: kv.p99,
          p999: kv.p999,
          max: kv.max,
          errors: kv.errors,
        });
    });
  });
}

export const median = (xs) => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Pin this (the bench) process to core 1, beside the upstream and the load generator. */
export function pinSelf(cpu = 1) {
  if (canPin) spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)]);
}

/**
 * Open-loop load at a fixed `rate` (req/s) for `seconds`, latencies in microseconds (autocannon
 * records whole milliseconds, too coarse to see sub-millisecond overhead). Returns p50/p99 in ms.
 */
export async function loadAtRate(url, { seconds, rate, connections = 16 }) {
  const { Pool } = await import('undici');
  const hdr = await import('hdr-histogram-js');
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections });
  let errors = 0;
  let done = 0;
  const inflight = new Set();
  const start = performance.now();
  const end = start + seconds * 1000;
  let sent = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      if (now >= end) {
        clearInterval(timer);
        resolve();
        return;
      }
      const due = Math.floor(((now - start) / 1000) * rate);
      while (sent < due) {
        sent++;
        const t0 = performance.now();
        const p = pool
          .request({ path: u.pathname, method: 'GET' })
          .then(async (r) => {
            await r.body.dump();
            if (r.statusCode !== 200) errors++;
            h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
            done++;
          })
          .catch(() => errors++)
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
    }, 1);
  });
  await Promise.all(inflight);
  await pool.close();
  return {
    rps: done / seconds,
    requests: done,
    p50: h.getValueAtPercentile(50) / 1000,
    p99: h.getValueAtPercentile(99) / 1000,
    errors,
  };
}

/**
 * Switch a running sluice's access log (PUT /api/v1/log) on a connection of its own: a kept-alive
 * one can be closed by the admin listener's idle timeout just as the next call goes out.
 */
export function setAccessLog(admin, access) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${admin}/api/v1/log`,
      { method: 'PUT', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () =>
          res.statusCode === 200 && JSON.parse(body).access === access
            ? resolve()
            : reject(new Error(`PUT /api/v1/log answered ${res.statusCode}: ${body}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ access }));
  });
}

/**
 * Start a sluice process (pinned to core 0) in front of `blue` and `green` upstream URLs, with
 * `extra` config merged over bench defaults; resolves when both listeners accept connections.
 * `cli` runs another build (bench/ab.mjs compares two); `nodeArgs` go after the launch flags
 * (bench/profile.mjs adds --cpu-prof).
 */
export async function startSluiceProcess(
  blue,
  green,
  extra = {},
  cli = new URL('../dist/cli.js', import.meta.url).pathname,
  nodeArgs = [],
  stdout = undefined,
) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const port = await freePort();
  const adminPort = await freePort();
  const file = join(dir, 'sluice.json');
  // `extra.listen` adds to the listener (tls); the port is always the one chosen here.
  const { listen: listenExtra = {}, ...rest } = extra;
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', ...listenExtra, port },
      admin: { host: '127.0.0.1', port: adminPort },
      pools: { blue: { endpoints: [blue] }, green: { endpoints: [green] } },
      stateFile: join(dir, 'state.json'),
      audit: { file: null },
      log: { level: 'warn', access: false },
      ...rest,
    }),
  );
  const proc = startPinned(0, process.execPath, [...nodeFlags, ...nodeArgs, cli, '--config', file], {}, stdout);
  await waitPort(port);
  await waitPort(adminPort);
  return { proc, dir, port, adminPort, base: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}` };
}

/**
 * A redis-server on a free loopback port with no persistence, for the fleet benches; null (with a
 * message from the caller) where Debian's redis-server is not installed.
 */
export async function startRedisServer() {
  if (!has('redis-server')) return null;
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  await waitPort(port);
  return { proc, url: `redis://127.0.0.1:${port}` };
}
