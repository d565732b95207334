/** The CLI's help covers what the CLI parses: every client command and every flag that takes a value. */
import { describe, expect, it } from 'vitest';
import { CLIENT_COMMANDS } from '../../src/client.js';
import { COMMAND_HELP, commandHelp, USAGE, VALUED_FLAGS } from '../../src/help.js';

describe('sluice --help', () => {
  it('has an entry for every client command, naming it', () => {
    for (const c of CLIENT_COMMANDS) expect(COMMAND_HELP[c], c).toContain(`sluice ${c}`);
  });

  it('names every flag that takes a value', () => {
    for (const f of VALUED_FLAGS) expect(USAGE, f).toContain(f);
  });

  it('one command: its entry, the client options, the exit codes; none for an unknown one', () => {
    const h = commandHelp('shadow') as string;
    expect(h).toContain('sluice shadow start [--percent 10] [--duration 5m] [--then-rollout]');
    expect(h).toContain('--admin-url');
    expect(h).toContain('exit codes');
    expect(commandHelp('new-token')).not.toContain('--admin-url');
    expect(commandHelp('explode')).toBeUndefined();
  });
});
