/**
 * deploy/sluice.service against the code: it parses as a unit file, starts sluice with
 * package.json's node flags, reloads with SIGHUP, stops with SIGTERM after more than
 * shutdownGrace, runs unprivileged with its state directory the only writable path, and passes
 * `systemd-analyze verify` and `security` when systemd-analyze is installed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { durationMs, installed, loadText, read, SLUICE_VARIABLES } from '../helpers/deploy.js';

const text = read('deploy', 'sluice.service');

/** A unit file: sections of `Key=value` lines, a key may repeat (Environment=). */
function parseUnit(src: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const [i, raw] of src.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[([A-Za-z]+)\]$/.exec(line);
    if (s !== null) {
      current = new Map();
      sections.set(s[1] as string, current);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (kv === null || current === undefined) throw new Error(`line ${i + 1} is not Key=value in a section: ${raw}`);
    const [, k, v] = kv as unknown as [string, string, string];
    current.set(k, [...(current.get(k) ?? []), v]);
  }
  return sections;
}

const unit = parseUnit(text);
const service = unit.get('Service') as Map<string, string[]>;
const one = (k: string) => {
  const v = service.get(k);
  expect(v, k).toHaveLength(1);
  return (v as string[])[0] as string;
};
const pkg = JSON.parse(read('package.json')) as { config: { nodeFlags: string } };
const environment = Object.fromEntries(
  (service.get('Environment') ?? []).map((e) => e.split(/=(.*)/s, 2) as [string, string]),
);

describe('deploy/sluice.service', () => {
  it('has Unit, Service and Install sections', () => {
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it("starts the CLI with package.json's node flags on $SLUICE_CONFIG", () => {
    const [node, ...rest] = one('ExecStart').split(/\s+/);
    expect(isAbsolute(node as string)).toBe(true);
    const flags = pkg.config.nodeFlags.split(' ');
    expect(rest.slice(0, flags.length)).toEqual(flags);
    const [script, ...args] = rest.slice(flags.length);
    expect(posix.basename(script as string)).toBe('cli.js');
    expect(script).toMatch(/\/dist\/cli\.js$/);
    expect(args).toEqual(['--config', environment.SLUICE_CONFIG]);
    for (const name of Object.keys(environment).filter((n) => n.startsWith('SLUICE_')))
      expect(SLUICE_VARIABLES.has(name), name).toBe(true);
  });

  it('reloads with SIGHUP and stops with SIGTERM, waiting longer than shutdownGrace', () => {
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    // The config the install steps copy to /etc/sluice/sluice.yaml.
    const c = loadText(read('config', 'sluice.yaml'), {});
    expect(durationMs(one('TimeoutStopSec'))).toBeGreaterThan(c.shutdownGrace + 1000);
  });

  it('runs as a system user with a hardened sandbox, writing only its state directory', () => {
    expect(one('User')).not.toMatch(/^(root|0)$/);
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    const state = `/var/lib/${one('StateDirectory')}`;
    expect(one('ReadWritePaths')).toBe(state);
    expect(one('WorkingDirectory')).toBe(state);
    for (const k of ['ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'RestrictSUIDSGID'])
      expect(one(k), k).toBe('yes');
    // V8's JIT needs W+X pages: this option would crash node at start.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    // Relative state and audit paths of the config land in the writable state directory.
    const c = loadText(read('config', 'sluice.yaml'), {});
    for (const f of [c.stateFile, c.audit.file as string])
      expect(posix.resolve(state, f).startsWith(`${state}/`), f).toBe(true);
  });

  it.skipIf(!installed('systemd-analyze'))(
    'passes systemd-analyze verify and security (skipped without systemd-analyze)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-unit-'));
      const file = join(dir, 'sluice.service');
      // verify checks that ExecStart's program exists: use this test's node.
      const [node] = one('ExecStart').split(/\s+/);
      writeFileSync(file, text.replace(node as string, process.execPath));
      const verify = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
      expect(verify.status, verify.stderr).toBe(0);
      expect(verify.stderr).toBe('');
      // The threshold is on systemd's internal 0-100 scale: 25 is an exposure of 2.5 ("OK" up to 3.9).
      const security = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=25', file], {
        encoding: 'utf8',
      });
      expect(security.status, security.stdout).toBe(0);
    },
  );
});
