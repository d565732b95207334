/** `npm run demo` in its shortened mode runs the whole story to completion. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('demo', () => {
  it('promotes a healthy release, then rolls back a bad one by itself, and exits 0', () => {
    const demo = join(import.meta.dirname, '..', '..', 'dist', 'demo', 'demo.js');
    const r = spawnSync(process.execPath, [demo, '--fast', '--port', '0', '--admin-port', '0'], {
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/live page {2}http:\/\/127\.0\.0\.1:\d+\//);
    expect(out).toContain('ACT 1');
    expect(out).toMatch(/step +blue 75% \/ green 25%/);
    expect(out).toMatch(/promoted +blue 0% \/ green 100%/);
    expect(out).toContain('v2 promoted: green is now stable; 0 failed responses so far');
    expect(out).toContain('ACT 2');
    expect(out).toMatch(/rolled back +blue 0% \/ green 100% +blue (error rate|failed \d+ of \d+ requests)/);
    expect(out).toMatch(/rolled back by itself \d+ ms after v3 started failing/);
    expect(out).toContain('demo stopped');
  }, 120_000);
});
