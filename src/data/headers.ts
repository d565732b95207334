/**
 * Request and response header rewriting for the proxy, in one pass over Node's flat rawHeaders.
 *
 * Removed on the way in: hop-by-hop headers (RFC 9110 §7.6.1) and every header the Connection
 * header names; Expect (Node already answered 100-continue); Proxy-Authorization (credentials for
 * this hop, never the upstream's: RFC 9110 §11.7.2); names with underscores (nginx's
 * underscores_in_headers off, which closes X-Forwarded_For-style confusion); the forwarding
 * headers sluice sets itself (X-Real-IP among them); and, from a peer outside
 * split.trustedProxies, the client-address and rewrite headers of `forwarding.stripFromUntrusted`
 * (True-Client-IP, X-Original-URL, ...), which applications believe as if a proxy had set them.
 * Host is passed through.
 */
import { isIPv6 } from 'node:net';

// biome-ignore lint/suspicious/noConstEnum: inlined by tsc on the request path; never exported
const enum H {
  Pass = 0,
  Drop = 1,
  Host = 2,
  Connection = 3,
  Cookie = 4,
  Xff = 5,
  XfProto = 6,
  XfHost = 7,
  RequestId = 8,
  ContentLength = 9,
  TransferEncoding = 10,
  Forwarded = 11,
  /** Believed only from a trusted proxy: forwarded from one, dropped from anyone else. */
  Untrusted = 12,
}

const REQUEST_NAMES = new Map<string, H>([
  ['host', H.Host],
  ['connection', H.Connection],
  ['keep-alive', H.Drop],
  ['proxy-connection', H.Drop],
  ['te', H.Drop],
  ['trailer', H.Drop],
  ['transfer-encoding', H.TransferEncoding],
  ['upgrade', H.Drop],
  ['expect', H.Drop],
  ['proxy-authorization', H.Drop],
  // sluice sets X-Real-IP itself, from a trusted proxy too (see proxy.ts prepare()).
  ['x-real-ip', H.Drop],
  // Marks a shadow's mirror (data/mirror.ts): a client's own must never pass for one.
  ['x-sluice-shadow', H.Drop],
  ['cookie', H.Cookie],
  ['x-forwarded-for', H.Xff],
  ['x-forwarded-proto', H.XfProto],
  ['x-forwarded-host', H.XfHost],
  ['x-request-id', H.RequestId],
  ['forwarded', H.Forwarded],
  ['content-length', H.ContentLength],
]);

/** Connection tokens that are options, not header names. */
const CONNECTION_OPTIONS = new Set(['close', 'keep-alive', 'upgrade']);

/** What one pass over the request headers found. Reused per request: read it before the next. */
export interface ScannedRequest {
  /** Outgoing headers, flat [name, value, ...]; sluice's forwarding headers are appended later. */
  out: string[];
  hostCount: number;
  host: string | undefined;
  cookie: string | undefined;
  xff: string | undefined;
  xfProto: string | undefined;
  xfHost: string | undefined;
  /** RFC 7239 Forwarded: forwarded only from a trusted proxy. */
  forwarded: string | undefined;
  requestId: string | undefined;
  /** Value of the split key header (`split.key: header:<name>`). */
  keyHeader: string | undefined;
  /** Value of the override header; '' (forces nothing) when it came more than once. */
  override: string | undefined;
  hasBody: boolean;
  contentLengthCount: number;
  transferEncoding: boolean;
  /** The Transfer-Encoding values, joined: sluice accepts exactly `chunked` and nothing else. */
  transferEncodingValue: string | undefined;
  headerCount: number;
}

/** The configured header names a scan looks for. Build it once with `headerNames()`. */
export interface HeaderNames {
  /** Lower-case name of the split key header, or undefined. */
  readonly keyHeader: string | undefined;
  /** Lower-case name of the override header, or undefined. */
  readonly override: string | undefined;
  /** Lower-case name → what the scan does with it: the fixed table plus the configured names. */
  readonly kinds: ReadonlyMap<string, H>;
  /**
   * Per name length, one bit per first letter (`firstBit`) of every name in `kinds` or above:
   * names that miss pass without lower-casing, which is nearly every header of a request.
   */
  readonly filter: Uint32Array;
}

/** A name's first character folded to one of 32 bits: letters fold case, others share bits. */
const firstBit = (name: string): number => 1 << ((name.charCodeAt(0) | 0x20) & 31);

/**
 * The names a scan acts on, built once per config. `stripFromUntrusted` (lower-case) adds names
 * forwarded only from a trusted proxy; a name sluice already handles (Host, X-Forwarded-For, the
 * hop-by-hop ones, ...) keeps its own handling, and the key and override headers keep theirs.
 */
export function headerNames(
  keyHeader: string | undefined,
  override: string | undefined,
  stripFromUntrusted: readonly string[] = [],
): HeaderNames {
  const kinds = new Map(REQUEST_NAMES);
  for (const n of stripFromUntrusted) if (!kinds.has(n) && n !== keyHeader && n !== override) kinds.set(n, H.Untrusted);
  const filter = new Uint32Array(256);
  for (const n of [...kinds.keys(), keyHeader, override])
    if (n !== undefined && n.length > 0 && n.length < 256)
      filter[n.length] = (filter[n.length] as number) | firstBit(n);
  return { keyHeader, override, kinds, filter };
}

/**
 * Scan `raw` (Node's req.rawHeaders): the outgoing headers and the values routing needs.
 * `peerTrusted`: the peer is in split.trustedProxies (its stripFromUntrusted headers pass).
 */
export function scanRequestHeaders(raw: readonly string[], names: HeaderNames, peerTrusted = false): ScannedRequest {
  const filter = names.filter;
  const kinds = names.kinds;
  const out: string[] = [];
  const r: ScannedRequest = {
    out,
    hostCount: 0,
    host: undefined,
    cookie: undefined,
    xff: undefined,
    xfProto: undefined,
    xfHost: undefined,
    forwarded: undefined,
    requestId: undefined,
    keyHeader: undefined,
    override: undefined,
    hasBody: false,
    contentLengthCount: 0,
    transferEncoding: false,
    transferEncodingValue: undefined,
    headerCount: raw.length >>> 1,
  };
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.length >= 256 || ((filter[name.length] as number) & firstBit(name)) === 0) {
      // Not a name sluice acts on: pass it, unless it has an underscore.
      if (name.includes('_')) continue;
      out.push(name, value);
      continue;
    }
    const lower = name.toLowerCase();
    const kind = kinds.get(lower) ?? H.Pass;
    switch (kind) {
      case H.Pass:
        if (lower === names.keyHeader) r.keyHeader = value;
        if (lower === names.override) {
          // Two override headers mean a confused client or intermediary: force nothing.
          r.override = r.override === undefined ? value : '';
          continue; // the override is sluice's, not the application's
        }
        if (lower.includes('_')) continue;
        out.push(name, value);
        continue;
      case H.Drop:
        continue;
      case H.Untrusted:
        if (peerTrusted) out.push(name, value);
        continue;
      case H.Host:
        r.hostCount++;
        if (r.host === undefined) r.host = value;
        out.push(name, value);
        continue;
      case H.Connection:
        connection = connection === undefined ? value : `${connection},${value}`;
        continue;
      case H.Cookie:
        r.cookie = r.cookie === undefined ? value : `${r.cookie}; ${value}`;
        out.push(name, value);
        continue;
      case H.Xff:
        r.xff = r.xff === undefined ? value : `${r.xff}, ${value}`;
        continue;
      case H.XfProto:
        r.xfProto = value;
        continue;
      case H.XfHost:
        r.xfHost = value;
        continue;
      case H.RequestId:
        r.requestId = value;
        continue;
      case H.Forwarded:
        r.forwarded = r.forwarded === undefined ? value : `${r.forwarded}, ${value}`;
        continue;
      case H.ContentLength:
        r.contentLengthCount++;
        if (value !== '0') r.hasBody = true;
        out.push(name, value);
        continue;
      case H.TransferEncoding:
        r.transferEncoding = true;
        r.transferEncodingValue =
          r.transferEncodingValue === undefined ? value : `${r.transferEncodingValue}, ${value}`;
        r.hasBody = true;
        continue;
    }
  }
  if (connection !== undefined) dropConnectionNamed(r, connection);
  return r;
}

/**
 * The header names a Connection value lists, lower-cased, without its options (close,
 * keep-alive, upgrade); undefined when it lists none, as `Connection: keep-alive` does. Both
 * directions drop what this returns.
 */
function connectionNamed(value: string): Set<string> | undefined {
  if (value === 'keep-alive' || value === 'close') return undefined; // nearly every message: no split
  let named: Set<string> | undefined;
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t === '' || CONNECTION_OPTIONS.has(t)) continue;
    named ??= new Set();
    named.add(t);
  }
  return named;
}

/** Remove every header named in Connection (besides its options), then forget what they set. */
function dropConnectionNamed(r: ScannedRequest, connection: string): void {
  const named = connectionNamed(connection);
  if (named === undefined) return;
  // Never let Connection strip Host or framing: the request would change meaning upstream.
  named.delete('host');
  named.delete('content-length');
  const out = r.out;
  let w = 0;
  for (let i = 0; i < out.length; i += 2) {
    if (named.has((out[i] as string).toLowerCase())) continue;
    out[w++] = out[i] as string;
    out[w++] = out[i + 1] as string;
  }
  out.length = w;
  // Forwarding headers named in Connection are dropped; sluice still sets its own.
  if (named.has('x-forwarded-for')) r.xff = undefined;
  if (named.has('x-forwarded-proto')) r.xfProto = undefined;
  if (named.has('x-forwarded-host')) r.xfHost = undefined;
  if (named.has('x-request-id')) r.requestId = undefined;
  if (named.has('forwarded')) r.forwarded = undefined;
  if (named.has('cookie')) r.cookie = undefined;
}

const RESPONSE_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
/** 1 at the length of every response header name the rewrite acts on (the drops and Content-Length). */
const RESPONSE_LENGTHS = new Uint8Array(32);
for (const n of RESPONSE_DROP) RESPONSE_LENGTHS[n.length] = 1;
RESPONSE_LENGTHS['content-length'.length] = 1;

/** What the response-header rewrite learned besides the headers. */
export interface ResponseMeta {
  /**
   * The body's exact length in bytes when the upstream framed it with one valid Content-Length
   * and no Transfer-Encoding; else -1 (chunked, close-delimited, or doubtful framing).
   */
  bodyLength: number;
}

/** A Content-Length value: 1 to 15 digits (Number stays exact), else -1. */
function contentLength(v: string): number {
  if (v.length === 0 || v.length > 15) return -1;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
  }
  return Number(v);
}

/**
 * undici's raw response headers (Buffers, flat) → Node's flat string array for writeHead, without
 * hop-by-hop headers or those named in the upstream's Connection header. Sets `meta.bodyLength`.
 */
export function responseHeaders(raw: readonly Buffer[], meta: ResponseMeta): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  let length = -1;
  let lengths = 0;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    // Only names of a length the rewrite acts on can matter: skip lower-casing the rest.
    if (name.length >= 32 || RESPONSE_LENGTHS[name.length] === 0) {
      out.push(name, (raw[i + 1] as Buffer).toString('latin1'));
      continue;
    }
    const lower = name.toLowerCase();
    if (RESPONSE_DROP.has(lower)) {
      if (lower === 'connection') connection = (raw[i + 1] as Buffer).toString('latin1');
      else if (lower === 'transfer-encoding') chunked = true;
      continue;
    }
    const value = (raw[i + 1] as Buffer).toString('latin1');
    if (lower === 'content-length') {
      lengths++;
      length = contentLength(value);
    }
    out.push(name, value);
  }
  meta.bodyLength = lengths === 1 && !chunked ? length : -1;
  const named = connection === undefined ? undefined : connectionNamed(connection);
  if (named === undefined) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    if (!named.has((out[i] as string).toLowerCase())) kept.push(out[i] as string, out[i + 1] as string);
  }
  return kept;
}

/** Index just past `name=` of the first cookie `name` in `cookie` at or after `from`, or -1. */
function cookieAt(cookie: string, name: string, from: number): number {
  // An empty name matches no cookie; the search below would never move past it.
  if (name.length === 0) return -1;
  while (from < cookie.length) {
    const at = cookie.indexOf(name, from);
    if (at < 0) return -1;
    const end = at + name.length;
    const startOk = at === 0 || cookie.charCodeAt(at - 1) === 0x3b /* ; */ || cookie.charCodeAt(at - 1) === 0x20;
    if (startOk && cookie.charCodeAt(end) === 0x3d /* = */) return end + 1;
    from = end;
  }
  return -1;
}

/** The value starting at `at`, up to the next `;`, trimmed. */
function valueAt(cookie: string, at: number): string {
  let stop = cookie.indexOf(';', at);
  if (stop < 0) stop = cookie.length;
  return cookie.slice(at, stop).trim();
}

/**
 * Value of cookie `name` in a Cookie header, or undefined; the first one wins and DQUOTEs around
 * it are removed (the split key: `uid="42"` and `uid=42` are one client). No allocation besides
 * the result.
 */
export function cookieValue(cookie: string | undefined, name: string): string | undefined {
  if (cookie === undefined) return undefined;
  const at = cookieAt(cookie, name, 0);
  if (at < 0) return undefined;
  const v = valueAt(cookie, at);
  return v.length >= 2 && v.charCodeAt(0) === 0x22 && v.charCodeAt(v.length - 1) === 0x22 ? v.slice(1, -1) : v;
}

/**
 * Value of cookie `name` when the header holds it exactly once, as sent (quotes kept: RFC 6265
 * §5.2 makes them part of the value); undefined when absent or repeated. For the override: two
 * values mean a confused client or intermediary, and `"green"` is not `green`, so neither forces.
 */
export function soleCookieValue(cookie: string | undefined, name: string): string | undefined {
  if (cookie === undefined) return undefined;
  const at = cookieAt(cookie, name, 0);
  if (at < 0 || cookieAt(cookie, name, at) >= 0) return undefined;
  return valueAt(cookie, at);
}

/** 1 for the bytes of a Host reg-name (RFC 3986 §3.2.2): unreserved, `%`, sub-delims but `,`. */
const REG_NAME = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+;=")
  REG_NAME[c.charCodeAt(0)] = 1;

const isHex = (c: number): boolean => (c >= 48 && c <= 57) || ((c | 0x20) >= 97 && (c | 0x20) <= 102);

/**
 * Whether a Host value is an authority sluice forwards (RFC 9110 §7.2): a non-empty reg-name or a
 * bracketed IPv6 literal, then optionally `:` and up to 5 digits. No userinfo, path, spaces or
 * commas (`a, b` is two Hosts folded into one); the comma is a sub-delim, but no host has one.
 * One pass over a byte table on the common case; only an IP literal allocates.
 */
export function validHost(v: string): boolean {
  const n = v.length;
  let i = 0;
  if (v.charCodeAt(0) === 0x5b /* [ */) {
    const close = v.indexOf(']');
    if (close < 0 || !isIPv6(v.slice(1, close))) return false;
    i = close + 1;
  } else {
    for (; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c === 0x3a /* : */) break;
      if (c >= 128 || REG_NAME[c] === 0) return false;
      if (c === 0x25 /* % */) {
        if (!isHex(v.charCodeAt(i + 1)) || !isHex(v.charCodeAt(i + 2))) return false;
        i += 2;
      }
    }
    // RFC 9110 §4.2.1: an empty host is invalid (also `Host:` with no value and `:80`).
    if (i === 0) return false;
  }
  if (i === n) return true;
  if (v.charCodeAt(i) !== 0x3a || n - i - 1 > 5) return false;
  for (i++; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** A request id from a trusted peer is kept only if it is short and plain. */
export const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * A request header's first value from rawHeaders, for the access log: `name` is lower case. A
 * length check first, so most names are passed over without a comparison; no headers object is
 * built (Node makes req.headers on first use, one object per request).
 */
export function rawHeader(raw: readonly string[], name: string): string | undefined {
  const n = name.length;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.length === n && (k === name || k.toLowerCase() === name)) return raw[i + 1];
  }
  return undefined;
}
