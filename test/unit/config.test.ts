import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig } from '../../src/core/config.js';
import { ConfigError } from '../../src/core/errors.js';
import { parseDuration } from '../../src/core/duration.js';

const pools = { blue: { endpoints: ['http://127.0.0.1:3001'] }, green: { endpoints: ['http://127.0.0.1:3002'] } };

function problems(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

describe('config', () => {
  it('fills every default from the schema', () => {
    const c = parseConfig({ pools });
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080, tls: null, http: null });
    expect(c.admin).toMatchObject({ host: '127.0.0.1', port: 9901, tokens: [] });
    expect(c.stable).toBe('blue');
    expect(c.split).toEqual({
      key: 'ip',
      trustedProxies: [],
      override: { header: 'x-sluice-pool', cookie: 'sluice-pool', allowFrom: null },
      initialCanaryWeight: 0,
    });
    expect(c.retry).toEqual({ toStable: true, budget: 0.2, minRetries: 3 });
    expect(c.maintenance).toEqual({ enabled: false, message: null, retryAfter: 600_000, allowFrom: [] });
    expect(c.rollout).toEqual({
      steps: [10, 25, 50, 100],
      stepHold: 30_000,
      dryRun: false,
      shadow: {
        percent: 10,
        duration: 300_000,
        methods: ['GET', 'HEAD', 'OPTIONS'],
        maxBodyBytes: 65_536,
        maxInFlight: 64,
        timeout: 10_000,
        maxMismatchRate: 0.01,
        slowRatio: 3,
        slowDeltaMs: 50,
        thenRollout: false,
      },
      onFailure: 'snap',
      rampDownOver: 60_000,
      analysis: {
        interval: 1000,
        window: 10_000,
        minRequests: 50,
        maxErrorRate: 0.01,
        maxP95Ms: 500,
        maxP95Ratio: 2,
        minP95DeltaMs: 5,
        maxErrorRatio: 2,
        minErrorDelta: 0.002,
        maxInconclusive: 600_000,
        onSharedFailure: 'rollback',
        confidence: 0.99,
      },
    });
    expect(c.timeouts).toEqual({
      connect: 5000,
      response: 30_000,
      idle: 60_000,
      clientHeaders: 10_000,
      clientBody: 30_000,
      queue: 5000,
    });
    expect(c.limits).toEqual({
      maxHeaderBytes: 16384,
      maxHeaderCount: 100,
      maxConnections: 10_000,
      maxConnectionsPerClient: 0,
      bufferBodyBytes: 1 << 20,
      bufferBodyTotalBytes: 256 << 20,
      minBodyRate: 1024,
      bufferResponseBytes: 1 << 20,
      bufferResponseTotalBytes: 256 << 20,
      minResponseRate: 1024,
    });
    expect(c.healthCheck.path).toBeNull();
    expect(c.shutdownGrace).toBe(10_000);
  });

  it('reads rollout.onFailure and rollout.rampDownOver as the other durations are read', () => {
    const c = parseConfig({ pools, rollout: { onFailure: 'rampDown', rampDownOver: '1.5s' } });
    expect([c.rollout.onFailure, c.rollout.rampDownOver]).toEqual(['rampDown', 1500]);
  });

  it('lets every default be overridden, including to zero', () => {
    const c = parseConfig({ pools, split: { initialCanaryWeight: 0 }, rollout: { analysis: { maxErrorRate: 0 } } });
    expect(c.rollout.analysis.maxErrorRate).toBe(0);
  });

  it.each([
    [{ pools: { ...pools, green: { endpoints: ['not a url'] } } }, 'pools.green.endpoints.0: Invalid url'],
    [{ pools: { blue: pools.blue } }, 'pools.green:'],
    [{ pools: { ...pools, red: pools.blue } }, 'pools.red: unknown key'],
    [{ pools, split: { key: 'hash' } }, 'split.key: expected ip, header:<name> or cookie:<name>'],
    [{ pools, split: { initialCanaryWeight: 12.345 } }, 'split.initialCanaryWeight: at most two decimals'],
    [{ pools, split: { initialCanaryWeight: 101 } }, 'split.initialCanaryWeight: must be <= 100'],
    [{ pools, split: { trustedProxies: ['10.0.0.0/33'] } }, 'split.trustedProxies.0: invalid CIDR'],
    [{ pools, rollout: { stepHold: '3 fortnights' } }, 'rollout.stepHold: invalid duration'],
    [{ pools, rollout: { steps: [50, 25] } }, 'rollout.steps: steps must increase'],
    [{ pools, rollout: { onFailure: 'slow' } }, 'rollout.onFailure:'],
    [{ pools, rollout: { rampDownOver: 0 } }, 'rollout.rampDownOver: must be more than 0'],
    [{ pools, rollout: { rampDownOver: 'soon' } }, 'rollout.rampDownOver: invalid duration'],
    [{ pools, admin: { host: '0.0.0.0' } }, 'admin.tokens: required when admin.host (0.0.0.0) is not loopback'],
    [{ pools, admin: { tokens: [{ id: 'a', sha256: 'abc', role: 'operator' }] } }, 'admin.tokens.0.sha256:'],
    [{ pools, listn: {} }, 'listn: unknown key'],
    // An empty override cookie once hung the request path (a search that never moved on).
    [{ pools, split: { override: { cookie: '' } } }, 'split.override.cookie: a cookie name'],
    [{ pools, split: { override: { header: 'x pool' } } }, 'split.override.header: a header name'],
    [{ pools, workers: 0 }, 'workers:'],
    [{ pools, fleet: { redis: 'http://x', name: 'a' } }, 'fleet.redis: a redis:// or rediss:// URL'],
    [{ pools, listen: { http: { port: 80 } } }, 'listen.http: a second listener needs listen.tls'],
    [{ pools, listen: { tls: { certificates: [] } } }, 'listen.tls.certificates: at least one certificate'],
    [{ pools, fleet: { redis: 'redis://x:6379', name: 'a b' } }, 'fleet.name: 1-64 letters'],
    [{ pools, fleet: { redis: 'redis://x:6379', name: 'a', leader: true } }, 'fleet.leader: unknown key'],
  ])('names the key: %j', (raw, expected) => {
    const p = problems(raw);
    expect(p.some((line) => line.startsWith(expected))).toBe(true);
  });

  it('reads YAML and JSON files, and reports unreadable ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cfg-'));
    writeFileSync(
      join(dir, 'a.yaml'),
      'pools:\n  blue: {endpoints: ["http://127.0.0.1:1"]}\n  green: {endpoints: ["http://127.0.0.1:2"]}\nrollout: {stepHold: 2s}\n',
    );
    writeFileSync(join(dir, 'a.json'), JSON.stringify({ pools, timeouts: { response: '250ms' } }));
    writeFileSync(join(dir, 'bad.yaml'), 'pools: [\n');
    expect(loadConfig(join(dir, 'a.yaml')).rollout.stepHold).toBe(2000);
    expect(loadConfig(join(dir, 'a.json')).timeouts.response).toBe(250);
    expect(() => loadConfig(join(dir, 'bad.yaml'))).toThrow(/not valid YAML/);
    expect(() => loadConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read/);
  });
});

describe('durations', () => {
  it.each([
    [250, 250],
    ['250ms', 250],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['2 s', 2000],
    ['2', undefined],
    ['-1s', undefined],
    [-5, undefined],
    ['1d', undefined],
    [null, undefined],
  ])('%j → %j', (v, ms) => {
    expect(parseDuration(v)).toBe(ms);
  });
});
