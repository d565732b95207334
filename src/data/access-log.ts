/**
 * The access log, batched off the request path. Each request appends one pre-formatted line to a
 * string; a timer (or a full buffer) hands the batch to the sink in one write. Lines are JSON,
 * pino-compatible (`level`, `time`, `msg`), or nginx's `combined` / `common` (log.accessFormat). The sink is the same ordered, asynchronous writer the
 * process logger uses (pino's SonicBoom destination), so access lines and app logs never interleave
 * mid-line, as two independent writers to one pipe could.
 */

/** Where batches go: anything with write(string), e.g. pino.destination({ sync: false }). */
export interface LogSink {
  write(chunk: string): unknown;
}

/** URL characters that need JSON escaping: rare in practice (Node's parser refuses most controls). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must be escaped
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

/**
 * A batch is handed to the sink at this size (or by the timer). Each hand-over is a write on
 * libuv's thread pool and thread switches: at 16 KiB that was ~49 switches per 1,000 requests at
 * full load, at 64 KiB ~13 (`node bench/perf.mjs sluice --access`; ~2 with the log off). The
 * timer still bounds how late a line is written when traffic is light.
 */
export const FLUSH_BYTES = 64 * 1024;

/**
 * Milliseconds with three decimals, from integers: a double's shortest decimal form costs a
 * Number-to-string conversion per line; two small integers come from V8's number-string cache.
 */
export function millis(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!(us > 0)) return '0';
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  return whole + (frac < 10 ? '.00' : frac < 100 ? '.0' : '.') + frac;
}

/** The line formats: every field as JSON, or nginx's `combined` and `common`. */
export type AccessFormat = 'json' | 'combined' | 'common';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** nginx's `$time_local`, in UTC: `01/Dec/2026:18:20:05 +0000`. */
export function timeLocal(ms: number): string {
  const d = new Date(ms);
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must be escaped
const NGINX_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

/** As nginx writes variables into a log line: `"`, `\\`, controls and non-ASCII as \xHH. */
export function nginxEscape(v: string): string {
  if (!NGINX_ESCAPE.test(v)) return v;
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    out +=
      c < 0x20 || c >= 0x7f || c === 0x22 || c === 0x5c
        ? `\\x${(c & 0xff).toString(16).toUpperCase().padStart(2, '0')}`
        : v[i];
  }
  return out;
}

const json = (v: string) => (NEEDS_ESCAPE.test(v) ? JSON.stringify(v).slice(1, -1) : v);

export class AccessLog {
  private buf = '';
  private timer: NodeJS.Timeout | undefined;
  /** The line's start up to the request id, for the millisecond it was last built for. */
  private headTime = -1;
  private head = '';
  /** `$time_local` for the second it was last built for. */
  private localSecond = -1;
  private local = '';
  private format: AccessFormat = 'json';
  /** log.accessSample, and the share owed: a line is written each time it reaches 1. */
  private sample = 1;
  private credit = 0;

  constructor(
    private readonly sink: LogSink,
    private readonly flushMs = 200,
  ) {}

  /** log.accessFormat and log.accessSample (at start, and on a reload). */
  configure(o: { accessFormat: AccessFormat; accessSample: number }): void {
    this.format = o.accessFormat;
    this.sample = o.accessSample;
  }

  /**
   * One line. Positional arguments rather than an entry object: this runs once per request, and
   * every field is a string or number sluice already holds (method and pool names are tokens and
   * the request id is sluice's own or a validated one; the URL, user agent and referer may need
   * escaping). Under load many lines share a millisecond: their common start is built once.
   * Successful requests are sampled by log.accessSample; 4xx, 5xx and failures always written.
   */
  log(
    time: number,
    requestId: string,
    method: string,
    url: string,
    httpVersion: string,
    status: number,
    pool: string,
    endpoint: string,
    ms: number,
    upstreamMs: number,
    bytes: number,
    remote: string,
    userAgent: string | undefined,
    referer: string | undefined,
    error: string | undefined,
  ): void {
    if (this.sample < 1 && status < 400 && error === undefined) {
      this.credit += this.sample;
      if (this.credit < 1) return;
      this.credit -= 1;
    }
    if (this.format === 'json') {
      if (time !== this.headTime) {
        this.headTime = time;
        this.head = `{"level":30,"time":${time},"msg":"access","reqId":"`;
      }
      this.buf +=
        this.head +
        requestId +
        '","method":"' +
        method +
        '","url":"' +
        json(url) +
        '","proto":"' +
        httpVersion +
        '","status":' +
        status +
        ',"bytes":' +
        bytes +
        ',"pool":"' +
        pool +
        '","upstream":"' +
        endpoint +
        '","ms":' +
        millis(ms) +
        ',"upstreamMs":' +
        millis(upstreamMs) +
        ',"remote":"' +
        remote +
        (userAgent === undefined ? '' : `","ua":"${json(userAgent)}`) +
        (referer === undefined ? '' : `","referer":"${json(referer)}`) +
        (error === undefined ? '"}\n' : `","error":"${error}"}\n`);
    } else {
      const second = Math.floor(time / 1000);
      if (second !== this.localSecond) {
        this.localSecond = second;
        this.local = timeLocal(time);
      }
      // $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
      this.buf += `${remote} - - [${this.local}] "${method} ${nginxEscape(url)} HTTP/${httpVersion}" ${status} ${bytes}`;
      // combined adds "$http_referer" "$http_user_agent"
      this.buf +=
        this.format === 'combined'
          ? ` "${referer === undefined ? '-' : nginxEscape(referer)}" "${userAgent === undefined ? '-' : nginxEscape(userAgent)}"\n`
          : '\n';
    }
    if (this.buf.length >= FLUSH_BYTES) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.buf === '') return;
    const chunk = this.buf;
    this.buf = '';
    this.sink.write(chunk);
  }

  /** At shutdown: hand over what is buffered. */
  close(): void {
    this.flush();
  }
}
