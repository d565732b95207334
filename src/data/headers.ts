/**
 * Request and response header rewriting for the proxy, in one pass over Node's flat rawHeaders.
 *
 * Removed on the way in: hop-by-hop headers (RFC 9110 §7.6.1) and every header the Connection
 * header names; Expect (Node already answered 100-continue); names with underscores (nginx's
 * underscores_in_headers off, which closes X-Forwarded_For-style confusion); and the forwarding
 * headers sluice sets itself. Host is passed through.
 */
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
  /** Value of the override header. */
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
  /** 1 at the length of every name the scan acts on: other names pass without lower-casing. */
  readonly lengths: Uint8Array;
}

export function headerNames(keyHeader: string | undefined, override: string | undefined): HeaderNames {
  const lengths = new Uint8Array(256);
  for (const n of [...REQUEST_NAMES.keys(), keyHeader, override])
    if (n !== undefined && n.length < 256) lengths[n.length] = 1;
  return { keyHeader, override, lengths };
}

/** Scan `raw` (Node's req.rawHeaders): the outgoing headers and the values routing needs. */
export function scanRequestHeaders(raw: readonly string[], names: HeaderNames): ScannedRequest {
  const lens = names.lengths;
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
    if (name.length >= 256 || lens[name.length] === 0) {
      // Not a name sluice acts on: pass it, unless it has an underscore.
      if (name.includes('_')) continue;
      out.push(name, value);
      continue;
    }
    const lower = name.toLowerCase();
    const kind = REQUEST_NAMES.get(lower) ?? H.Pass;
    switch (kind) {
      case H.Pass:
        if (lower === names.keyHeader) r.keyHeader = value;
        if (lower === names.override) {
          r.override = value;
          continue; // the override is sluice's, not the application's
        }
        if (lower.includes('_')) continue;
        out.push(name, value);
        continue;
      case H.Drop:
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

/** Value of cookie `name` in a Cookie header, or undefined. No allocation besides the result. */
export function cookieValue(cookie: string | undefined, name: string): string | undefined {
  if (cookie === undefined) return undefined;
  let from = 0;
  while (from < cookie.length) {
    const at = cookie.indexOf(name, from);
    if (at < 0) return undefined;
    const end = at + name.length;
    const startOk = at === 0 || cookie.charCodeAt(at - 1) === 0x3b /* ; */ || cookie.charCodeAt(at - 1) === 0x20;
    if (startOk && cookie.charCodeAt(end) === 0x3d /* = */) {
      let stop = cookie.indexOf(';', end + 1);
      if (stop < 0) stop = cookie.length;
      let v = cookie.slice(end + 1, stop).trim();
      if (v.length >= 2 && v.charCodeAt(0) === 0x22 && v.charCodeAt(v.length - 1) === 0x22) v = v.slice(1, -1);
      return v;
    }
    from = end;
  }
  return undefined;
}

/** A request id from a trusted peer is kept only if it is short and plain. */
export const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
