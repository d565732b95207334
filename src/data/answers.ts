/**
 * sluice's own answers, never an upstream's: a JSON error body `{"error":{"code","status",...}}`
 * on a ServerResponse, or written raw on a socket where none exists (parser errors, CONNECT,
 * refused upgrades and connections).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TableMaintenance } from './table.js';

/** The JSON error body, the same on both paths. */
function errorBody(code: string, status: number, requestId?: string, message?: string): string {
  return `{"error":{"code":"${code}","status":${status}${requestId === undefined ? '' : `,"requestId":"${requestId}"`}${message === undefined ? '' : `,"message":${JSON.stringify(message)}`}}}\n`;
}

/** sluice's own JSON error answer; `retryAfter` (seconds) adds Retry-After (503 overload). */
export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  requestId: string,
  message?: string,
  retryAfter?: number,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code, status, requestId, message);
  const headers = [
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    'x-request-id',
    requestId,
  ];
  if (retryAfter !== undefined) headers.push('retry-after', String(retryAfter));
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * An injected abort (PUT /api/v1/faults): the JSON error body with code `fault_injected`, named
 * for the pool that "answered" as its real answers are (x-sluice-pool).
 */
export function sendFault(res: ServerResponse, status: number, pool: string, requestId: string): void {
  const body = errorBody('fault_injected', status, requestId, 'injected by sluice fault injection (a rehearsal)');
  res.writeHead(status, [
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    'x-sluice-pool',
    pool,
    'x-request-id',
    requestId,
  ]);
  res.end(body);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/** What a 405 says is allowed (RFC 9110 §15.5.6): every method sluice forwards, by their usual names. */
export const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/** Answer on a raw socket (no ServerResponse exists for parser errors, CONNECT and upgrades). */
export function writeRaw(socket: Socket, status: number, code: string): void {
  const body = errorBody(code, status);
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n${status === 405 ? `Allow: ${ALLOW}\r\n` : ''}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroySoon?.();
}

const escapeHtml = (t: string) =>
  t.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/**
 * Maintenance mode's answer: 503 with Retry-After, a small HTML page for a browser (Accept names
 * text/html) and the JSON error body for everyone else; never cached.
 */
export function sendMaintenance(
  res: ServerResponse,
  m: TableMaintenance,
  requestId: string,
  accept: string | undefined,
): void {
  const message = m.message ?? 'This service is down for maintenance. Please try again later.';
  const html = accept?.includes('text/html') === true;
  const body = html
    ? `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Down for maintenance</title><meta name="viewport" content="width=device-width, initial-scale=1"></head><body style="font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em"><h1>Down for maintenance</h1><p>${escapeHtml(message)}</p></body></html>\n`
    : errorBody('maintenance', 503, requestId, message);
  res.writeHead(503, [
    'content-type',
    html ? 'text/html; charset=utf-8' : 'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    'retry-after',
    String(m.retryAfterSec),
    'cache-control',
    'no-store',
    'x-request-id',
    requestId,
  ]);
  res.end(body);
}
