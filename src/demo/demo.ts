/**
 * `npm run demo`: two demo upstreams (blue, green), sluice in front, and a split you can see.
 * Flags: --duration <s> (stop by itself), --port <n> (proxy, default 8080), --admin-port <n>.
 */
import { parseConfig } from '../core/config.js';
import { createLogger } from '../core/log.js';
import { startSluice } from '../main.js';
import { startDemoUpstream } from './upstream.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) ? v : def;
}

async function main(): Promise<void> {
  const duration = flag('--duration', 0);
  const port = flag('--port', 8080);
  const adminPort = flag('--admin-port', 9901);
  const blue = await startDemoUpstream('blue');
  const green = await startDemoUpstream('green');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
  const config = parseConfig({
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: adminPort },
    pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } },
    // The demo's load comes from loopback: trust its X-Forwarded-For so each simulated client
    // address is its own key.
    split: { initialCanaryWeight: 20, trustedProxies: ['127.0.0.1/32', '::1/128'] },
    healthCheck: { path: '/health' },
    stateFile: join(dir, 'state.json'),
    audit: { file: join(dir, 'audit.jsonl') },
    log: { level: 'warn', access: false },
    shutdownGrace: '2s',
  });
  const sluice = await startSluice(config, { logger: createLogger('warn') });
  const base = `http://127.0.0.1:${sluice.proxyPort}`;
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say(`sluice demo: proxy ${base}  admin http://127.0.0.1:${sluice.adminPort}`);
  say(`  blue upstream ${blue.url}, green upstream ${green.url}; green (the canary) gets 20 %`);

  // 1,000 distinct clients (simulated addresses in X-Forwarded-For): about 20 % land on green.
  const counts = { blue: 0, green: 0 };
  for (let i = 0; i < 1000; i++) {
    const r = await fetch(`${base}/hello`, { headers: { 'x-forwarded-for': `10.0.${i >> 8}.${i & 255}` } });
    const j = (await r.json()) as { color: 'blue' | 'green' };
    counts[j.color]++;
  }
  say(`  1000 distinct clients: blue ${counts.blue}, green ${counts.green} (weights 80/20)`);
  // One client, many requests: always the same pool.
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`${base}/hello`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    seen.add(((await r.json()) as { color: string }).color);
  }
  say(`  one client, 50 requests: ${[...seen].join(', ')} every time (sticky)`);
  say(`  try:  curl -s ${base}/hello            (your address decides the pool)`);
  say(`        curl -s -H 'x-sluice-pool: green' ${base}/hello   (force a pool)`);
  say(`        node dist/cli.js status --admin-url http://127.0.0.1:${sluice.adminPort}`);
  say(`        node dist/cli.js weights green=50 --admin-url http://127.0.0.1:${sluice.adminPort}`);
  say(duration > 0 ? `  stopping in ${duration}s` : '  Ctrl-C to stop');

  const stop = async () => {
    await sluice.stop();
    await Promise.all([blue.close(), green.close()]);
    say('demo stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  if (duration > 0) setTimeout(() => void stop(), duration * 1000);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
