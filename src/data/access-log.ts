/**
 * The access log, batched off the request path. Each request appends one pre-formatted JSON line
 * to a string; a timer (or a full buffer) hands the batch to the sink in one write. Lines are
 * pino-compatible (`level`, `time`, `msg`). The sink is the same ordered, asynchronous writer the
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

export class AccessLog {
  private buf = '';
  private timer: NodeJS.Timeout | undefined;
  /** The line's start up to the request id, for the millisecond it was last built for. */
  private headTime = -1;
  private head = '';

  constructor(
    private readonly sink: LogSink,
    private readonly flushMs = 200,
  ) {}

  /**
   * One line. Positional arguments rather than an entry object: this runs once per request, and
   * every field is a string or number sluice already holds (method and pool names are tokens and
   * the request id is sluice's own or a validated one, so only the URL may need escaping).
   * Under load many lines share a millisecond: their common start is built once.
   */
  log(
    time: number,
    requestId: string,
    method: string,
    url: string,
    status: number,
    pool: string,
    endpoint: string,
    ms: number,
    remote: string,
    error: string | undefined,
  ): void {
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
      (NEEDS_ESCAPE.test(url) ? JSON.stringify(url).slice(1, -1) : url) +
      '","status":' +
      status +
      ',"pool":"' +
      pool +
      '","upstream":"' +
      endpoint +
      '","ms":' +
      millis(ms) +
      ',"remote":"' +
      remote +
      (error === undefined ? '"}\n' : `","error":"${error}"}\n`);
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
