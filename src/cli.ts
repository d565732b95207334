#!/usr/bin/env node
/**
 * The sluice command: run the proxy, check a config, make or hash a token, or talk to a running
 * sluice's admin API. Exit codes: 0 success, 1 invalid config or failed command, 2 usage.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from './core/errors.js';
import { loadConfig, type Config } from './core/config.js';
import { sha256Hex } from './admin/auth.js';
import { runClient, CLIENT_COMMANDS } from './client.js';

const USAGE = `usage:
  sluice [--config <file>] [--workers auto|N]
                                      run the proxy (default $SLUICE_CONFIG, else config/sluice.yaml);
                                      --workers overrides the config's workers
  sluice --check [--config <file>]    validate the config and exit (0 valid, 1 invalid)
  sluice --version
  sluice hash-token <token>           print the SHA-256 hex to put in admin.tokens
  sluice new-token [--id ID] [--role viewer|operator] [--json]
                                      print a random 256-bit token, its SHA-256 and the
                                      admin.tokens line to paste (default role viewer)
  sluice status [--json]              show a running sluice's state
  sluice weights green=30             set weights (or blue=70, or both)
  sluice rollout start [--steps 10,50,100] [--step-hold 1m] [--dry-run]
  sluice rollout pause|resume|promote|abort
  sluice history
  sluice log [level=<level>] [access=on|off]
                                      show or change logging until the next restart
  sluice maintenance [on|off] [--message M] [--retry-after 10m] [--allow-from CIDR,CIDR]
                                      503 + Retry-After for proxied requests (except --allow-from)
  sluice faults set --pool green [--abort-percent 20] [--abort-status 503]
                    [--delay-percent 10 --delay-ms 300]
                                      rehearsals (needs faults.enabled: true): abort or delay a
                                      share of one pool's requests, judged as real failures
  sluice faults [clear]               show fault injection, or end it
  sluice reload                       re-read the config file (as SIGHUP does)
client options: --admin-url <url> ($SLUICE_ADMIN_URL, default http://127.0.0.1:9901)
                --token <token> ($SLUICE_ADMIN_TOKEN)`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

interface Args {
  positional: string[];
  flags: Map<string, string | true>;
}

function parseArgs(argv: readonly string[]): Args {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  const valued = new Set([
    '--config',
    '--admin-url',
    '--token',
    '--steps',
    '--message',
    '--retry-after',
    '--allow-from',
    '--step-hold',
    '--id',
    '--role',
    '--workers',
    '--pool',
    '--abort-percent',
    '--abort-status',
    '--delay-percent',
    '--delay-ms',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(0, eq), a.slice(eq + 1));
      else if (valued.has(a)) {
        const v = argv[++i];
        if (v === undefined) throw new UsageError(`${a} needs a value`);
        flags.set(a, v);
      } else flags.set(a, true);
    } else positional.push(a);
  }
  return { positional, flags };
}

class UsageError extends Error {}

function configPath(args: Args): string {
  const f = args.flags.get('--config');
  if (typeof f === 'string') return f;
  return process.env.SLUICE_CONFIG ?? 'config/sluice.yaml';
}

function readConfigOrExit(file: string): Config {
  try {
    return loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`${p}\n`);
      process.stderr.write(
        `${file}: invalid config (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'})\n`,
      );
      process.exit(1);
    }
    throw err;
  }
}

async function run(config: Config, file: string, readConfig: () => Config): Promise<void> {
  // SIGUSR1 reopens the audit file for logrotate. Without a listener Node would start its
  // inspector on SIGUSR1, so the listener goes in before anything else; early signals are ignored.
  // SIGHUP reloads the config (nginx's reload); without a listener it would end the process.
  let reopen: (() => Promise<void>) | undefined;
  let reload: (() => Promise<unknown>) | undefined;
  process.on('SIGUSR1', () => {
    reopen?.().catch((err: unknown) => process.stderr.write(`sluice: reopen failed: ${(err as Error).message}\n`));
  });
  process.on('SIGHUP', () => {
    reload?.().catch((err: unknown) => process.stderr.write(`sluice: reload failed: ${(err as Error).message}\n`));
  });
  const { startSluice } = await import('./main.js');
  let sluice: Awaited<ReturnType<typeof startSluice>>;
  try {
    sluice = await startSluice(config, { configFile: file, readConfig });
  } catch (err) {
    process.stderr.write(`sluice: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  reopen = () => sluice.reopenLogs();
  reload = () => sluice.reload('SIGHUP');
  let signals = 0;
  const onSignal = (sig: string) => {
    if (++signals > 1) {
      process.stderr.write(`sluice: second ${sig}, exiting now\n`);
      process.exit(1);
    }
    sluice.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`sluice: shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/** `sluice new-token`: a random token to hand out and the config line that admits it. */
function newToken(args: Args): number {
  const role = args.flags.get('--role') ?? 'viewer';
  const id = args.flags.get('--id') ?? role;
  // The id lands in YAML unquoted: keep it to characters that cannot change the line's meaning.
  if (typeof id !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(id))
    throw new UsageError('--id needs 1-64 letters, digits, dots, dashes or underscores');
  if (role !== 'viewer' && role !== 'operator') throw new UsageError('--role needs viewer or operator');
  const token = randomBytes(32).toString('base64url');
  const sha256 = sha256Hex(token);
  const line = `- { id: ${id}, sha256: "${sha256}", role: ${role} }`;
  if (args.flags.has('--json')) {
    process.stdout.write(`${JSON.stringify({ id, role, token, sha256, yaml: line })}\n`);
    return 0;
  }
  process.stdout.write(
    `token:  ${token}\nsha256: ${sha256}\n\n` +
      `Paste under admin.tokens in the config (only the hash goes there):\n\n  ${line}\n\n` +
      'Give the token to its user (--token or $SLUICE_ADMIN_TOKEN); it is shown only this once.\n',
  );
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.flags.has('--help') || args.positional[0] === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.flags.has('--version')) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const cmd = args.positional[0];
  if (cmd === 'hash-token') {
    const token = args.positional[1];
    if (token === undefined || token === '') throw new UsageError('hash-token needs a token');
    process.stdout.write(`${sha256Hex(token)}\n`);
    return 0;
  }
  if (cmd === 'new-token') return newToken(args);
  if (cmd !== undefined && CLIENT_COMMANDS.has(cmd)) {
    return runClient(args.positional, args.flags);
  }
  if (cmd !== undefined) throw new UsageError(`unknown command ${cmd}`);
  const file = configPath(args);
  const w = args.flags.get('--workers');
  let workers: Config['workers'] | undefined;
  if (w !== undefined) {
    if (w === 'auto') workers = 'auto';
    else if (typeof w === 'string' && /^[1-9][0-9]{0,2}$/.test(w) && Number(w) <= 256) workers = Number(w);
    else throw new UsageError(`--workers must be auto or a number from 1 to 256, not ${String(w)}`);
  }
  // The file with the command line's overrides: at start, and again on each reload.
  const withFlags = (c: Config): Config => (workers === undefined ? c : { ...c, workers });
  const config = withFlags(readConfigOrExit(file));
  if (args.flags.has('--check')) {
    // The certificate files too: a config that names a missing or mismatched one is not valid.
    if (config.listen.tls !== null) {
      const { loadTls, TlsError } = await import('./core/tls.js');
      try {
        loadTls(config.listen.tls);
      } catch (err) {
        if (!(err instanceof TlsError)) throw err;
        process.stderr.write(`${err.message}\n${file}: invalid config (1 problem)\n`);
        return 1;
      }
    }
    process.stdout.write(`${file}: ok\n`);
    return 0;
  }
  await run(config, file, () => withFlags(loadConfig(file)));
  return -1; // keep running
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
