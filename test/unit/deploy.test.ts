/**
 * The Dockerfile and deploy/docker-compose.yml against the code: the Compose file is valid by the
 * Compose Specification's schema (and by `docker-compose config` when installed), and every port,
 * path, file and variable it and the image use is one sluice has, read through the real config
 * loader and a real admin listener.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { isLoopbackHost, type Config } from '../../src/core/config.js';
import type { ConfigError } from '../../src/core/errors.js';
import {
  adminStatuses,
  durationMs,
  installed,
  interpolateDefaults,
  loadText,
  read,
  readYaml,
  root,
  SAMPLE_TOKENS,
  SLUICE_VARIABLES,
} from '../helpers/deploy.js';

const COMPOSE = join(root, 'deploy', 'docker-compose.yml');
const compose = readYaml('deploy', 'docker-compose.yml');
const dockerfile = read('Dockerfile');
const IMAGE_CONFIG = /SLUICE_CONFIG=(\S+)/.exec(dockerfile)?.[1] as string;

/** A service's `environment` as a map, with Compose's defaults for unset variables. */
function environment(service: { environment?: Record<string, string> | string[] }): Record<string, string> {
  const env = service.environment ?? {};
  const pairs = Array.isArray(env) ? env.map((e) => e.split(/=(.*)/s, 2) as [string, string]) : Object.entries(env);
  return Object.fromEntries(pairs.map(([k, v]) => [k, interpolateDefaults(String(v ?? ''))]));
}

/** `./x:/y:ro` → { source: deploy/x resolved, target: /y }. */
function mounts(service: { volumes?: string[] }) {
  return (service.volumes ?? []).map((v) => {
    const [source, target] = v.split(':') as [string, string];
    const file = source.startsWith('.') ? join(root, 'deploy', source) : undefined;
    return { source, target, file };
  });
}

const urlOf = (u: string) => new URL(u);

describe('Dockerfile', () => {
  it('ships config/container.yaml as $SLUICE_CONFIG, valid with tokens and refused without, naming them', () => {
    expect(dockerfile).toMatch(new RegExp(`^COPY config/container\\.yaml ${IMAGE_CONFIG}$`, 'm'));
    const text = read('config', 'container.yaml');
    const c = loadText(text, { SLUICE_ADMIN_TOKENS: SAMPLE_TOKENS });
    expect(isLoopbackHost(c.admin.host)).toBe(false);
    expect(isLoopbackHost(c.listen.host)).toBe(false);
    try {
      loadText(text, {});
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems.join('\n')).toMatch(/^admin\.tokens: required .*SLUICE_ADMIN_TOKENS/);
    }
  });

  it('exposes the ports the config listens on, keeps state on its volume, and stops within docker stop', () => {
    const c = loadText(read('config', 'container.yaml'), { SLUICE_ADMIN_TOKENS: SAMPLE_TOKENS });
    const exposed = (/^EXPOSE (.+)$/m.exec(dockerfile)?.[1] ?? '').split(/\s+/).map(Number);
    expect(exposed.sort()).toEqual([c.listen.port, c.admin.port].sort());
    const volumes = JSON.parse(/^VOLUME (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    expect(volumes).toContain(dirname(c.stateFile));
    expect(volumes).toContain(dirname(c.audit.file as string));
    expect(dockerfile).toMatch(new RegExp(`chown -R node:node ${dirname(c.stateFile)}`));
    // docker stop waits 10 s before SIGKILL; sluice needs shutdownGrace plus about a second.
    expect(c.shutdownGrace + 1000).toBeLessThanOrEqual(10_000);
  });

  it('health-checks with the program that reads the config in force', () => {
    const hc = /^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$/m.exec(dockerfile);
    expect(JSON.parse(hc?.[1] ?? '[]')).toEqual(['node', 'dist/healthcheck.js']);
    expect(existsSync(join(root, 'src', 'healthcheck.ts'))).toBe(true);
  });
});

describe('deploy/docker-compose.yml', () => {
  const sluice = compose.services.sluice;
  const env = environment(sluice);
  const configMount = mounts(sluice).find((m) => m.target === (env.SLUICE_CONFIG ?? IMAGE_CONFIG));
  const config = (): Config =>
    loadText(read(posix.relative(root, configMount?.file as string)), { ...env, SLUICE_ADMIN_TOKENS: SAMPLE_TOKENS });

  it('is valid by the Compose Specification schema', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = ajv.compile(JSON.parse(read('test', 'vendor', 'compose-spec.json')));
    expect(validate(compose), JSON.stringify(validate.errors, null, 1)).toBe(true);
    // The schema is in force: a service with a malformed port list is refused.
    expect(validate({ services: { x: { image: 'x', ports: { a: 1 } } } })).toBe(false);
  });

  it.skipIf(!installed('docker-compose', ['version']))(
    'passes docker-compose config (skipped without docker-compose)',
    () => {
      const r = spawnSync('docker-compose', ['-f', COMPOSE, 'config', '-q'], {
        encoding: 'utf8',
        env: { ...process.env, SLUICE_ADMIN_TOKENS: '' },
      });
      expect(r.status, r.stderr).toBe(0);
    },
  );

  it('builds every sluice-image service from the repository Dockerfile', () => {
    for (const [name, s] of Object.entries<any>(compose.services)) {
      if (s.build === undefined) continue;
      expect(join(root, 'deploy', s.build.context), name).toBe(root);
      expect(existsSync(join(root, 'deploy', s.build.context, s.build.dockerfile)), name).toBe(true);
    }
  });

  it('mounts a config that loads under its environment, which uses only variables sluice reads', () => {
    expect(configMount?.file).toBeDefined();
    for (const name of Object.keys(env)) expect(SLUICE_VARIABLES.has(name), name).toBe(true);
    const c = config();
    expect(c.pools.blue.endpoints).toEqual([env.SLUICE_BLUE_ENDPOINTS]);
    expect(c.pools.green.endpoints).toEqual([env.SLUICE_GREEN_ENDPOINTS]);
    // Without tokens sluice refuses to start on an open admin host, and says how to fix it.
    expect(() => loadText(read(posix.relative(root, configMount?.file as string)), env)).toThrow(/SLUICE_ADMIN_TOKENS/);
  });

  it('publishes the listen and admin ports the config uses, the admin one on loopback only', () => {
    const c = config();
    const ports = (sluice.ports as string[]).map((p) => {
      const parts = p.split(':');
      return { host: parts.length === 3 ? parts[0] : '0.0.0.0', container: Number(parts.at(-1)) };
    });
    expect(ports.map((p) => p.container).sort()).toEqual([c.listen.port, c.admin.port].sort());
    expect(ports.find((p) => p.container === c.admin.port)?.host).toBe('127.0.0.1');
    expect(Number(env.SLUICE_LISTEN_PORT)).toBe(c.listen.port);
    expect(Number(env.SLUICE_ADMIN_PORT)).toBe(c.admin.port);
  });

  it('keeps state on a volume and waits longer than shutdownGrace before SIGKILL', () => {
    const c = config();
    const targets = mounts(sluice).map((m) => m.target);
    expect(targets).toContain(dirname(c.stateFile));
    expect(targets).toContain(dirname(c.audit.file as string));
    expect(durationMs(sluice.stop_grace_period)).toBeGreaterThan(c.shutdownGrace + 1000);
  });

  it('points sluice at the blue and green services, which run the demo upstream on those ports', () => {
    const c = config();
    for (const pool of ['blue', 'green'] as const) {
      const u = urlOf(c.pools[pool].endpoints[0] as string);
      const svc = compose.services[u.hostname];
      expect(svc, u.hostname).toBeDefined();
      expect(svc.entrypoint).toEqual(['node', 'dist/demo/serve.js']);
      expect(existsSync(join(root, 'src', 'demo', 'serve.ts'))).toBe(true);
      expect(svc.command).toEqual([pool, u.port]);
      // Its health check asks the demo upstream's /health on that port.
      expect(svc.healthcheck.test.join(' ')).toContain(`127.0.0.1:${u.port}/health'`);
      expect(read('src', 'demo', 'upstream.ts')).toContain("req.url === '/health'");
    }
    expect(c.healthCheck.path).toBe('/health');
  });

  it('sends load to the listen port with the header the split keys on', () => {
    const c = config();
    const script = (compose.services.load.entrypoint as string[]).join(' ');
    expect(script).toContain(`http://sluice:${c.listen.port}/`);
    expect(c.split.key).toBe('header:x-user');
    expect(script).toContain("'x-user'");
  });

  it('has Prometheus scrape the admin port at /metrics by a Host the admin listener accepts, with the rules', async () => {
    const c = config();
    const prom = mounts(compose.services.prometheus);
    const promConfig = prom.find((m) => m.target === '/etc/prometheus/prometheus.yml');
    const p = readYaml(posix.relative(root, promConfig?.file as string));
    const job = p.scrape_configs.find((j: { job_name: string }) => j.job_name === 'sluice');
    const target = job.static_configs[0].targets[0] as string;
    const [host, port] = target.split(':') as [string, string];
    expect(compose.services[host]).toBe(sluice);
    expect(Number(port)).toBe(c.admin.port);
    // The rules Prometheus loads are the ones in config/ (checked by prometheus-rules.test.ts).
    const rules = prom.find((m) => m.file?.endsWith(join('config', 'prometheus-rules.yaml')));
    expect(p.rule_files).toEqual([rules?.target]);
    // A real admin listener with the compose config's allowedHosts answers Prometheus's Host.
    expect(
      await adminStatuses([job.metrics_path, '/healthz', '/readyz'], {
        host: target,
        admin: { allowedHosts: c.admin.allowedHosts },
      }),
    ).toEqual({ [job.metrics_path]: 200, '/healthz': 200, '/readyz': 200 });
    expect(await adminStatuses(['/metrics'], { host: target })).toEqual({ '/metrics': 403 });
  });

  it('provisions Grafana with the Prometheus service and config/grafana-dashboard.json', () => {
    const g = mounts(compose.services.grafana);
    const byTarget = (dir: string) => g.find((m) => m.target.startsWith(dir));
    const ds = readYaml(posix.relative(root, byTarget('/etc/grafana/provisioning/datasources/')?.file as string))
      .datasources[0];
    expect(ds.type).toBe('prometheus');
    expect(urlOf(ds.url).hostname in compose.services).toBe(true);
    const dashboards = readYaml(
      posix.relative(root, byTarget('/etc/grafana/provisioning/dashboards/')?.file as string),
    );
    const path = dashboards.providers[0].options.path as string;
    const json = g.find((m) => m.file?.endsWith(join('config', 'grafana-dashboard.json')));
    expect(json).toBeDefined();
    expect(dirname(json?.target as string)).toBe(path);
    // The dashboard's datasource variable picks a Prometheus data source.
    const dash = JSON.parse(read('config', 'grafana-dashboard.json'));
    expect(dash.templating.list.find((v: { name: string }) => v.name === 'datasource').query).toBe(ds.type);
  });
});
