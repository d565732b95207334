/** The /api/v1 routes: each turns a call into a controller command or a read. */
import type { Controller } from '../control/controller.js';
import type { Config } from '../core/config.js';
import { SluiceError } from '../core/errors.js';
import type { EventHub } from './events.js';
import type { Route } from './server.js';
import { commandBody, fullWeights, logBody, startBody, weightsBody } from './schemas.js';

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
  refresh: () => Promise<void> = async () => {},
): Route[] {
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
          { type: 'start', steps: b.steps, stepHold: b.stepHold },
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
    { method: 'GET', path: '/api/v1/history', role: 'viewer', handle: () => ({ history: controller.state.history }) },
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
