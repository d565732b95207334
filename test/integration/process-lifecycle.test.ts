/**
 * The real binary: --check, --version, hash-token, a config error at start, graceful SIGTERM with a
 * request in flight, and state that survives a restart (and a corrupt state file that does not
 * crash-loop).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { connect, type Socket } from 'node:net';
import { sendBytes, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { runCli, startProcess, writeConfig, type RunningSluice } from '../helpers/process.js';
import { runtimeNotice, supportsReusePort } from '../../src/core/runtime.js';

let ups: TestUpstream[] = [];
let running: RunningSluice | undefined;
afterEach(async () => {
  if (running && running.proc.exitCode === null) {
    running.proc.kill('SIGKILL');
    await running.exited;
  }
  running = undefined;
  await Promise.all(ups.map((u) => u.close()));
  ups = [];
});

const tmp = () => mkdtempSync(join(tmpdir(), 'sluice-proc-'));

function baseConfig(dir: string, blue: string, green: string, extra: Record<string, unknown> = {}) {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    pools: { blue: { endpoints: [blue] }, green: { endpoints: [green] } },
    stateFile: join(dir, 'state.json'),
    audit: { file: join(dir, 'audit.jsonl') },
    log: { level: 'info', access: false },
    shutdownGrace: '5s',
    ...extra,
  };
}

describe('the sluice command', () => {
  it('--check: exit 0 for a valid config, 1 with path: message lines for an invalid one', () => {
    const dir = tmp();
    const good = writeConfig(dir, baseConfig(dir, 'http://127.0.0.1:1', 'http://127.0.0.1:2'));
    expect(runCli(['--check', '--config', good]).code).toBe(0);
    writeFileSync(
      join(dir, 'bad.yaml'),
      'pools:\n  blue: {endpoints: ["http://127.0.0.1:1"]}\n  green: {endpoints: ["ftp//x"]}\ntimeouts: {response: soon}\n',
    );
    const bad = runCli(['--check', '--config', join(dir, 'bad.yaml')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('pools.green.endpoints.0: Invalid url');
    expect(bad.stderr).toContain('timeouts.response: invalid duration');
  });

  it('--workers takes auto or 1-256 (usage error, exit 2, otherwise); the config key is checked too', () => {
    const dir = tmp();
    const good = writeConfig(dir, baseConfig(dir, 'http://127.0.0.1:1', 'http://127.0.0.1:2'));
    for (const w of ['auto', '1', '4', '256'])
      expect(runCli(['--check', '--workers', w, '--config', good]).code).toBe(0);
    for (const w of ['0', '257', 'two', '-1', '1.5']) {
      const r = runCli(['--check', '--workers', w, '--config', good]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--workers must be auto or a number from 1 to 256');
    }
    const bad = writeConfig(dir, baseConfig(dir, 'http://127.0.0.1:1', 'http://127.0.0.1:2', { workers: 0 }));
    const r = runCli(['--check', '--config', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^workers: /m);
  });

  it('reads $SLUICE_CONFIG when --config is absent', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'x.yaml'), 'pools: {}\n');
    const r = runCli(['--check'], { SLUICE_CONFIG: join(dir, 'x.yaml') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pools.blue:');
  });

  it('exits 1 with the messages and listens on nothing when the config is invalid at start', () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'bad.yaml'),
      'pools: {blue: {endpoints: []}, green: {endpoints: ["http://127.0.0.1:2"]}}\n',
    );
    const r = runCli(['--config', join(dir, 'bad.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pools.blue.endpoints: at least one endpoint');
  });

  it('prints the version and the SHA-256 of a token', () => {
    expect(runCli(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(runCli(['hash-token', 'abc']).stdout.trim()).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(runCli(['hash-token']).code).toBe(2);
  });

  it('on SIGTERM exits within shutdownGrace + 1 s with clients that pipeline and never read attached', async () => {
    const dir = tmp();
    const big = (_q: IncomingMessage, res: ServerResponse) => sendBytes(res, 64 << 20);
    ups = [await startUpstream('blue', big), await startUpstream('green', big)];
    running = await startProcess(
      writeConfig(
        dir,
        baseConfig(dir, ups[0]!.url, ups[1]!.url, { shutdownGrace: '1s', upstream: { connections: 4 } }),
      ),
    );
    const port = running.proxyPort;
    const hostile: Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const s = connect(port, '127.0.0.1', () => {
        s.pause();
        s.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(10));
      });
      s.on('error', () => {});
      hostile.push(s);
    }
    try {
      // Every upstream connection is held by a client that does not read.
      await expect.poll(() => ups[0]!.sockets.size, { timeout: 5000 }).toBe(4);
      running.proc.kill('SIGTERM');
      const late = new Promise<'late'>((r) => setTimeout(() => r('late'), 2500).unref());
      expect(await Promise.race([running.exited, late])).toBe(0);
    } finally {
      for (const s of hostile) s.destroy();
    }
  });

  it('on SIGTERM finishes the request in flight, then exits 0', async () => {
    const dir = tmp();
    let arrived!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    const slow = (q: IncomingMessage, res: ServerResponse) => {
      if (q.url === '/slow') arrived();
      setTimeout(() => res.end('slow-ok'), 700);
    };
    ups = [await startUpstream('blue', slow), await startUpstream('green')];
    running = await startProcess(writeConfig(dir, baseConfig(dir, ups[0]!.url, ups[1]!.url)));
    const inflight = request(`http://127.0.0.1:${running.proxyPort}/slow`).then(async (r) => ({
      status: r.statusCode,
      body: await r.body.text(),
    }));
    // SIGTERM only once the upstream has the request: before that the connection is idle.
    await reached;
    running.proc.kill('SIGTERM');
    expect(await inflight).toEqual({ status: 200, body: 'slow-ok' });
    expect(await running.exited).toBe(0);
    // After exit nothing listens.
    await expect(request(`http://127.0.0.1:${running.proxyPort}/`)).rejects.toThrow();
  });

  it('names its runtime at start, with one warning on an end-of-life line (Node 20) and none on 24 or 26', async () => {
    const dir = tmp();
    ups = [await startUpstream('blue'), await startUpstream('green')];
    running = await startProcess(writeConfig(dir, baseConfig(dir, ups[0]!.url, ups[1]!.url)));
    const lines = running
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string; runtime?: { node: string; reusePort: boolean } });
    const eol = lines.filter((l) => l.msg.includes('end of life'));
    const eolLine = process.version.startsWith('v20.');
    expect(runtimeNotice(process.version, Date.now())?.level === 'warn').toBe(eolLine);
    expect(eol.length).toBe(eolLine ? 1 : 0);
    if (eolLine) {
      expect(eol[0]!.level).toBe(40); // pino's warn
      expect(eol[0]!.msg).toContain(process.version);
      expect(eol[0]!.msg).toContain('no longer gets security fixes');
    }
    const listening = lines.find((l) => l.msg === 'sluice listening');
    expect(listening?.runtime).toEqual({
      node: process.version,
      reusePort: supportsReusePort(process.version, process.platform),
    });
  });

  it('keeps weights across a kill -9 and a restart', async () => {
    const dir = tmp();
    ups = [await startUpstream('blue'), await startUpstream('green')];
    const file = writeConfig(dir, baseConfig(dir, ups[0]!.url, ups[1]!.url));
    running = await startProcess(file);
    const put = await request(`http://127.0.0.1:${running.adminPort}/api/v1/weights`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"weights":{"green":42.5}}',
    });
    expect(put.statusCode).toBe(200);
    const version = ((await put.body.json()) as { version: number }).version;
    running.proc.kill('SIGKILL');
    await running.exited;
    running = await startProcess(file);
    const s = (await (await request(`http://127.0.0.1:${running.adminPort}/api/v1/status`)).body.json()) as {
      weights: unknown;
      version: number;
    };
    expect(s.weights).toEqual({ blue: 57.5, green: 42.5 });
    expect(s.version).toBe(version);
  });

  it('switches the access log and the log level at run time (PUT /api/v1/log), back to the config at restart', async () => {
    const dir = tmp();
    ups = [await startUpstream('blue'), await startUpstream('green')];
    const file = writeConfig(dir, baseConfig(dir, ups[0]!.url, ups[1]!.url));
    running = await startProcess(file);
    const r = running;
    const admin = `http://127.0.0.1:${r.adminPort}/api/v1/log`;
    const setLog = async (body: unknown) => {
      const res = await request(admin, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.statusCode).toBe(200);
      return res.body.json();
    };
    const get = (path: string) => request(`http://127.0.0.1:${r.proxyPort}${path}`).then((res) => res.body.text());
    // Lines are written in order by one writer: once a later line is out, an earlier one would be too.
    const accessLine = (path: string) =>
      r
        .output()
        .split('\n')
        .find((l) => l.includes('"msg":"access"') && l.includes(`"url":"${path}"`));
    const waitForLine = async (path: string) => {
      for (let i = 0; i < 100 && accessLine(path) === undefined; i++) await new Promise((res) => setTimeout(res, 50));
      return accessLine(path);
    };
    await get('/off-at-start');
    expect(await setLog({ access: true })).toEqual({ level: 'info', access: true });
    await get('/on');
    expect(JSON.parse((await waitForLine('/on')) ?? 'null')).toMatchObject({
      status: 200,
      pool: 'blue',
      method: 'GET',
    });
    expect(await setLog({ access: false, level: 'warn' })).toEqual({ level: 'warn', access: false });
    await get('/off-again');
    await setLog({ access: true });
    await get('/on-again');
    expect(await waitForLine('/on-again')).toBeDefined();
    expect(accessLine('/off-at-start')).toBeUndefined();
    expect(accessLine('/off-again')).toBeUndefined();
    // Not state: a restart starts from the config again.
    r.proc.kill('SIGTERM');
    await r.exited;
    running = await startProcess(file);
    expect(await (await request(`http://127.0.0.1:${running.adminPort}/api/v1/log`)).body.json()).toEqual({
      level: 'info',
      access: false,
    });
  });

  it('starts on 100 % stable and keeps a corrupt state file aside instead of crash-looping', async () => {
    const dir = tmp();
    ups = [await startUpstream('blue'), await startUpstream('green')];
    writeFileSync(join(dir, 'state.json'), '{"version": 3, "weights": {"blue"');
    running = await startProcess(
      writeConfig(dir, baseConfig(dir, ups[0]!.url, ups[1]!.url, { split: { initialCanaryWeight: 30 } })),
    );
    const s = (await (await request(`http://127.0.0.1:${running.adminPort}/api/v1/status`)).body.json()) as {
      weights: unknown;
    };
    expect(s.weights).toEqual({ blue: 100, green: 0 });
    expect(readdirSync(dir).some((f) => f.startsWith('state.json.corrupt-'))).toBe(true);
    expect(running.output()).toContain('saved state unreadable');
    expect(existsSync(join(dir, 'state.json'))).toBe(false);
  });
});

describe.each([1, 2])('restart mid-rollout (workers: %i)', (workers) => {
  it('resumes the same phase, step and weights after kill -9', async () => {
    const dir = tmp();
    ups = [await startUpstream('blue'), await startUpstream('green')];
    const file = writeConfig(
      dir,
      baseConfig(dir, ups[0]!.url, ups[1]!.url, { workers, rollout: { steps: [10, 30, 100], stepHold: '10m' } }),
    );
    running = await startProcess(file);
    const admin = `http://127.0.0.1:${running.adminPort}`;
    const post = (path: string, body = '{}') =>
      request(`${admin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(
        async (r) => ({ status: r.statusCode, body: (await r.body.json()) as any }),
      );
    expect((await post('/api/v1/rollout/start')).status).toBe(200);
    const paused = await post('/api/v1/rollout/pause');
    expect(paused.body.rollout.phase).toBe('paused');
    const before = paused.body;
    running.proc.kill('SIGKILL');
    await running.exited;
    running = await startProcess(file);
    const after = (await (await request(`http://127.0.0.1:${running.adminPort}/api/v1/status`)).body.json()) as any;
    expect(after.version).toBe(before.version);
    expect(after.weights).toEqual({ blue: 90, green: 10 });
    expect(after.rollout).toMatchObject({ phase: 'paused', stepIndex: 0, steps: [10, 30, 100] });
    // And it can go on from there.
    const resumed = await request(`http://127.0.0.1:${running.adminPort}/api/v1/rollout/resume`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(resumed.statusCode).toBe(200);
    expect(((await resumed.body.json()) as any).rollout.phase).toBe('progressing');
  });
});

describe.each([1, 2])('SIGTERM under load (workers: %i)', (threads) => {
  it('completes every request that reached it, refuses new ones cleanly, and exits 0', async () => {
    const dir = tmp();
    ups = [
      await startUpstream('blue', (_q, res) => setTimeout(() => res.end('ok'), 200 + Math.random() * 200)),
      await startUpstream('green'),
    ];
    running = await startProcess(writeConfig(dir, baseConfig(dir, ups[0]!.url, ups[1]!.url, { workers: threads })));
    const base = `http://127.0.0.1:${running.proxyPort}`;
    const agent = new Agent({ connections: 16 });
    const outcomes = new Map<string, number | string>();
    let stop = false;
    let next = 0;
    const worker = async () => {
      while (!stop) {
        const id = String(next++);
        try {
          const r = await request(`${base}/w/${id}`, { dispatcher: agent });
          const body = await r.body.text();
          outcomes.set(id, r.statusCode === 200 && body !== 'ok' ? `200 with ${body}` : r.statusCode);
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'error';
          outcomes.set(id, code);
          if (code === 'ECONNREFUSED') await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    // SIGTERM once the upstream has seen more than one round of requests (however slow the host).
    while (ups[0]!.seen.length < 20) await new Promise((r) => setTimeout(r, 20));
    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    stop = true;
    await Promise.all(workers);
    await agent.close();
    // Every request the upstream received was answered in full: nothing in flight was cut off.
    const reached = ups[0]!.seen.map((x) => x.url.slice(3));
    expect(reached.length).toBeGreaterThanOrEqual(16);
    expect(reached.filter((id) => outcomes.get(id) !== 200)).toEqual([]);
    // The rest were refused or answered 503, or lost the keep-alive race with a closing
    // connection before sluice read them (a client retries those); never a half-answer.
    for (const [id, o] of outcomes)
      if (!reached.includes(id)) expect([503, 'ECONNREFUSED', 'UND_ERR_SOCKET', 'ECONNRESET', 'error']).toContain(o);
  });
});

describe('access log with workers: 2', () => {
  it('writes one whole JSON line per request, none interleaved, in one stream with the app log', async () => {
    const dir = tmp();
    ups = [await startUpstream('blue'), await startUpstream('green')];
    running = await startProcess(
      writeConfig(dir, baseConfig(dir, ups[0]!.url, ups[1]!.url, { workers: 2, log: { level: 'info', access: true } })),
    );
    const base = `http://127.0.0.1:${running.proxyPort}`;
    // Long URLs make the lines long, so that a torn write would show.
    const pad = 'x'.repeat(900);
    await Promise.all(
      Array.from({ length: 8 }, async (_, c) => {
        const agent = new Agent({ connections: 1 });
        for (let i = 0; i < 40; i++) {
          const r = await request(`${base}/${c}/${i}/${pad}`, { dispatcher: agent });
          await r.body.dump();
        }
        await agent.close();
      }),
    );
    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    const lines = running
      .output()
      .split('\n')
      .filter((l) => l !== '');
    const parsed = lines.map((l) => JSON.parse(l) as { msg: string; url?: string; worker?: number });
    const access = parsed.filter((j) => j.msg === 'access');
    expect(access.length).toBe(320);
    expect(new Set(access.map((j) => j.url)).size).toBe(320);
    expect(parsed.some((j) => j.msg === 'sluice listening')).toBe(true);
    expect(parsed.at(-1)?.msg).toBe('stopped');
  });
});

describe('access log to a file, nginx combined format', () => {
  it('reopens on SIGUSR1 after a logrotate-style rename under load: every request in one file or the other, each line whole', async () => {
    const dir = tmp();
    ups = [await startUpstream('blue'), await startUpstream('green')];
    const file = join(dir, 'logs', 'access.log');
    running = await startProcess(
      writeConfig(
        dir,
        baseConfig(dir, ups[0]!.url, ups[1]!.url, {
          workers: supportsReusePort(process.version, process.platform) ? 2 : 1,
          log: { level: 'info', access: true, accessFormat: 'combined', accessFile: file },
        }),
      ),
    );
    const base = `http://127.0.0.1:${running.proxyPort}`;
    const sent = new Set<string>();
    let rotated = false;
    await Promise.all(
      Array.from({ length: 4 }, async (_, c) => {
        const agent = new Agent({ connections: 1 });
        for (let i = 0; i < 150; i++) {
          const path = `/${c}/${i}`;
          sent.add(path);
          const r = await request(`${base}${path}`, {
            dispatcher: agent,
            headers: { 'user-agent': `client-${c}`, referer: 'https://shop.test/' },
          });
          await r.body.dump();
          if (c === 0 && i === 60 && !rotated) {
            rotated = true;
            renameSync(file, `${file}.1`);
            running!.proc.kill('SIGUSR1');
          }
        }
        await agent.close();
      }),
    );
    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    const old = readFileSync(`${file}.1`, 'utf8');
    const now = readFileSync(file, 'utf8');
    const combined =
      /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET (\S+) HTTP\/1\.1" 200 (\d+) "https:\/\/shop\.test\/" "client-\d"$/;
    const paths = [old, now].flatMap((text) =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const m = combined.exec(l);
          expect(m, l).not.toBeNull();
          expect(Number(m![2])).toBeGreaterThan(0);
          return m![1] as string;
        }),
    );
    expect(paths.length).toBe(600);
    expect(new Set(paths)).toEqual(sent);
    // Lines went to both files: the reopen took effect mid-load.
    expect(old.length).toBeGreaterThan(0);
    expect(now.length).toBeGreaterThan(0);
    // And none to stdout.
    expect(running.output()).not.toContain('"msg":"access"');
    expect(running.output()).toContain('log files reopened');
  });
});
