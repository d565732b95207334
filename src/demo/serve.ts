#!/usr/bin/env node
/**
 * One demo upstream as a program, for deploy/docker-compose.yml's blue and green services (the
 * sluice image runs it with another entrypoint): the same server `npm run demo` starts in-process.
 *
 *   node dist/demo/serve.js <color> [port]     env: DEMO_VERSION, DEMO_FAIL_RATE (0-1), DEMO_DELAY_MS, DEMO_HOST
 *
 * DEMO_FAIL_RATE=0.2 on green makes a rollout fail its analysis and roll back, to see it happen.
 */
import { startDemoUpstream } from './upstream.js';

const [color, portText = '3000'] = process.argv.slice(2);
const port = Number(portText);
const failRate = Number(process.env.DEMO_FAIL_RATE ?? 0);
const delayMs = Number(process.env.DEMO_DELAY_MS ?? 2);
if (color === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: node dist/demo/serve.js <color> [port]\n');
  process.exit(2);
}
if (!(failRate >= 0 && failRate <= 1) || !(delayMs >= 0)) {
  process.stderr.write('demo: DEMO_FAIL_RATE must be 0-1 and DEMO_DELAY_MS >= 0\n');
  process.exit(2);
}
const up = await startDemoUpstream(color, port, process.env.DEMO_HOST ?? '0.0.0.0');
up.version = process.env.DEMO_VERSION ?? (color === 'green' ? 'v2' : 'v1');
up.failRate = failRate;
up.delayMs = delayMs;
up.jitterMs = delayMs * 2;
process.stdout.write(`demo upstream ${color} ${up.version} on ${up.url} (fail rate ${failRate})\n`);
// A container's stop signal: close at once (there is nothing to drain in a demo).
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void up.close().then(() => process.exit(0)));
