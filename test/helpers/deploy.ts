/**
 * For the tests of deploy/ (Compose, Kubernetes, systemd) and the Dockerfile: read the files,
 * load a config the way the process does, and ask a real sluice's admin listener for the paths
 * the files use.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { parse, parseAllDocuments } from 'yaml';
import { sha256Hex } from '../../src/admin/auth.js';
import { type Config, type ConfigInput, loadConfig } from '../../src/core/config.js';
import { ENV_OVERRIDES } from '../../src/core/env.js';
import { startTestSluice } from './sluice.js';

export const root = join(import.meta.dirname, '..', '..');
export const read = (...path: string[]) => readFileSync(join(root, ...path), 'utf8');
/** YAML with `<<:` merge keys (Compose's x- anchors). */
export const readYaml = (...path: string[]): any => parse(read(...path), { merge: true });
export const readYamlDocs = (...path: string[]): any[] =>
  parseAllDocuments(read(...path)).map((d) => d.toJS({ maxAliasCount: 100 }));

/** Whether a command is installed (it runs with --version or the given args). */
export const installed = (cmd: string, args = ['--version']) => spawnSync(cmd, args).status === 0;

/** Tokens in the SLUICE_ADMIN_TOKENS form, for variables a secret would fill. */
export const SAMPLE_TOKENS = `ops:operator:${sha256Hex('sample-token')}`;

/** The variables sluice itself reads: the overrides, and the config's path. */
export const SLUICE_VARIABLES = new Set([...ENV_OVERRIDES.map((o) => o.name), 'SLUICE_CONFIG']);

/** A config text loaded as the process would, under `env`. Throws ConfigError. */
export function loadText(text: string, env: Record<string, string>): Config {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-deploy-')), 'sluice.yaml');
  writeFileSync(file, text);
  return loadConfig(file, env);
}

/** Compose's `${X:-default}` / `${X-default}` / `${X}` with X unset (what the file means by default). */
export const interpolateDefaults = (s: string) =>
  s.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}/g, (_m, d: string | undefined) => d ?? '');

/** Durations as systemd and Compose write them (`15s`, `1m`, `500ms`, a number of seconds), in ms. */
export function durationMs(v: string | number): number {
  if (typeof v === 'number') return v * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|min)?$/.exec(v.trim());
  if (m === null) throw new Error(`not a duration: ${v}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' || m[2] === 'min' ? n * 60_000 : n * 1000;
}

/**
 * GET each path on a real sluice's admin listener (dead upstreams, listen(0) ports), sending
 * `host` as the Host header with `admin` settings from the file under test; returns the statuses.
 */
export async function adminStatuses(
  paths: readonly string[],
  opts: { host?: string; admin?: Partial<NonNullable<ConfigInput['admin']>> } = {},
): Promise<Record<string, number>> {
  const s = await startTestSluice('http://127.0.0.1:1', 'http://127.0.0.1:2', {
    admin: { ...opts.admin, host: '127.0.0.1', port: 0 },
  });
  try {
    const out: Record<string, number> = {};
    for (const p of paths) {
      const r = await request(`${s.admin}${p}`, opts.host === undefined ? {} : { headers: { host: opts.host } });
      await r.body.dump();
      out[p] = r.statusCode;
    }
    return out;
  } finally {
    await s.stop();
  }
}
