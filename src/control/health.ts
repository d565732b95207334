/**
 * Active health checks: every `interval`, GET `path` on every endpoint (own connections, so a busy
 * pool cannot starve its checks). `unhealthyAfter` consecutive failures take an endpoint out of
 * rotation; `healthyAfter` consecutive successes bring it back. A 2xx or 3xx is a success.
 */
import { Agent, request } from 'undici';
import type { Logger } from 'pino';
import type { Endpoint, UpstreamPool } from '../data/upstream.js';

export interface HealthPolicy {
  path: string;
  interval: number;
  timeout: number;
  unhealthyAfter: number;
  healthyAfter: number;
}

interface Track {
  pool: UpstreamPool;
  ep: Endpoint;
  fails: number;
  oks: number;
}

export class HealthChecker {
  private readonly agent: Agent;
  private readonly tracks: Track[];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    pools: readonly UpstreamPool[],
    private readonly policy: HealthPolicy,
    private readonly logger: Logger,
    /** Called when an endpoint changes state. */
    private readonly onChange: (pool: UpstreamPool, ep: Endpoint, healthy: boolean) => void,
  ) {
    this.agent = new Agent({
      connections: 2,
      connectTimeout: policy.timeout,
      headersTimeout: policy.timeout,
      bodyTimeout: policy.timeout,
    });
    this.tracks = pools.flatMap((pool) => pool.endpoints.map((ep) => ({ pool, ep, fails: 0, oks: 0 })));
  }

  start(): void {
    const run = () => {
      this.running ??= this.checkAll().finally(() => (this.running = undefined));
    };
    run();
    this.timer = setInterval(run, this.policy.interval);
    this.timer.unref();
  }

  /** One round of checks over every endpoint (tests call this directly). */
  async checkAll(): Promise<void> {
    await Promise.all(this.tracks.map((t) => this.check(t)));
  }

  private async check(t: Track): Promise<void> {
    let ok = false;
    let detail = '';
    try {
      const r = await request(`${t.ep.url}${this.policy.path}`, {
        dispatcher: this.agent,
        method: 'GET',
        signal: AbortSignal.timeout(this.policy.timeout),
      });
      await r.body.dump();
      ok = r.statusCode >= 200 && r.statusCode < 400;
      detail = `status ${r.statusCode}`;
    } catch (err) {
      detail = (err as { code?: string }).code ?? (err as Error).message;
    }
    if (ok) {
      t.fails = 0;
      t.oks++;
      if (!t.ep.activeHealthy && t.oks >= this.policy.healthyAfter) {
        t.pool.setActiveHealth(t.ep, true);
        this.logger.info({ pool: t.pool.name, endpoint: t.ep.url }, 'endpoint healthy');
        this.onChange(t.pool, t.ep, true);
      }
    } else {
      t.oks = 0;
      t.fails++;
      if (t.ep.activeHealthy && t.fails >= this.policy.unhealthyAfter) {
        t.pool.setActiveHealth(t.ep, false);
        this.logger.warn(
          { pool: t.pool.name, endpoint: t.ep.url, detail, failures: t.fails },
          'endpoint unhealthy: out of rotation',
        );
        this.onChange(t.pool, t.ep, false);
      }
    }
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running;
    await this.agent.close();
  }
}
