/**
 * timeouts.response for body-less requests, on one coarse clock instead of a timer per request.
 *
 * undici arms one timer for the response headers and another for the body when the two timeouts
 * differ (30 s and 60 s by default): a timer object per response, kept by undici's timer list
 * until its next sweep, so it outlives two scavenges and is promoted. Measured with
 * `node bench/alloc.mjs --nvp`: that nearly doubled what each scavenge promoted (276–310 KB
 * against 136–184) and lengthened its pause by about a quarter (1.7–1.8 ms against 1.3–1.5). So
 * undici gets one timeout for both (the longer, a backstop), and sluice keeps the exchanges
 * waiting for headers in a list ordered by when their request was sent; a tick every `tickMs`
 * advances the clock and fails those past the timeout, oldest first.
 *
 * A deadline fires after `timeoutMs` and less than `timeoutMs + 2 * tickMs` (undici's own timer
 * wheel is ~1 s coarse too). timeouts.queue (the wait for a free upstream connection) uses a
 * second list of the same kind.
 */

/**
 * An exchange waiting for response headers, or for a free upstream connection. The list is
 * intrusive: linking allocates nothing.
 */
export interface Awaiting {
  awaitPrev: Awaiting | undefined;
  awaitNext: Awaiting | undefined;
  awaitLinked: boolean;
  sentTick: number;
  /** Past the deadline of `list`: fail the request (it is already unlinked). */
  deadlinePassed(list: ResponseDeadlines): void;
}

export class ResponseDeadlines {
  private head: Awaiting | undefined;
  private tail: Awaiting | undefined;
  private tick = 0;
  /** Whole ticks that must pass: more than timeoutMs in every case. */
  private ticks: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    public timeoutMs: number,
    readonly tickMs = Math.max(10, Math.min(500, Math.floor(timeoutMs / 4))),
  ) {
    this.ticks = Math.ceil(timeoutMs / tickMs) + 1;
  }

  /** A reload's timeout: from now on, for the waits under way too (the tick stays as it was). */
  retime(timeoutMs: number): void {
    this.timeoutMs = timeoutMs;
    this.ticks = Math.ceil(timeoutMs / this.tickMs) + 1;
  }

  /** The wait begins (the request was sent, or joined the line): it ends within timeoutMs. Re-adding restarts it. */
  add(x: Awaiting): void {
    if (x.awaitLinked) this.remove(x);
    x.sentTick = this.tick;
    x.awaitLinked = true;
    x.awaitPrev = this.tail;
    x.awaitNext = undefined;
    if (this.tail === undefined) this.head = x;
    else this.tail.awaitNext = x;
    this.tail = x;
  }

  /** Headers arrived, or the exchange ended: no deadline any more. */
  remove(x: Awaiting): void {
    if (!x.awaitLinked) return;
    const { awaitPrev: prev, awaitNext: next } = x;
    if (prev === undefined) this.head = next;
    else prev.awaitNext = next;
    if (next === undefined) this.tail = prev;
    else next.awaitPrev = prev;
    x.awaitPrev = x.awaitNext = undefined;
    x.awaitLinked = false;
  }

  /** One tick of the coarse clock: fail every exchange whose deadline has passed. */
  advance(): void {
    this.tick++;
    // Oldest first: the first one within its deadline ends the walk.
    while (this.head !== undefined && this.tick - this.head.sentTick >= this.ticks) {
      const x = this.head;
      this.remove(x);
      x.deadlinePassed(this);
    }
  }

  get waiting(): number {
    let n = 0;
    for (let x = this.head; x !== undefined; x = x.awaitNext) n++;
    return n;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.advance(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
