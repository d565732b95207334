/** Start sluice in-process on listen(0) ports with a temp state dir and a silent logger. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseConfig, type ConfigInput } from '../../src/core/config.js';
import { startSluice, type Sluice, type SluiceOptions } from '../../src/main.js';

export interface TestSluice extends Sluice {
  base: string;
  admin: string;
  dir: string;
}

export function testConfig(
  blue: string | string[],
  green: string | string[],
  extra: Partial<ConfigInput> = {},
  dir = mkdtempSync(join(tmpdir(), 'sluice-test-')),
) {
  return parseConfig({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    pools: { blue: { endpoints: [blue].flat() }, green: { endpoints: [green].flat() } },
    stateFile: join(dir, 'state.json'),
    audit: { file: join(dir, 'audit.jsonl') },
    log: { level: 'silent', access: false },
    shutdownGrace: '2s',
    ...extra,
  });
}

export async function startTestSluice(
  blue: string | string[],
  green: string | string[],
  extra: Partial<ConfigInput> = {},
  opts: SluiceOptions & { dir?: string } = {},
): Promise<TestSluice> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'sluice-test-'));
  const config = testConfig(blue, green, extra, dir);
  const s = await startSluice(config, { logger: pino({ level: 'silent' }), ...opts });
  return Object.assign(s, { base: `http://127.0.0.1:${s.proxyPort}`, admin: `http://127.0.0.1:${s.adminPort}`, dir });
}
