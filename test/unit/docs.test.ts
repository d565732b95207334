/**
 * The docs follow the code: in README.md and docs/*.md, every sluice command line, config key,
 * admin API path and metric shown exists, and every YAML block that is a sluice config parses
 * (test/helpers/docs.ts). The first block checks that each check can fail.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Controller } from '../../src/control/controller.js';
import type { EventHub } from '../../src/admin/events.js';
import { apiRoutes } from '../../src/admin/routes.js';
import {
  apiProblems,
  checkCommand,
  commandsIn,
  configKeysIn,
  docProblems,
  isConfigKey,
  type Known,
  yamlProblems,
} from '../helpers/docs.js';

const root = join(import.meta.dirname, '..', '..');
const files = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

// The routes are plain objects; nothing here is called.
const routes = apiRoutes({} as Controller, () => null, {} as EventHub, {
  get: () => ({ level: 'info', access: true }),
  set: () => {},
});
const metricsSource = readFileSync(join(root, 'src', 'metrics', 'metrics.ts'), 'utf8');
const known: Known = {
  routes: routes.map((r) => ({ method: r.method, path: r.path })),
  actions: new Set(routes.flatMap((r) => (r.action === undefined ? [] : [r.action]))),
  metrics: new Set([...metricsSource.matchAll(/'(sluice_[a-z0-9_]+)'/g)].map((m) => m[1] as string)),
};

describe('the doc checks themselves', () => {
  it('take the commands the CLI takes and name what it does not', () => {
    const words = (line: string) => commandsIn(line)[0] ?? [];
    for (const ok of [
      'sluice rollout start --steps 5,25,100 --step-hold 1m --dry-run',
      'sluice rollout abort --reason "INC-1: 5xx on checkout"',
      'node dist/cli.js --check --config my-sluice.yaml   # exit 1 if wrong',
      'node --max-semi-space-size=32 dist/cli.js --config my-sluice.yaml',
      'sluice status --watch --admin-url http://10.0.0.2:9901',
      'sluice shadow start --percent 10 --duration 5m --then-rollout',
      'sluice maintenance on --allow-from 10.0.0.0/8 --retry-after 10m',
      'sluice weights green=30 blue=70',
      'sluice log level=debug access=off',
      'sluice hash-token s3cret',
      'sluice faults set --pool green --abort-percent 20',
      'x=$(sluice status --json) && echo ok',
      'for u in a b; do sluice rollout abort --admin-url "$u" --reason "INC-1"; done',
    ])
      expect(checkCommand(words(ok)), ok).toBeUndefined();
    for (const [bad, why] of [
      ['sluice rollout start --dry-rn', 'unknown flag --dry-rn'],
      ['sluice rollout stat', 'no action stat'],
      ['sluice rollout start --reason x', 'unknown flag --reason'],
      ['sluice rollout start --dry-run true', 'unexpected argument true'],
      ['sluice stauts', 'unknown command stauts'],
      ['sluice status --watch --keep', 'unknown flag --keep'],
      ['node dist/cli.js --chek', 'unknown flag --chek'],
      ['sluice weights 30', 'unexpected argument 30'],
      ['sluice shadow start --then-rollout --steps 10', 'unknown flag --steps'],
    ] as const)
      expect(checkCommand(words(bad)), bad).toContain(why);
    expect(commandsIn('cp config/sluice.yaml my-sluice.yaml')).toEqual([]);
  });

  it('know the config keys, lists and wildcards included', () => {
    for (const k of [
      'rollout.analysis.maxErrorRate',
      'analysis.onSharedFailure',
      'admin.tokens[].sha256',
      'webhooks.format',
      'pools.*.endpoints',
      'listen.tls.certificates.0',
      'split.override.allowFrom',
    ])
      expect(isConfigKey(k), k).toBe(true);
    for (const k of ['rollout.analysis.maxErrRate', 'split.overide', 'pools.red.endpoints', 'log.acessFile'])
      expect(isConfigKey(k), k).toBe(false);
    expect(configKeysIn('log.accessFormat: combined')).toEqual(['log.accessFormat']);
    expect(configKeysIn('src/data/upstream.ts, status.rollout.reason, upstream.ts, stable.requests')).toEqual([]);
    expect(configKeysIn('rollout.paused, maintenance.changed')).toEqual([]);
  });

  it('know the API paths and their methods', () => {
    expect(
      apiProblems('`PUT /api/v1/pools/{blue\\|green}/endpoints` and `POST /api/v1/rollout/abort`', known.routes),
    ).toEqual([]);
    expect(apiProblems('`PUT /api/v1/pools/{pool}/endpoints`, GET /api/v1/series?since=0.', known.routes)).toEqual([]);
    expect(apiProblems('`GET /api/v1/rollout/start`', known.routes)).toEqual([
      'no GET /api/v1/rollout/start (it has POST)',
    ]);
    expect(apiProblems('/api/v1/rollout/stat', known.routes)).toEqual(['no route /api/v1/rollout/stat']);
    expect(apiProblems('PUT /api/v1/pools/red/endpoints', known.routes)).toEqual([
      'no route /api/v1/pools/red/endpoints',
    ]);
  });

  it('parse YAML that is a sluice config and leave other YAML alone', () => {
    expect(
      yamlProblems('pools:\n  green: { endpoints: ["http://10.0.0.7:3002"] }\nhealthCheck: { path: /healthz }'),
    ).toEqual([]);
    expect(yamlProblems('rollout:\n  analysis: { maxErrRate: 0.01 }')).toEqual([
      'rollout.analysis.maxErrRate: unknown key',
    ]);
    expect(yamlProblems('pools: {}\nlisten: { port: http }')).toEqual([
      'listen.port: Invalid input: expected number, received string',
    ]);
    expect(yamlProblems('apiVersion: v1\nkind: Service')).toEqual([]);
  });

  it('report the file, the line and the text', () => {
    const md = [
      '# x',
      '',
      '```sh',
      'sluice rollout start --fast',
      '```',
      'Set `rollout.stepHod`.',
      'See `PUT /api/v1/nope` and `sluice_nope_total`.',
    ].join('\n');
    expect(docProblems('docs/x.md', md, known)).toEqual([
      'docs/x.md:4: unknown flag --fast for rollout start: sluice rollout start --fast',
      'docs/x.md:6: no config key rollout.stepHod: `rollout.stepHod`',
      'docs/x.md:7: no route /api/v1/nope: See `PUT /api/v1/nope` and `sluice_nope_total`.',
      'docs/x.md:7: no metric sluice_nope_total: See `PUT /api/v1/nope` and `sluice_nope_total`.',
    ]);
  });
});

describe('the docs', () => {
  it.each(files)('%s shows only commands, flags, keys, paths and metrics that exist', (file) => {
    const problems = docProblems(file, readFileSync(join(root, file), 'utf8'), known);
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('the docs list in the README links every file in docs/', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const f of files.slice(1)) expect(readme, f).toContain(`](${f})`);
  });

  it('every relative link in the docs points at a file that exists, and an anchor at a heading', () => {
    // GitHub's anchors: the heading in lower case, punctuation dropped, spaces as dashes.
    const anchors = (md: string) =>
      new Set(
        [...md.matchAll(/^#+\s+(.+)$/gm)].map((m) =>
          (m[1] as string)
            .toLowerCase()
            .replace(/[^\p{L}\p{N} _-]/gu, '')
            .replace(/ /g, '-'),
        ),
      );
    // docs/operations.md comes with the deploy branch.
    const later = new Set(['docs/operations.md']);
    const problems: string[] = [];
    for (const file of files) {
      const md = readFileSync(join(root, file), 'utf8');
      const dir = file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '.';
      for (const m of md.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1] as string;
        if (/^[a-z]+:/.test(link)) continue;
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path === '' ? file : join(dir, path).replace(/^\.\//, '');
        if (later.has(target)) continue;
        if (!existsSync(join(root, target))) {
          problems.push(`${file}: ${link}: no such file`);
          continue;
        }
        if (
          anchor !== undefined &&
          target.endsWith('.md') &&
          !anchors(readFileSync(join(root, target), 'utf8')).has(anchor)
        )
          problems.push(`${file}: ${link}: no such heading in ${target}`);
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });
});
