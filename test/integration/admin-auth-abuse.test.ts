/**
 * Admin auth that attackers cannot turn against operators (issue 15), one test per reproducer of
 * the security review, on real sockets: failed tokens never lock out a valid one; many loopback
 * addresses are one source; a flood of denials writes a bounded audit; the DNS-rebinding 403 is
 * audited; a 50 MB body behind a refusal is not read; SIGUSR1 reopens the audit file; new-token.
 */
import { mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/admin/audit.js';
import { Authenticator, sha256Hex } from '../../src/admin/auth.js';
import { DEFAULT_FAILURE_LIMITS, FailureLimiter } from '../../src/admin/rate-limit.js';
import { AdminServer } from '../../src/admin/server.js';
import { harness } from '../helpers/harness.js';
import { runCli, startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
import { startTestSluice } from '../helpers/sluice.js';
import { startUpstream } from '../helpers/upstream.js';

const h = harness();
const OPS = 'ops-secret-token';
const tokens = [{ id: 'ops', sha256: sha256Hex(OPS), role: 'operator' as const }];

async function start(extra = {}, clock?: () => number) {
  const blue = h.track(await startUpstream('blue'));
  const green = h.track(await startUpstream('green'));
  return (h.sluice = await startTestSluice(
    blue.url,
    green.url,
    { admin: { host: '127.0.0.1', port: 0, tokens }, ...extra },
    clock === undefined ? {} : { clock, autoTick: false },
  ));
}

/** One request on its own connection, from `localAddress` (any 127.x.y.z works on Linux). */
function call(
  port: number,
  method: string,
  path: string,
  opts: { token?: string; localAddress?: string; host?: string; body?: unknown } = {},
): Promise<{ status: number; headers: Record<string, unknown>; json: any }> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        localAddress: opts.localAddress,
        headers: {
          ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }),
          ...(opts.host === undefined ? {} : { host: opts.host }),
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const auditLines = (dir: string) =>
  readFileSync(join(dir, 'audit.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

describe('admin auth under attack', () => {
  it('10 bad tokens from an address, then the operator token from it: 200, and the abort goes through', async () => {
    const s = await start({ split: { initialCanaryWeight: 10 } });
    for (let i = 0; i < 10; i++)
      expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: `guess-${i}` })).status).toBe(401);
    const limited = await call(s.adminPort, 'GET', '/api/v1/status', { token: 'guess-10' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);

    expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: OPS })).status).toBe(200);
    const abort = await call(s.adminPort, 'POST', '/api/v1/rollout/abort', {
      token: OPS,
      body: { reason: 'incident' },
    });
    expect(abort.status).toBe(200);
    expect(abort.headers['retry-after']).toBeUndefined();
    expect(s.controller.state.weights.green).toBe(0);
    // The operator's successes do not reset the attacker's count.
    expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: 'guess-11' })).status).toBe(429);
  });

  it('60 guesses from 60 loopback addresses are one source: 429 after 10; the operator still gets in from any', async () => {
    const s = await start();
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++)
      statuses.push(
        (await call(s.adminPort, 'GET', '/api/v1/status', { token: `g${i}`, localAddress: `127.0.0.${i + 2}` })).status,
      );
    expect(statuses.slice(0, 10)).toEqual(new Array(10).fill(401));
    expect(statuses.slice(10)).toEqual(new Array(50).fill(429));
    for (const localAddress of ['127.0.0.2', '127.0.0.61', '127.0.0.200'])
      expect((await call(s.adminPort, 'GET', '/api/v1/status', { token: OPS, localAddress })).status).toBe(200);
  });

  it('2,000 bad-token requests write 3 audit lines whose counts add up to every denial', async () => {
    let now = Date.UTC(2026, 5, 1);
    const s = await start({}, () => now);
    const bad = () =>
      request(`${s.admin}/api/v1/status`, { headers: { authorization: 'Bearer nope' } }).then(async (r) => {
        await r.body.dump();
        return r.statusCode;
      });
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) statuses.push(...(await Promise.all(Array.from({ length: 20 }, bad))));
    expect(statuses.filter((c) => c === 401)).toHaveLength(10);
    expect(statuses.filter((c) => c === 429)).toHaveLength(1990);
    // The first denial is written at once; the others are only counted so far.
    expect(auditLines(s.dir)).toHaveLength(1);

    // The minute ends: the next denial brings the summary, then opens a new window.
    now += 60_000;
    expect(await bad()).toBe(401);
    await s.stop();
    const lines = auditLines(s.dir);
    expect(lines.map((l) => [l.action, l.count])).toEqual([
      ['GET /api/v1/status', 1],
      ['denials', 1999],
      ['GET /api/v1/status', 1],
    ]);
    expect(lines[1]).toMatchObject({
      result: 'denied',
      source: 'loopback',
      codes: { '401 unauthorized': 9, '429 too_many_failures': 1990 },
      since: new Date(Date.UTC(2026, 5, 1)).toISOString(),
    });
    expect(JSON.stringify(lines)).not.toContain('nope');
  });

  it('a foreign Host (DNS rebinding) gets 403 and is audited, on every path', async () => {
    const s = await start();
    const r = await call(s.adminPort, 'GET', '/api/v1/status', { host: 'rebind.example', token: OPS });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('forbidden_host');
    expect(auditLines(s.dir)).toEqual([
      expect.objectContaining({
        result: 'denied',
        status: 403,
        detail: 'forbidden_host',
        host: 'rebind.example',
        remote: '127.0.0.1',
        count: 1,
      }),
    ]);
    expect((await call(s.adminPort, 'GET', '/healthz', { host: 'rebind.example:9901' })).status).toBe(403);
    await s.stop();
    expect(auditLines(s.dir).map((l) => l.count)).toEqual([1, 1]);
  });
});

describe('admin request bodies behind a refusal', () => {
  const FIFTY_MB = 50 * 1024 * 1024;
  let admin: AdminServer | undefined;
  let audit: AuditLog | undefined;
  afterEach(async () => {
    await admin?.close();
    admin = undefined;
    // The server does not own its audit log (main.ts closes it): an open FileHandle left to the
    // garbage collector is an uncaught error on Node 26.
    await audit?.close();
    audit = undefined;
  });

  /** The admin server itself, with a route that echoes its body, and the bytes it read per connection. */
  async function startAdmin() {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-admin-'));
    const sockets: Socket[] = [];
    admin = new AdminServer({
      host: '127.0.0.1',
      allowedHosts: [],
      auth: new Authenticator(tokens),
      audit: (audit = new AuditLog(join(dir, 'audit.jsonl'), { maxBytes: 1 << 20, clock: Date.now })),
      limiter: new FailureLimiter(DEFAULT_FAILURE_LIMITS, Date.now),
      registry: new Registry(),
      routes: [{ method: 'PUT', path: '/api/v1/echo', role: 'operator', action: 'echo', handle: (ctx) => ctx.body }],
      assets: new Map(),
      ready: () => true,
      snapshot: () => ({}),
      logger: pino({ level: 'silent' }),
    });
    admin.server.on('connection', (sock: Socket) => sockets.push(sock));
    const port = await admin.listen(0, '127.0.0.1');
    return { port, bytesRead: () => sockets.reduce((n, sock) => n + sock.bytesRead, 0) };
  }

  /** Send headers, then up to `total` body bytes as fast as the socket takes them, until the server closes. */
  function upload(port: number, head: string, total: number, chunked = false) {
    return new Promise<{ text: string; sent: number }>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const frame = chunked
        ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
        : chunk;
      let text = '';
      let sent = 0;
      sock.on('data', (d) => (text += d.toString('latin1')));
      sock.on('error', () => {});
      sock.on('close', () => resolve({ text, sent }));
      sock.write(head);
      const pump = () => {
        while (sent < total && !sock.destroyed) {
          sent += chunk.length;
          if (!sock.write(frame)) return void sock.once('drain', pump);
        }
        if (chunked && !sock.destroyed) sock.write('0\r\n\r\n');
      };
      pump();
    });
  }

  const head = (token: string, length: number | 'chunked', expect = '') =>
    `PUT /api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n${
      length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`
    }\r\n${expect}\r\n`;

  it.each([
    ['a bad token, Content-Length 50 MB', head('wrong', FIFTY_MB), false, 401],
    ['the operator token, Content-Length 50 MB', head(OPS, FIFTY_MB), false, 413],
    ['the operator token, 50 MB chunked', head(OPS, 'chunked'), true, 413],
  ])('%s: answered, Connection: close, and the server reads under 1 MiB of it', async (_name, h0, chunked, status) => {
    const { port, bytesRead } = await startAdmin();
    const r = await upload(port, h0, FIFTY_MB, chunked);
    expect(r.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(r.text.toLowerCase()).toContain('connection: close');
    expect(r.sent).toBeLessThan(FIFTY_MB);
    expect(bytesRead()).toBeLessThan(1 << 20);
  });

  it('Expect: 100-continue: a refused request is answered without inviting the body; an accepted one is invited', async () => {
    const { port, bytesRead } = await startAdmin();
    const refused = await upload(port, head('wrong', FIFTY_MB, 'Expect: 100-continue\r\n'), 0);
    expect(refused.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(refused.text).not.toContain('100 Continue');
    expect(bytesRead()).toBeLessThan(1024);

    const accepted = await new Promise<string>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      let text = '';
      sock.on('data', (d) => {
        text += d.toString('latin1');
        if (text === 'HTTP/1.1 100 Continue\r\n\r\n') sock.write('{"a":1}');
        if (text.includes('{"a":1}')) {
          sock.destroy();
          resolve(text);
        }
      });
      sock.write(`${head(OPS, 7, 'Expect: 100-continue\r\n')}`);
    });
    expect(accepted).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  });

  it('a body read whole keeps the connection alive', async () => {
    const { port } = await startAdmin();
    const r = await request(`http://127.0.0.1:${port}/api/v1/echo`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${OPS}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(60_000) }),
    });
    expect(r.statusCode).toBe(200);
    expect(r.headers.connection).not.toBe('close');
    expect(((await r.body.json()) as { pad: string }).pad).toHaveLength(60_000);
  });
});

describe('the audit file and logrotate, and new-token', () => {
  let running: RunningSluice | undefined;
  afterEach(async () => {
    if (running && running.proc.exitCode === null) {
      running.proc.kill('SIGTERM');
      await running.exited;
    }
    running = undefined;
  });

  it('SIGUSR1 reopens the audit file (no inspector starts); mutations go to the new file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-usr1-'));
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const file = join(dir, 'audit.jsonl');
    const config = writeConfig(dir, {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      pools: { blue: { endpoints: [blue.url] }, green: { endpoints: [green.url] } },
      stateFile: join(dir, 'state.json'),
      audit: { file },
      log: { level: 'info', access: false },
    });
    const p = (running = await startProcess(config));
    const weights = (green: number) =>
      call(p.adminPort, 'PUT', '/api/v1/weights', { body: { weights: { green } } }).then((r) => r.status);
    expect(await weights(10)).toBe(200);
    renameSync(file, `${file}.1`);
    const reopened = new Promise<void>((resolve) => {
      const look = () => p.output().includes('"log files reopened"') && resolve();
      p.proc.stdout?.on('data', () => setImmediate(look));
    });
    p.proc.kill('SIGUSR1');
    await reopened;
    expect(await weights(20)).toBe(200);
    expect(
      readFileSync(`${file}.1`, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).after.weights.green),
    ).toEqual([10]);
    expect(
      readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).after.weights.green),
    ).toEqual([20]);
    expect(p.output()).not.toContain('Debugger listening');
    p.proc.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it('new-token prints a 256-bit token, its SHA-256 and a YAML line that admits it', async () => {
    const r = runCli(['new-token', '--id', 'ci-bot', '--role', 'operator']);
    expect(r.code).toBe(0);
    const token = /^token: +(\S+)$/m.exec(r.stdout)?.[1] as string;
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(r.stdout).toContain(`sha256: ${sha256Hex(token)}`);
    const line = r.stdout.split('\n').find((l) => l.trim().startsWith('- {')) as string;
    const entries = parseYaml(line);
    expect(entries).toEqual([{ id: 'ci-bot', sha256: sha256Hex(token), role: 'operator' }]);
    expect(runCli(['new-token']).stdout).not.toContain(token);

    const s = await start({ admin: { host: '127.0.0.1', port: 0, tokens: entries } });
    expect((await call(s.adminPort, 'POST', '/api/v1/rollout/start', { token, body: {} })).status).toBe(200);

    const json = JSON.parse(runCli(['new-token', '--json']).stdout);
    expect(json).toMatchObject({ id: 'viewer', role: 'viewer' });
    expect(json.sha256).toBe(sha256Hex(json.token));
    expect(runCli(['new-token', '--role', 'admin']).code).toBe(2);
    expect(runCli(['new-token', '--id', 'a: b']).code).toBe(2);
    expect(runCli(['--help']).stdout).toContain('sluice new-token [--id ID] [--role viewer|operator]');
  });
});
