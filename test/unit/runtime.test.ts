/** Which runtime lines sluice warns about, and which features each line gets. */
import { describe, expect, it } from 'vitest';
import { parseNodeVersion, runtimeNotice, supportsReusePort } from '../../src/core/runtime.js';

const at = (iso: string) => Date.parse(iso);

describe('runtimeNotice', () => {
  it.each([
    // [version, date, level or undefined, text the message holds]
    ['v20.20.2', '2026-12-01T00:00:00Z', 'warn', 'reached end of life on 2026-04-30'],
    ['v20.18.0', '2026-04-30T00:00:00Z', 'warn', 'no longer gets security fixes'],
    ['v20.18.0', '2026-04-29T23:59:59Z', 'info', 'supported but not tested'],
    ['v22.12.0', '2026-12-01T00:00:00Z', 'info', 'supported but not tested'],
    ['v22.12.0', '2027-04-30T00:00:00Z', 'warn', 'reached end of life on 2027-04-30'],
    ['v24.22.3', '2026-12-01T00:00:00Z', undefined, ''],
    ['v26.12.1', '2026-12-01T00:00:00Z', undefined, ''],
    ['v24.0.0', '2028-05-01T00:00:00Z', 'warn', 'end of life on 2028-04-30'],
    ['v16.20.0', '2026-12-01T00:00:00Z', 'warn', 'not a supported release line'],
    ['v27.0.0', '2026-12-01T00:00:00Z', 'info', 'supported but not tested'],
  ])('%s on %s: %s', (version, date, level, text) => {
    const n = runtimeNotice(version, at(date));
    expect(n?.level).toBe(level);
    if (n !== undefined) {
      expect(n.message).toContain(text);
      expect(n.message).toContain(version);
      expect(n.message).toContain('24 or 26');
    }
  });
});

describe('supportsReusePort', () => {
  it.each([
    ['v20.20.2', 'linux', false],
    ['v22.11.0', 'linux', false],
    ['v22.12.0', 'linux', true],
    ['v23.0.0', 'linux', false],
    ['v23.1.0', 'linux', true],
    ['v24.0.0', 'linux', true],
    ['v26.12.1', 'linux', true],
    ['v26.12.1', 'darwin', false],
    ['v24.0.0', 'win32', false],
  ])('%s on %s: %s', (version, platform, expected) => {
    expect(supportsReusePort(version, platform)).toBe(expected);
  });
});

describe('parseNodeVersion', () => {
  it('reads v-prefixed and bare versions and refuses anything else', () => {
    expect(parseNodeVersion('v24.22.3')).toEqual({ major: 24, minor: 22, patch: 3 });
    expect(parseNodeVersion('26.1.0')).toEqual({ major: 26, minor: 1, patch: 0 });
    expect(() => parseNodeVersion('latest')).toThrow(/not a Node.js version/);
  });
});
