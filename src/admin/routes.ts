/** The /api/v1 routes: each turns a call into a controller command or a read. */
import type { Controller } from '../control/controller.js';
import { POOL_NAMES, type Config, type PoolName } from '../core/config.js';
import type { ReloadResult } from '../core/reload.js';
import { SluiceError } from '../core/errors.js';
import type { EventHub } from './events.js';
import type { Route } from './server.js';
import {
  commandBody,
  endpointsBody,
  faultsBody,
  fullWeights,
  logBody,
  maintenanceBody,
  shadowBody,
  startBody,
  versionBody,
  weightsBody,
} from './schemas.js';

export type LogLevel = Config['log']['level'];

/** The process's log level and access log, as PUT /api/v1/log reads and changes them. */
export interface LogSettings {
  get(): { level: LogLevel; access: boolean };
  set(s: { level?: LogLevel | undefined; access?: boolean | undefined }): void;
}

/**
 * `refresh` brings every member's gauges up to now before a status is read (worker threads
 * report by message; a command's own status follows its table's acknowledgement).
 */
export function apiRoutes(
  controller: Controller,
  status: () => unknown,
  events: EventHub,
  log: LogSettings,
  more: {
    /** Read every member's numbers before a status or metrics read. */
    refresh?: () => Promise<void>;
    /** Re-read the config file. */
    reload?: (by: string) => Promise<ReloadResult>;
    /** The last 15 minutes per interval, after `since` (ms). */
    series?: (since: number) => unknown;
    /** Set a pool's endpoints in place of the config's; resolves once every member uses them. */
    setEndpoints?: (pool: PoolName, endpoints: string[], by: string, expectedVersion?: number) => Promise<void>;
    /** The fault injection as the status shows it (with whether it applies and its counts). */
    faults?: () => unknown;
  } = {},
): Route[] {
  const { refresh = async () => {}, reload, setEndpoints, series } = more;
  const faults = async () => {
    await refresh();
    return { faults: more.faults?.() ?? controller.state.faults };
  };
  const simple = (name: 'pause' | 'resume' | 'promote' | 'abort'): Route => ({
    method: 'POST',
    path: `/api/v1/rollout/${name}`,
    role: 'operator',
    action: `rollout.${name}`,
    handle: async (ctx) => {
      const b = ctx.parse(commandBody);
      await controller.command(
        name === 'abort' ? { type: 'abort', reason: b.reason } : { type: name },
        ctx.principal.id,
        b.expectedVersion,
      );
      return status();
    },
  });
  return [
    {
      method: 'GET',
      path: '/api/v1/status',
      role: 'viewer',
      handle: async () => {
        await refresh();
        return status();
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/weights',
      role: 'operator',
      action: 'weights.set',
      handle: async (ctx) => {
        const b = ctx.parse(weightsBody);
        await controller.setWeights(fullWeights(b.weights), ctx.principal.id, b.expectedVersion);
        return status();
      },
    },
    {
      method: 'POST',
      path: '/api/v1/rollout/start',
      role: 'operator',
      action: 'rollout.start',
      handle: async (ctx) => {
        const b = ctx.parse(startBody);
        await controller.command(
          { type: 'start', steps: b.steps, stepHold: b.stepHold, dryRun: b.dryRun },
          ctx.principal.id,
          b.expectedVersion,
        );
        return status();
      },
    },
    simple('pause'),
    simple('resume'),
    simple('promote'),
    simple('abort'),
    {
      method: 'POST',
      path: '/api/v1/shadow/start',
      role: 'operator',
      action: 'shadow.start',
      handle: async (ctx) => {
        const { expectedVersion, ...b } = ctx.parse(shadowBody);
        await controller.command({ type: 'shadow_start', ...b }, ctx.principal.id, expectedVersion);
        return status();
      },
    },
    {
      method: 'POST',
      path: '/api/v1/shadow/stop',
      role: 'operator',
      action: 'shadow.stop',
      handle: async (ctx) => {
        const b = ctx.parse(commandBody);
        await controller.command({ type: 'shadow_stop' }, ctx.principal.id, b.expectedVersion);
        return status();
      },
    },
    {
      method: 'GET',
      path: '/api/v1/series',
      role: 'viewer',
      handle: (ctx) => {
        if (series === undefined) throw new SluiceError('not_supported', 409, 'no series here');
        const raw = new URL(ctx.req.url ?? '/', 'http://x').searchParams.get('since');
        const since = raw === null ? 0 : Number(raw);
        if (!Number.isFinite(since) || since < 0)
          throw new SluiceError('invalid_query', 400, 'since must be a time in ms since the epoch', { field: 'since' });
        return series(since);
      },
    },
    { method: 'GET', path: '/api/v1/history', role: 'viewer', handle: () => ({ history: controller.state.history }) },
    ...POOL_NAMES.map(
      (pool): Route => ({
        method: 'PUT',
        path: `/api/v1/pools/${pool}/endpoints`,
        role: 'operator',
        action: 'endpoints.set',
        handle: async (ctx) => {
          const b = ctx.parse(endpointsBody);
          if (setEndpoints === undefined) throw new SluiceError('not_supported', 409, 'endpoints cannot be set here');
          await setEndpoints(pool, b.endpoints, ctx.principal.id, b.expectedVersion);
          return status();
        },
      }),
    ),
    {
      method: 'GET',
      path: '/api/v1/maintenance',
      role: 'viewer',
      handle: () => controller.state.maintenance,
    },
    {
      method: 'PUT',
      path: '/api/v1/maintenance',
      role: 'operator',
      action: 'maintenance.set',
      handle: async (ctx) => {
        const { expectedVersion, ...m } = ctx.parse(maintenanceBody);
        await controller.command({ type: 'maintenance', ...m }, ctx.principal.id, expectedVersion);
        return controller.state.maintenance;
      },
    },
    { method: 'GET', path: '/api/v1/faults', role: 'viewer', handle: faults },
    {
      method: 'PUT',
      path: '/api/v1/faults',
      role: 'operator',
      action: 'faults.set',
      handle: async (ctx) => {
        const { expectedVersion, ...spec } = ctx.parse(faultsBody);
        await controller.command({ type: 'faults', spec }, ctx.principal.id, expectedVersion);
        return faults();
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/faults',
      role: 'operator',
      action: 'faults.clear',
      handle: async (ctx) => {
        const b = ctx.parse(versionBody);
        await controller.command({ type: 'faults', spec: null }, ctx.principal.id, b.expectedVersion);
        return faults();
      },
    },
    {
      method: 'POST',
      path: '/api/v1/reload',
      role: 'operator',
      action: 'config.reload',
      handle: async (ctx) => {
        if (reload === undefined)
          throw new SluiceError('no_config_file', 409, 'this sluice has no config file to read');
        const r = await reload(ctx.principal.id);
        if (r.result !== 'invalid' && r.result !== 'refused') return r;
        // Each problem reads `path.to.key: message`: the keys are the failing fields.
        const field = r.problems.map((p) => p.split(':')[0]).join(',');
        const problems = r.problems.join('; ');
        throw r.result === 'invalid'
          ? new SluiceError('invalid_config', 400, `the running config stays: ${problems}`, { field })
          : new SluiceError('restart_required', 409, `nothing was changed: ${problems}`, { field });
      },
    },
    { method: 'GET', path: '/api/v1/log', role: 'viewer', handle: () => log.get() },
    {
      method: 'PUT',
      path: '/api/v1/log',
      role: 'operator',
      action: 'log.set',
      handle: (ctx) => {
        log.set(ctx.parse(logBody));
        return log.get();
      },
    },
    {
      method: 'GET',
      path: '/api/v1/events',
      role: 'viewer',
      handle: (_ctx, res) => {
        if (!events.subscribe(res)) throw new SluiceError('too_many_streams', 503, 'too many event streams open');
        return undefined;
      },
    },
  ];
}
