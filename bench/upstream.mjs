// A cheap upstream for benches: 11-byte answers, keep-alive. PORT from the environment.
import { createServer } from 'node:http';

const body = Buffer.from('hello world');
const server = createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
