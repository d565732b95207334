/** A real redis-server for a test: a free loopback port, no persistence; kill and restart it empty. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';

export interface TestRedis {
  port: number;
  url: string;
  /** SIGKILL it (an outage). */
  kill(): Promise<void>;
  /** Start it again on the same port, empty. */
  restart(): Promise<void>;
  /** Start it again if a test killed it and failed before bringing it back (afterEach). */
  ensureUp(): Promise<void>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function up(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        r(true);
      });
      c.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not listen on ${port}`);
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    await up(port);
  };
  const kill = async () => {
    const p = proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  await launch();
  const ensureUp = async () => {
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) await launch();
  };
  return { port, url: `redis://127.0.0.1:${port}`, kill, restart: launch, ensureUp, close: kill };
}
