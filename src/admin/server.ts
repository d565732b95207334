/**
 * The admin listener: health, readiness, metrics, and the JSON API under /api/v1. It turns HTTP
 * calls into controller commands and never touches the routing table itself.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { formatIssues, isLoopbackHost } from '../core/config.js';
import { SluiceError } from '../core/errors.js';
import { allows, type Authenticator, type Principal, type Role } from './auth.js';
import type { AuditLog } from './audit.js';

export interface AdminContext {
  req: IncomingMessage;
  principal: Principal;
  requestId: string;
  body: unknown;
  /** Parse the body with a schema; throws a 400 SluiceError naming the failing fields. */
  parse<T extends z.ZodType>(schema: T): z.output<T>;
}

export interface Route {
  method: 'GET' | 'PUT' | 'POST';
  path: string;
  role: Role;
  /** Audit action name for mutations. */
  action?: string;
  /** Return a JSON value (200), or handle the response itself (SSE) and return undefined. */
  handle(ctx: AdminContext, res: ServerResponse): unknown;
}

export interface AdminDeps {
  host: string;
  allowedHosts: readonly string[];
  auth: Authenticator;
  audit: AuditLog;
  registry: Registry;
  routes: readonly Route[];
  ready(): boolean;
  /** The state a mutation is audited against (before / after). */
  snapshot(): unknown;
  logger: Logger;
}

const MAX_BODY = 64 * 1024;

export class AdminServer {
  readonly server: Server;
  private readonly routes = new Map<string, Route>();

  constructor(private readonly deps: AdminDeps) {
    for (const r of deps.routes) this.routes.set(`${r.method} ${r.path}`, r);
    this.server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
      this.handle(req, res).catch((err) => {
        deps.logger.error({ err }, 'admin handler failed');
        if (!res.headersSent) json(res, 500, { error: { code: 'internal', message: 'internal error' } });
        else res.destroy();
      });
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.removeListener('error', reject);
        const a = this.server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }

  /** DNS-rebinding guard: the Host must be a loopback name, the admin host, or an allowed one. */
  private hostAllowed(hostHeader: string | undefined): boolean {
    if (hostHeader === undefined) return false;
    const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(hostHeader.trim());
    if (m === null) return false;
    const h = (m[1] as string).toLowerCase();
    return isLoopbackHost(h) || h === this.deps.host.toLowerCase() || this.deps.allowedHosts.some((a) => a.toLowerCase() === h || a.toLowerCase() === hostHeader.toLowerCase());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const requestId = randomBytes(6).toString('hex');
    res.setHeader('x-request-id', requestId);
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');

    if (!this.hostAllowed(req.headers.host)) return json(res, 403, err('forbidden_host', 'Host header not allowed for the admin listener'));

    if (method === 'GET' && path === '/healthz') return json(res, 200, { ok: true });
    if (method === 'GET' && path === '/readyz') return this.deps.ready() ? json(res, 200, { ready: true }) : json(res, 503, { ready: false });
    if (method === 'GET' && path === '/metrics') {
      const text = await this.deps.registry.metrics();
      res.writeHead(200, { 'content-type': this.deps.registry.contentType });
      res.end(text);
      return;
    }

    const route = this.routes.get(`${method} ${path}`);
    if (route === undefined) {
      const exists = [...this.routes.values()].some((r) => r.path === path);
      return json(res, exists ? 405 : 404, err(exists ? 'method_not_allowed' : 'not_found', `${method} ${path}`));
    }
    const remote = req.socket.remoteAddress ?? '';
    const deny = async (status: number, code: string, message: string, principal?: Principal) => {
      await this.deps.audit.write({
        time: new Date().toISOString(), requestId, tokenId: principal?.id ?? null, role: principal?.role ?? null, remote,
        action: route.action ?? `${method} ${path}`, result: 'denied', status, detail: code,
      });
      json(res, status, err(code, message));
    };

    // A browser on another origin must not drive the API (CSRF); non-browser clients send no Origin.
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let ok = false;
      try {
        ok = new URL(origin).host === req.headers.host;
      } catch {
        ok = false;
      }
      if (!ok) return deny(403, 'forbidden_origin', 'cross-origin requests are refused');
    } else if (origin === 'null') return deny(403, 'forbidden_origin', 'cross-origin requests are refused');

    const principal = this.deps.auth.authenticate(req.headers.authorization);
    if (principal === undefined) {
      res.setHeader('www-authenticate', 'Bearer realm="sluice"');
      return deny(401, 'unauthorized', 'a valid bearer token is required');
    }
    if (!allows(principal, route.role)) return deny(403, 'forbidden', `role ${principal.role} may not ${method} ${path}`, principal);

    let body: unknown = undefined;
    if (method !== 'GET') {
      const ct = req.headers['content-type'];
      const len = Number(req.headers['content-length'] ?? 0);
      if (len > 0 || req.headers['transfer-encoding'] !== undefined) {
        if (ct === undefined || !/^application\/json\s*(;|$)/i.test(ct)) return deny(415, 'unsupported_media_type', 'mutations take Content-Type: application/json', principal);
        const text = await readBody(req, MAX_BODY);
        if (text === undefined) return deny(413, 'body_too_large', `body over ${MAX_BODY} bytes`, principal);
        try {
          body = text === '' ? {} : JSON.parse(text);
        } catch {
          return deny(400, 'invalid_json', 'body is not valid JSON', principal);
        }
      } else body = {};
    }

    const ctx: AdminContext = {
      req,
      principal,
      requestId,
      body,
      parse(schema) {
        const r = schema.safeParse(body);
        if (!r.success) {
          const problems = formatIssues(r.error.issues);
          throw new SluiceError('invalid_body', 400, problems.join('; '), { field: r.error.issues.map((i) => i.path.join('.')).join(',') });
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
      if (route.action !== undefined) {
        await this.deps.audit.write({
          time: new Date().toISOString(), requestId, tokenId: principal.id, role: principal.role, remote, action: route.action,
          result: 'rejected', status: e.status, detail: e.message, before,
        });
      }
      return json(res, e.status, { error: { code: e.code, message: e.message, ...(e.field === undefined ? {} : { field: e.field }) } });
    }
    if (route.action !== undefined) {
      await this.deps.audit.write({
        time: new Date().toISOString(), requestId, tokenId: principal.id, role: principal.role, remote, action: route.action,
        result: 'ok', status: 200, before, after: this.deps.snapshot(),
      });
      this.deps.logger.info({ action: route.action, tokenId: principal.id, requestId }, 'admin mutation');
    }
    if (result !== undefined && !res.headersSent) json(res, 200, result);
  }
}

function err(code: string, message: string) {
  return { error: { code, message } };
}

export function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
