/** The /api/v1 routes: each turns a call into a controller command or a read. */
import type { Controller } from '../control/controller.js';
import type { Route } from './server.js';
import { fullWeights, weightsBody } from './schemas.js';

export function apiRoutes(controller: Controller, status: () => unknown): Route[] {
  return [
    { method: 'GET', path: '/api/v1/status', role: 'viewer', handle: () => status() },
    {
      method: 'PUT',
      path: '/api/v1/weights',
      role: 'operator',
      action: 'weights.set',
      handle: (ctx) => {
        const b = ctx.parse(weightsBody);
        controller.setWeights(fullWeights(b.weights), ctx.principal.id, b.expectedVersion);
        return status();
      },
    },
    { method: 'GET', path: '/api/v1/history', role: 'viewer', handle: () => ({ history: controller.state.history }) },
  ];
}
