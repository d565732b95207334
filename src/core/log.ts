/**
 * The process logger: pino JSON to stdout. Request lines go through data/access-log.ts, written to
 * the same destination so the two never interleave mid-line.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';

/**
 * stdout through one ordered asynchronous writer (SonicBoom); flush it before exiting. Bounded:
 * when a slow reader lets 8 MiB pile up, further writes are dropped rather than holding memory.
 */
export type LogDestination = ReturnType<typeof pino.destination>;
export const stdoutDestination = (): LogDestination =>
  pino.destination({ dest: 1, sync: false, maxLength: 8 * 1024 * 1024 });

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'sluice' },
      redact: { paths: ['req.headers.authorization', 'token', '*.token'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** Write out what the destination still buffers (at shutdown). */
export function flushDestination(d: LogDestination): Promise<void> {
  return new Promise((resolve) => {
    try {
      d.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}
/** Anything with write(string): a destination, stdout, a worker's channel. */
export interface Sink {
  write(chunk: string): unknown;
}

/**
 * Where access lines go: the process's stdout writer, or `log.accessFile` through its own
 * ordered asynchronous writer. SIGUSR1 reopens the file (logrotate moved it); a reload may name
 * another file, or none.
 */
export class AccessSink implements Sink {
  private file: LogDestination | undefined;
  private path: string | null = null;

  constructor(
    private readonly stdout: Sink,
    private readonly onError: (err: Error, path: string) => void = () => {},
  ) {}

  write(chunk: string): void {
    (this.file ?? this.stdout).write(chunk);
  }

  /** Write to `path` from now on (null: stdout). Throws, keeping the current one, if it cannot be opened. */
  use(path: string | null): void {
    if (path === this.path) return;
    let next: LogDestination | undefined;
    if (path !== null) {
      try {
        mkdirSync(dirname(path), { recursive: true });
        // Opened once here so that a bad path is an error now, not a lost line later.
        closeSync(openSync(path, 'a'));
      } catch (err) {
        throw new Error(`log.accessFile: cannot open ${path}: ${(err as Error).message}`);
      }
      next = pino.destination({ dest: path, sync: false, append: true, maxLength: 8 * 1024 * 1024 });
      // A full disk or a failed reopen must not end the proxy: the lines are lost, and said so.
      next.on('error', (err: Error) => this.onError(err, path));
    }
    const old = this.file;
    this.file = next;
    this.path = path;
    if (old !== undefined) void flushDestination(old).then(() => old.end());
  }

  reopen(): void {
    this.file?.reopen();
  }

  async close(): Promise<void> {
    const f = this.file;
    if (f === undefined) return;
    await flushDestination(f);
    f.end();
  }
}

export type { Logger };
