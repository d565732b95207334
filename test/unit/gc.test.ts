/** GC tuning: the launch flags are declared once, used by every launch, and take effect. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  config: { nodeFlags: string };
  scripts: Record<string, string>;
};
const flags = pkg.config.nodeFlags.split(' ');

describe('launch flags (package.json config.nodeFlags)', () => {
  it('are used by npm start, npm run demo and the Dockerfile entrypoint', () => {
    expect(flags.length).toBeGreaterThan(0);
    expect(pkg.scripts.start).toContain('node $npm_package_config_nodeFlags dist/cli.js');
    expect(pkg.scripts.demo).toContain('node $npm_package_config_nodeFlags dist/demo/demo.js');
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'));
    expect(entry).not.toBeNull();
    expect(JSON.parse(entry![1]!)).toEqual(['node', ...flags, 'dist/cli.js']);
  });

  it('give V8 a 32 MiB semi-space, which sluice reports (and 16 MiB or less without them)', () => {
    const probe = `import('${join(root, 'dist', 'core', 'gc.js')}').then((m) => console.log(m.semiSpaceMiB()))`;
    const withFlags = Number(execFileSync(process.execPath, [...flags, '-e', probe], { encoding: 'utf8' }).trim());
    const without = Number(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }).trim());
    expect(withFlags).toBe(32);
    expect(without).toBeLessThanOrEqual(16);
  });
});
