#!/usr/bin/env node
/**
 * A container health check: read the config the way `sluice` does (the file, then the
 * environment's overrides) and GET /healthz on the admin port it names, so the check follows a
 * mounted config or SLUICE_ADMIN_PORT instead of assuming 9901. Exit 0 healthy, 1 otherwise.
 *
 *   node dist/healthcheck.js [--config <file>]     (default $SLUICE_CONFIG, else config/sluice.yaml)
 */
import { loadConfig } from './core/config.js';
import { ConfigError } from './core/errors.js';

/** Where a client inside the same network namespace reaches a listener bound to `host`. */
function localUrl(host: string, port: number): string {
  if (host === '0.0.0.0' || host === '') return `http://127.0.0.1:${port}`;
  if (host === '::' || host === '[::]') return `http://[::1]:${port}`;
  return host.includes(':') && !host.startsWith('[') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}

async function main(argv: readonly string[]): Promise<number> {
  const i = argv.indexOf('--config');
  const file = i >= 0 ? argv[i + 1] : (process.env.SLUICE_CONFIG ?? 'config/sluice.yaml');
  if (file === undefined) {
    process.stderr.write('healthcheck: --config needs a file\n');
    return 1;
  }
  let url: string;
  try {
    const c = loadConfig(file);
    url = `${localUrl(c.admin.host, c.admin.port)}/healthz`;
  } catch (err) {
    const lines = err instanceof ConfigError ? err.problems : [(err as Error).message];
    for (const l of lines) process.stderr.write(`healthcheck: ${l}\n`);
    return 1;
  }
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (r.ok) return 0;
    process.stderr.write(`healthcheck: ${url} answered ${r.status}\n`);
  } catch (err) {
    process.stderr.write(`healthcheck: ${url}: ${(err as Error).message}\n`);
  }
  return 1;
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
