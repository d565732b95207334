/** docs/config.md is the reference the schema generates (it cannot drift); the README starts with the two commands. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withReference } from '../../src/core/config-doc.js';

describe('README', () => {
  it('docs/config.md holds the configuration reference generated from the schema (npm run docs:config to refresh)', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'config.md'), 'utf8');
    expect(readme).toBe(withReference(readme));
    // Every top-level key of the schema appears.
    for (const key of [
      'listen.port',
      'admin.tokens',
      'split.key',
      'rollout.analysis.maxErrorRate',
      'healthCheck.path',
      'timeouts.clientHeaders',
      'limits.maxHeaderCount',
      'stateFile',
      'audit.file',
      'webhooks',
      'log.access',
      'shutdownGrace',
    ]) {
      expect(readme).toContain(`| \`${key}\` |`);
    }
  });

  it('starts with the two fresh-machine commands', () => {
    const head = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8')
      .split('\n')
      .slice(0, 15)
      .join('\n');
    expect(head).toContain('npm ci && npm run demo');
    expect(head).toContain('npm ci && npm test');
  });
});
