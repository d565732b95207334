/** The CLI client against a live sluice: every subcommand, and clear failures with non-zero exits. */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startUpstream } from '../helpers/upstream.js';
import { startTestSluice } from '../helpers/sluice.js';
import { harness } from '../helpers/harness.js';
import { CLI } from '../helpers/process.js';
import { deadPort } from '../helpers/upstream.js';
import { sha256Hex } from '../../src/admin/auth.js';

const h = harness();

/** Run the CLI asynchronously (the sluice under test lives in this process). */
function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, SLUICE_ADMIN_URL: '', SLUICE_ADMIN_TOKEN: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sluice CLI client', () => {
  it('runs status, weights, rollout and history against a live sluice', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      admin: {
        host: '127.0.0.1',
        port: 0,
        tokens: [
          { id: 'ops', sha256: sha256Hex('ops-token'), role: 'operator' },
          { id: 'eye', sha256: sha256Hex('view-token'), role: 'viewer' },
        ],
      },
      rollout: { stepHold: '10m' },
    }));
    const env = { SLUICE_ADMIN_URL: s.admin, SLUICE_ADMIN_TOKEN: 'ops-token' };

    const st = await cli(['status'], env);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/stable blue {3}canary green {3}phase idle/);
    expect(st.stdout).toMatch(/blue +100%/);

    const js = await cli(['status', '--json'], env);
    expect(JSON.parse(js.stdout)).toMatchObject({ stable: 'blue', weights: { blue: 100, green: 0 } });

    const w = await cli(['weights', 'green=30'], env);
    expect(w.code).toBe(0);
    expect(s.controller.state.weights).toEqual({ blue: 70, green: 30 });

    const flags = await cli(['weights', 'blue=100', '--admin-url', s.admin, '--token', 'ops-token']);
    expect(flags.code).toBe(0);
    expect(s.controller.state.weights.green).toBe(0);

    expect((await cli(['rollout', 'start', '--steps', '5,50,100', '--step-hold', '1m'], env)).code).toBe(0);
    expect(s.controller.state).toMatchObject({
      phase: 'progressing',
      steps: [5, 50, 100],
      stepHold: 60_000,
      weights: { green: 5 },
    });
    expect((await cli(['rollout', 'pause'], env)).code).toBe(0);
    expect(s.controller.state.phase).toBe('paused');
    expect((await cli(['rollout', 'resume'], env)).code).toBe(0);
    expect(s.controller.state.phase).toBe('progressing');
    expect((await cli(['rollout', 'promote'], env)).code).toBe(0);
    expect(s.controller.state).toMatchObject({ phase: 'promoted', stable: 'green' });
    expect((await cli(['rollout', 'start'], env)).code).toBe(0);
    const ab = await cli(['rollout', 'abort'], env);
    expect(ab.code).toBe(0);
    expect(ab.stdout).toContain('aborted by ops');
    expect(s.controller.state).toMatchObject({ phase: 'rolled_back', weights: { blue: 0, green: 100 } });

    const hist = await cli(['history'], env);
    expect(hist.code).toBe(0);
    const lines = hist.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/aborted +by ops/);
    expect(lines.some((l) => /promoted +by ops/.test(l))).toBe(true);

    // Failures, each with its exit code: 409 → 3, 401/403 → 4, bad arguments → 2.
    const conflict = await cli(['rollout', 'pause'], env);
    expect(conflict.code).toBe(3);
    expect(conflict.stderr).toMatch(/409 phase_conflict: cannot pause while rolled_back/);
    const noToken = await cli(['status'], { SLUICE_ADMIN_URL: s.admin });
    expect(noToken.code).toBe(4);
    expect(noToken.stderr).toMatch(/401 .*--token or set SLUICE_ADMIN_TOKEN/);
    const viewer = await cli(['weights', 'green=1'], { SLUICE_ADMIN_URL: s.admin, SLUICE_ADMIN_TOKEN: 'view-token' });
    expect(viewer.code).toBe(4);
    expect(viewer.stderr).toContain('403');
    const bad = await cli(['weights', 'green=abc'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad weight');
    const badCmd = await cli(['rollout', 'explode'], env);
    expect(badCmd.code).toBe(2);
  });

  it('status says why a rollout waits, with the time left at the step; --watch redraws it', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url, {
      rollout: { stepHold: '1m', analysis: { interval: '1h', window: '1h', minRequests: 50 } },
    }));
    const env = { SLUICE_ADMIN_URL: s.admin };
    await s.controller.command({ type: 'start' }, 'test');
    await s.controller.tick();
    const st = await cli(['status'], env);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(
      /step 1\/4 \(10 → 25 → 50 → 100\), \d+ s left at 10% before 25% \(if the verdict passes\)/,
    );
    expect(st.stdout).toMatch(/^verdict: no verdict yet: waiting for traffic: 0\/50 green requests/m);
    // --watch, piped: one summary per second until it is stopped.
    const p = spawn(process.execPath, [CLI, 'status', '--watch'], {
      env: { ...process.env, ...env, SLUICE_ADMIN_TOKEN: '' },
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if ((out.match(/^--- /gm) ?? []).length >= 2) {
          clearInterval(t);
          resolve();
        }
      }, 50);
    });
    p.kill('SIGINT');
    const code = await new Promise((r) => p.on('close', r));
    expect(code).toBe(0);
    expect((out.match(/^verdict: no verdict yet/gm) ?? []).length).toBeGreaterThanOrEqual(2);
  });

  it('--help lists every command; <command> --help its flags; exit codes are documented', async () => {
    const all = await cli(['--help']);
    expect(all.code).toBe(0);
    for (const c of [
      'status',
      'weights',
      'rollout',
      'history',
      'log',
      'maintenance',
      'reload',
      'shadow',
      'new-token',
      'hash-token',
    ])
      expect(all.stdout).toContain(`sluice ${c}`);
    for (const f of ['--steps', '--step-hold', '--dry-run', '--watch', '--then-rollout', '--allow-from', '--workers'])
      expect(all.stdout).toContain(f);
    expect(all.stdout).toMatch(/exit codes: 0 ok, 1 failed .*2 usage,\s+3 conflict \(409.*4 auth/s);
    const one = await cli(['rollout', '--help']);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain('sluice rollout start [--steps 10,50,100] [--step-hold 1m] [--dry-run]');
    expect(one.stdout).not.toContain('sluice maintenance');
    expect(one.stdout).toContain('--admin-url');
    expect((await cli(['help', 'log'])).stdout).toContain('sluice log [level=<level>] [access=on|off]');
  });

  it('shows and changes the log settings (sluice log)', async () => {
    const blue = h.track(await startUpstream('blue'));
    const green = h.track(await startUpstream('green'));
    const s = (h.sluice = await startTestSluice(blue.url, green.url));
    const env = { SLUICE_ADMIN_URL: s.admin };
    expect((await cli(['log'], env)).stdout).toBe('level silent   access log off\n');
    const set = await cli(['log', 'access=on', 'level=error'], env);
    expect(set.code).toBe(0);
    expect(set.stdout).toBe('level error   access log on\n');
    expect((await cli(['log'], env)).stdout).toBe('level error   access log on\n');
    const bad = await cli(['log', 'access=yes'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected level=<level> or access=on|off');
    const badLevel = await cli(['log', 'level=loud'], env);
    expect(badLevel.code).toBe(1);
    expect(badLevel.stderr).toMatch(/400 invalid_body: level/);
  });

  it('says so and exits 1 when the admin API is unreachable', async () => {
    const port = await deadPort();
    const r = await cli(['status', '--admin-url', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  });
});
