// npm run bench:rollback: how fast sluice takes traffic off a canary that breaks mid-rollout.
// Blue and green demo upstreams with the same latency (a few ms, jittered); a sluice process with
// the default analysis (1 s interval, 10 s window); steady load from many distinct clients.
// (a) a healthy green is promoted, never rolled back; (b) green starts answering 5xx for a share
// of requests at a known instant; (c) green's latency rises past maxP95Ms. Reports the time from
// that instant to 0 % canary (from the status API, and from the last response green served) and
// the failed responses clients saw. Flags: --quick (fewer, shorter scenarios, for CI), --workers N
// (sluice's `workers`: the verdict then comes from the merge of N threads' measurements), --fleet N
// (N sluice processes sharing one rollout through a redis-server started here, the load split
// evenly over them: breach → 0 % on every instance, against the same scenarios on one instance,
// and the time for a survivor to take over from a leader killed with SIGKILL), --retry (a canary
// failing every GET at the first step, 10 %, with retry.toStable on and off: failed responses),
// --seq (the sequential check: a canary failing every request at 10 %, retry off so that each
// failure reaches a client as a non-idempotent one would, at 100, 400 and 1,000 req/s), --dist DIR
// (run another build's dist/cli.js, for a before/after in one session).
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { startDemoUpstream } from '../dist/demo/upstream.js';
import { startRedisServer, startSluiceProcess, stop } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const wi = process.argv.indexOf('--workers');
const workers = wi < 0 ? 1 : Number(process.argv[wi + 1]);
const di = process.argv.indexOf('--dist');
const cli = di < 0 ? undefined : join(process.argv[di + 1], 'cli.js');
const fi = process.argv.indexOf('--fleet');
const fleetSize = fi < 0 ? 0 : Number(process.argv[fi + 1]);
if (fi >= 0 && !(Number.isInteger(fleetSize) && fleetSize >= 2)) {
  process.stderr.write('--fleet takes a number of instances, 2 or more\n');
  process.exit(2);
}
let redis = null;
let fleets = 0;
const log = (s) => process.stderr.write(`${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `instances` sluice processes; with more than one, they form a fleet of their own name. */
async function startSluices(blue, green, stepHold, instances, retry = true) {
  const name = `bench-${process.pid}-${++fleets}`;
  const list = [];
  for (let i = 0; i < instances; i++)
    list.push(
      await startSluiceProcess(
        blue.url,
        green.url,
        {
          split: { trustedProxies: ['127.0.0.1/32'] },
          rollout: { steps: [10, 25, 50, 100], stepHold },
          retry: { toStable: retry },
          workers,
          ...(instances > 1 ? { fleet: { redis: redis.url, name } } : {}),
        },
        cli,
      ),
    );
  return list;
}

/** `rps` requests a second from 50,000 distinct clients; notes green's answers and failures. */
function startLoad(base, rps, clientBase = 0) {
  const agent = new Agent({ connections: 32 });
  const st = { running: true, green: 0, blue: 0, failed: [], lastGreenAt: 0, sent: 0 };
  const tickMs = 10;
  const perTick = rps / (1000 / tickMs);
  let credit = 0;
  let i = 0;
  const timer = setInterval(() => {
    credit += perTick;
    while (credit >= 1) {
      credit -= 1;
      const k = clientBase + (i++ % 50_000);
      st.sent++;
      request(`${base}/api`, {
        dispatcher: agent,
        headers: { 'x-forwarded-for': `10.${k >> 16}.${(k >> 8) & 255}.${k & 255}` },
      })
        .then(async (r) => {
          await r.body.dump();
          const now = Date.now();
          if (r.headers['x-sluice-pool'] === 'green') {
            st.green++;
            st.lastGreenAt = now;
          } else st.blue++;
          if (r.statusCode >= 500) st.failed.push(now);
        })
        .catch(() => st.failed.push(Date.now()));
    }
  }, tickMs);
  return {
    st,
    stop: async () => {
      if (!st.running) return;
      st.running = false;
      clearInterval(timer);
      await sleep(200);
      await agent.close();
    },
  };
}

async function status(admin) {
  const r = await request(`${admin}/api/v1/status`);
  return r.body.json();
}

async function post(admin, path) {
  const r = await request(`${admin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  const body = await r.body.json();
  if (r.statusCode !== 200) throw new Error(`${path}: ${r.statusCode} ${JSON.stringify(body)}`);
  return body;
}

/** Loads spread over the instances (distinct clients each); their counts added up. */
function startLoads(list, rps) {
  const loads = list.map((s, i) => startLoad(s.base, rps / list.length, i * 50_000));
  const sum = (f) => loads.reduce((n, l) => n + f(l.st), 0);
  return {
    loads,
    failedSince: (t) => sum((st) => st.failed.filter((x) => x >= t).length),
    lastGreenAt: () => Math.max(...loads.map((l) => l.st.lastGreenAt)),
    stop: () => Promise.all(loads.map((l) => l.stop())),
  };
}

/** One scenario: start a rollout, break green at step 2 (25 %), measure until it is at 0 % everywhere. */
async function scenario({
  name,
  rps,
  failRate = 0,
  delayMs = 0,
  healthy = false,
  stepHold,
  instances = 1,
  atStep = 1,
  retry = true,
}) {
  const blue = await startDemoUpstream('blue');
  const green = await startDemoUpstream('green');
  for (const u of [blue, green]) {
    u.delayMs = 3;
    u.jitterMs = 4;
  }
  const list = await startSluices(blue, green, stepHold, instances, retry);
  const s = list[0];
  const load = startLoads(list, rps);
  try {
    await sleep(1500);
    await post(s.admin, '/api/v1/rollout/start');
    const deadline = Date.now() + (healthy ? 120_000 : 60_000);
    if (healthy) {
      let st;
      while (Date.now() < deadline) {
        st = await status(s.admin);
        if (st.rollout.phase !== 'progressing') break;
        await sleep(100);
      }
      return {
        name,
        rps,
        instances,
        outcome: st.rollout.phase,
        rollbacks: st.rollout.rollbacks,
        failed: load.failedSince(0),
        reason: st.rollout.reason,
      };
    }
    // Wait for the step (default 2: 25 %) on every instance, then break green.
    const all = () => Promise.all(list.map((x) => status(x.admin)));
    while (Date.now() < deadline && (await all()).some((x) => x.rollout.stepIndex < atStep)) await sleep(50);
    const breach = Date.now();
    green.failRate = failRate;
    green.delayMs = delayMs || green.delayMs;
    const zeroAt = list.map(() => 0);
    let st = [];
    while (Date.now() < deadline && zeroAt.some((z) => z === 0)) {
      st = await all();
      st.forEach((x, i) => {
        if (zeroAt[i] === 0 && x.weights.green === 0) zeroAt[i] = Date.now();
      });
      await sleep(25);
    }
    await sleep(delayMs + 300); // let requests already at green finish
    const done = zeroAt.every((z) => z > 0);
    return {
      name,
      rps,
      instances,
      canaryRps: Math.round(rps * [0.1, 0.25, 0.5][atStep]),
      retry,
      outcome: st[0]?.rollout.phase,
      statusMs: done ? Math.max(...zeroAt) - breach : NaN,
      firstMs: done ? Math.min(...zeroAt) - breach : NaN,
      lastGreenMs: load.lastGreenAt() >= breach ? load.lastGreenAt() - breach : 0,
      failed: load.failedSince(breach),
      reason: st[0]?.rollout.reason,
    };
  } finally {
    await load.stop();
    await Promise.all(list.map((x) => stop(x.proc)));
    await blue.close();
    await green.close();
  }
}

/** A fleet mid-rollout loses its leader to SIGKILL: how long until a survivor leads and decides. */
async function failover({ rps, stepHold, instances }) {
  const blue = await startDemoUpstream('blue');
  const green = await startDemoUpstream('green');
  const list = await startSluices(blue, green, stepHold, instances);
  const load = startLoads(list, rps);
  try {
    await sleep(1500);
    await post(list[0].admin, '/api/v1/rollout/start');
    await sleep(2000);
    const before = await Promise.all(list.map((x) => status(x.admin)));
    const li = before.findIndex((x) => x.fleet?.leader);
    // Clients of the killed instance would go elsewhere through the balancer: stop them first.
    await load.loads[li].stop();
    const killed = Date.now();
    list[li].proc.kill('SIGKILL');
    const rest = list.filter((_, i) => i !== li);
    let tookOverMs = NaN;
    let decidedMs = NaN;
    let epoch = NaN;
    while (Date.now() - killed < 30_000 && Number.isNaN(decidedMs)) {
      const now = await Promise.all(rest.map((x) => status(x.admin)));
      const lead = now.find((x) => x.fleet?.leader);
      if (lead && Number.isNaN(tookOverMs)) {
        tookOverMs = Date.now() - killed;
        epoch = lead.fleet.epoch;
      }
      // Deciding: the new leader's verdict summary is newer than the kill.
      if (lead && (lead.fleet.summary?.at ?? 0) > killed) decidedMs = Date.now() - killed;
      await sleep(25);
    }
    return {
      instances,
      rps,
      tookOverMs,
      decidedMs,
      epochs: `${before[li].fleet.epoch} → ${epoch}`,
      failed: load.loads.filter((_, i) => i !== li).reduce((n, l) => n + l.st.failed.length, 0),
    };
  } finally {
    await load.stop();
    await Promise.all(list.map((x) => stop(x.proc)));
    await blue.close();
    await green.close();
  }
}

async function main() {
  const stepHold = quick ? '2s' : '5s';
  if (fleetSize) {
    redis = await startRedisServer();
    if (redis === null) {
      log('--fleet: redis-server is not installed (apt-get install redis-server); skipped');
      return;
    }
  }
  const base = quick
    ? [
        { name: 'healthy green', rps: 200, healthy: true },
        { name: '100 % 5xx', rps: 200, failRate: 1 },
        { name: 'p95 past maxP95Ms (800 ms)', rps: 200, delayMs: 800 },
      ]
    : fleetSize
      ? [
          { name: '100 % 5xx', rps: 300, failRate: 1 },
          { name: '20 % 5xx', rps: 300, failRate: 0.2 },
          { name: '5 % 5xx', rps: 300, failRate: 0.05 },
          { name: 'p95 past maxP95Ms (800 ms)', rps: 300, delayMs: 800 },
        ]
      : [
          { name: 'healthy green', rps: 200, healthy: true },
          { name: '100 % 5xx', rps: 100, failRate: 1 },
          { name: '100 % 5xx', rps: 400, failRate: 1 },
          { name: '20 % 5xx', rps: 100, failRate: 0.2 },
          { name: '20 % 5xx', rps: 400, failRate: 0.2 },
          { name: '5 % 5xx', rps: 100, failRate: 0.05 },
          { name: '5 % 5xx', rps: 400, failRate: 0.05 },
          { name: 'p95 past maxP95Ms (800 ms)', rps: 100, delayMs: 800 },
          { name: 'p95 past maxP95Ms (800 ms)', rps: 400, delayMs: 800 },
        ];
  // With --fleet N: each scenario on one instance, then on N sharing the same total load.
  // With --retry: the first step (10 %) failing every GET, with retry.toStable and without.
  const retryRuns = process.argv.includes('--retry');
  const seqRuns = process.argv.includes('--seq');
  const list = seqRuns
    ? [100, 400, 1000].map((rps) => ({
        name: '100 % 5xx at 10 %, retry off',
        rps,
        failRate: 1,
        atStep: 0,
        retry: false,
      }))
    : retryRuns
      ? [100, 400].flatMap((rps) =>
          [true, false].map((retry) => ({
            name: `100 % 5xx at 10 %, retry ${retry ? 'on' : 'off'}`,
            rps,
            failRate: 1,
            atStep: 0,
            retry,
          })),
        )
      : fleetSize
        ? base.flatMap((sc) => [sc, { ...sc, instances: fleetSize }])
        : base;
  const results = [];
  for (const sc of list) {
    const r = await scenario({ ...sc, stepHold });
    results.push(r);
    log(
      `${r.name.padEnd(28)} ${String(r.rps).padStart(4)} req/s ×${r.instances}: ${r.outcome}${r.statusMs !== undefined ? `  0 % everywhere after ${r.statusMs} ms (first ${r.firstMs} ms; last green answer +${r.lastGreenMs} ms), ${r.failed} failed responses` : `, ${r.failed} failed responses`}  — ${r.reason}`,
    );
  }
  const failovers = [];
  if (fleetSize) {
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      const f = await failover({ rps: 300, stepHold: '10m', instances: fleetSize });
      failovers.push(f);
      log(
        `leader SIGKILLed, ${fleetSize} instances: a survivor leads after ${f.tookOverMs} ms and decides after ${f.decidedMs} ms (epoch ${f.epochs}); ${f.failed} failed responses on the survivors`,
      );
    }
  }
  const rows = results.map((r) =>
    r.statusMs === undefined
      ? `| ${r.name} | ${r.instances} | ${r.rps} | – | ${r.outcome}, ${r.rollbacks} rollbacks | – | – | ${r.failed} |`
      : `| ${r.name} | ${r.instances} | ${r.rps} | ${r.canaryRps} | ${r.outcome} | ${r.statusMs} ms${r.instances > 1 ? ` (first ${r.firstMs} ms)` : ''} | ${r.lastGreenMs} ms | ${r.failed} |`,
  );
  const fo = failovers.length
    ? `\nLeader killed with SIGKILL mid-rollout (lease 3 s, analysis interval 1 s), ${fleetSize} instances, 300 req/s over the survivors:\n\n| run | a survivor leads after | its first verdict after | epoch | failed responses (survivors) |\n| --- | --- | --- | --- | --- |\n${failovers.map((f, i) => `| ${i + 1} | ${f.tookOverMs} ms | ${f.decidedMs} ms | ${f.epochs} | ${f.failed} |`).join('\n')}\n`
    : '';
  const md = `Rollback bench ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, default analysis (1 s interval, 10 s window, minRequests 50, maxErrorRate 1 %, maxP95Ms 500), canary broken at ${seqRuns ? 'step 1 (10 %), retry.toStable off' : retryRuns ? 'step 1 (10 %), with retry.toStable on and off' : 'step 2 (25 %)'}${fleetSize ? `; the same total load on one instance and on a fleet of ${fleetSize} (split evenly)` : ''}.\n\n| scenario | instances | req/s | canary req/s | outcome | breach → 0 % on every instance (status API) | breach → last green answer | failed responses after the breach |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n${rows.join('\n')}\n${fo}`;
  mkdirSync(join(here, 'results'), { recursive: true });
  const file = seqRuns ? 'rollback-seq' : retryRuns ? 'rollback-retry' : fleetSize ? 'rollback-fleet' : 'rollback';
  writeFileSync(
    join(here, 'results', `${file}.json`),
    JSON.stringify(
      { date: new Date().toISOString(), node: process.version, quick, fleetSize, results, failovers },
      null,
      2,
    ),
  );
  writeFileSync(join(here, 'results', `${file}.md`), md);
  process.stdout.write(md);
  const bad = results.filter((r) =>
    r.statusMs === undefined ? r.outcome !== 'promoted' || r.rollbacks !== 0 : r.outcome !== 'rolled_back',
  );
  const badFailover = failovers.filter((f) => Number.isNaN(f.decidedMs));
  if (bad.length || badFailover.length) {
    log(`unexpected outcomes: ${[...bad.map((b) => b.name), ...badFailover.map(() => 'failover')].join(', ')}`);
    process.exitCode = 1;
  }
}

main()
  .catch((e) => {
    log(e.stack);
    process.exitCode = 1;
  })
  .finally(() => redis?.proc.kill('SIGKILL'));
