// @fastify/http-proxy (fastify 5 + @fastify/reply-from over undici, its defaults: a pool of up to
// 128 keep-alive connections): the other proxy a Node user might pick. A dev dependency; the bench
// skips it when it is not installed.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const app = Fastify({ logger: false });
await app.register(proxy, { upstream: process.env.UPSTREAM });
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.stdout.write(`listening ${app.server.address().port}\n`);

// Exit cleanly on SIGINT/SIGTERM (so --cpu-prof writes its profile).
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
