/**
 * The command line's help: one entry per command with every flag it takes, printed whole by
 * `sluice --help` and one at a time by `sluice <command> --help`. A test checks that every
 * command and flag the CLI parses is here.
 */
export const COMMAND_HELP: Readonly<Record<string, string>> = {
  run: `  sluice [--config <file>] [--workers auto|N]
                                      run the proxy (default $SLUICE_CONFIG, else config/sluice.yaml);
                                      --workers overrides the config's workers`,
  '--check': `  sluice --check [--config <file>]    validate the config and exit (0 valid, 1 invalid)`,
  '--version': `  sluice --version`,
  'hash-token': `  sluice hash-token <token>           print the SHA-256 hex to put in admin.tokens`,
  'new-token': `  sluice new-token [--id ID] [--role viewer|operator] [--json]
                                      print a random 256-bit token, its SHA-256 and the
                                      admin.tokens line to paste (default role viewer)`,
  status: `  sluice status [--json] [--watch]    a running sluice's state: the split, the step and its time
                                      left, the verdict and its reason; --watch refreshes it in
                                      place every second until Ctrl-C`,
  weights: `  sluice weights green=30             set weights (or blue=70, or both)`,
  rollout: `  sluice rollout start [--steps 10,50,100] [--step-hold 1m] [--dry-run]
  sluice rollout pause|resume|promote|abort [--reason TEXT]`,
  history: `  sluice history [--json]             the rollout's history, newest first`,
  log: `  sluice log [level=<level>] [access=on|off]
                                      show or change logging until the next restart`,
  maintenance: `  sluice maintenance [on|off] [--message M] [--retry-after 10m] [--allow-from CIDR,CIDR]
                                      503 + Retry-After for proxied requests (except --allow-from)`,
  faults: `  sluice faults set --pool green [--abort-percent 20] [--abort-status 503]
                    [--delay-percent 10 --delay-ms 300]
                                      rehearsals (needs faults.enabled: true): abort or delay a
                                      share of one pool's requests, judged as real failures
  sluice faults [clear]               show fault injection, or end it`,
  reload: `  sluice reload                       re-read the config file (as SIGHUP does)`,
  shadow: `  sluice shadow start [--percent 10] [--duration 5m] [--then-rollout]
                                      mirror a share of stable's requests to the canary and
                                      judge its answers (clients only get stable's)
  sluice shadow stop`,
};

/** Flags that take a value (`--steps 10,50` or `--steps=10,50`); the rest are switches. */
export const VALUED_FLAGS: ReadonlySet<string> = new Set([
  '--config',
  '--admin-url',
  '--token',
  '--steps',
  '--message',
  '--retry-after',
  '--allow-from',
  '--step-hold',
  '--percent',
  '--duration',
  '--reason',
  '--id',
  '--role',
  '--workers',
  '--pool',
  '--abort-percent',
  '--abort-status',
  '--delay-percent',
  '--delay-ms',
]);

export const CLIENT_OPTIONS = `client options: --admin-url <url> ($SLUICE_ADMIN_URL, default http://127.0.0.1:9901)
                --token <token> ($SLUICE_ADMIN_TOKEN)`;

export const EXIT_CODES = `exit codes: 0 ok, 1 failed (unreachable, invalid config, 400, 5xx), 2 usage,
            3 conflict (409: the phase or the version does not allow it), 4 auth (401, 403, 429)`;

export const USAGE = `usage:\n${Object.values(COMMAND_HELP).join('\n')}\n${CLIENT_OPTIONS}\n${EXIT_CODES}`;

/** Help for one command (`sluice status --help`), or undefined when it has none. */
export function commandHelp(cmd: string): string | undefined {
  const h = COMMAND_HELP[cmd];
  if (h === undefined) return undefined;
  const client = !['run', '--check', '--version', 'hash-token', 'new-token'].includes(cmd);
  return `usage:\n${h}${client ? `\n${CLIENT_OPTIONS}` : ''}\n${EXIT_CODES}`;
}
