/**
 * deploy/kubernetes/ against the code: the ConfigMap's config loads with the real loader under
 * the Deployment's environment, and every port, path, variable, selector and grace period the
 * manifests use matches what sluice listens on, answers and needs.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/core/config.js';
import {
  adminStatuses,
  loadText,
  read,
  readYamlDocs,
  root,
  SAMPLE_TOKENS,
  SLUICE_VARIABLES,
} from '../helpers/deploy.js';

const DIR = join(root, 'deploy', 'kubernetes');
const docs = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => readYamlDocs('deploy', 'kubernetes', f).map((d) => ({ file: f, ...d })));
const find = (kind: string, name: string) => {
  const d = docs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (d === undefined) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return d;
};

const deployment = find('Deployment', 'sluice');
const pod = deployment.spec.template.spec;
const container = pod.containers.find((c: { name: string }) => c.name === 'sluice');
const portOf = (c: { ports: { name: string; containerPort: number }[] }, name: string | number) =>
  typeof name === 'number' ? name : c.ports.find((p) => p.name === name)?.containerPort;
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The Deployment's env as values; a Secret's value is a sample of its form. */
const env: Record<string, string> = Object.fromEntries(
  container.env.map((e: { name: string; value?: string; valueFrom?: unknown }) => [
    e.name,
    e.value ?? (e.name === 'SLUICE_ADMIN_TOKENS' ? SAMPLE_TOKENS : ''),
  ]),
);

/** Where the container reads its config: --config in args, else the image's $SLUICE_CONFIG. */
const configPath = (() => {
  const args = container.args as string[];
  const i = args.indexOf('--config');
  return i >= 0 ? (args[i + 1] as string) : (/SLUICE_CONFIG=(\S+)/.exec(read('Dockerfile'))?.[1] as string);
})();

let config: Config;
beforeAll(() => {
  const mount = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === dirname(configPath));
  const volume = pod.volumes.find((v: { name: string }) => v.name === mount.name);
  const cm = find('ConfigMap', volume.configMap.name);
  config = loadText(cm.data[posix.basename(configPath)], env);
});

describe('deploy/kubernetes', () => {
  it('every document has apiVersion, kind and a name', () => {
    expect(docs.length).toBeGreaterThanOrEqual(7);
    for (const d of docs) {
      expect(d.apiVersion, d.file).toMatch(/^(v1|apps\/v1|policy\/v1)$/);
      expect(d.metadata.name, d.file).toMatch(/^[a-z0-9-]+$/);
    }
  });

  it('runs two replicas whose config (the ConfigMap, under their environment) is a fleet on the Redis Service', () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(matches(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
    for (const name of Object.keys(env)) expect(SLUICE_VARIABLES.has(name), name).toBe(true);
    expect(config.fleet).not.toBeNull();
    const redis = new URL(config.fleet?.redis as string);
    const service = find('Service', redis.hostname);
    const port = service.spec.ports.find((p: { port: number }) => p.port === Number(redis.port));
    expect(port).toBeDefined();
    const redisDeployment = docs.find(
      (d) => d.kind === 'Deployment' && matches(service.spec.selector, d.spec.template.metadata.labels),
    );
    expect(portOf(redisDeployment.spec.template.spec.containers[0], port.targetPort)).toBe(6379);
    // Tokens come from a Secret (the admin listener is not on loopback, so they are required).
    expect(
      container.env.find((e: { name: string }) => e.name === 'SLUICE_ADMIN_TOKENS').valueFrom.secretKeyRef,
    ).toEqual({
      name: 'sluice-admin-tokens',
      key: 'tokens',
    });
    expect(config.admin.tokens).toHaveLength(1);
  });

  it('names container ports after what the config listens on, and the Services target them', () => {
    expect(portOf(container, 'http')).toBe(config.listen.port);
    expect(portOf(container, 'admin')).toBe(config.admin.port);
    const labels = deployment.spec.template.metadata.labels;
    const services = docs.filter((d) => d.kind === 'Service' && matches(d.spec.selector, labels));
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['sluice', 'sluice-admin']);
    for (const s of services)
      for (const p of s.spec.ports)
        expect(portOf(container, p.targetPort), `${s.metadata.name} ${p.name}`).toBeDefined();
    // The admin Service's name is a Host the admin listener accepts (in-cluster clients).
    expect(config.admin.allowedHosts).toContain('sluice-admin');
    expect(Number(deployment.spec.template.metadata.annotations['prometheus.io/port'])).toBe(config.admin.port);
  });

  it('probes /readyz and /healthz on the admin port, which a real admin listener answers', async () => {
    const r = container.readinessProbe.httpGet;
    const l = container.livenessProbe.httpGet;
    expect([r.path, l.path]).toEqual(['/readyz', '/healthz']);
    expect(portOf(container, r.port)).toBe(config.admin.port);
    expect(portOf(container, l.port)).toBe(config.admin.port);
    const scrape = deployment.spec.template.metadata.annotations['prometheus.io/path'];
    expect(
      await adminStatuses([r.path, l.path, scrape], { admin: { allowedHosts: config.admin.allowedHosts } }),
    ).toEqual({ [r.path]: 200, [l.path]: 200, [scrape]: 200 });
  });

  it('gives SIGTERM more time than the preStop sleep plus shutdownGrace', () => {
    const pre = container.lifecycle.preStop.exec.command as string[];
    expect(pre[0]).toBe('sleep');
    const preMs = Number(pre[1]) * 1000;
    // After shutdownGrace sluice waits up to a second for webhooks, then persists and exits.
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preMs + config.shutdownGrace + 1000);
  });

  it('mounts a writable volume for the state and audit files on a read-only root', () => {
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    const writable = container.volumeMounts.filter((m: { readOnly?: boolean }) => m.readOnly !== true);
    const paths = writable.map((m: { mountPath: string }) => m.mountPath);
    expect(paths).toContain(dirname(config.stateFile));
    expect(paths).toContain(dirname(config.audit.file as string));
  });

  it('sets resources, and the workers the CPU limit allows', () => {
    expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(container.resources.limits.memory).toMatch(/^\d+Mi$/);
    expect(config.workers).toBe(Number(container.resources.limits.cpu));
    // The image's CMD (--workers auto) is replaced, so the config's workers count.
    expect(container.args).not.toContain('--workers');
  });

  it('keeps a replica through voluntary disruptions', () => {
    const pdb = find('PodDisruptionBudget', 'sluice');
    expect(matches(pdb.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });
});
