/**
 * Webhook notifications: a JSON POST per rollout event to each subscribed URL, with a short
 * timeout and a few retries with backoff. `notify` returns at once: delivery runs in the
 * background and never blocks the controller. Failures are logged, not thrown.
 */
import { request } from 'undici';
import type { Logger } from 'pino';
import { slackMessage } from './slack.js';

export interface WebhookTarget {
  url: string;
  events?: string[] | undefined;
  /** json (default): the event and its payload; slack: a message for a Slack incoming webhook. */
  format?: 'json' | 'slack' | undefined;
}

export interface Notifier {
  notify(event: string, payload: Record<string, unknown>): void;
  /** Resolves when every delivery under way has finished (shutdown, tests). */
  drain(): Promise<void>;
}

export interface WebhookOptions {
  timeoutMs?: number;
  retries?: number;
  backoffMs?: number;
}

export class WebhookNotifier implements Notifier {
  private readonly inflight = new Set<Promise<void>>();
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;

  /** A reload's webhooks: for events from now on (deliveries under way finish as they were). */
  setTargets(targets: readonly WebhookTarget[]): void {
    this.targets = targets;
  }

  constructor(
    private targets: readonly WebhookTarget[],
    private readonly logger: Logger,
    opts: WebhookOptions = {},
    /** Named in Slack messages (the fleet's rollout name), so a channel fed by several tells them apart. */
    private readonly name?: string,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.retries = opts.retries ?? 3;
    this.backoffMs = opts.backoffMs ?? 500;
  }

  notify(event: string, payload: Record<string, unknown>): void {
    // Each format is written once per event, however many targets take it.
    const bodies = new Map<string, string>();
    const bodyFor = (format: 'json' | 'slack'): string => {
      let b = bodies.get(format);
      if (b === undefined) {
        b = JSON.stringify(
          format === 'slack'
            ? slackMessage(event, payload, this.name)
            : { event, at: new Date().toISOString(), ...payload },
        );
        bodies.set(format, b);
      }
      return b;
    };
    for (const t of this.targets) {
      if (t.events !== undefined && !t.events.includes(event)) continue;
      const body = bodyFor(t.format ?? 'json');
      const p = this.deliver(t.url, event, body).finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    }
  }

  private async deliver(url: string, event: string, body: string): Promise<void> {
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      try {
        const r = await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'sluice-webhook', 'x-sluice-event': event },
          body,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        await r.body.dump();
        if (r.statusCode < 500 && r.statusCode !== 429) {
          if (r.statusCode >= 400) this.logger.warn({ url, event, status: r.statusCode }, 'webhook refused');
          return;
        }
        this.logger.warn({ url, event, status: r.statusCode, attempt }, 'webhook failed');
      } catch (err) {
        this.logger.warn({ url, event, attempt, err: (err as Error).message }, 'webhook failed');
      }
      if (attempt < this.retries) await new Promise((r) => setTimeout(r, this.backoffMs * 2 ** attempt).unref());
    }
    this.logger.error({ url, event }, 'webhook gave up');
  }

  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}
