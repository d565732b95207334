/** Run the built CLI (dist/cli.js) as a real process. `npm test` builds first. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');

export function runCli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface RunningSluice {
  proc: ChildProcess;
  proxyPort: number;
  adminPort: number;
  output: () => string;
  exited: Promise<number | null>;
}

export function writeConfig(dir: string, config: unknown): string {
  const file = join(dir, 'sluice.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/** Start `sluice --config file` (with `env` added) and wait for its "sluice listening" log line. */
export function startProcess(configFile: string, env: Record<string, string> = {}): Promise<RunningSluice> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, '--config', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let out = '';
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    const onData = (d: Buffer) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"sluice listening"')) continue;
        const j = JSON.parse(line) as { proxy: string; admin: string };
        // Found: later output is only kept (re-reading it all per chunk grows with the log).
        proc.stdout.off('data', onData);
        proc.stdout.on('data', (more: Buffer) => (out += more.toString()));
        resolve({
          proc,
          proxyPort: Number(j.proxy.split(':').pop()),
          adminPort: Number(j.admin.split(':').pop()),
          output: () => out,
          exited,
        });
        return;
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    void exited.then((code) => reject(new Error(`sluice exited ${code} before listening:\n${out}`)));
    setTimeout(() => reject(new Error(`sluice did not start:\n${out}`)), 15_000).unref();
  });
}

/**
 * SIGKILL every process of `list` still running and wait for each to exit (afterEach). One that
 * exited by itself with a failure has its output's end printed: the why of a failed test.
 */
export async function killAll(list: readonly RunningSluice[]): Promise<void> {
  await Promise.all(
    list.map(async (r) => {
      if (r.proc.exitCode !== null && r.proc.exitCode !== 0)
        console.error(
          `sluice (pid ${r.proc.pid}) exited ${r.proc.exitCode} during the test:\n${r.output().slice(-4000)}`,
        );
      if (r.proc.exitCode !== null || r.proc.signalCode !== null) return;
      r.proc.kill('SIGKILL');
      await r.exited;
    }),
  );
}
