/**
 * The messages between the main thread and a worker thread: values only (structured clone), one
 * kind per purpose. Tables go down and are acknowledged; reports, endpoint events and log output
 * come up. Log output crosses as whole lines, so the main thread is the one ordered writer.
 */
import type { ConnColumn } from '../data/client-conns.js';
import type { MemberReport, PlaneOptions } from '../data/plane.js';
import type { RoutingTable } from '../data/table.js';
import type { EndpointEvent } from '../data/upstream.js';
import type { EncodedInterval } from '../stats/snapshot.js';

/** Given to a worker at start (workerData). */
export interface WorkerInit {
  index: number;
  options: PlaneOptions;
  table: RoutingTable;
  port: number;
  /** listen.http's port, when it is set. */
  httpPort: number;
  host: string;
  reusePort: boolean;
  level: string;
  access: boolean;
  /** The per-client connection counts shared by every worker (limits.maxConnectionsPerClient). */
  conns: ConnColumn | undefined;
}

export type ToWorker =
  | { t: 'table'; seq: number; table: RoutingTable }
  /** A reload: new options with the table that carries the new endpoint lists. */
  | { t: 'configure'; seq: number; options: PlaneOptions; table: RoutingTable }
  | { t: 'collect'; seq: number; interval: boolean }
  | { t: 'log'; level?: string | undefined; access?: boolean | undefined }
  | { t: 'stop'; graceMs: number };

export type FromWorker =
  | { t: 'listening'; port: number; httpPort?: number | undefined }
  | { t: 'ack'; seq: number }
  | { t: 'report'; seq: number; report: MemberReport<EncodedInterval> }
  | { t: 'event'; event: EndpointEvent }
  /** The sequential check crossed on this worker's canary traffic: a verdict now, please. */
  | { t: 'alarm' }
  | { t: 'out'; chunk: string }
  /** Access lines: to log.accessFile when one is set, else with the rest to stdout. */
  | { t: 'access'; chunk: string }
  | { t: 'stopped'; report: MemberReport<EncodedInterval> };
