/**
 * V8 garbage-collector settings for a latency-sensitive proxy (measured: bench/RESULTS.md,
 * "Performance notes"). They must be given when the process starts (V8 sizes its heap then, and switching GC
 * threading at run time is unsafe: V8 aborts), so they are launch flags, declared once in
 * package.json `config.nodeFlags` and used by `npm start`, `npm run demo`, the Dockerfile and the
 * benches:
 * - a fixed 32 MiB semi-space (young generation): scavenges come about half as often, so fewer
 *   requests wait behind one;
 * - on a process confined to one CPU (taskset, cpuset), `--single-threaded-gc` as well: V8's
 *   parallel GC helpers can then only take turns with the main thread and stretch each pause.
 */
import { getHeapSpaceStatistics } from 'node:v8';

/** The young generation's semi-space capacity now (MiB): 32 when started with `nodeFlags`. */
export function semiSpaceMiB(): number {
  // Up to Node 24 V8 reports new_space's size as the capacity of one semi-space; Node 26's V8
  // reports only what is committed so far (0.5 MiB at start), and the capacity is used + available.
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  if (s === undefined) return 0;
  return Math.round(Math.max(s.space_size, s.space_used_size + s.space_available_size) / 1048576);
}
