/** Environment overrides (src/core/env.ts): laid over the file before validation, named when wrong. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/admin/auth.js';
import { loadConfig, type Config } from '../../src/core/config.js';
import { ENV_OVERRIDES } from '../../src/core/env.js';
import { ConfigError } from '../../src/core/errors.js';
import { configHash, reloadPlan } from '../../src/core/reload.js';

const pools = { blue: { endpoints: ['http://127.0.0.1:3001'] }, green: { endpoints: ['http://127.0.0.1:3002'] } };
const HASH = sha256Hex('t1');
const HASH2 = sha256Hex('t2');

function file(config: unknown): string {
  const f = join(mkdtempSync(join(tmpdir(), 'sluice-env-')), 'sluice.yaml');
  writeFileSync(f, typeof config === 'string' ? config : stringify(config));
  return f;
}

function problems(f: string, env: Record<string, string>): string[] {
  try {
    loadConfig(f, env);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

const get = (c: Config, key: string): unknown =>
  key.split('.').reduce<unknown>((at, k) => (at as Record<string, unknown>)[k], c);

describe('environment overrides', () => {
  const base = file({ listen: { port: 8080 }, admin: { port: 9901 }, pools });

  it.each<[string, string, unknown]>([
    ['SLUICE_LISTEN_PORT', '18080', 18080],
    ['SLUICE_ADMIN_HOST', '::1', '::1'],
    ['SLUICE_ADMIN_PORT', '19901', 19901],
    ['SLUICE_ADMIN_PORT', '0', 0],
    ['SLUICE_BLUE_ENDPOINTS', 'http://blue-1:3000, http://blue-2:3000', ['http://blue-1:3000', 'http://blue-2:3000']],
    ['SLUICE_GREEN_ENDPOINTS', 'http://green:3000,', ['http://green:3000']],
    [
      'SLUICE_ADMIN_TOKENS',
      `ops:operator:${HASH},ci:viewer:${HASH2}`,
      [
        { id: 'ops', role: 'operator', sha256: HASH },
        { id: 'ci', role: 'viewer', sha256: HASH2 },
      ],
    ],
  ])('%s=%s replaces the file value', (name, value, expected) => {
    const key = ENV_OVERRIDES.find((o) => o.name === name)?.key as string;
    const plain = loadConfig(base, {});
    expect(get(plain, key)).not.toEqual(expected);
    expect(get(loadConfig(base, { [name]: value }), key)).toEqual(expected);
  });

  it('an empty variable counts as unset (Compose passes an undefined ${X} as "")', () => {
    const env = Object.fromEntries(ENV_OVERRIDES.map((o) => [o.name, '']));
    expect(loadConfig(base, env)).toEqual(loadConfig(base, {}));
  });

  it('sets keys the file leaves out', () => {
    const f = file({ pools: { blue: pools.blue } });
    expect(problems(f, {})).toEqual(['pools.green: Invalid input: expected object, received undefined']);
    const c = loadConfig(f, { SLUICE_GREEN_ENDPOINTS: 'http://g:1', SLUICE_ADMIN_PORT: '1234' });
    expect(c.pools.green.endpoints).toEqual(['http://g:1']);
    expect(c.admin.port).toBe(1234);
  });

  it.each<[Record<string, string>, string[]]>([
    [{ SLUICE_ADMIN_PORT: 'abc' }, ['SLUICE_ADMIN_PORT (admin.port): expected a port, got "abc"']],
    [{ SLUICE_LISTEN_PORT: '70000' }, ['SLUICE_LISTEN_PORT (listen.port): expected a port, got "70000"']],
    [{ SLUICE_LISTEN_PORT: '-1' }, ['SLUICE_LISTEN_PORT (listen.port): expected a port, got "-1"']],
    [{ SLUICE_BLUE_ENDPOINTS: ' , ' }, ['SLUICE_BLUE_ENDPOINTS (pools.blue.endpoints): expected comma-separated URLs']],
    [
      { SLUICE_GREEN_ENDPOINTS: 'http://g:1,g:2' },
      ['SLUICE_GREEN_ENDPOINTS (pools.green.endpoints.1): Invalid url (expected http(s)://host:port with no path)'],
    ],
    [
      { SLUICE_ADMIN_TOKENS: `ops:${HASH}` },
      ['SLUICE_ADMIN_TOKENS (admin.tokens): entry 1 is not id:role:sha256 (sluice new-token prints the sha256)'],
    ],
    [
      { SLUICE_ADMIN_TOKENS: `ops:root:${HASH},ci:viewer:abc` },
      [
        'SLUICE_ADMIN_TOKENS (admin.tokens.0.role): Invalid option: expected one of "viewer"|"operator"',
        'SLUICE_ADMIN_TOKENS (admin.tokens.1.sha256): expected the 64-hex SHA-256 of the token (sluice hash-token <token>)',
      ],
    ],
    [
      { SLUICE_ADMIN_TOKENS: `ops:viewer:${HASH},ops:operator:${HASH2}` },
      ['SLUICE_ADMIN_TOKENS (admin.tokens.1.id): duplicate token id ops'],
    ],
    [
      { SLUICE_ADMIN_PORT: 'x', SLUICE_LISTEN_PORT: '', SLUICE_BLUE_ENDPOINTS: 'nope' },
      [
        'SLUICE_ADMIN_PORT (admin.port): expected a port, got "x"',
        'SLUICE_BLUE_ENDPOINTS (pools.blue.endpoints.0): Invalid url (expected http(s)://host:port with no path)',
      ],
    ],
  ])('%j is refused naming the variable and the key', (env, expected) => {
    expect(problems(base, env)).toEqual(expected);
  });

  it("a problem in the file's own keys still reads as the file's", () => {
    const f = file({ pools, admin: { port: 'abc' } });
    expect(problems(f, { SLUICE_LISTEN_PORT: '1' })).toEqual([
      'admin.port: Invalid input: expected number, received string',
    ]);
  });

  it('keeps the rule that a non-loopback admin host needs tokens, naming the variable', () => {
    expect(problems(base, { SLUICE_ADMIN_HOST: '0.0.0.0' })).toEqual([
      'admin.tokens: required when admin.host (0.0.0.0, set by SLUICE_ADMIN_HOST) is not loopback: ' +
        'add admin.tokens or set SLUICE_ADMIN_TOKENS=id:role:sha256,... (sluice new-token)',
    ]);
    const c = loadConfig(base, { SLUICE_ADMIN_HOST: '0.0.0.0', SLUICE_ADMIN_TOKENS: `ops:operator:${HASH}` });
    expect(c.admin).toMatchObject({ host: '0.0.0.0', tokens: [{ id: 'ops', role: 'operator', sha256: HASH }] });
    // Tokens from the file satisfy it too.
    const withTokens = file({ pools, admin: { tokens: [{ id: 'ops', role: 'viewer', sha256: HASH }] } });
    expect(loadConfig(withTokens, { SLUICE_ADMIN_HOST: '0.0.0.0' }).admin.host).toBe('0.0.0.0');
  });

  it('SLUICE_REDIS_URL fills fleet.redis only where the file has a fleet without one', () => {
    const url = 'redis://redis:6379/0';
    expect(loadConfig(file({ pools, fleet: { name: 'api' } }), { SLUICE_REDIS_URL: url }).fleet?.redis).toBe(url);
    expect(problems(file({ pools, fleet: { name: 'api' } }), {})).toEqual([
      'fleet.redis: required (or $SLUICE_REDIS_URL)',
    ]);
    const own = file({ pools, fleet: { name: 'api', redis: 'redis://own:6379' } });
    expect(loadConfig(own, { SLUICE_REDIS_URL: url }).fleet?.redis).toBe('redis://own:6379');
    expect(loadConfig(base, { SLUICE_REDIS_URL: url }).fleet).toBeNull();
    expect(problems(file({ pools, fleet: { name: 'api' } }), { SLUICE_REDIS_URL: 'http://redis' })).toEqual([
      'SLUICE_REDIS_URL (fleet.redis): a redis:// or rediss:// URL',
    ]);
  });

  it('changes the config hash, and a reload with the same environment keeps the overrides', () => {
    const env = { SLUICE_ADMIN_PORT: '19901', SLUICE_GREEN_ENDPOINTS: 'http://g:1' };
    const plain = loadConfig(base, {});
    const over = loadConfig(base, env);
    expect(configHash(over)).not.toBe(configHash(plain));
    expect(configHash(loadConfig(base, env))).toBe(configHash(over));
    // SIGHUP re-reads the file under the same environment: a file that now says another admin
    // port changes nothing, since the variable still decides it.
    const edited = file({ listen: { port: 8080 }, admin: { port: 9902 }, pools });
    expect(reloadPlan(over, loadConfig(edited, env))).toEqual({ changed: [], restart: [] });
    expect(reloadPlan(plain, loadConfig(edited, {})).restart).toEqual(['admin.port']);
  });

  it('leaves a file that is not a mapping to the schema', () => {
    expect(problems(file('just text\n'), { SLUICE_ADMIN_PORT: '1' })).toEqual([
      '(root): Invalid input: expected object, received string',
    ]);
  });
});
