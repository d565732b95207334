/**
 * The CLI client: subcommands that talk to a running sluice's admin API. Non-zero exit with the
 * reason on stderr for any failure (unreachable, 401, 403, 409, 400).
 */
import { describeFaults, type FaultSpec } from './control/state.js';

export const CLIENT_COMMANDS = new Set([
  'status',
  'weights',
  'rollout',
  'history',
  'log',
  'maintenance',
  'reload',
  'shadow',
  'faults',
]);

interface StatusDoc {
  version: number;
  stable: string;
  canary: string;
  weights: Record<string, number>;
  rollout: {
    phase: string;
    stepIndex: number;
    steps: number[];
    reason: string | null;
    stepHold?: number;
    stepStartedAt?: number | null;
    analysis?: { at: number; verdict: string | null; reason: string | null };
    dryRun?: boolean;
    wouldRollBack?: string | null;
    rampDown?: { weight: number; next: number; nextInMs: number; from: number; over: number; reason: string } | null;
  };
  pools: Record<
    string,
    {
      endpoints: { url: string; healthy: boolean }[];
      window: { requests: number; errors: number; errorRate: number; p95Ms: number };
    }
  >;
  workers?: { id: string; state: string; restarts: number }[];
  maintenance?: Maintenance;
  shadow?: {
    active: boolean;
    percent: number;
    endsAt: number | null;
    run: { pairs: number; mismatches: number; mirrored: number; dropped: number } | null;
    last: { verdict: string; at: number; reason: string } | null;
  };
  faults?: Faults | null;
  fleet?: {
    name: string;
    connected: boolean;
    disconnectedSince: number | null;
    leader: boolean;
    pendingRollback: boolean;
    summary: { at: number; members: { id: string; requests: number; errors: number; lastSnapshotAt: number }[] } | null;
  } | null;
}

/** A failed command, with its exit code (help.ts EXIT_CODES): 1 failed, 2 usage, 3 conflict, 4 auth. */
class ClientError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const usage = (message: string) => new ClientError(message, 2);

interface Maintenance {
  enabled: boolean;
  message: string | null;
  retryAfter: number;
  allowFrom: string[];
  since: number | null;
}

/** status.faults: the spec, whether it applies here, and what it injected. */
type Faults = FaultSpec & { active: boolean; injected: { aborts: number; delays: number } };

/** `fault injection on: green abort 20% (503), delay 10% 300ms — since …` (the spec as history words it). */
export function faultsLine(f: Faults | null): string {
  if (f === null) return 'fault injection off';
  const what = describeFaults(f);
  if (!f.active) return `fault injection set but not applied (faults.enabled is false here): ${what}`;
  return `fault injection on: ${what} — since ${new Date(f.since).toISOString()} by ${f.by}; injected ${f.injected.aborts} aborts, ${f.injected.delays} delays`;
}

const maintenanceLine = (m: Maintenance) =>
  m.enabled
    ? `MAINTENANCE since ${new Date(m.since ?? 0).toISOString()}: proxied requests get 503 (Retry-After ${Math.ceil(m.retryAfter / 1000)} s)${m.allowFrom.length ? `, except ${m.allowFrom.join(', ')}` : ''}${m.message ? ` — ${m.message}` : ''}`
    : 'maintenance off';

async function call(
  base: string,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (token !== undefined && token !== '') headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ClientError(
      `cannot reach the admin API at ${base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
    );
  }
  const text = await res.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  if (!res.ok) {
    const e = (value as { error?: { code?: string; message?: string } }).error;
    const hint =
      res.status === 401
        ? ' (pass --token or set SLUICE_ADMIN_TOKEN)'
        : res.status === 429
          ? ' (failed tokens from this address: check --token or SLUICE_ADMIN_TOKEN; a valid token is still accepted)'
          : '';
    const code = res.status === 409 ? 3 : res.status === 401 || res.status === 403 || res.status === 429 ? 4 : 1;
    throw new ClientError(
      `${method} ${path}: ${res.status} ${e?.code ?? ''}${e?.message ? `: ${e.message}` : ''}${hint}`,
      code,
    );
  }
  return value;
}

/** "ramping down: 25% → 10% in 12 s (from 50% over 60 s: <reason>)" */
export function rampLine(r: NonNullable<StatusDoc['rollout']['rampDown']>): string {
  return `ramping down: ${r.weight}% → ${r.next}% in ${Math.ceil(r.nextInMs / 1000)} s (from ${r.from}% over ${+(r.over / 1000).toFixed(1)} s; reason: ${r.reason})`;
}

/** The time left in the step's hold: it runs only while the verdict passes. */
function holdLeft(s: StatusDoc, now: number): string {
  const r = s.rollout;
  if (r.phase !== 'progressing' || r.stepStartedAt == null || r.stepHold === undefined) return '';
  const left = Math.max(0, r.stepStartedAt + r.stepHold - now);
  const step = r.steps[r.stepIndex];
  const last = r.stepIndex + 1 >= r.steps.length;
  return `, ${Math.ceil(left / 1000)} s left at ${step}% before ${last ? 'promotion' : `${r.steps[r.stepIndex + 1]}%`} (if the verdict passes)`;
}

/**
 * The last verdict in words, e.g. `verdict: waiting for traffic: 4/50 green requests in the last
 * 10s` or `verdict: pass: green healthy …`; none before the first, nor with no canary to judge.
 */
function verdictLine(s: StatusDoc): string | undefined {
  const a = s.rollout.analysis;
  if (a === undefined || a.verdict === null || a.reason === null) return undefined;
  const judged = s.rollout.phase === 'progressing' || s.rollout.phase === 'paused' || (s.weights[s.canary] ?? 0) > 0;
  if (!judged) return undefined;
  const word = a.verdict === 'inconclusive' ? 'no verdict yet' : a.verdict;
  return `verdict: ${word}: ${a.reason}`;
}

function summary(s: StatusDoc, now = Date.now()): string {
  const bar = (w: number) => '█'.repeat(Math.round(w / 5)).padEnd(20, '·');
  const lines = [
    `version ${s.version}   stable ${s.stable}   canary ${s.canary}   phase ${s.rollout.phase}` +
      (s.rollout.phase === 'progressing' || s.rollout.phase === 'paused'
        ? `   step ${s.rollout.stepIndex + 1}/${s.rollout.steps.length} (${s.rollout.steps.join(' → ')})${holdLeft(s, now)}`
        : ''),
  ];
  const verdict = verdictLine(s);
  if (verdict !== undefined) lines.push(verdict);
  // A walk down says its reason itself.
  const ramp = s.rollout.rampDown;
  if (ramp) lines.push(rampLine(ramp));
  else if (s.rollout.reason) lines.push(`reason: ${s.rollout.reason}`);
  if (s.rollout.dryRun && s.rollout.phase === 'progressing')
    lines.push(
      `dry run: ${s.rollout.wouldRollBack ? `would roll back: ${s.rollout.wouldRollBack}` : 'no rollback so far at this step'}`,
    );
  if (s.maintenance?.enabled) lines.push(maintenanceLine(s.maintenance));
  const sh = s.shadow;
  if (sh?.active) {
    const left =
      sh.endsAt === null ? 'until stopped' : `${Math.max(0, Math.ceil((sh.endsAt - Date.now()) / 1000))} s left`;
    const r = sh.run;
    lines.push(
      `SHADOW ${sh.percent}% of ${s.stable}'s requests mirrored to ${s.canary} (${left})${r === null ? '' : `: ${r.pairs} pairs, ${r.mismatches} mismatched, ${r.mirrored} mirrored, ${r.dropped} dropped`}`,
    );
  } else if (sh?.last) lines.push(`last shadow ${new Date(sh.last.at).toISOString()}: ${sh.last.reason}`);
  if (s.faults) lines.push(faultsLine(s.faults));
  for (const name of ['blue', 'green']) {
    const p = s.pools[name];
    if (p === undefined) continue;
    const w = p.window;
    const eps = p.endpoints.map((e) => `${e.url}${e.healthy ? '' : ' (DOWN)'}`).join(', ');
    lines.push(
      `${name.padEnd(5)} ${String(s.weights[name]).padStart(6)}% ${bar(s.weights[name] ?? 0)}  ${String(w.requests).padStart(6)} req  ${(w.errorRate * 100).toFixed(2).padStart(6)}% err  p95 ${w.p95Ms.toFixed(1)}ms   ${eps}`,
    );
  }
  if (s.workers !== undefined && s.workers.length > 1)
    lines.push(
      `workers ${s.workers.map((w) => `${w.id} ${w.state}${w.restarts ? ` (${w.restarts} restarts)` : ''}`).join(', ')}`,
    );
  const f = s.fleet;
  if (f !== undefined && f !== null) {
    const at = f.summary?.at ?? 0;
    const members =
      f.summary?.members
        .map((m) => `${m.id} ${m.requests} req ${m.errors} err (${((at - m.lastSnapshotAt) / 1000).toFixed(1)} s old)`)
        .join(', ') ?? 'no summary yet';
    lines.push(
      `fleet ${f.name}: ${f.connected ? 'connected' : `Redis UNREACHABLE since ${new Date(f.disconnectedSince ?? 0).toISOString()}`}, ${f.leader ? 'leader' : 'follower'}${f.pendingRollback ? ', rollback pending' : ''}; members: ${members}`,
    );
  }
  return lines.join('\n');
}

/**
 * `sluice status --watch`: the summary redrawn in place every second (on a terminal; piped, one
 * summary after another), until Ctrl-C. A failed read shows its reason and keeps trying.
 */
async function watch(base: string, token: string | undefined, json: boolean): Promise<number> {
  const tty = process.stdout.isTTY === true;
  let stop = false;
  process.once('SIGINT', () => {
    stop = true;
  });
  while (!stop) {
    let text: string;
    try {
      const s = (await call(base, token, 'GET', '/api/v1/status')) as StatusDoc;
      text = json ? JSON.stringify(s) : summary(s);
    } catch (err) {
      if (!(err instanceof ClientError)) throw err;
      if (err.exitCode === 4) throw err; // a token problem does not fix itself
      text = `sluice: ${err.message} (retrying)`;
    }
    const at = new Date().toISOString();
    process.stdout.write(tty ? `\x1b[H\x1b[2J${text}\n\n${at}  (Ctrl-C to stop)\n` : `${text}\n--- ${at}\n`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  return 0;
}

export async function runClient(positional: readonly string[], flags: Map<string, string | true>): Promise<number> {
  const urlFlag = flags.get('--admin-url');
  const base = typeof urlFlag === 'string' ? urlFlag : (process.env.SLUICE_ADMIN_URL ?? 'http://127.0.0.1:9901');
  const tokenFlag = flags.get('--token');
  const token = typeof tokenFlag === 'string' ? tokenFlag : process.env.SLUICE_ADMIN_TOKEN;
  const [cmd, ...rest] = positional;
  try {
    switch (cmd) {
      case 'status': {
        if (flags.has('--watch')) return await watch(base, token, flags.has('--json'));
        const s = (await call(base, token, 'GET', '/api/v1/status')) as StatusDoc;
        process.stdout.write(flags.has('--json') ? `${JSON.stringify(s, null, 2)}\n` : `${summary(s)}\n`);
        return 0;
      }
      case 'weights': {
        if (rest.length === 0) throw usage('weights needs green=<percent> and/or blue=<percent>');
        const weights: Record<string, number> = {};
        for (const a of rest) {
          const m = /^(blue|green)=(\d+(?:\.\d{1,2})?)$/.exec(a);
          if (m === null) throw usage(`bad weight ${JSON.stringify(a)}: expected blue=<0-100> or green=<0-100>`);
          weights[m[1] as string] = Number(m[2]);
        }
        const s = (await call(base, token, 'PUT', '/api/v1/weights', { weights })) as StatusDoc;
        process.stdout.write(`${summary(s)}\n`);
        return 0;
      }
      case 'rollout': {
        const action = rest[0];
        if (action === undefined || !['start', 'pause', 'resume', 'promote', 'abort'].includes(action)) {
          throw usage('rollout needs one of start, pause, resume, promote, abort');
        }
        const body: Record<string, unknown> = {};
        const steps = flags.get('--steps');
        if (action === 'start' && typeof steps === 'string') body.steps = steps.split(',').map(Number);
        const hold = flags.get('--step-hold');
        if (action === 'start' && typeof hold === 'string') body.stepHold = hold;
        if (action === 'start' && flags.has('--dry-run')) body.dryRun = true;
        const why = flags.get('--reason');
        if (action === 'abort' && typeof why === 'string') body.reason = why;
        const s = (await call(base, token, 'POST', `/api/v1/rollout/${action}`, body)) as StatusDoc;
        process.stdout.write(`${summary(s)}\n`);
        return 0;
      }
      case 'history': {
        const h = (await call(base, token, 'GET', '/api/v1/history')) as {
          history: {
            at: number;
            event: string;
            by: string;
            reason: string | null;
            weights: Record<string, number>;
            phase: string;
          }[];
        };
        if (flags.has('--json')) process.stdout.write(`${JSON.stringify(h, null, 2)}\n`);
        else if (h.history.length === 0) process.stdout.write('no history yet\n');
        else
          for (const e of h.history)
            process.stdout.write(
              `${new Date(e.at).toISOString()}  ${e.event.padEnd(12)} by ${e.by.padEnd(8)} blue=${e.weights.blue} green=${e.weights.green} ${e.phase}${e.reason ? `  ${e.reason}` : ''}\n`,
            );
        return 0;
      }
      case 'maintenance': {
        // on|off, or nothing to show it.
        const action = rest[0];
        if (action !== undefined && action !== 'on' && action !== 'off')
          throw usage('maintenance needs on or off (or nothing, to show it)');
        const body: Record<string, unknown> = { enabled: action === 'on' };
        const message = flags.get('--message');
        if (typeof message === 'string') body.message = message;
        const retry = flags.get('--retry-after');
        if (typeof retry === 'string') body.retryAfter = retry;
        const allow = flags.get('--allow-from');
        if (typeof allow === 'string') body.allowFrom = allow.split(',').filter((a) => a !== '');
        const m = (await call(
          base,
          token,
          action === undefined ? 'GET' : 'PUT',
          '/api/v1/maintenance',
          action === undefined ? undefined : body,
        )) as Maintenance;
        process.stdout.write(`${maintenanceLine(m)}\n`);
        return 0;
      }
      case 'shadow': {
        const action = rest[0];
        if (action !== 'start' && action !== 'stop') throw usage('shadow needs start or stop');
        const body: Record<string, unknown> = {};
        const percent = flags.get('--percent');
        if (action === 'start' && typeof percent === 'string') {
          if (!/^\d+(\.\d{1,2})?$/.test(percent)) throw usage(`bad --percent ${JSON.stringify(percent)}`);
          body.percent = Number(percent);
        }
        const duration = flags.get('--duration');
        if (action === 'start' && typeof duration === 'string') body.duration = duration;
        if (action === 'start' && flags.has('--then-rollout')) body.thenRollout = true;
        const s = (await call(base, token, 'POST', `/api/v1/shadow/${action}`, body)) as StatusDoc;
        process.stdout.write(`${summary(s)}\n`);
        return 0;
      }
      case 'faults': {
        // set --pool P [--abort-percent N [--abort-status S]] [--delay-percent N --delay-ms MS],
        // clear, or nothing to show it.
        const action = rest[0];
        if (action !== undefined && action !== 'set' && action !== 'clear')
          throw usage('faults needs set or clear (or nothing, to show it)');
        const body: Record<string, unknown> = {};
        if (action === 'set') {
          const pool = flags.get('--pool');
          if (pool !== 'blue' && pool !== 'green') throw usage('faults set needs --pool blue or --pool green');
          body.pool = pool;
          for (const [flag, key] of [
            ['--abort-percent', 'abortPercent'],
            ['--abort-status', 'abortStatus'],
            ['--delay-percent', 'delayPercent'],
            ['--delay-ms', 'delayMs'],
          ] as const) {
            const v = flags.get(flag);
            if (v === undefined) continue;
            const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
            if (!Number.isFinite(n)) throw usage(`${flag} needs a number, not ${JSON.stringify(v)}`);
            body[key] = n;
          }
        }
        const method = action === 'set' ? 'PUT' : action === 'clear' ? 'DELETE' : 'GET';
        const r = (await call(base, token, method, '/api/v1/faults', action === undefined ? undefined : body)) as {
          faults: Faults | null;
        };
        process.stdout.write(`${faultsLine(r.faults)}\n`);
        return 0;
      }
      case 'reload': {
        const r = (await call(base, token, 'POST', '/api/v1/reload', {})) as {
          result: string;
          changed: string[];
          hash: string;
        };
        process.stdout.write(`${r.result}${r.changed.length ? `: ${r.changed.join(', ')}` : ''} (config ${r.hash})\n`);
        return 0;
      }
      case 'log': {
        // No arguments: show. level=<level> and/or access=on|off: change until the next restart.
        const body: Record<string, unknown> = {};
        for (const a of rest) {
          const m = /^(level|access)=(.+)$/.exec(a);
          if (m === null || (m[1] === 'access' && m[2] !== 'on' && m[2] !== 'off'))
            throw usage(`bad setting ${JSON.stringify(a)}: expected level=<level> or access=on|off`);
          body[m[1] as string] = m[1] === 'access' ? m[2] === 'on' : m[2];
        }
        const l = (await call(
          base,
          token,
          rest.length === 0 ? 'GET' : 'PUT',
          '/api/v1/log',
          rest.length === 0 ? undefined : body,
        )) as { level: string; access: boolean };
        process.stdout.write(`level ${l.level}   access log ${l.access ? 'on' : 'off'}\n`);
        return 0;
      }
    }
  } catch (err) {
    if (err instanceof ClientError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  return 2;
}
