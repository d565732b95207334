/**
 * The config schema: every key, its default and a one-line doc, declared once (STYLE.md habit 7).
 * `loadConfig` reads YAML (or JSON for `.json`) and returns a typed, defaulted config or throws a
 * ConfigError whose problems read `path.to.key: message`.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { applyEnv, envSourceOf } from './env.js';
import { ConfigError } from './errors.js';
import { parseCidr } from './net.js';

/** A duration: milliseconds or '250ms' / '2s' / '1m'. */
/** An HTTP token (RFC 9110 §5.6.2): what a header or cookie name may be. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

export const duration = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `invalid duration ${JSON.stringify(v)} (use ms or a string like 250ms, 2s, 1m)`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** A percentage from 0 to 100 with at most two decimals (0.01 % resolution, like split_clients). */
export const percent = () =>
  z
    .number({ error: 'expected a number from 0 to 100' })
    .min(0, 'must be >= 0')
    .max(100, 'must be <= 100')
    .refine((v) => Math.abs(v * 100 - Math.round(v * 100)) < 1e-6, 'at most two decimals');

export const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (
      (u.protocol === 'http:' || u.protocol === 'https:') &&
      u.hostname !== '' &&
      (u.pathname === '/' || u.pathname === '') &&
      u.search === '' &&
      u.username === ''
    );
  } catch {
    return false;
  }
}, 'Invalid url (expected http(s)://host:port with no path)');

export const POOL_NAMES = ['blue', 'green'] as const;
export type PoolName = (typeof POOL_NAMES)[number];
/** pino's levels: the config key log.level and the admin API's PUT /api/v1/log. */
export const logLevel = () => z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

const poolSchema = z
  .object({
    endpoints: z
      .array(httpUrl)
      .min(1, 'at least one endpoint')
      .describe(
        'Upstream base URLs of this pool, balanced least-busy over those available; $SLUICE_BLUE_ENDPOINTS / $SLUICE_GREEN_ENDPOINTS (comma-separated) replace them.',
      ),
  })
  .strict();

const splitKey = z
  .string()
  .regex(
    /^(ip|header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|cookie:[A-Za-z0-9!#$%&'*+.^_`|~-]+)$/,
    'expected ip, header:<name> or cookie:<name>',
  );

/** A request header name (an RFC 9110 token without `_`, which sluice never forwards), lower-cased. */
const headerName = z
  .string()
  .toLowerCase()
  .regex(/^[a-z0-9!#$%&'*+.^`|~-]+$/, 'expected a header name');

/** A whole number from 0 up, with its default: counts, rates, limits where 0 means none. */
const count = (def: number) => z.number().int().min(0).default(def);
/** A size in bytes from 0 up to `max`, with its default. */
const byteCount = (def: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(0).max(max).default(def);

export const cidr = z.string().refine((s) => parseCidr(s) !== undefined, 'invalid CIDR or address');

const hex64 = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'expected the 64-hex SHA-256 of the token (sluice hash-token <token>)');

const webhookEvents = z.enum([
  'rollout.started',
  'rollout.step',
  'rollout.paused',
  'rollout.resumed',
  'rollout.promoted',
  'rollout.rolled_back',
  'rollout.aborted',
  'weights.changed',
  'maintenance.changed',
  'endpoints.changed',
  'rollout.would_roll_back',
  'shadow.started',
  'shadow.stopped',
  'shadow.passed',
  'shadow.failed',
  'rollout.ramp_down',
  'faults.changed',
]);

/** Methods a shadow may mirror: GET, HEAD and OPTIONS unless widened (a mirrored write is a duplicate). */
const method = z
  .string()
  .toUpperCase()
  .regex(/^[A-Z]+$/, 'expected an HTTP method')
  .refine((m) => m !== 'TRACE' && m !== 'CONNECT', 'TRACE and CONNECT are never proxied');

export const configSchema = z
  .object({
    listen: z
      .object({
        host: z.string().default('0.0.0.0').describe('Address the proxy listens on for client traffic.'),
        port: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .default(8080)
          .describe('Port for client traffic; $SLUICE_LISTEN_PORT overrides it.'),
        tls: z
          .object({
            certificates: z
              .array(
                z
                  .object({
                    cert: z.string().min(1).describe('PEM certificate chain file.'),
                    key: z.string().min(1).describe('PEM private key file.'),
                    serverNames: z
                      .array(z.string().regex(/^(\*\.)?[A-Za-z0-9.-]+$/, 'a host name, or *.domain'))
                      .optional()
                      .describe("SNI names it serves (*.domain allowed); default: the certificate's own DNS names."),
                  })
                  .strict(),
              )
              .min(1, 'at least one certificate')
              .describe('Picked by SNI host name; the first is the default. Reloaded on SIGHUP.'),
            minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('Oldest TLS version accepted.'),
            http2: z.boolean().default(true).describe('Offer h2 by ALPN (else http/1.1 only).'),
            ticketKeys: z
              .string()
              .min(1)
              .nullable()
              .default(null)
              .describe(
                'File of 48 bytes: session ticket keys shared by instances (workers of one instance share theirs anyway).',
              ),
            maxConcurrentStreams: count(100).describe('HTTP/2 streams a client may have open at once.'),
            maxResetsPerSecond: count(200).describe(
              'HTTP/2 streams a client may reset per second before its connection is closed (rapid reset, CVE-2023-44487).',
            ),
          })
          .strict()
          .nullable()
          .default(null)
          .describe('TLS (and HTTP/2) on the client listener; null: plain HTTP.'),
        http: z
          .object({
            port: z.number().int().min(0).max(65535).default(80).describe('Port of the plain HTTP listener.'),
            host: z.string().optional().describe('Its address (default: listen.host).'),
            redirect: z
              .boolean()
              .default(true)
              .describe(
                'true: answer every request with a redirect to https; false: serve it as the TLS listener does.',
              ),
          })
          .strict()
          .nullable()
          .default(null)
          .describe('With listen.tls: a second, plain HTTP listener; null: none.'),
      })
      .strict()
      .prefault({}),
    admin: z
      .object({
        host: z
          .string()
          .default('127.0.0.1')
          .describe('Admin listener address; a non-loopback host requires tokens. $SLUICE_ADMIN_HOST overrides it.'),
        port: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .default(9901)
          .describe('Admin API, metrics and live page port; $SLUICE_ADMIN_PORT overrides it.'),
        allowedHosts: z
          .array(z.string())
          .default([])
          .describe('Host header values accepted besides loopback ones (DNS-rebinding guard).'),
        tokens: z
          .array(z.object({ id: z.string().min(1), sha256: hex64, role: z.enum(['viewer', 'operator']) }).strict())
          .default([])
          .describe(
            'Bearer tokens by SHA-256; empty means full access, allowed only on a loopback host. $SLUICE_ADMIN_TOKENS (id:role:sha256,...) replaces them.',
          ),
      })
      .strict()
      .prefault({}),
    pools: z
      .object({ blue: poolSchema, green: poolSchema })
      .strict()
      .describe('Exactly two pools, named blue and green.'),
    stable: z.enum(POOL_NAMES).default('blue').describe('The pool that holds the current release at first start.'),
    split: z
      .object({
        key: splitKey.default('ip').describe('ip | header:<name> | cookie:<name>; falls back to ip when absent.'),
        trustedProxies: z
          .array(cidr)
          .default([])
          .describe('CIDRs whose X-Forwarded-For (and -Proto, -Host, X-Request-Id) is believed.'),
        override: z
          .union([
            z.literal(false),
            z
              .object({
                header: z
                  .string()
                  .regex(TOKEN, "a header name (letters, digits and !#$%&'*+.^_`|~-)")
                  .toLowerCase()
                  .default('x-sluice-pool')
                  .describe('Header whose value (blue or green) forces a pool.'),
                cookie: z
                  .string()
                  .regex(TOKEN, "a cookie name (letters, digits and !#$%&'*+.^_`|~-)")
                  .default('sluice-pool')
                  .describe('Cookie whose value (blue or green) forces a pool.'),
                allowFrom: z
                  .array(cidr)
                  .nullable()
                  .default(null)
                  .describe(
                    'Client addresses (CIDRs, matched on the resolved client address) that may force a pool; null: anyone. Forced requests are never judged.',
                  ),
              })
              .strict(),
          ])
          .prefault({})
          .describe('Force a pool per request by header or cookie; false disables.'),
        initialCanaryWeight: percent().default(0).describe('Canary percent at first start (no saved state).'),
      })
      .strict()
      .prefault({}),
    forwarding: z
      .object({
        stripFromUntrusted: z
          .array(headerName)
          .default([
            'true-client-ip',
            'x-client-ip',
            'client-ip',
            'cf-connecting-ip',
            'fastly-client-ip',
            'x-cluster-client-ip',
            'x-forwarded-port',
            'x-forwarded-prefix',
            'x-forwarded-server',
            'x-original-host',
            'x-original-url',
            'x-rewrite-url',
          ])
          .describe(
            'Client-address and URL-rewrite headers forwarded only from split.trustedProxies, dropped from anyone else. X-Real-IP is always set by sluice and Proxy-Authorization never forwarded.',
          ),
      })
      .strict()
      .prefault({}),
    rollout: z
      .object({
        steps: z
          .array(percent())
          .min(1)
          .default([10, 25, 50, 100])
          .refine((s) => s.every((v, i) => i === 0 || v > (s[i - 1] as number)), 'steps must increase')
          .describe('Canary percent at each step.'),
        stepHold: duration().default(30_000).describe('Time at a step, with passing analysis, before the next.'),
        dryRun: z
          .boolean()
          .default(false)
          .describe(
            'Judge and decide, but never roll back: a failing verdict is recorded and notified as "would roll back: …" (also per start).',
          ),
        shadow: z
          .object({
            percent: percent()
              .default(10)
              .describe(
                "Share of stable's requests mirrored to the canary when a start does not say (by the split key).",
              ),
            duration: duration()
              .default(300_000)
              .describe(
                'How long a shadow runs before its verdict, when a start does not say; 0: until stopped or failed.',
              ),
            methods: z
              .array(method)
              .min(1)
              .default(['GET', 'HEAD', 'OPTIONS'])
              .describe(
                'Methods mirrored. Widen only for writes the canary may safely repeat: a mirrored write is done twice.',
              ),
            maxBodyBytes: byteCount(64 * 1024, 16 * 1024 * 1024).describe(
              'Requests with a larger body (or a streamed one) are not mirrored.',
            ),
            maxInFlight: z
              .number()
              .int()
              .min(1)
              .default(64)
              .describe('Mirrors under way at once, per worker; past it a mirror is dropped and counted.'),
            timeout: duration()
              .default(10_000)
              .describe("A mirror's own limit for the canary's headers and each body chunk: it never holds a client."),
            maxMismatchRate: z
              .number()
              .min(0)
              .max(1)
              .default(0.01)
              .describe(
                'Fail the shadow when paired requests mismatch (stable ok, canary 5xx; another status class; much slower) more often than this, at analysis.confidence.',
              ),
            slowRatio: z
              .number()
              .min(1)
              .default(3)
              .describe('A pair is slower when the canary took this many times as long as stable...'),
            slowDeltaMs: z.number().min(0).default(50).describe('...and this many ms more.'),
            thenRollout: z
              .boolean()
              .default(false)
              .describe('A shadow that passes starts the rollout at once (also per start).'),
          })
          .strict()
          .prefault({})
          .describe(
            "Shadow rollouts (POST /api/v1/shadow/start): a copy of a share of stable's requests goes to the canary, whose answers are judged and dropped; clients only get stable's.",
          ),
        onFailure: z
          .enum(['snap', 'rampDown'])
          .default('snap')
          .describe(
            'What a failing verdict does to the canary: snap to 0 % at once, or rampDown: walk back down the steps below its weight over rampDownOver (still at once on a severe breach: no healthy endpoint, or more than 50 % errors).',
          ),
        rampDownOver: duration()
          .refine((v) => v > 0, 'must be more than 0 (use onFailure: snap to cut at once)')
          .default(60_000)
          .describe('With onFailure: rampDown, the time from the failing verdict to 0 % canary.'),
        analysis: z
          .object({
            interval: duration().default(1000).describe('How often the controller judges.'),
            window: duration().default(10_000).describe('Sliding window the judgement is made on.'),
            minRequests: z
              .number()
              .int()
              .min(1)
              .default(50)
              .describe('Fewer canary requests in the window: no verdict (wait).'),
            maxErrorRate: z
              .number()
              .min(0)
              .max(1)
              .default(0.01)
              .describe('Canary errors / requests (an error: status >= 500 or no answer).'),
            maxP95Ms: z.number().positive().default(500).describe('Canary p95 in milliseconds.'),
            maxP95Ratio: z
              .number()
              .positive()
              .default(2.0)
              .describe('Canary p95 / stable p95 (when stable has minRequests).'),
            minP95DeltaMs: z
              .number()
              .min(0)
              .default(5)
              .describe(
                "The ratio check also needs canary p95 to exceed stable's by this many ms (sub-ms noise is not a regression).",
              ),
            maxErrorRatio: z
              .number()
              .min(1)
              .default(2)
              .describe(
                "Also fail a canary whose error rate's lower bound is above this many times the upper bound of stable's, over the same span...",
              ),
            minErrorDelta: z
              .number()
              .min(0)
              .max(1)
              .default(0.002)
              .describe('...and above this (0.002 = 0.2 %): tiny rates are not a regression.'),
            maxInconclusive: duration()
              .default(600_000)
              .describe(
                'A rollout with no verdict (waiting for traffic) for this long pauses and says why, instead of waiting forever; 0: no limit.',
              ),
            onSharedFailure: z
              .enum(['rollback', 'pause'])
              .default('rollback')
              .describe(
                'When stable fails as badly over the same span (a shared dependency down): roll back (as the runbooks do) or pause.',
              ),
            confidence: z
              .number()
              .min(0.8)
              .max(0.999)
              .default(0.99)
              .describe(
                'Confidence of the bounds a failure must clear (Wilson for errors, order statistics for p95); the fast check on the newest intervals uses a ten times smaller miss rate.',
              ),
          })
          .strict()
          .refine((a) => a.window >= a.interval, { message: 'window must be at least one interval', path: ['window'] })
          .prefault({}),
      })
      .strict()
      .prefault({}),
    healthCheck: z
      .object({
        path: z
          .string()
          .startsWith('/')
          .nullable()
          .default(null)
          .describe('Path probed on every endpoint; null disables active checks.'),
        interval: duration().default(2000).describe('Time between checks of an endpoint.'),
        timeout: duration().default(1000).describe('A check slower than this fails.'),
        unhealthyAfter: z
          .number()
          .int()
          .min(1)
          .default(3)
          .describe('Consecutive failures that take an endpoint out of rotation.'),
        healthyAfter: z.number().int().min(1).default(2).describe('Consecutive successes that bring it back.'),
      })
      .strict()
      .prefault({}),
    timeouts: z
      .object({
        connect: duration().default(5000).describe('Upstream TCP connect.'),
        response: duration()
          .default(30_000)
          .describe(
            'Upstream response headers after the request was sent (504 past it). Checked on a coarse clock: fires up to ~1 s late.',
          ),
        idle: duration()
          .default(60_000)
          .describe(
            'Idle time: between upstream body chunks (up to ~1 s late, like response), and idle or slow client connections.',
          ),
        clientHeaders: duration()
          .default(10_000)
          .describe('Client request headers must arrive within this (408 and close past it).'),
        clientBody: duration()
          .default(30_000)
          .describe(
            'A request body of up to limits.bufferBodyBytes must arrive whole within this, before any upstream is involved (408 past it).',
          ),
        queue: duration()
          .default(5000)
          .describe(
            'A request waits at most this for a free upstream connection (503 with Retry-After past it, never sent upstream).',
          ),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        maxHeaderBytes: z
          .number()
          .int()
          .min(1024)
          .max(1 << 20)
          .default(16384)
          .describe('Total request header bytes; above it: 431.'),
        maxHeaderCount: z
          .number()
          .int()
          .min(8)
          .max(10_000)
          .default(100)
          .describe('Request header count; above it: 431.'),
        maxConnections: z
          .number()
          .int()
          .min(1)
          .default(10_000)
          .describe(
            'Concurrent client connections (like nginx worker_connections, but for the whole process: split over workers); past it new connections are closed at once.',
          ),
        maxConnectionsPerClient: count(0).describe(
          'Concurrent connections from one peer address, over all workers (nginx limit_conn); past it: 503 and close. 0: no limit (behind a balancer that does not keep client addresses, every client shares one).',
        ),
        bufferBodyBytes: byteCount(1 << 20, 64 << 20).describe(
          'Request bodies up to this size are read whole before an upstream connection is taken (nginx proxy_request_buffering); 0 streams every body.',
        ),
        bufferBodyTotalBytes: byteCount(256 << 20).describe(
          'Memory all buffered request bodies may hold together (split over workers); past it, bodies stream as if they were larger than bufferBodyBytes.',
        ),
        minBodyRate: count(1024).describe(
          'Bytes per second a streamed request body must keep up on average after its first timeouts.clientBody (0: no minimum); slower bodies are cut.',
        ),
        bufferResponseBytes: byteCount(1 << 20, 64 << 20).describe(
          'Response bytes held in memory for a client that reads slower than the upstream answers (nginx proxy_buffers): a response that fits frees its upstream connection at once; 0 holds none.',
        ),
        bufferResponseTotalBytes: byteCount(256 << 20).describe(
          'Memory all held responses may use together (split over workers); past it, a response waits for its client with its upstream connection paused.',
        ),
        minResponseRate: count(1024).describe(
          'Bytes per second a client must read on average once it has kept a response waiting for timeouts.clientBody (0: no minimum); slower readers are cut.',
        ),
      })
      .strict()
      .prefault({}),
    upstream: z
      .object({
        connections: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(128)
          .describe('Connections per endpoint at most, for the whole process (split over workers).'),
        ejectAfter: z
          .number()
          .int()
          .min(1)
          .default(3)
          .describe('Consecutive connect failures that eject an endpoint (passive health).'),
        ejectFor: duration()
          .default(10_000)
          .describe('How long an ejected endpoint stays out before it is tried again.'),
      })
      .strict()
      .prefault({}),
    stateFile: z
      .string()
      .default('data/sluice-state.json')
      .describe("Where weights, roles, phase and history are saved atomically (in a fleet: this instance's copy)."),
    fleet: z
      .object({
        redis: z
          .string()
          .regex(/^rediss?:\/\/\S+$/, 'a redis:// or rediss:// URL')
          .optional()
          .describe('Redis (or Valkey) URL, user:password@ and /db included; else $SLUICE_REDIS_URL.'),
        name: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,64}$/, '1-64 letters, digits, dot, dash or underscore')
          .describe('The rollout the instances share: their Redis keys start sluice:<name>:.'),
        lease: duration()
          .default(3000)
          .describe('Leader lease: a leader that stops renewing is replaced within it plus one tick.'),
      })
      .strict()
      .nullable()
      .default(null)
      .describe('Several instances share one rollout through Redis; null: this instance alone, state in stateFile.'),
    audit: z
      .object({
        file: z
          .string()
          .nullable()
          .default('data/audit.jsonl')
          .describe(
            'One JSON line per admin mutation; denials collapsed to one line per source per minute with a count; null disables.',
          ),
        maxBytes: z
          .number()
          .int()
          .min(4096)
          .default(64 * 1024 * 1024)
          .describe(
            'Past this size of audit.file, denials are no longer written (one line says so; mutations still are) until it is rotated: SIGUSR1 reopens it.',
          ),
      })
      .strict()
      .prefault({}),
    retry: z
      .object({
        toStable: z
          .boolean()
          .default(true)
          .describe(
            'A canary failure before any byte reached the client (connect, reset, timeout, any 5xx) is sent once to stable, for GET/HEAD/OPTIONS or a request with Idempotency-Key (body buffered whole); the canary is still judged on it.',
          ),
        budget: z
          .number()
          .min(0)
          .max(1)
          .default(0.2)
          .describe("Retries under way at most this share of the requests in flight (Envoy's retry budget default)."),
        minRetries: count(3).describe('...and at least this many at once, so thin traffic can still be retried.'),
      })
      .strict()
      .prefault({}),
    maintenance: z
      .object({
        enabled: z.boolean().default(false).describe('Start in maintenance mode (when the saved state does not say).'),
        message: z.string().max(500).nullable().default(null).describe('Shown on the 503 page and in its JSON body.'),
        retryAfter: duration().default(600_000).describe('What Retry-After tells clients.'),
        allowFrom: z
          .array(cidr)
          .default([])
          .describe(
            'Client addresses (CIDRs, the resolved client address) still proxied: operators checking a release.',
          ),
      })
      .strict()
      .prefault({})
      .describe(
        'Maintenance mode: 503 + Retry-After for every proxied request except allowFrom; also PUT /api/v1/maintenance.',
      ),
    faults: z
      .object({
        enabled: z
          .boolean()
          .default(false)
          .describe(
            'Allow fault injection (PUT /api/v1/faults). Off: PUT is refused and a fault already set stops applying at once. For rehearsals in staging, never in production.',
          ),
      })
      .strict()
      .prefault({})
      .describe(
        "Rehearsals: injected aborts and delays on one pool's traffic (Envoy's fault filter), judged by the analysis like real failures.",
      ),
    webhooks: z
      .array(
        z
          .object({
            url: z.url({ protocol: /^https?$/, error: 'Invalid url' }),
            events: z.array(webhookEvents).optional(),
            format: z
              .enum(['json', 'slack'])
              .default('json')
              .describe('json: the event and its numbers; slack: a message for a Slack incoming webhook.'),
          })
          .strict(),
      )
      .default([])
      .describe(
        'A POST per rollout event to each url (optionally only the listed events), as JSON or a Slack message.',
      ),
    log: z
      .object({
        level: logLevel().default('info').describe('pino log level (PUT /api/v1/log changes it until restart).'),
        access: z
          .boolean()
          .default(true)
          .describe(
            'One access log line per request, written in batches off the request path (PUT /api/v1/log switches it until restart).',
          ),
        accessFormat: z
          .enum(['json', 'combined', 'common'])
          .default('json')
          .describe(
            "json: every field, pino-style; combined / common: nginx's formats, for pipelines that parse them.",
          ),
        accessFile: z
          .string()
          .min(1)
          .nullable()
          .default(null)
          .describe('Append access lines to this file instead of stdout; SIGUSR1 reopens it (logrotate).'),
        accessSample: z
          .number()
          .min(0)
          .max(1)
          .default(1)
          .describe('Share of successful requests logged (0-1); 4xx, 5xx and failures are always logged.'),
      })
      .strict()
      .prefault({}),
    workers: z
      .union([z.literal('auto'), z.number().int().min(1).max(256)])
      .default(1)
      .describe(
        "Threads serving requests on one port: 'auto' = the CPUs available (nginx's worker_processes auto). Above 1 needs SO_REUSEPORT (Node >= 22.12, Linux), else one thread and a log line say why.",
      ),
    shutdownGrace: duration()
      .default(10_000)
      .describe('On SIGTERM/SIGINT, how long in-flight requests may take to finish.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.admin.tokens.length === 0 && !isLoopbackHost(c.admin.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'tokens'],
        message: `required when admin.host (${c.admin.host}) is not loopback: add admin.tokens or set SLUICE_ADMIN_TOKENS=id:role:sha256,... (sluice new-token)`,
        params: { needsTokens: c.admin.host },
      });
    }
    if (c.listen.http !== null && c.listen.tls === null)
      ctx.addIssue({ code: 'custom', path: ['listen', 'http'], message: 'a second listener needs listen.tls' });
    // loadConfig fills fleet.redis from $SLUICE_REDIS_URL (src/core/env.ts) before this runs.
    if (c.fleet !== null && c.fleet.redis === undefined)
      ctx.addIssue({ code: 'custom', path: ['fleet', 'redis'], message: 'required (or $SLUICE_REDIS_URL)' });
    const ids = new Set<string>();
    c.admin.tokens.forEach((t, i) => {
      if (ids.has(t.id))
        ctx.addIssue({ code: 'custom', path: ['admin', 'tokens', i, 'id'], message: `duplicate token id ${t.id}` });
      ids.add(t.id);
    });
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Turn zod issues into `path.to.key: message` lines; a key an environment variable set reads
 * `NAME (path.to.key): message` (`sources`: key → variable, from applyEnv).
 */
export function formatIssues(
  issues: readonly z.core.$ZodIssue[],
  sources: ReadonlyMap<string, string> = new Map(),
): string[] {
  const line = (key: string, message: string) => {
    const name = envSourceOf(sources, key);
    return `${name === undefined ? key : `${name} (${key})`}: ${message}`;
  };
  return issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => line([...i.path, k].join('.'), 'unknown key'));
    const key = i.path.length > 0 ? i.path.join('.') : '(root)';
    const host = sources.get('admin.host');
    if (i.code === 'custom' && i.params?.needsTokens !== undefined && host !== undefined) {
      const h = String(i.params.needsTokens);
      return [`${key}: ${i.message.replace(`(${h})`, `(${h}, set by ${host})`)}`];
    }
    return [line(key, i.message)];
  });
}

/** Validate an already-parsed object. Throws ConfigError. `sources`: keys set by env (formatIssues). */
export function parseConfig(raw: unknown, sources?: ReadonlyMap<string, string>): Config {
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error.issues, sources));
  return r.data;
}

/**
 * Read and validate a config file (YAML, or JSON when it ends in .json), with the environment's
 * overrides (src/core/env.ts) laid over it. Throws ConfigError.
 */
export function loadConfig(file: string, env: Readonly<Record<string, string | undefined>> = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`(file): cannot read ${file}: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([
      `(file): ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`,
    ]);
  }
  const applied = applyEnv(raw, env);
  // A variable that cannot be read at all is reported with the file's other problems.
  const r = configSchema.safeParse(applied.raw);
  const problems = [...applied.problems, ...(r.success ? [] : formatIssues(r.error.issues, applied.sources))];
  if (!r.success || problems.length > 0) throw new ConfigError(problems);
  return r.data;
}
