/**
 * The composition root: config → planes → listeners; graceful shutdown. The only file that wires
 * the data, stats, control and admin planes together.
 *
 * Layout: the main thread owns the controller, the state store, endpoint availability, health
 * checks, webhooks, the admin API and metrics. The data plane is one or more members: with
 * `workers: 1` one in this thread, else one per worker thread, each listening on the same port
 * (SO_REUSEPORT). Between them only values cross: tables down, reports and events up.
 */
import { availableParallelism } from 'node:os';
import { Registry } from 'prom-client';
import { systemClock, type Clock } from './core/clock.js';
import type { Config } from './core/config.js';
import { ConfigError } from './core/errors.js';
import { configHash, poolsBase, reloadPlan, type ReloadResult } from './core/reload.js';
import { loadTls, sameCertificates, TlsError, type TlsMaterial } from './core/tls.js';
import { semiSpaceMiB } from './core/gc.js';
import { currentRuntime, runtimeNotice, supportsReusePort } from './core/runtime.js';
import { AccessSink, createLogger, flushDestination, stdoutDestination, type Logger } from './core/log.js';
import { clientConnBuffer } from './data/client-conns.js';
import { DataPlane, planeOptions, workerShare } from './data/plane.js';
import { makeTable, TablePublisher } from './data/table.js';
import type { UpstreamPool } from './data/upstream.js';
import type { Recorder } from './stats/recorder.js';
import { WindowRing } from './stats/window.js';
import { Controller } from './control/controller.js';
import { EndpointBook } from './control/endpoints.js';
import { HealthChecker } from './control/health.js';
import { LocalMember, type Member, Members } from './control/members.js';
import { WebhookNotifier, type Notifier } from './control/webhooks.js';
import { seriesDocument } from './series.js';
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
import { faultStatus, statusDocument } from './status.js';
import { WorkerMember } from './worker/member.js';
import { Fleet, FleetStore } from './fleet/fleet.js';

export interface SluiceOptions {
  logger?: Logger;
  /** The clock of the control plane and of an in-thread data plane (worker threads use the system clock). */
  clock?: Clock;
  store?: StateStore<ControllerState>;
  notifier?: Notifier;
  /** Start the controller's tick loop (default true; tests drive tick() by hand). */
  autoTick?: boolean;
  /** The file the config came from, for the log and the status document. */
  configFile?: string;
  /** Read the config again (the file with the command line's overrides): a reload's source. */
  readConfig?: () => Config;
}

export interface Sluice {
  /** The config in force (the latest reload's). */
  readonly config: Config;
  proxyPort: number;
  /** listen.http's port, when it is set. */
  httpPort: number | undefined;
  adminPort: number;
  controller: Controller;
  /** Threads serving requests (1: the main thread itself). */
  workers: number;
  members: Members;
  endpoints: EndpointBook;
  /** The in-thread data plane's recorder and pools (`workers: 1` only: a worker's live in its thread). */
  recorder: Recorder;
  pools: readonly [UpstreamPool, UpstreamPool];
  window: WindowRing;
  health: HealthChecker | undefined;
  status(): ReturnType<typeof statusDocument>;
  /** Graceful stop: refuse new requests, finish in-flight ones within shutdownGrace, persist. */
  stop(): Promise<void>;
  /** Reopen the files sluice appends to (SIGUSR1, after logrotate moved them). */
  reopenLogs(): Promise<void>;
  /** Read the config file again and apply what can change without a restart (SIGHUP). */
  reload(by: string): Promise<ReloadResult>;
}

/** How many threads serve requests, and why when fewer than asked. */
export function workerLayout(
  wanted: Config['workers'],
  cpus: number,
  reusePort: boolean,
): { count: number; note: string | undefined } {
  const n = wanted === 'auto' ? cpus : wanted;
  if (n > 1 && !reusePort)
    return {
      count: 1,
      note: `workers: ${String(wanted)} needs SO_REUSEPORT (Node >= 22.12 on Linux): serving on the main thread only`,
    };
  return { count: Math.max(1, n), note: undefined };
}

export async function startSluice(config: Config, opts: SluiceOptions = {}): Promise<Sluice> {
  // One ordered writer for app logs and access lines (unless a test hands in its own logger).
  const destination = opts.logger === undefined ? stdoutDestination() : undefined;
  const sink = destination ?? process.stdout;
  const accessSink = new AccessSink(sink, (err, path) =>
    logger.error({ err, file: path }, 'access log file write failed: lines are being dropped'),
  );
  accessSink.use(config.log.accessFile);
  // Certificates read once here; each worker gets them as a value (and each reload, anew).
  let tlsMaterial = config.listen.tls === null ? null : loadTls(config.listen.tls);
  const logger = opts.logger ?? createLogger(config.log.level, destination);
  const clock = opts.clock ?? systemClock;
  const runtime = currentRuntime();
  const notice = runtimeNotice(process.version, Date.now());
  if (notice !== undefined) logger[notice.level]({ runtime }, notice.message);
  const reusePort = supportsReusePort(process.version, process.platform);
  const layout = workerLayout(config.workers, availableParallelism(), reusePort);
  if (layout.note !== undefined) logger.warn({ workers: config.workers, runtime }, layout.note);

  const urls = [config.pools.blue.endpoints, config.pools.green.endpoints] as const;
  const book = new EndpointBook(urls, { ejectFor: config.upstream.ejectFor }, clock);
  const table = new TablePublisher(makeTable(0, config.stable, { blue: 100, green: 0 }, book.current));
  let access = config.log.access;
  const report = (e: Parameters<EndpointBook['report']>[0]) => book.report(e);
  // A member's sequential check crossed: the controller (created below) judges now.
  let urgent = () => {};
  const alarm = () => urgent();

  let local: DataPlane | undefined;
  const list: Member[] = [];
  const threads: WorkerMember[] = [];
  if (layout.count === 1) {
    local = new DataPlane(planeOptions(config, tlsMaterial), table.current, {
      clock,
      logger,
      access: accessSink,
      report,
      alarm,
    });
    list.push(new LocalMember(local));
  } else {
    const conns = config.limits.maxConnectionsPerClient > 0 ? clientConnBuffer(layout.count) : undefined;
    for (let i = 0; i < layout.count; i++) {
      const w = new WorkerMember({
        index: i,
        options: workerShare(planeOptions(config, tlsMaterial), layout.count),
        host: config.listen.host,
        reusePort,
        table: () => table.current,
        level: () => logger.level,
        access: () => access,
        sink,
        accessSink,
        onEvent: report,
        onAlarm: alarm,
        logger,
        // A worker that does not report within half an interval is passed over for that tick (its
        // interval joins the next one). A table waits up to 2 s for it, then goes on with a warning.
        answerMs: Math.max(50, Math.min(1000, config.rollout.analysis.interval / 2)),
        conns,
        columns: layout.count,
      });
      threads.push(w);
      list.push(w);
    }
  }
  const members = new Members(list);
  const window = new WindowRing(
    Math.max(1, Math.ceil(config.rollout.analysis.window / config.rollout.analysis.interval)),
  );

  const slots = Math.max(1, Math.ceil(config.rollout.analysis.window / config.rollout.analysis.interval));
  const file = opts.store ?? new FileStateStore<ControllerState>(config.stateFile, validateState);
  let fleet: Fleet | undefined;
  let store: StateStore<ControllerState> = file;
  if (config.fleet !== null) {
    const f = config.fleet;
    // The schema requires fleet.redis; loadConfig fills it from $SLUICE_REDIS_URL when the file has none.
    fleet = new Fleet(
      { url: f.redis as string, name: f.name, leaseMs: f.lease, pollMs: 1000 },
      validateState,
      clock,
      logger,
      slots,
    );
    await fleet.start();
    store = new FleetStore(fleet, file, logger, `${config.stateFile}.fleet-pending`);
  }
  const notifier = opts.notifier ?? new WebhookNotifier(config.webhooks, logger, {}, config.fleet?.name);
  // Restored before any listener opens: the first request is routed by the saved state.
  const controller = await Controller.create({
    config,
    table,
    store,
    window,
    endpoints: book,
    intervals: (spare) => members.interval(spare),
    broadcast: (t) => members.publish(t),
    peek: () => members.counts(),
    clock,
    logger,
    notifier,
    fleet,
  });
  urgent = () => void controller.urgent().catch((err: unknown) => logger.error({ err }, 'urgent verdict failed'));
  if (fleet !== undefined) {
    const f = fleet;
    const copy = store as FleetStore;
    f.held = () => controller.state.version;
    f.onUrgent = () => urgent();
    f.onState = (s) => {
      void controller.adopt(s);
      void copy.keepCopy(s).catch(() => {});
    };
    // Back from an outage: re-seed an empty Redis from this instance, or adopt what is there
    // (a rollback decided meanwhile is written on top: Controller.adopt).
    f.onReconnect = () =>
      void f
        .load()
        .then(async (r) => {
          if (r.state === undefined) await f.seed(controller.state);
          await controller.adopt(r.state ?? controller.state);
        })
        .catch((err: unknown) => logger.error({ err }, 'fleet: catching up after Redis returned failed'));
  }
  // The config in force: a reload replaces it whole once it has been applied.
  let running = config;
  let loaded = { hash: configHash(config), at: clock(), file: opts.configFile ?? null };
  const reloads: Record<ReloadResult['result'], number> = { applied: 0, unchanged: 0, refused: 0, invalid: 0 };
  const thresholds = () => {
    const a = running.rollout.analysis;
    return {
      maxErrorRate: a.maxErrorRate,
      maxP95Ms: a.maxP95Ms,
      maxP95Ratio: a.maxP95Ratio,
      minRequests: a.minRequests,
    };
  };
  const status = () => {
    members.refreshLocal();
    // A follower shows the leader's verdict on the whole fleet's traffic.
    const sum = fleet?.connected && !fleet.leader ? fleet.summary : null;
    return statusDocument(
      controller.state,
      sum?.analysis ?? controller.analysis,
      sum?.windows ?? controller.windows,
      clock(),
      {
        fleet: fleet?.status() ?? null,
        windowMs: controller.windowMs,
        thresholds: thresholds(),
        config: { ...loaded, reloads },
        view: members.view(),
        endpoints: book,
        workers: members.list.map((m) => m.info),
        table: { version: table.current.version, health: table.current.health, appliedInMs: controller.appliedInMs },
        shadowRun: controller.shadowEvidence(),
        faultsEnabled: controller.faultsEnabled,
      },
    );
  };
  const events = new EventHub(status, {
    refreshMs: Math.max(1000, config.rollout.analysis.interval),
    keepAliveMs: 15_000,
    maxClients: 64,
  });
  controller.onChange(() => events.broadcast());
  book.onChange((_a, c) => {
    if (c.change === 'ejected' || c.change === 'restored')
      logger.warn(
        { pool: c.pool, endpoint: c.url, ejected: c.change === 'ejected' },
        c.change === 'ejected' ? 'endpoint ejected after consecutive connect failures' : 'endpoint back in rotation',
      );
    controller.republish();
    controller.emit();
  });

  const checker = (c: Config) => {
    const hc = c.healthCheck;
    return hc.path === null ? undefined : new HealthChecker(book, { ...hc, path: hc.path }, logger);
  };
  let health = checker(config);

  const registry = new Registry();
  registerMetrics(registry, {
    weights: () => controller.state.weights,
    stable: () => controller.state.stable,
    phase: () => controller.state.phase,
    rollbacks: () => controller.state.rollbacks,
    endpoints: () =>
      ([0, 1] as const).flatMap((id) =>
        book.urls[id].map((url, i) => ({
          pool: id === 0 ? 'blue' : 'green',
          url,
          healthy: book.available(id, i, clock()),
        })),
      ),
    windows: () => controller.windows,
    inflight: () => members.view().inflight,
    connections: () => {
      const v = members.view();
      return [
        { pool: 'blue', ...v.connections[0] },
        { pool: 'green', ...v.connections[1] },
      ];
    },
    totals: () => members.view().totals,
    workerRestarts: () => members.list.reduce((n, m) => n + m.info.restarts, 0),
    fleet: () => (fleet === undefined ? undefined : { connected: fleet.connected, leader: fleet.leader }),
    reloads: () => reloads,
    maintenance: () => controller.state.maintenance.enabled,
    shadowPercent: () => controller.state.shadow?.percent ?? 0,
    faults: () => (controller.faultsEnabled ? (controller.state.faults?.pool ?? null) : null),
  });
  // Reads of the status and metrics see every member's numbers as of now, not of the last tick.
  const refresh = async () => {
    await members.refresh();
    await fleet?.refresh();
  };

  // Log level and access log, changed at run time until the next restart (config holds the start).
  const logSettings: LogSettings = {
    get: () => ({ level: logger.level as LogLevel, access }),
    set: (s) => {
      if (s.level !== undefined) logger.level = s.level;
      if (s.access !== undefined) access = s.access;
      members.setLog(s);
    },
  };

  let ready = false;
  const audit = new AuditLog(config.audit.file, {
    maxBytes: config.audit.maxBytes,
    clock,
    onError: (err) => logger.error({ err }, 'audit write failed'),
  });
  const auth = new Authenticator(config.admin.tokens);
  const admin = new AdminServer({
    host: config.admin.host,
    allowedHosts: config.admin.allowedHosts,
    auth,
    audit,
    limiter: new FailureLimiter(DEFAULT_FAILURE_LIMITS, clock),
    registry,
    beforeScrape: refresh,
    routes: apiRoutes(controller, status, events, logSettings, {
      refresh,
      series: (since) => seriesDocument(controller, since, running.rollout.analysis.interval, thresholds(), clock()),
      reload: (by) => reload(by),
      faults: () => faultStatus(controller.state, controller.faultsEnabled, members.view()),
      // In turn with reloads: the lists it replaces are the config's in force when it runs.
      setEndpoints: (pool, endpoints, by, expectedVersion) =>
        serially(async () => {
          await controller.command(
            { type: 'endpoints', pool, endpoints, base: poolsBase(running) },
            by,
            expectedVersion,
          );
          await syncNow();
        }),
    }),
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
        maintenance: s.maintenance.enabled,
        faults: s.faults === null ? null : { ...s.faults, active: controller.faultsEnabled },
        log: logSettings.get(),
      };
    },
    logger,
  });

  /**
   * The endpoint lists in force: an override set through the API while the config's lists are
   * still the ones it was set against, else the config's.
   */
  const effective = (c: Config): [string[], string[]] => {
    const o = controller.state.endpoints;
    const live = o !== null && o.base === poolsBase(c) ? o : undefined;
    return [live?.blue ?? c.pools.blue.endpoints, live?.green ?? c.pools.green.endpoints];
  };
  const trim = (u: string) => u.replace(/\/$/, '');
  const sameLists = (a: readonly string[][], b: readonly (readonly string[])[]) =>
    JSON.stringify(a.map((l) => l.map(trim))) === JSON.stringify(b);

  /**
   * Hand every member `c`'s options with the lists in force, and the table with their
   * availability, in one step (Controller.reconfigure). New endpoints wait for their first passing
   * checks when checks run; others take traffic at once.
   */
  const configure = async (c: Config, restartChecks: boolean, tls = tlsMaterial) => {
    const lists = effective(c);
    const moved = !sameLists(lists, book.urls);
    const options = planeOptions(c, tls);
    const swapChecks = moved || restartChecks;
    // The running checker names endpoints by their place in the old lists: it stops first.
    if (swapChecks) {
      await health?.stop();
      health = undefined;
    }
    const share = workerShare(
      { ...options, pools: { blue: { endpoints: lists[0] }, green: { endpoints: lists[1] } } },
      layout.count,
    );
    await controller.reconfigure(
      c,
      (t) => members.configure(share, t),
      () => {
        if (moved) book.setUrls(lists, c.healthCheck.path !== null);
      },
    );
    if (swapChecks) {
      health = checker(c);
      if (health !== undefined) health.start();
      else {
        // Checks turned off: an endpoint they took out would otherwise stay out until a restart.
        book.clearActive();
        controller.republish();
      }
    }
  };

  // One change of endpoints or config at a time.
  let configuring: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = configuring.then(fn, fn);
    configuring = p.catch(() => {});
    return p;
  };
  /** After a state change (an API call here, or another instance's): use the lists it says. */
  const syncNow = async () => {
    if (!sameLists(effective(running), book.urls)) await configure(running, false);
  };
  const syncEndpoints = () => serially(syncNow);
  controller.onChange(() => {
    void syncEndpoints().catch((err: unknown) => logger.error({ err }, 'could not apply new endpoint lists'));
  });

  // Lists set through the API before a restart, while the config's are the ones they replaced.
  await syncEndpoints();

  let proxyPort: number;
  let httpPort: number | undefined;
  const second = config.listen.http;
  let adminPort: number;
  try {
    adminPort = await admin.listen(config.admin.port, config.admin.host);
    if (local !== undefined) {
      proxyPort = await local.listen(config.listen.port, config.listen.host);
      if (second !== null) httpPort = await local.listenSecond(second.port, second.host ?? config.listen.host);
    } else {
      // The first worker binds (port 0: any free one); the others join it on the same ports.
      const first = threads[0] as WorkerMember;
      proxyPort = await first.start(config.listen.port, second?.port ?? 0);
      if (second !== null) httpPort = first.httpPort;
      await Promise.all(threads.slice(1).map((w) => w.start(proxyPort, first.httpPort)));
    }
  } catch (err) {
    await admin.close().catch(() => {});
    await members.close(0).catch(() => {});
    local?.destroy();
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
      ...(httpPort === undefined ? {} : { http: `${second?.host ?? config.listen.host}:${httpPort}` }),
      admin: `${config.admin.host}:${adminPort}`,
      weights: controller.state.weights,
      stable: controller.state.stable,
      workers: layout.count,
      semiSpaceMiB: semiSpaceMiB(),
      runtime,
    },
    'sluice listening',
  );

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ready = false;
      controller.stop();
      logger.info({ inFlight: members.view().inflight, graceMs: running.shutdownGrace }, 'shutting down');
      // Every member drains: stops accepting, finishes in-flight requests within the grace.
      await members.close(running.shutdownGrace);
      // Past the grace, at most one more second for webhooks under way.
      const second = new Promise((r) => setTimeout(r, 1000).unref());
      await Promise.all([health?.stop(), Promise.race([notifier.drain(), second])]);
      events.close();
      await admin.close();
      await audit.close().catch((err: unknown) => logger.error({ err }, 'could not close the audit log'));
      try {
        await controller.persist();
      } catch (err) {
        logger.error({ err }, 'could not persist state at shutdown');
      }
      await fleet?.close();
      await accessSink.close();
      logger.info('stopped');
      if (destination !== undefined) await flushDestination(destination);
    })());

  const reopenLogs = async () => {
    await audit.reopen();
    accessSink.reopen();
    logger.info({ audit: config.audit.file, access: running.log.accessFile }, 'log files reopened');
  };
  /** Apply a valid config whose changes need no restart: each part gets its new value. */
  const apply = async (next: Config, changed: readonly string[], by: string, tls: TlsMaterial | null) => {
    const touched = (k: string) => changed.some((c) => c === k || c.startsWith(`${k}.`));
    // Only what the file changed: a level set through PUT /api/v1/log stays otherwise.
    if (touched('log.level')) logSettings.set({ level: next.log.level });
    if (touched('log.access')) logSettings.set({ access: next.log.access });
    auth.setTokens(next.admin.tokens);
    if (notifier instanceof WebhookNotifier) notifier.setTargets(next.webhooks);
    await configure(next, touched('healthCheck'), tls);
    // The file's maintenance: was edited: the operator's intent, as a command (fleet-wide). The
    // rest is in force already; a refused command (Redis away) is logged, not half-undone.
    if (touched('maintenance')) {
      const m = next.maintenance;
      await controller
        .command({ type: 'maintenance', ...m, message: m.message ?? undefined }, by)
        .catch((err: unknown) => logger.error({ err }, 'config reload: maintenance could not be changed'));
    }
  };

  // Each reload reads the file when its turn comes.
  const reload = (by: string): Promise<ReloadResult> => {
    const run = async (): Promise<ReloadResult> => {
      const done = (result: ReloadResult['result'], changed: string[], problems: string[]): ReloadResult => {
        reloads[result]++;
        const r = { result, changed, problems, hash: loaded.hash };
        // A reload through the API is audited by the admin server, with its token.
        if (by === 'SIGHUP')
          void audit.write({
            requestId: null,
            tokenId: by,
            role: null,
            remote: by === 'SIGHUP' ? 'signal' : 'admin',
            action: 'config.reload',
            result,
            status: 0,
            detail: [...changed, ...problems].join('; '),
          });
        return r;
      };
      if (opts.readConfig === undefined) {
        logger.error('config reload: sluice was started without a config file');
        return done('invalid', [], ['(file): started without a config file']);
      }
      let next: Config;
      try {
        next = opts.readConfig();
      } catch (err) {
        const problems = err instanceof ConfigError ? [...err.problems] : [`(file): ${(err as Error).message}`];
        for (const p of problems) logger.error({ file: opts.configFile, problem: p }, `config reload: ${p}`);
        logger.error(
          { file: opts.configFile, problems: problems.length },
          'config reload failed: the running config stays',
        );
        return done('invalid', [], problems);
      }
      const plan = reloadPlan(running, next);
      if (plan.restart.length > 0) {
        const problems = plan.restart.map((k) => `${k}: changes only with a restart`);
        logger.warn(
          { file: opts.configFile, keys: plan.restart },
          `config reload refused: ${plan.restart.join(', ')} need a restart; nothing was changed`,
        );
        return done('refused', plan.changed, problems);
      }
      // Certificates are read again on every reload, changed config or not: a renewed file at
      // the same path is the common case. A bad one keeps the running ones.
      let nextTls: TlsMaterial | null = null;
      try {
        if (next.listen.tls !== null) nextTls = loadTls(next.listen.tls, tlsMaterial?.ticketKeys);
      } catch (err) {
        if (!(err instanceof TlsError)) throw err;
        logger.error(
          { file: opts.configFile, problem: err.message },
          `config reload: ${err.message}; the running certificates stay`,
        );
        return done('invalid', [], [err.message]);
      }
      const certs = !sameCertificates(nextTls, tlsMaterial);
      const changed =
        certs && !plan.changed.some((k) => k.startsWith('listen.tls.certificates'))
          ? [...plan.changed, 'listen.tls.certificates (files)']
          : plan.changed;
      if (changed.length === 0) {
        logger.info({ file: opts.configFile, hash: loaded.hash }, 'config reload: nothing changed');
        return done('unchanged', [], []);
      }
      try {
        accessSink.use(next.log.accessFile);
      } catch (err) {
        const problem = (err as Error).message;
        logger.error({ file: opts.configFile, problem }, `config reload: ${problem}`);
        return done('invalid', [], [problem]);
      }
      await apply(next, changed, by === 'SIGHUP' ? 'config' : by, nextTls);
      tlsMaterial = nextTls;
      running = next;
      loaded = { hash: configHash(next), at: clock(), file: opts.configFile ?? null };
      logger.info({ file: opts.configFile, changed, hash: loaded.hash, by }, 'config reloaded');
      return done('applied', changed, []);
    };
    return serially(run);
  };

  const onlyLocal = <T>(what: string, get: (p: DataPlane) => T): T => {
    if (local === undefined) throw new Error(`${what} lives in the worker threads with workers > 1`);
    return get(local);
  };
  return {
    get config() {
      return running;
    },
    proxyPort,
    httpPort,
    adminPort,
    controller,
    workers: layout.count,
    members,
    endpoints: book,
    get recorder() {
      return onlyLocal('the recorder', (p) => p.recorder);
    },
    get pools() {
      return onlyLocal('the pools', (p) => p.pools);
    },
    window,
    get health() {
      return health;
    },
    status,
    stop,
    reopenLogs,
    reload,
  };
}
