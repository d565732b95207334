/**
 * The process logger: pino JSON to stdout. Request lines go through data/access-log.ts, written to
 * the same destination so the two never interleave mid-line.
 */
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
export type { Logger };
