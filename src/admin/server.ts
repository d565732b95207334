/**
 * The admin listener: health, readiness, metrics, the live page, and the JSON API under /api/v1.
 * It turns HTTP calls into controller commands and never touches the routing table itself.
 *
 * Defences for an API a browser can reach: bearer tokens only (no cookies, so no ambient
 * credentials); a Host that is not this listener is refused (DNS rebinding); a foreign Origin is
 * refused (CSRF); mutations must say Content-Type: application/json (which a cross-site form
 * cannot, and which forces a CORS preflight this server never grants); bodies are capped, and a
 * request answered before its body was read gets `Connection: close` so the rest is never read;
 * requests without a valid token are rate-limited per source and overall (rate-limit.ts), while a
 * valid token always gets through; every mutation is audited in full and every denial counted,
 * collapsed per source per minute (denials.ts), before the response is sent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { formatIssues, isLoopbackHost } from '../core/config.js';
import { SluiceError } from '../core/errors.js';
import { listenOn } from '../core/net.js';
import { allows, type Authenticator, type Principal, type Role } from './auth.js';
import type { AuditEntry, AuditLog } from './audit.js';
import { type FailureLimiter, sourceOf } from './rate-limit.js';

export interface AdminContext {
  req: IncomingMessage;
  principal: Principal;
  requestId: string;
  body: unknown;
  /** Parse the body with a schema; throws a 400 SluiceError naming the failing fields. */
  parse<T extends z.ZodType>(schema: T): z.output<T>;
}

export interface Route {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  role: Role;
  /** Audit action name for mutations. */
  action?: string;
  /** Return a JSON value (200), or take over the response (SSE) and return undefined. */
  handle(ctx: AdminContext, res: ServerResponse): unknown;
}

export interface StaticAsset {
  type: string;
  body: Buffer;
}

export interface AdminDeps {
  host: string;
  allowedHosts: readonly string[];
  auth: Authenticator;
  audit: AuditLog;
  limiter: FailureLimiter;
  registry: Registry;
  /** Run before /metrics is formatted (bring the data plane's numbers up to now). */
  beforeScrape?: () => Promise<void>;
  routes: readonly Route[];
  /** Public, data-free files (the live page): path → asset. */
  assets: ReadonlyMap<string, StaticAsset>;
  ready(): boolean;
  /** The state a mutation is audited against (before / after). */
  snapshot(): unknown;
  logger: Logger;
}

const MAX_BODY = 64 * 1024;
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export class AdminServer {
  readonly server: Server;
  private readonly routes = new Map<string, Route>();
  private readonly paths = new Set<string>();

  constructor(private readonly deps: AdminDeps) {
    for (const r of deps.routes) {
      this.routes.set(`${r.method} ${r.path}`, r);
      this.paths.add(r.path);
    }
    const onRequest = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean) => {
      this.handle(req, res, expectsContinue).catch((err) => {
        deps.logger.error({ err }, 'admin handler failed');
        if (!res.headersSent) json(res, 500, errorBody('internal', 'internal error'));
        else res.destroy();
      });
    };
    this.server = createServer(
      { headersTimeout: 10_000, requestTimeout: 30_000, maxHeaderSize: 16 * 1024 },
      (req, res) => onRequest(req, res, false),
    );
    // `Expect: 100-continue`: the body is invited only once the request passed every check, so a
    // client that asks first (curl does for large bodies) never sends a body that would be refused.
    this.server.on('checkContinue', (req, res) => onRequest(req, res, true));
  }

  listen(port: number, host: string): Promise<number> {
    return listenOn(this.server, port, host);
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }

  /**
   * DNS-rebinding guard: the Host must be a loopback name, the admin host, an allowed one, or the
   * very address the connection arrived at. A rebinding page's Host is its own domain name, so
   * an address literal equal to the socket's is a client that dialled this listener by address:
   * Kubernetes probes and Prometheus scraping a pod IP.
   */
  private hostAllowed(hostHeader: string | undefined, localAddress: string | undefined): boolean {
    if (hostHeader === undefined) return false;
    const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(hostHeader.trim());
    if (m === null) return false;
    const h = (m[1] as string).toLowerCase().replace(/^\[(.*)\]$/, '$1');
    const allowed = this.deps.allowedHosts.map((a) => a.toLowerCase());
    return (
      isLoopbackHost(h) ||
      h === this.deps.host.toLowerCase() ||
      allowed.includes(h) ||
      allowed.includes(hostHeader.toLowerCase()) ||
      (localAddress !== undefined && h === localAddress.toLowerCase().replace(/^::ffff:(?=\d+\.)/, ''))
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const requestId = randomBytes(6).toString('hex');
    res.setHeader('x-request-id', requestId);
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('referrer-policy', 'no-referrer');
    // Node reads an unread request body to its end to keep the connection alive (50 MB behind a
    // 401 used to be read in full). Close instead, unless the body is read below; Node then stops
    // reading once the answer is out.
    if (hasBody(req)) res.setHeader('connection', 'close');

    const remote = req.socket.remoteAddress ?? '';
    const source = sourceOf(remote);
    // Until a route is found, the path is the client's: cut it short for the audit line.
    let action = `${method} ${path.slice(0, 200)}`;
    const entry = (result: string, status: number, principal: Principal | undefined): AuditEntry => ({
      requestId,
      tokenId: principal?.id ?? null,
      role: principal?.role ?? null,
      remote,
      action,
      result,
      status,
    });
    const deny = async (
      status: number,
      code: string,
      message: string,
      principal?: Principal,
      extra: Record<string, unknown> = {},
    ) => {
      await this.deps.audit.deny(source, { ...entry('denied', status, principal), detail: code, ...extra });
      json(res, status, errorBody(code, message));
    };

    if (!this.hostAllowed(req.headers.host, req.socket.localAddress))
      return deny(403, 'forbidden_host', 'Host header not allowed for the admin listener', undefined, {
        host: (req.headers.host ?? '').slice(0, 200),
      });

    if (method === 'GET' || method === 'HEAD') {
      if (path === '/healthz') return json(res, 200, { ok: true });
      if (path === '/favicon.ico') {
        res.writeHead(204);
        res.end();
        return;
      }
      if (path === '/readyz')
        return this.deps.ready() ? json(res, 200, { ready: true }) : json(res, 503, { ready: false });
      if (path === '/metrics') {
        await this.deps.beforeScrape?.();
        const text = await this.deps.registry.metrics();
        res.writeHead(200, { 'content-type': this.deps.registry.contentType });
        res.end(text);
        return;
      }
      const asset = this.deps.assets.get(path);
      if (asset !== undefined) {
        res.writeHead(200, {
          'content-type': asset.type,
          'content-length': asset.body.length,
          'content-security-policy': PAGE_CSP,
        });
        res.end(method === 'HEAD' ? undefined : asset.body);
        return;
      }
    }

    const route = this.routes.get(`${method} ${path}`);
    if (route === undefined) {
      const exists = this.paths.has(path);
      return json(res, exists ? 405 : 404, errorBody(exists ? 'method_not_allowed' : 'not_found', `${method} ${path}`));
    }
    action = route.action ?? `${method} ${path}`;
    const audit = (
      result: string,
      status: number,
      principal: Principal | undefined,
      extra: Record<string, unknown> = {},
    ) => this.deps.audit.write({ ...entry(result, status, principal), ...extra });

    // A browser on another origin must not drive the API (CSRF); non-browser clients send no Origin.
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, req.headers.host))
      return deny(403, 'forbidden_origin', 'cross-origin requests are refused');

    // Authenticate first: only a request without a valid token is ever limited.
    const principal = this.deps.auth.authenticate(req.headers.authorization);
    if (principal === undefined) {
      const block = this.deps.limiter.blocked(source);
      if (block !== undefined) {
        res.setHeader('retry-after', String(Math.ceil(block.retryAfterMs / 1000)));
        return block.scope === 'source'
          ? deny(429, 'too_many_failures', 'too many failed authentications from this address; try later')
          : deny(429, 'too_many_failures', 'too many failed authentications from all addresses; try later', undefined, {
              scope: 'all',
            });
      }
      this.deps.limiter.fail(source);
      res.setHeader('www-authenticate', 'Bearer realm="sluice"');
      return deny(401, 'unauthorized', 'a valid bearer token is required');
    }
    if (!allows(principal, route.role))
      return deny(403, 'forbidden', `role ${principal.role} may not ${method} ${path}`, principal);

    let body: unknown;
    if (method !== 'GET') {
      const ct = req.headers['content-type'];
      if (ct === undefined || !/^application\/json\s*(;|$)/i.test(ct))
        return deny(415, 'unsupported_media_type', 'mutations need Content-Type: application/json', principal);
      const tooLarge = () => deny(413, 'body_too_large', `body over ${MAX_BODY} bytes`, principal);
      if (Number(req.headers['content-length'] ?? 0) > MAX_BODY) return tooLarge();
      if (expectsContinue) res.writeContinue();
      const text = await readBody(req, MAX_BODY);
      if (text === undefined) return tooLarge();
      // Read to its end: the connection can be kept.
      res.removeHeader('connection');
      try {
        body = text.trim() === '' ? {} : JSON.parse(text);
      } catch {
        return deny(400, 'invalid_json', 'body is not valid JSON', principal);
      }
    }

    const ctx: AdminContext = {
      req,
      principal,
      requestId,
      body,
      parse(schema) {
        const r = schema.safeParse(body);
        if (!r.success) {
          const fields = [...new Set(r.error.issues.map((i) => i.path.join('.') || '(body)'))];
          throw new SluiceError('invalid_body', 400, formatIssues(r.error.issues).join('; '), {
            field: fields.join(','),
          });
        }
        return r.data;
      },
    };
    const before = route.action !== undefined ? this.deps.snapshot() : undefined;
    let result: unknown;
    try {
      result = await route.handle(ctx, res);
    } catch (e) {
      if (!(e instanceof SluiceError)) throw e;
      if (route.action !== undefined) await audit('rejected', e.status, principal, { detail: e.message, before });
      return json(res, e.status, {
        error: { code: e.code, message: e.message, ...(e.field === undefined ? {} : { field: e.field }) },
      });
    }
    if (route.action !== undefined) {
      await audit('ok', 200, principal, { before, after: this.deps.snapshot() });
      this.deps.logger.info({ action: route.action, tokenId: principal.id, requestId }, 'admin mutation');
    }
    if (result !== undefined && !res.headersSent) json(res, 200, result);
  }
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (origin === 'null' || host === undefined) return false;
  try {
    const u = new URL(origin);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host === host;
  } catch {
    return false;
  }
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Whether the request says a body follows (which Node would read to its end after a reply). */
function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/**
 * The body as text, or undefined as soon as it passes `max` bytes: nothing past `max` is
 * buffered, and reading stops there (the caller answers 413 with `Connection: close`).
 */
function readBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', reject);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= max) return void chunks.push(c);
      done();
      req.pause();
      resolve(undefined);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}
