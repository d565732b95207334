/**
 * A worker thread's entry: one data-plane member (data/plane.ts) on its own event loop, listening
 * on the shared port with SO_REUSEPORT so the kernel spreads connections over the workers. It
 * knows nothing of the controller: tables arrive as messages and are acknowledged once the next
 * request reads them; reports and endpoint events go back as values.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../core/clock.js';
import { createLogger } from '../core/log.js';
import { DataPlane, type MemberReport } from '../data/plane.js';
import { encodeInterval, type EncodedInterval } from '../stats/snapshot.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('worker/thread.js runs as a worker thread');
const init = workerData as WorkerInit;
const post = (m: FromWorker) => port.postMessage(m);

// Lines, whole, to the main thread's one writer: pino writes each line in one call, and the
// access log hands over batches of whole lines.
const out = { write: (chunk: string) => post({ t: 'out', chunk }) };
const logger = createLogger(init.level, out).child({ worker: init.index });
const plane = new DataPlane(init.options, init.table, {
  clock: systemClock,
  logger,
  access: { write: (chunk: string) => post({ t: 'access', chunk }) },
  report: (event) => post({ t: 'event', event }),
  connColumn: init.conns,
  // Each worker runs the check on its own traffic; the main thread judges the merged counts.
  alarm: () => post({ t: 'alarm' }),
});
plane.accessLogging = init.access;

const encoded = (r: MemberReport): MemberReport<EncodedInterval> => ({
  ...r,
  interval: r.interval === undefined ? undefined : encodeInterval(r.interval),
});

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'table':
      plane.apply(m.table);
      post({ t: 'ack', seq: m.seq });
      break;
    case 'configure':
      plane.configure(m.options, m.table);
      post({ t: 'ack', seq: m.seq });
      break;
    case 'collect':
      post({ t: 'report', seq: m.seq, report: encoded(plane.report(m.interval)) });
      break;
    case 'log':
      if (m.level !== undefined) logger.level = m.level;
      if (m.access !== undefined) plane.accessLogging = m.access;
      break;
    case 'stop':
      void plane.close(m.graceMs).then(() => {
        post({ t: 'stopped', report: encoded(plane.report(true)) });
        port.close();
      });
      break;
  }
});

// A failed listen is an unhandled rejection: the thread ends, and the main thread gets the error.
const second = init.options.listen.http;
void plane.listen(init.port, init.host, init.reusePort).then(async (p) => {
  const httpPort =
    second === null ? undefined : await plane.listenSecond(init.httpPort, second.host ?? init.host, init.reusePort);
  post({ t: 'listening', port: p, httpPort });
});
