/**
 * The bench's open-loop generator (bench/openloop.c), compiled with the system C compiler, against
 * real node:http servers: it must read Content-Length and chunked answers, count non-2xx/3xx
 * answers as errors, survive servers that close after each answer, and account for every request
 * it scheduled. Skipped without a C compiler (the bench then measures with wrk only).
 */
import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

const source = new URL('../../bench/openloop.c', import.meta.url).pathname;
const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);

interface Result {
  code: number | null;
  stderr: string;
  kv: Record<string, number>;
}

function run(bin: string, args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) =>
      resolve({
        code,
        stderr: err,
        kv: Object.fromEntries([...out.matchAll(/(\w+)=([\d.]+)/g)].map((m) => [m[1], Number(m[2])])),
      }),
    );
  });
}

describe.skipIf(cc === undefined)('bench/openloop.c', () => {
  let bin = '';
  let server: Server | undefined;
  let seen = 0;

  beforeAll(() => {
    bin = join(mkdtempSync(join(tmpdir(), 'sluice-openloop-')), 'openloop');
    const r = spawnSync(cc as string, ['-O2', '-Wall', '-o', bin, source, '-lm'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
    seen = 0;
  });

  const serve = async (answer: (res: ServerResponse, n: number) => void): Promise<string> => {
    server = createServer((req, res) => {
      req.resume();
      answer(res, seen++);
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
    return String((server!.address() as AddressInfo).port);
  };

  it('reads Content-Length and chunked answers and accounts for every scheduled request', async () => {
    const port = await serve((res, n) => {
      if (n % 3 === 0) {
        res.write('hello ');
        res.end('world'); // no length: chunked
      } else res.end('hello world');
    });
    const r = await run(bin, ['127.0.0.1', port, '400', '1', '0.25', '8', '7']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.kv.errors).toBe(0);
    expect(r.kv.requests).toBeGreaterThan(0);
    expect(r.kv.requests).toBe(r.kv.scheduled);
    expect(seen).toBeGreaterThanOrEqual(r.kv.requests as number); // plus the warm-up's
    expect(r.kv.p50).toBeGreaterThan(0);
    expect(r.kv.p99).toBeGreaterThanOrEqual(r.kv.p50 as number);
  });

  it('counts 5xx answers as errors, not latencies', async () => {
    const port = await serve((res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    const r = await run(bin, ['127.0.0.1', port, '300', '0.5', '0.1', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.kv.requests).toBe(0);
    expect(r.kv.errors).toBe(r.kv.scheduled);
    expect(r.kv.errors).toBeGreaterThan(0);
  });

  it('reconnects when the server closes after each answer', async () => {
    const port = await serve((res) => {
      res.setHeader('connection', 'close');
      res.end('bye');
    });
    const r = await run(bin, ['127.0.0.1', port, '200', '0.5', '0.1', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.kv.errors).toBe(0);
    expect(r.kv.requests).toBe(r.kv.scheduled);
    expect(r.kv.requests).toBeGreaterThan(0);
  });

  it('refuses bad arguments with exit 2', async () => {
    expect((await run(bin, ['127.0.0.1'])).code).toBe(2);
    expect((await run(bin, ['localhost', '80', '100', '1', '0', '4'])).code).toBe(2);
    expect((await run(bin, ['127.0.0.1', '80', '0', '1', '0', '4'])).code).toBe(2);
  });
});
