/**
 * docker-compose.yml, the Dockerfile and the Prometheus/Grafana wiring agree with each other
 * and with the CLI and the configuration schema. (No Docker engine runs here: the files are
 * parsed and cross-checked, not started.)
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { settings } from '../../../src/config/config.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const ROLE_SERVICES = { ingest: 1, validator: 2, settler: 2, sink: 1 } as const;

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

let compose: Compose;
beforeAll(async () => {
  // merge: compose files use YAML merge keys (<<: *anchor).
  compose = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;
});

describe('ops - docker compose', () => {
  it('runs NATS with JetStream on a volume, ClickHouse ≥ 24.8, Prometheus and Grafana', () => {
    const s = compose.services;
    expect(s.nats?.image).toMatch(/^nats:2\.10(-|$)/);
    expect(s.nats?.command?.join(' ')).toMatch(/(^| )-js( |$).*-sd \/data/);
    expect(s.nats?.volumes).toContain('nats-data:/data');
    const [major, minor] = (s.clickhouse?.image ?? '').split(':')[1]!.split('.').map(Number);
    expect(s.clickhouse?.image).toMatch(/^clickhouse\/clickhouse-server:/);
    expect(major! > 24 || (major === 24 && minor! >= 8)).toBe(true);
    expect(s.clickhouse?.volumes).toContain('clickhouse-data:/var/lib/clickhouse');
    expect(s.prometheus?.volumes).toEqual(expect.arrayContaining(['./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro', './prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro']));
    expect(s.grafana?.environment?.GF_INSTALL_PLUGINS).toContain('grafana-clickhouse-datasource');
    for (const v of Object.values(s).flatMap((svc) => svc.volumes ?? [])) {
      const source = v.split(':')[0]!;
      if (source.startsWith('./')) expect(existsSync(join(ROOT, source)), `${v}: missing in the repository`).toBe(true);
      else expect(compose.volumes, `${v}: volume not declared`).toHaveProperty(source);
    }
  });

  it('runs the tapflow roles with the CLI commands and replica counts of the design', async () => {
    const { ROLES } = await import('../../../src/runtime/app.js');
    expect([...ROLES].sort()).toEqual(Object.keys(ROLE_SERVICES).sort());
    for (const [role, replicas] of Object.entries(ROLE_SERVICES)) {
      const svc = compose.services[role];
      expect(svc, role).toBeDefined();
      expect(svc!.command).toEqual(['node', 'dist/src/cli/main.js', role]);
      expect(svc!.deploy?.replicas ?? 1, role).toBe(replicas);
      expect(svc!.image).toBe('tapflow:local');
      expect(svc!.build).toBe('.');
      expect(svc!.environment?.NATS_URL).toBe('nats://nats:4222');
      expect(svc!.environment?.CLICKHOUSE_URL).toBe('http://clickhouse:8123');
      expect(svc!.environment?.TAPFLOW_METRICS_PORT).toBe('9464');
      expect(svc!.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:9464/healthz');
    }
    expect(compose.services.ingest!.ports).toEqual(expect.arrayContaining(['50051:50051', '9464:9464']));
    expect(compose.services.ingest!.environment?.TAPFLOW_GRPC_PORT).toBe('50051');
  });

  it('the CLI entry point the image runs is compiled from src/cli/main.ts', async () => {
    // tsconfig.build.json compiles src/ into dist/ keeping the folder layout (rootDir ".").
    expect(existsSync(join(ROOT, 'src', 'cli', 'main.ts'))).toBe(true);
    const build = JSON.parse(await readFile(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions?: { outDir?: string } };
    expect(build.compilerOptions?.outDir).toBe('dist');
    const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20-bookworm-slim AS build$/m);
    expect(dockerfile).toMatch(/RUN npm ci\b/);
    expect(dockerfile).toMatch(/npm run build && npm prune --omit=dev/);
    expect(dockerfile).toContain('CMD ["node", "dist/src/cli/main.js", "start"]');
  });

  it('sets only configuration variables tapflow knows', () => {
    const known = new Set(Object.keys(settings));
    for (const role of Object.keys(ROLE_SERVICES)) {
      const unknown = Object.keys(compose.services[role]!.environment ?? {}).filter((k) => !known.has(k));
      expect(unknown, `${role}: unknown variables`).toEqual([]);
    }
  });

  it('Prometheus scrapes every role service on the metrics port', async () => {
    const prom = parse(await readFile(join(ROOT, 'prometheus', 'prometheus.yml'), 'utf8')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; type: string; port: number }[] }[];
    };
    const job = prom.scrape_configs.find((j) => j.job_name === 'tapflow');
    const sd = job?.dns_sd_configs?.[0];
    expect(sd?.type).toBe('A');
    expect([...(sd?.names ?? [])].sort()).toEqual(Object.keys(ROLE_SERVICES).sort());
    expect(sd?.port).toBe(9464);
    expect(prom.rule_files).toEqual(['alerts.yml']);
  });

  it('Grafana reaches ClickHouse with the credentials and database of the clickhouse service', async () => {
    const ds = parse(await readFile(join(ROOT, 'grafana', 'provisioning', 'datasources', 'tapflow.yml'), 'utf8')) as {
      datasources: { uid: string; url?: string; jsonData?: Record<string, unknown>; secureJsonData?: Record<string, string> }[];
    };
    const ch = ds.datasources.find((d) => d.uid === 'clickhouse');
    const env = compose.services.clickhouse!.environment!;
    expect(ch?.jsonData).toMatchObject({ host: 'clickhouse', port: 8123, protocol: 'http', username: env.CLICKHOUSE_USER, defaultDatabase: env.CLICKHOUSE_DB });
    expect(ch?.secureJsonData?.password).toBe(env.CLICKHOUSE_PASSWORD);
    expect(compose.services.ingest!.environment).toMatchObject({ CLICKHOUSE_USER: env.CLICKHOUSE_USER, CLICKHOUSE_PASSWORD: env.CLICKHOUSE_PASSWORD, CLICKHOUSE_DATABASE: env.CLICKHOUSE_DB });
    expect(ds.datasources.find((d) => d.uid === 'prometheus')?.url).toBe('http://prometheus:9090');
  });
});
