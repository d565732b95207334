// Node's practical floor: node:http + undici Pool.dispatch with a minimal handler, no features.
// With HEADERS=sluice it also adds the six headers sluice adds (X-Forwarded-For/-Proto/-Host and
// X-Request-Id upstream; X-Sluice-Pool and X-Request-Id to the client) and nothing else: what those
// headers cost Node and undici, apart from sluice's own code.
// With WORKERS=n (n > 1) it runs n worker threads, each its own server on the same port with
// SO_REUSEPORT and its own Pool: the floor for a multi-threaded Node proxy (bench/workers.mjs).
import { createServer } from 'node:http';
import { Worker, isMainThread } from 'node:worker_threads';
import { Pool } from 'undici';

const threads = Number(process.env.WORKERS ?? 1);
if (isMainThread && threads > 1) {
  for (let i = 0; i < threads; i++) new Worker(new URL(import.meta.url));
  for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
} else serve();

function serve() {
  const withHeaders = process.env.HEADERS === 'sluice';
  let ids = 0;

  const pool = new Pool(process.env.UPSTREAM, { connections: 128, pipelining: 1 });
  const server = createServer((req, res) => {
    const headers = [];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i].toLowerCase();
      if (n !== 'connection' && n !== 'keep-alive' && n !== 'transfer-encoding') headers.push(raw[i], raw[i + 1]);
    }
    const id = withHeaders ? `5f3a9c1e-${(++ids).toString(36)}` : '';
    if (withHeaders)
      headers.push(
        'x-forwarded-for',
        req.socket.remoteAddress,
        'x-forwarded-proto',
        'http',
        'x-forwarded-host',
        req.headers.host,
        'x-request-id',
        id,
      );
    pool.dispatch(
      { path: req.url, method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req },
      {
        onConnect() {},
        onHeaders(status, rawHeaders, resume) {
          const out = [];
          for (let i = 0; i < rawHeaders.length; i += 2) {
            const n = rawHeaders[i].toString('latin1');
            if (n.toLowerCase() !== 'connection' && n.toLowerCase() !== 'keep-alive')
              out.push(n, rawHeaders[i + 1].toString('latin1'));
          }
          if (withHeaders) out.push('x-sluice-pool', 'blue', 'x-request-id', id);
          res.writeHead(status, out);
          this.resume = resume;
          return true;
        },
        onData(chunk) {
          if (res.write(chunk)) return true;
          res.once('drain', this.resume);
          return false;
        },
        onComplete() {
          res.end();
        },
        onError() {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        },
      },
    );
  });
  server.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1', reusePort: threads > 1 }, () =>
    process.stdout.write(`listening ${server.address().port}\n`),
  );

  // Exit cleanly on SIGINT/SIGTERM (so --cpu-prof writes its profile).
  if (isMainThread) for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
}
