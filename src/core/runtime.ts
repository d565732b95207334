/**
 * The Node.js runtime sluice runs on: which release line it is, whether that line still gets
 * security fixes, and which optional features it has. Pure functions of a version string, a
 * platform and a date, so tests cover every line without installing it; `currentRuntime()` reads
 * this process's.
 *
 * sluice is built and tested for 24 and 26 LTS; 20 (end of life since 2026-04-30) still starts
 * with a warning, because machines still ship it as their default `node`.
 */

/** End-of-life dates of the release lines (nodejs.org release schedule), as UTC midnights. */
const END_OF_LIFE: Readonly<Record<number, string>> = {
  18: '2025-04-30',
  20: '2026-04-30',
  21: '2024-06-01',
  22: '2027-04-30',
  23: '2025-06-01',
  24: '2028-04-30',
  25: '2026-06-01',
  26: '2029-04-30',
};

/** The lines sluice is built for and tested on. */
export const TESTED_LINES: readonly number[] = [24, 26];

export interface RuntimeVersion {
  major: number;
  minor: number;
  patch: number;
}

/** `v24.1.0` or `24.1.0` → its numbers; throws on anything else. */
export function parseNodeVersion(v: string): RuntimeVersion {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v);
  if (m === null) throw new Error(`not a Node.js version: ${JSON.stringify(v)}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

/**
 * What to say at start about the runtime: a warning when its line is past end of life (or
 * unknown and older than the tested lines), a note when it is supported but not a tested line,
 * nothing on a tested line.
 */
export function runtimeNotice(version: string, now: number): { level: 'warn' | 'info'; message: string } | undefined {
  const v = parseNodeVersion(version);
  const eol = END_OF_LIFE[v.major];
  const tested = TESTED_LINES.join(' or ');
  if (eol !== undefined && now >= Date.parse(`${eol}T00:00:00Z`)) {
    return {
      level: 'warn',
      message: `Node.js ${version} reached end of life on ${eol} and no longer gets security fixes: run sluice on Node.js ${tested}`,
    };
  }
  if (eol === undefined && v.major < (TESTED_LINES[0] as number)) {
    return {
      level: 'warn',
      message: `Node.js ${version} is not a supported release line: run sluice on Node.js ${tested}`,
    };
  }
  if (!TESTED_LINES.includes(v.major)) {
    return { level: 'info', message: `Node.js ${version} is supported but not tested: sluice is tested on ${tested}` };
  }
  return undefined;
}

/**
 * Whether `listen({ reusePort: true })` works: SO_REUSEPORT lets several processes or threads
 * bind one port and the kernel spreads connections over them. Node 22.12 and 23.1 added it; it
 * fails where the platform lacks SO_REUSEPORT (nodejs/node#61018), so Linux only here.
 */
export function supportsReusePort(version: string, platform: string): boolean {
  const v = parseNodeVersion(version);
  if (platform !== 'linux') return false;
  return v.major >= 24 || (v.major === 23 ? v.minor >= 1 : v.major === 22 && v.minor >= 12);
}

/** This process's runtime and the feature choices sluice makes from it, for the start log. */
export function currentRuntime(): { node: string; reusePort: boolean } {
  return { node: process.version, reusePort: supportsReusePort(process.version, process.platform) };
}
