/**
 * The composition root: config → planes → listeners; graceful shutdown. The only file that wires
 * the data, stats, control and admin planes together.
 */
import { Registry } from 'prom-client';
import { systemClock, type Clock } from './core/clock.js';
import type { Config } from './core/config.js';
import { semiSpaceMiB } from './core/gc.js';
import { currentRuntime, runtimeNotice } from './core/runtime.js';
import { createLogger, flushDestination, stdoutDestination, type Logger } from './core/log.js';
import { AccessLog } from './data/access-log.js';
import { ProxyServer } from './data/proxy.js';
import { makeTable, TablePublisher } from './data/table.js';
import { UpstreamPool, type UpstreamOptions } from './data/upstream.js';
import { Recorder } from './stats/recorder.js';
import { WindowRing } from './stats/window.js';
import { Controller } from './control/controller.js';
import { HealthChecker } from './control/health.js';
import { WebhookNotifier, type Notifier } from './control/webhooks.js';
import { validateState, type ControllerState } from './control/state.js';
import { FileStateStore, type StateStore } from './control/state-store.js';
import { AdminServer } from './admin/server.js';
import { Authenticator } from './admin/auth.js';
import { AuditLog } from './admin/audit.js';
import { apiRoutes, type LogLevel, type LogSettings } from './admin/routes.js';
import { loadAssets } from './admin/assets.js';
import { EventHub } from './admin/events.js';
import { DEFAULT_FAILURE_LIMITS, FailureLimiter } from './admin/rate-limit.js';
import { registerMetrics } from './metrics/metrics.js';
import { statusDocument } from './status.js';

export interface SluiceOptions {
  logger?: Logger;
  clock?: Clock;
  store?: StateStore<ControllerState>;
  notifier?: Notifier;
  /** Start the controller's tick loop (default true; tests drive tick() by hand). */
  autoTick?: boolean;
}

export interface Sluice {
  config: Config;
  proxyPort: number;
  adminPort: number;
  controller: Controller;
  recorder: Recorder;
  window: WindowRing;
  pools: readonly [UpstreamPool, UpstreamPool];
  health: HealthChecker | undefined;
  status(): ReturnType<typeof statusDocument>;
  /** Graceful stop: refuse new requests, finish in-flight ones within shutdownGrace, persist. */
  stop(): Promise<void>;
  /** Reopen the files sluice appends to (SIGUSR1, after logrotate moved them). */
  reopenLogs(): Promise<void>;
}

export async function startSluice(config: Config, opts: SluiceOptions = {}): Promise<Sluice> {
  // One ordered writer for app logs and access lines (unless a test hands in its own logger).
  const destination = opts.logger === undefined ? stdoutDestination() : undefined;
  const logger = opts.logger ?? createLogger(config.log.level, destination);
  const clock = opts.clock ?? systemClock;
  const notice = runtimeNotice(process.version, Date.now());
  if (notice !== undefined) logger[notice.level]({ runtime: currentRuntime() }, notice.message);
  const upstreamOpts: UpstreamOptions = {
    connections: config.upstream.connections,
    connectTimeout: config.timeouts.connect,
    headersTimeout: config.timeouts.response,
    bodyTimeout: config.timeouts.idle,
    ejectAfter: config.upstream.ejectAfter,
    ejectFor: config.upstream.ejectFor,
  };
  const pools = [
    new UpstreamPool(0, 'blue', config.pools.blue.endpoints, upstreamOpts, clock),
    new UpstreamPool(1, 'green', config.pools.green.endpoints, upstreamOpts, clock),
  ] as const;
  for (const p of pools) {
    p.onEjection = (ep, ejected) =>
      logger.warn(
        { pool: p.name, endpoint: ep.url, ejected },
        ejected ? 'endpoint ejected after consecutive connect failures' : 'endpoint back in rotation',
      );
  }

  const recorder = new Recorder();
  const window = new WindowRing(
    (recycle) => recorder.takeInterval(recycle),
    Math.max(1, Math.ceil(config.rollout.analysis.window / config.rollout.analysis.interval)),
  );
  const table = new TablePublisher(makeTable(0, config.stable, { blue: 100, green: 0 }));
  const store = opts.store ?? new FileStateStore<ControllerState>(config.stateFile, validateState);
  const notifier = opts.notifier ?? new WebhookNotifier(config.webhooks, logger);
  const controller = new Controller({ config, table, store, window, pools, clock, logger, notifier });
  // Always there (it costs nothing until a line is written): PUT /api/v1/log can switch it on.
  const accessLog = new AccessLog(destination ?? process.stdout);

  const proxy = new ProxyServer({ config, table, pools, recorder, accessLog, logger });
  const a = config.rollout.analysis;
  const thresholds = {
    maxErrorRate: a.maxErrorRate,
    maxP95Ms: a.maxP95Ms,
    maxP95Ratio: a.maxP95Ratio,
    minRequests: a.minRequests,
  };
  const status = () =>
    statusDocument(controller.state, controller.analysis, pools, controller.windows, clock(), {
      windowMs: controller.windowMs,
      thresholds,
      inflight: proxy.inFlight,
      forced: recorder.pools.map((r) => r.forced),
      rejected: recorder.rejected,
    });
  const events = new EventHub(status, { refreshMs: Math.max(1000, a.interval), keepAliveMs: 15_000, maxClients: 64 });
  controller.onChange(() => events.broadcast());

  const hc = config.healthCheck;
  const health =
    hc.path === null ? undefined : new HealthChecker(pools, { ...hc, path: hc.path }, logger, () => controller.emit());

  const registry = new Registry();
  registerMetrics(registry, recorder, {
    weights: () => controller.state.weights,
    phase: () => controller.state.phase,
    rollbacks: () => controller.state.rollbacks,
    endpoints: () =>
      pools.flatMap((p) => p.endpoints.map((e) => ({ pool: p.name, url: e.url, healthy: e.available(clock()) }))),
    windows: () => controller.windows,
    inflight: () => proxy.inFlight,
    connections: () => pools.map((p) => ({ pool: p.name, ...p.connections() })),
  });

  // Log level and access log, changed at run time until the next restart (config holds the start).
  const logSettings: LogSettings = {
    get: () => ({ level: logger.level as LogLevel, access: proxy.accessLogging }),
    set: (s) => {
      if (s.level !== undefined) logger.level = s.level;
      if (s.access !== undefined) proxy.accessLogging = s.access;
    },
  };

  let ready = false;
  const audit = new AuditLog(config.audit.file, {
    maxBytes: config.audit.maxBytes,
    clock,
    onError: (err) => logger.error({ err }, 'audit write failed'),
  });
  const admin = new AdminServer({
    host: config.admin.host,
    allowedHosts: config.admin.allowedHosts,
    auth: new Authenticator(config.admin.tokens),
    audit,
    limiter: new FailureLimiter(DEFAULT_FAILURE_LIMITS, clock),
    registry,
    routes: apiRoutes(controller, status, events, logSettings),
    assets: loadAssets(),
    ready: () => ready,
    snapshot: () => {
      const s = controller.state;
      return {
        version: s.version,
        stable: s.stable,
        weights: s.weights,
        phase: s.phase,
        stepIndex: s.stepIndex,
        log: logSettings.get(),
      };
    },
    logger,
  });

  let proxyPort: number;
  let adminPort: number;
  try {
    adminPort = await admin.listen(config.admin.port, config.admin.host);
    proxyPort = await proxy.listen(config.listen.port, config.listen.host);
  } catch (err) {
    await admin.close().catch(() => {});
    for (const p of pools) p.destroy();
    throw err;
  }
  if (config.admin.tokens.length === 0)
    logger.warn(
      { host: config.admin.host },
      'admin API has no tokens: full access for anyone who can reach the loopback admin listener',
    );
  if (opts.autoTick !== false) controller.start();
  health?.start();
  events.start();
  ready = true;
  logger.info(
    {
      proxy: `${config.listen.host}:${proxyPort}`,
      admin: `${config.admin.host}:${adminPort}`,
      weights: controller.state.weights,
      stable: controller.state.stable,
      semiSpaceMiB: semiSpaceMiB(),
      runtime: currentRuntime(),
    },
    'sluice listening',
  );

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ready = false;
      controller.stop();
      logger.info({ inFlight: proxy.inFlight, graceMs: config.shutdownGrace }, 'shutting down');
      await proxy.close(config.shutdownGrace);
      // Past the grace, at most one more second: upstream connections are destroyed then, and
      // webhooks under way get the same second.
      const second = new Promise((r) => setTimeout(r, 1000).unref());
      await Promise.all([health?.stop(), ...pools.map((p) => p.close(1000)), Promise.race([notifier.drain(), second])]);
      accessLog.close();
      events.close();
      await admin.close();
      await audit.close().catch((err: unknown) => logger.error({ err }, 'could not close the audit log'));
      try {
        controller.persist();
      } catch (err) {
        logger.error({ err }, 'could not persist state at shutdown');
      }
      logger.info('stopped');
      if (destination !== undefined) await flushDestination(destination);
    })());

  const reopenLogs = async () => {
    await audit.reopen();
    logger.info({ audit: config.audit.file }, 'log files reopened');
  };
  return { config, proxyPort, adminPort, controller, recorder, window, pools, health, status, stop, reopenLogs };
}
