// http-proxy-3 as a plain HTTP reverse proxy with a keep-alive agent: what a Node user might pick.
import { createServer, Agent } from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const proxy = createProxyServer({
  target: process.env.UPSTREAM,
  agent: new Agent({ keepAlive: true, maxSockets: 128 }),
  xfwd: true,
});
proxy.on('error', (_e, _req, res) => {
  try {
    res.writeHead?.(502);
    res.end?.();
  } catch {}
});
const server = createServer((req, res) => proxy.web(req, res));
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () =>
  process.stdout.write(`listening ${server.address().port}\n`),
);

// Exit cleanly on SIGINT/SIGTERM (so --cpu-prof writes its profile).
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
