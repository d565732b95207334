/**
 * Active health checks: every `interval`, GET `path` on every endpoint (own connections, so a busy
 * pool cannot starve its checks). `unhealthyAfter` consecutive failures take an endpoint out of
 * rotation; `healthyAfter` consecutive successes bring it back. A 2xx or 3xx is a success.
 */
import { Agent, request } from 'undici';
import type { Logger } from 'pino';
import { poolNameOf, type PoolId } from '../data/table.js';
import type { EndpointBook } from './endpoints.js';

export interface HealthPolicy {
  path: string;
  interval: number;
  timeout: number;
  unhealthyAfter: number;
  healthyAfter: number;
}

interface Track {
  pool: PoolId;
  index: number;
  url: string;
  fails: number;
  oks: number;
}

export class HealthChecker {
  private readonly agent: Agent;
  private readonly tracks: Track[];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  /** Verdicts go to `book` (the owner of availability), which publishes them to every worker. */
  constructor(
    private readonly book: EndpointBook,
    private readonly policy: HealthPolicy,
    private readonly logger: Logger,
  ) {
    this.agent = new Agent({
      connections: 2,
      connectTimeout: policy.timeout,
      headersTimeout: policy.timeout,
      bodyTimeout: policy.timeout,
    });
    this.tracks = ([0, 1] as const).flatMap((pool) =>
      book.urls[pool].map((url, index) => ({ pool, index, url: url.replace(/\/$/, ''), fails: 0, oks: 0 })),
    );
  }

  start(): void {
    if (this.timer !== undefined) return; // started once: a second timer would never be cleared
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
      const r = await request(`${t.url}${this.policy.path}`, {
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
      if (!this.up(t) && t.oks >= this.policy.healthyAfter) {
        this.logger.info({ pool: poolNameOf(t.pool), endpoint: t.url }, 'endpoint healthy');
        this.book.setActive(t.pool, t.index, true);
      }
    } else {
      t.oks = 0;
      t.fails++;
      if (this.up(t) && t.fails >= this.policy.unhealthyAfter) {
        this.logger.warn(
          { pool: poolNameOf(t.pool), endpoint: t.url, detail, failures: t.fails },
          'endpoint unhealthy: out of rotation',
        );
        this.book.setActive(t.pool, t.index, false);
      }
    }
  }

  private up(t: Track): boolean {
    return this.book.state(t.pool, t.index)?.up ?? true;
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running;
    await this.agent.close();
  }
}
