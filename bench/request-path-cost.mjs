// What sluice's own request-path functions cost per call, in-process (no sockets): request
// preparation (header scan, key, hash, pool choice, forwarding headers), the response-header
// rewrite, recording, and an access-log line (into a sink that drops it). The socket-level cost
// per request is npm run bench's job.
// Usage: npm run build && node bench/request-path-cost.mjs
import { parseConfig } from '../dist/core/config.js';
import { createLogger } from '../dist/core/log.js';
import { AccessLog } from '../dist/data/access-log.js';
import { responseHeaders } from '../dist/data/headers.js';
import { ProxyServer } from '../dist/data/proxy.js';
import { makeTable, TablePublisher } from '../dist/data/table.js';
import { UpstreamPool } from '../dist/data/upstream.js';
import { Recorder } from '../dist/stats/recorder.js';

const urls = { blue: 'http://127.0.0.1:1', green: 'http://127.0.0.1:2' };
const config = parseConfig({ pools: { blue: { endpoints: [urls.blue] }, green: { endpoints: [urls.green] } } });
const opts = {
  connections: 1,
  connectTimeout: 1000,
  headersTimeout: 1000,
  bodyTimeout: 1000,
  ejectAfter: 3,
  ejectFor: 1000,
};
const pools = [
  new UpstreamPool(0, 'blue', [urls.blue], opts, Date.now),
  new UpstreamPool(1, 'green', [urls.green], opts, Date.now),
];
const recorder = new Recorder();
const proxy = new ProxyServer({
  config,
  table: new TablePublisher(makeTable(1, 'blue', { blue: 90, green: 10 })),
  pools,
  recorder,
  accessLog: new AccessLog({ write() {} }),
  logger: createLogger('silent'),
});
// What wrk sends, and what nginx answers (as undici hands it over: Buffers).
const req = { url: '/', method: 'GET', rawHeaders: ['Host', '127.0.0.1:8080'], socket: { remoteAddress: '127.0.0.1' } };
const upstreamHeaders = [
  'Server',
  'nginx/1.22.1',
  'Date',
  'Sun, 22 Nov 2026 10:54:12 GMT',
  'Content-Type',
  'text/plain',
  'Content-Length',
  '11',
  'Connection',
  'keep-alive',
].map((s) => Buffer.from(s, 'latin1'));

function time(name, fn, n = 2_000_000) {
  for (let i = 0; i < n / 10; i++) fn(i);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return [name, +(Number(process.hrtime.bigint() - t) / n).toFixed(1)];
}
const meta = { bodyLength: -1 };
const accessLog = new AccessLog({ write() {} });
const ids = Array.from({ length: 1024 }, (_, i) => `5f3a9c1e-${i.toString(36)}`);
const t0 = Date.now();
const result = Object.fromEntries([
  time('prepareNs', () => proxy.prepare(req)),
  time('responseHeadersNs', () => responseHeaders(upstreamHeaders, meta)),
  time('recordNs', (i) => recorder.record(i & 1, 200, 300 + (i & 1023), undefined)),
  // About 20 lines a millisecond, as at 20k req/s.
  time('accessLogNs', (i) =>
    accessLog.log(
      t0 + (i >> 4),
      ids[i & 1023],
      'GET',
      '/',
      200,
      'blue',
      urls.blue,
      0.3 + (i & 1023) / 1e4,
      '127.0.0.1',
      undefined,
    ),
  ),
]);
console.log(JSON.stringify(result));
proxy.server.close();
for (const p of pools) p.destroy();
