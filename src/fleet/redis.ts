/**
 * The fleet's Redis: the one module that talks to it (node-redis's @redis/client: no
 * dependencies of its own, fail-fast while disconnected with `disableOfflineQueue`, reconnects and
 * re-subscribes by itself). Every key of a rollout lives under `sluice:<fleet.name>:`. Nothing
 * here is ever called on the request path: the controller's tick, commands, the lease and reads
 * of the status use it.
 */
import { createClient } from '@redis/client';

function makeClient(url: string) {
  return createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000) },
  });
}

export type RedisClient = ReturnType<typeof makeClient>;

export interface FleetKeys {
  /** HASH { version, json }: the rollout state, written only by compare-and-set. */
  state: string;
  /** STRING: the leader's fencing epoch, increased on each new lease. */
  epoch: string;
  /** STRING holder id, with PX: the leader lease. */
  lease: string;
  /** Pub/sub channel: a new state version was written. */
  changed: string;
  /** ZSET id → last seen (ms): the members. */
  members: string;
  /** LIST per member: its interval snapshots, consumed by the leader. */
  snaps: (id: string) => string;
  /** STRING (PX): the leader's latest merged windows, verdict and member shares. */
  summary: string;
  /** Pub/sub channel: a member's sequential check crossed; its live counts, for the leader to judge. */
  urgent: string;
}

export function fleetKeys(name: string): FleetKeys {
  const p = `sluice:${name}:`;
  return {
    state: `${p}state`,
    epoch: `${p}epoch`,
    lease: `${p}lease`,
    changed: `${p}changed`,
    members: `${p}members`,
    snaps: (id) => `${p}snap:${id}`,
    summary: `${p}summary`,
    urgent: `${p}urgent`,
  };
}

/**
 * Compare-and-set of the state. ARGV: json, new version, expected version, fence (-1: none).
 * Refused (-2) when a fence is given and is not the current epoch: a deposed leader's decision;
 * refused (-1) when the stored version is not the expected one. Publishes the new version.
 */
export const SAVE_SCRIPT = `
local fence = tonumber(ARGV[4])
if fence >= 0 then
  local e = tonumber(redis.call('GET', KEYS[2]) or '0')
  if fence ~= e then return {-2, e} end
end
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) ~= tonumber(ARGV[3]) then return {-1, tonumber(cur)} end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'json', ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return {1, tonumber(ARGV[2])}`;

/** Seed after Redis came back empty: only when nothing, or an older version, is stored. */
export const SEED_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'json', ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1`;

/**
 * The lease: renew it when held, take it when free (and increase the epoch). ARGV: id, ttl ms.
 * Returns the epoch while this id holds the lease, -1 when another does.
 */
export const LEASE_SCRIPT = `
local h = redis.call('GET', KEYS[1])
if h == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if h then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])`;

/** A client that fails fast while Redis is away and keeps trying to reconnect (at most 1 s apart). */
export function redisClient(url: string, onError: (err: Error) => void): RedisClient {
  const c = makeClient(url);
  c.on('error', onError);
  return c;
}
