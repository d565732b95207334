/**
 * The one error module (STYLE.md habit 6). Every error sluice raises or maps has a
 * stable `code`, the HTTP `status` a client sees, and a `cause`.
 */
export class SluiceError extends Error {
  readonly code: string;
  readonly status: number;
  /** Field path (for validation errors) such as `weights.green`. */
  readonly field: string | undefined;

  constructor(code: string, status: number, message: string, opts: { cause?: unknown; field?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SluiceError';
    this.code = code;
    this.status = status;
    this.field = opts.field;
  }
}

/** Config file problems: each is `path.to.key: message`. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Why an upstream exchange failed, as counted in `sluice_upstream_errors_total{kind}`. */
export type UpstreamErrorKind = 'connect' | 'timeout' | 'reset' | 'protocol' | 'other';

export interface UpstreamFailure {
  readonly kind: UpstreamErrorKind;
  /** Status for the client when no response byte was sent yet. */
  readonly status: number;
  /** Stable code in the JSON error body. */
  readonly code: string;
  /** True when the request surely never reached the upstream application: safe to retry elsewhere. */
  readonly retryable: boolean;
}

const f = (kind: UpstreamErrorKind, status: number, code: string, retryable = false): UpstreamFailure =>
  Object.freeze({ kind, status, code, retryable });

/**
 * Upstream failure → client status, through one table rather than an if/else chain.
 * Keys are undici error codes or Node errno codes.
 */
const UPSTREAM_FAILURES: Readonly<Record<string, UpstreamFailure>> = {
  ECONNREFUSED: f('connect', 502, 'upstream_connect_refused', true),
  EHOSTUNREACH: f('connect', 502, 'upstream_unreachable', true),
  ENETUNREACH: f('connect', 502, 'upstream_unreachable', true),
  ENOTFOUND: f('connect', 502, 'upstream_dns', true),
  EAI_AGAIN: f('connect', 502, 'upstream_dns', true),
  UND_ERR_CONNECT_TIMEOUT: f('connect', 504, 'upstream_connect_timeout', true),
  UND_ERR_HEADERS_TIMEOUT: f('timeout', 504, 'upstream_timeout'),
  UND_ERR_BODY_TIMEOUT: f('timeout', 504, 'upstream_timeout'),
  ECONNRESET: f('reset', 502, 'upstream_reset'),
  EPIPE: f('reset', 502, 'upstream_reset'),
  UND_ERR_SOCKET: f('reset', 502, 'upstream_reset'),
  UND_ERR_CLOSED: f('reset', 502, 'upstream_reset'),
  HPE_INVALID_CONSTANT: f('protocol', 502, 'upstream_bad_response'),
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: f('protocol', 502, 'upstream_bad_response'),
  UND_ERR_INFO: f('protocol', 502, 'upstream_bad_response'),
};
const OTHER_FAILURE = f('other', 502, 'upstream_error');

/**
 * No upstream connection of the pool freed up within timeouts.queue: the request was never sent.
 * A timeout of the pool (its endpoints are saturated), answered 503 with Retry-After.
 */
export const QUEUE_TIMEOUT = f('timeout', 503, 'upstream_queue_timeout');

/** Map an undici / socket error to its failure class. */
export function classifyUpstreamError(err: unknown): UpstreamFailure {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    const hit = UPSTREAM_FAILURES[code];
    if (hit !== undefined) return hit;
    if (code.startsWith('HPE_')) return UPSTREAM_FAILURES.HPE_INVALID_CONSTANT as UpstreamFailure;
  }
  return OTHER_FAILURE;
}

/** Client-side request problems detected before any upstream is involved. */
export const CLIENT_ERRORS = {
  absoluteForm: new SluiceError('absolute_form_refused', 400, 'absolute-form request targets are not accepted'),
  badTarget: new SluiceError('bad_request_target', 400, 'request target must start with /'),
  duplicateHost: new SluiceError('duplicate_host', 400, 'more than one Host header'),
  tooManyHeaders: new SluiceError('too_many_headers', 431, 'too many request headers'),
  connect: new SluiceError('connect_refused', 405, 'CONNECT is not supported'),
  badUpgrade: new SluiceError('unsupported_upgrade', 400, 'only WebSocket upgrades are proxied'),
  framing: new SluiceError('bad_framing', 400, 'conflicting message framing headers'),
  badHost: new SluiceError('invalid_host', 400, 'Host must be host[:port]: a name or [IPv6] literal'),
  badScheme: new SluiceError('unsupported_scheme', 400, 'an absolute-form target must be http or https'),
  traceMethod: new SluiceError('method_not_allowed', 405, 'TRACE and TRACK are not proxied'),
  httpVersion: new SluiceError('http_version_not_supported', 505, 'only HTTP/1.0 and HTTP/1.1 are served'),
} as const;
