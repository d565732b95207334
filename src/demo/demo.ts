/**
 * `npm run demo`: the whole story in about a minute, needing nothing but this package.
 *   Two demo upstreams (blue runs v1, green gets v2), sluice in front, steady load from many
 *   distinct clients. Act 1: v2 rolls out 10 → 25 → 50 → 100 % and is promoted. Act 2: v3, a bad
 *   release, goes to the idle pool and starts failing mid-rollout; sluice snaps back by itself.
 * Flags: --fast (CI: shorter holds), --keep (keep serving after the story, until Ctrl-C),
 *        --port N (proxy, default 8080), --admin-port N (default 9901), --rps N (default 200).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parseConfig } from '../core/config.js';
import { createLogger } from '../core/log.js';
import { startSluice, type Sluice } from '../main.js';
import type { HistoryEntry } from '../control/state.js';
import { startDemoUpstream, type DemoUpstream } from './upstream.js';

const argv = process.argv.slice(2);
const has = (f: string) => argv.includes(f);
function num(name: string, def: number): number {
  const i = argv.indexOf(name);
  const v = i >= 0 ? Number(argv[i + 1]) : NaN;
  return Number.isFinite(v) ? v : def;
}

const fast = has('--fast');
const keep = has('--keep');
const rps = num('--rps', 200);
const t0 = Date.now();
const say = (s: string) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${s}\n`);

/** Steady load: `rps` requests a second from 20,000 distinct client addresses. */
function startLoad(base: string) {
  const agent = new Agent({ connections: 16 });
  const counts = { blue: 0, green: 0, failed: 0 };
  let running = true;
  let n = 0;
  const perWorker = 16;
  const gap = (1000 * perWorker) / rps;
  const worker = async () => {
    while (running) {
      const started = Date.now();
      const i = n++ % 20_000;
      try {
        const r = await request(`${base}/api/orders`, {
          dispatcher: agent,
          headers: { 'x-forwarded-for': `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` },
        });
        await r.body.dump();
        const pool = r.headers['x-sluice-pool'];
        if (r.statusCode >= 500) counts.failed++;
        else if (pool === 'blue' || pool === 'green') counts[pool]++;
      } catch {
        counts.failed++;
      }
      const wait = gap - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  };
  const workers = Array.from({ length: perWorker }, worker);
  return {
    counts,
    stop: async () => {
      running = false;
      await Promise.all(workers);
      await agent.close();
    },
  };
}

function narrate(sluice: Sluice): void {
  sluice.controller.onChange((s) => {
    const e: HistoryEntry | undefined = s.history[0];
    if (e === undefined || e.at < t0) return;
    const split = `blue ${s.weights.blue}% / green ${s.weights.green}%`;
    say(`${e.event.replace('_', ' ').padEnd(11)} ${split.padEnd(24)} ${e.reason ?? ''}`);
  });
}

async function waitFor(sluice: Sluice, phase: string, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (sluice.controller.state.phase === phase) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

async function main(): Promise<void> {
  const blue = await startDemoUpstream('blue');
  const green = await startDemoUpstream('green');
  green.version = 'v2';
  for (const u of [blue, green]) {
    u.delayMs = 2;
    u.jitterMs = 4;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
  const config = parseConfig({
    listen: { host: '127.0.0.1', port: num('--port', 8080) },
    admin: { host: '127.0.0.1', port: num('--admin-port', 9901) },
    pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } },
    // The demo's clients come from loopback: trust its X-Forwarded-For so each simulated address is its own key.
    split: { trustedProxies: ['127.0.0.1/32', '::1/128'] },
    rollout: {
      steps: [10, 25, 50, 100],
      stepHold: fast ? '1s' : '4s',
      analysis: {
        interval: fast ? '250ms' : '500ms',
        window: fast ? '2s' : '5s',
        minRequests: 30,
        maxErrorRate: 0.01,
        maxP95Ms: 250,
      },
    },
    healthCheck: { path: '/health', interval: '1s' },
    stateFile: join(dir, 'state.json'),
    audit: { file: join(dir, 'audit.jsonl') },
    log: { level: 'silent', access: false },
    shutdownGrace: '2s',
  });
  let sluice: Sluice;
  try {
    sluice = await startSluice(config, { logger: createLogger('silent') });
  } catch (err) {
    process.stderr.write(
      `demo: cannot start sluice: ${(err as Error).message} (is port ${config.listen.port} or ${config.admin.port} in use? try --port 0 --admin-port 0)\n`,
    );
    process.exit(1);
  }
  const base = `http://127.0.0.1:${sluice.proxyPort}`;
  const admin = `http://127.0.0.1:${sluice.adminPort}`;
  process.stdout.write(
    `\nsluice demo\n  proxy      ${base}   (try: curl -s ${base}/hello)\n  live page  ${admin}/   (open it now)\n  cli        node dist/cli.js status --admin-url ${admin}\n\n`,
  );

  const load = startLoad(base);
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await load.stop();
    await sluice.stop();
    await Promise.all([blue.close(), green.close()]);
    say('demo stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  say(`steady load: ${rps} req/s from 20,000 distinct clients; blue runs v1 and takes everything`);
  await new Promise((r) => setTimeout(r, fast ? 1000 : 2500));
  narrate(sluice);

  // Act 1: a healthy release.
  say('ACT 1: v2 is deployed to green; rollout starts (10 → 25 → 50 → 100 %), judged every interval');
  sluice.controller.command({ type: 'start' }, 'demo');
  if (!(await waitFor(sluice, 'promoted', 90_000))) {
    say(`expected a promotion, phase is ${sluice.controller.state.phase}`);
    return stop(1);
  }
  say(`v2 promoted: green is now stable; ${load.counts.failed} failed responses so far`);

  // Act 2: a bad release to the idle pool, which is now blue (the canary).
  const canary: DemoUpstream = sluice.controller.state.stable === 'green' ? blue : green;
  const canaryName = canary === blue ? 'blue' : 'green';
  canary.version = 'v3';
  const failedBefore = load.counts.failed;
  say(
    `ACT 2: v3 goes to ${canaryName}, the idle pool and now the canary; it will start failing 30 % of requests at step 2`,
  );
  sluice.controller.command({ type: 'start' }, 'demo');
  let breachAt = 0;
  const watch = sluice.controller.onChange((s) => {
    if (breachAt === 0 && s.phase === 'progressing' && s.stepIndex >= 1) {
      breachAt = Date.now();
      canary.failRate = 0.3;
      say(`v3 on ${canaryName} starts failing 30 % of its requests`);
    }
  });
  if (!(await waitFor(sluice, 'rolled_back', 60_000))) {
    say(`expected a rollback, phase is ${sluice.controller.state.phase}`);
    return stop(1);
  }
  watch();
  const tookMs = Date.now() - breachAt;
  say(
    `rolled back by itself ${tookMs} ms after v3 started failing; ${load.counts.failed - failedBefore} client requests failed in between`,
  );
  canary.failRate = 0;
  say(`summary: blue answered ${load.counts.blue}, green ${load.counts.green}, failed ${load.counts.failed}`);
  if (keep) {
    say(
      `still serving (--keep): the live page is ${admin}/, the history \`node dist/cli.js history --admin-url ${admin}\`; Ctrl-C to stop`,
    );
    return;
  }
  // The sluice stops with the demo: its story is in the history it printed as it went.
  say('to look around afterwards, run it again with `npm run demo -- --keep` (the live page and the CLI stay up)');
  await stop(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
