/**
 * docker-compose.yml, the Dockerfile and the Prometheus/Grafana wiring agree with each other
 * and with the CLI and the configuration schema. (No Docker engine runs here: the files are
 * parsed and cross-checked, not started.)
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
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

  it('Grafana reads ClickHouse as the read-only user of clickhouse/users.sql, the roles write as its writer', async () => {
    const ds = parse(await readFile(join(ROOT, 'grafana', 'provisioning', 'datasources', 'tapflow.yml'), 'utf8')) as {
      datasources: { uid: string; url?: string; jsonData?: Record<string, unknown>; secureJsonData?: Record<string, string> }[];
    };
    const users = parseUsersSql(await readFile(join(ROOT, 'clickhouse', 'users.sql'), 'utf8'));
    const ch = ds.datasources.find((d) => d.uid === 'clickhouse');
    const env = compose.services.clickhouse!.environment!;
    expect(compose.services.clickhouse!.volumes).toContain('./clickhouse/users.sql:/docker-entrypoint-initdb.d/10-tapflow-users.sql:ro');
    // Grafana: a user of users.sql, read-only, granted SELECT only.
    expect(ch?.jsonData).toMatchObject({ host: 'clickhouse', port: 8123, protocol: 'http', username: 'tapflow_grafana', defaultDatabase: env.CLICKHOUSE_DB });
    const grafana = users.get('tapflow_grafana')!;
    expect(ch?.secureJsonData?.password).toBe(grafana.password);
    expect(grafana.readonly).toBe(2);
    expect(grafana.grants).toEqual(['SELECT ON tapflow.*']);
    // The roles: the writer, on the tapflow database only; not the server's administrator.
    const writer = users.get('tapflow_writer')!;
    for (const role of Object.keys(ROLE_SERVICES)) {
      expect(compose.services[role]!.environment, role).toMatchObject({ CLICKHOUSE_USER: 'tapflow_writer', CLICKHOUSE_PASSWORD: writer.password, CLICKHOUSE_DATABASE: env.CLICKHOUSE_DB });
    }
    expect(env.CLICKHOUSE_USER).not.toBe('tapflow_writer');
    expect(writer.readonly).toBeUndefined();
    expect(writer.grants.every((g) => g.endsWith(' ON tapflow.*')), writer.grants.join('; ')).toBe(true);
    expect(writer.grants.join(' ')).not.toMatch(/\b(ALL|ACCESS MANAGEMENT|CREATE USER|SYSTEM|DROP DATABASE)\b/);
    expect(ds.datasources.find((d) => d.uid === 'prometheus')?.url).toBe('http://prometheus:9090');
  });

  it("the writer runs no DDL: INSERT and SELECT only; the store's admin step runs every DDL statement as the administrator, before the sink", async () => {
    const writer = parseUsersSql(await readFile(join(ROOT, 'clickhouse', 'users.sql'), 'utf8')).get('tapflow_writer')!;
    expect(writer.grants).toEqual(['SELECT, INSERT ON tapflow.*']);
    // Every DDL statement of tapflow is in the migrations and the retention, which only the admin
    // step applies on a server (src/store/setup.ts); the sink's server path only checks.
    const setup = await readFile(join(ROOT, 'src', 'store', 'setup.ts'), 'utf8');
    expect(setup).toMatch(/if \(engine\.kind === 'chdb'\) return setupStore\(engine, retentionDays\);\n\s+const missing = await storeSetupMissing/);
    const sink = await readFile(join(ROOT, 'src', 'sink', 'role.ts'), 'utf8');
    expect(sink).not.toMatch(/\b(migrate|applyRetention|setupStore)\(/);
    expect(sink).toMatch(/prepareSinkStore\(engine, cfg\.TAPFLOW_STORE_RETENTION_DAYS/);
    const clickhouse = compose.services.clickhouse!.environment!;
    const step = compose.services['store-setup']!;
    expect(step.command).toEqual(['node', 'dist/src/cli/main.js', 'store', 'setup']);
    expect(step.environment).toMatchObject({ CLICKHOUSE_USER: clickhouse.CLICKHOUSE_USER, CLICKHOUSE_PASSWORD: clickhouse.CLICKHOUSE_PASSWORD });
    expect(step.environment?.TAPFLOW_STORE_RETENTION_DAYS).toBe(compose.services.sink!.environment?.TAPFLOW_STORE_RETENTION_DAYS);
    for (const role of ['ingest', 'sink']) {
      expect((compose.services[role]!.depends_on as Record<string, { condition: string }>)['store-setup'], role).toEqual({ condition: 'service_completed_successfully' });
    }
  });

  it("NATS runs with tapflow's bus users: the current permission table, one user per role service, the admin step first", async () => {
    const { natsAuthorizationBlock, natsUserName, passwordVariable } = await import('../../../src/bus/permissions.js');
    const nats = compose.services.nats!;
    expect(nats.command?.slice(0, 2)).toEqual(['-c', '/etc/nats/tapflow.conf']);
    expect(nats.volumes).toContain('./nats/tapflow.conf:/etc/nats/tapflow.conf:ro');
    const conf = await readFile(join(ROOT, 'nats', 'tapflow.conf'), 'utf8');
    const partitions = Number(settings.TAPFLOW_PARTITIONS.default);
    // Regenerate with: tapflow bus permissions --partitions 16 (below the file's header).
    expect(conf.endsWith(natsAuthorizationBlock(partitions, (u) => `$${passwordVariable(u)}`))).toBe(true);
    const password = (v: string) => new RegExp(`^\\$\\{${v}:-[^}]+\\}$`);
    for (const u of ['admin', 'ingest', 'validator', 'settler', 'sink', 'all'] as const) {
      expect(nats.environment?.[passwordVariable(u)], u).toMatch(password(passwordVariable(u)));
    }
    for (const role of Object.keys(ROLE_SERVICES) as (keyof typeof ROLE_SERVICES)[]) {
      const e = compose.services[role]!.environment!;
      expect(e.NATS_USER, role).toBe(natsUserName(role));
      expect(e.NATS_PASSWORD, role).toBe(nats.environment?.[passwordVariable(role)]);
      expect((compose.services[role]!.depends_on as Record<string, { condition: string }>)['bus-setup'], role).toEqual({ condition: 'service_completed_successfully' });
    }
    const setup = compose.services['bus-setup']!;
    expect(setup.command).toEqual(['node', 'dist/src/cli/main.js', 'bus', 'setup']);
    expect(setup.environment?.NATS_USER).toBe(natsUserName('admin'));
    expect(setup.environment?.NATS_PASSWORD).toBe(nats.environment?.[passwordVariable('admin')]);
  });
});

/** The users of clickhouse/users.sql: password, readonly setting, grants ("PRIVS ON db.*"). */
function parseUsersSql(text: string): Map<string, { password: string; readonly?: number; grants: string[] }> {
  const users = new Map<string, { password: string; readonly?: number; grants: string[] }>();
  const statements = text
    .split('\n')
    .filter((l) => !l.trim().startsWith('--'))
    .join('\n')
    .split(';')
    .map((s) => s.replace(/\s+/g, ' ').trim())
    .filter((s) => s !== '');
  for (const s of statements) {
    const user = /^CREATE USER IF NOT EXISTS (\w+) IDENTIFIED WITH sha256_password BY '([^']*)'(.*)$/.exec(s);
    if (user) {
      const ro = /SETTINGS readonly = (\d)/.exec(user[3]!);
      users.set(user[1]!, { password: user[2]!, ...(ro ? { readonly: Number(ro[1]) } : {}), grants: [] });
      continue;
    }
    const grant = /^GRANT (.+) TO (\w+)$/.exec(s);
    if (grant) {
      users.get(grant[2]!)!.grants.push(grant[1]!);
      continue;
    }
    throw new Error(`clickhouse/users.sql: unexpected statement: ${s}`);
  }
  return users;
}
