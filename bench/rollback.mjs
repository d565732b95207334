// npm run bench:rollback: how fast sluice takes traffic off a canary that breaks mid-rollout.
// Blue and green demo upstreams with the same latency (a few ms, jittered); a sluice process with
// the default analysis (1 s interval, 10 s window); steady load from many distinct clients.
// (a) a healthy green is promoted, never rolled back; (b) green starts answering 5xx for a share
// of requests at a known instant; (c) green's latency rises past maxP95Ms. Reports the time from
// that instant to 0 % canary (from the status API, and from the last response green served) and
// the failed responses clients saw. Flags: --quick (fewer, shorter scenarios, for CI), --workers N
// (sluice's `workers`: the verdict then comes from the merge of N threads' measurements).
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { startDemoUpstream } from '../dist/demo/upstream.js';
import { startSluiceProcess, stop } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const wi = process.argv.indexOf('--workers');
const workers = wi < 0 ? 1 : Number(process.argv[wi + 1]);
const log = (s) => process.stderr.write(`${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const startSluice = (blue, green, stepHold) =>
  startSluiceProcess(blue.url, green.url, {
    split: { trustedProxies: ['127.0.0.1/32'] },
    rollout: { steps: [10, 25, 50, 100], stepHold },
    workers,
  });

/** `rps` requests a second from 50,000 distinct clients; notes green's answers and failures. */
function startLoad(base, rps) {
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
      const k = i++ % 50_000;
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

/** One scenario: start a rollout, break green at step 2 (25 %), measure until it is at 0 %. */
async function scenario({ name, rps, failRate = 0, delayMs = 0, healthy = false, stepHold }) {
  const blue = await startDemoUpstream('blue');
  const green = await startDemoUpstream('green');
  for (const u of [blue, green]) {
    u.delayMs = 3;
    u.jitterMs = 4;
  }
  const s = await startSluice(blue, green, stepHold);
  const load = startLoad(s.base, rps);
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
        outcome: st.rollout.phase,
        rollbacks: st.rollout.rollbacks,
        failed: load.st.failed.length,
        reason: st.rollout.reason,
      };
    }
    // Wait for step 2 (25 %), then break green.
    while (Date.now() < deadline && (await status(s.admin)).rollout.stepIndex < 1) await sleep(50);
    const breach = Date.now();
    green.failRate = failRate;
    green.delayMs = delayMs || green.delayMs;
    let st;
    let atZero = 0;
    while (Date.now() < deadline) {
      st = await status(s.admin);
      if (st.weights.green === 0) {
        atZero = Date.now();
        break;
      }
      await sleep(25);
    }
    await sleep(delayMs + 300); // let requests already at green finish
    const failedAfter = load.st.failed.filter((t) => t >= breach).length;
    return {
      name,
      rps,
      canaryRps: Math.round(rps * 0.25),
      outcome: st.rollout.phase,
      statusMs: atZero ? atZero - breach : NaN,
      lastGreenMs: load.st.lastGreenAt >= breach ? load.st.lastGreenAt - breach : 0,
      failed: failedAfter,
      reason: st.rollout.reason,
    };
  } finally {
    await load.stop();
    await stop(s.proc);
    await blue.close();
    await green.close();
  }
}

async function main() {
  const stepHold = quick ? '2s' : '5s';
  const list = quick
    ? [
        { name: 'healthy green', rps: 200, healthy: true },
        { name: '100 % 5xx', rps: 200, failRate: 1 },
        { name: 'p95 past maxP95Ms (800 ms)', rps: 200, delayMs: 800 },
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
  const results = [];
  for (const sc of list) {
    const r = await scenario({ ...sc, stepHold });
    results.push(r);
    log(
      `${r.name.padEnd(28)} ${String(r.rps).padStart(4)} req/s: ${r.outcome}${r.statusMs !== undefined ? `  0 % after ${r.statusMs} ms (last green answer +${r.lastGreenMs} ms), ${r.failed} failed responses` : `, ${r.failed} failed responses`}  — ${r.reason}`,
    );
  }
  const rows = results.map((r) =>
    r.statusMs === undefined
      ? `| ${r.name} | ${r.rps} | – | ${r.outcome}, ${r.rollbacks} rollbacks | – | – | ${r.failed} |`
      : `| ${r.name} | ${r.rps} | ${r.canaryRps} | ${r.outcome} | ${r.statusMs} ms | ${r.lastGreenMs} ms | ${r.failed} |`,
  );
  const md = `Rollback bench ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, default analysis (1 s interval, 10 s window, minRequests 50, maxErrorRate 1 %, maxP95Ms 500), canary broken at step 2 (25 %).\n\n| scenario | req/s | canary req/s | outcome | breach → 0 % (status API) | breach → last green answer | failed responses after the breach |\n| --- | --- | --- | --- | --- | --- | --- |\n${rows.join('\n')}\n`;
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(
    join(here, 'results', 'rollback.json'),
    JSON.stringify({ date: new Date().toISOString(), node: process.version, quick, results }, null, 2),
  );
  writeFileSync(join(here, 'results', 'rollback.md'), md);
  process.stdout.write(md);
  const bad = results.filter((r) =>
    r.statusMs === undefined ? r.outcome !== 'promoted' || r.rollbacks !== 0 : r.outcome !== 'rolled_back',
  );
  if (bad.length) {
    log(`unexpected outcomes: ${bad.map((b) => b.name).join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  log(e.stack);
  process.exit(1);
});
