/** The process logger: pino JSON to stdout. Request lines go through data/access-log.ts instead. */
import pino, { type Logger } from 'pino';

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { name: 'sluice' }, redact: { paths: ['req.headers.authorization', 'token', '*.token'], censor: '[redacted]' } },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
export type { Logger };
