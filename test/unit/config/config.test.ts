import { fileURLToPath } from 'node:url';
/**
 * Configuration (src/config/config.ts): defaults with units, values parsed from strings, flags
 * overriding the environment, and bad values stopping start-up with a message naming each one.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, configMarkdown, loadConfig, settings, type ConfigKey } from '../../../src/config/config.js';

function problemsOf(env: Record<string, string>, overrides: Partial<Record<ConfigKey, string>> = {}): string {
  try {
    loadConfig(env, overrides);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config - defaults', () => {
  const cfg = loadConfig({});

  it('gives every documented default, typed', () => {
    expect(cfg).toMatchObject({
      NATS_URL: 'nats://127.0.0.1:4222',
      TAPFLOW_NATS_AUTOSTART: true,
      TAPFLOW_DATA_DIR: './data',
      CLICKHOUSE_DATABASE: 'tapflow',
      TAPFLOW_STORE_RETENTION_DAYS: 0, // stored rows are kept forever
      TAPFLOW_GRPC_HOST: '0.0.0.0',
      TAPFLOW_GRPC_PORT: 50051,
      TAPFLOW_METRICS_PORT: 9464,
      TAPFLOW_PARTITIONS: 16,
      TAPFLOW_MAX_INFLIGHT: 16384,
      TAPFLOW_PUBLISH_TIMEOUT_MS: 5000,
      TAPFLOW_DUPLICATE_WINDOW_S: 1200,
      TAPFLOW_STREAM_MAX_BYTES: 8 * 1024 ** 3,
      TAPFLOW_STREAM_MAX_AGE_S: 7 * 24 * 3600,
      TAPFLOW_BATCH_MAX_TAPS: 5000,
      TAPFLOW_CLOCK_SKEW_MS: 300_000, // counted
      TAPFLOW_LIVE_TIME_BOUND_MS: 86_400_000, // a day: a live tap further off is refused
      TAPFLOW_UPLOAD_MAX_AGE_MS: 30 * 86_400_000, // a stored tap may be 30 days old
      TAPFLOW_CLAIM_WAIT_MS: 2000, // DESIGN: "configurable, default 2 s"
      TAPFLOW_SHUTDOWN_TIMEOUT_MS: 15000,
      TAPFLOW_LEASE_TTL_MS: 15000,
      // The repository's data folder, whatever the working directory.
      TAPFLOW_TARIFF_DIR: fileURLToPath(new URL('../../../data', import.meta.url)),
      TAPFLOW_LOG_LEVEL: 'info',
      // Terminals on mutual TLS unless the static-secret path is chosen explicitly.
      TAPFLOW_INGEST_AUTH: 'mtls',
    });
  });

  it('leaves optional settings unset', () => {
    for (const k of ['CLICKHOUSE_URL', 'CLICKHOUSE_USER', 'CLICKHOUSE_PASSWORD', 'TAPFLOW_TOKEN_KEY', 'TAPFLOW_SEAL_KEY', 'TAPFLOW_TRUST_FILE', 'TAPFLOW_TERMINALS_FILE'] as const) {
      expect(cfg[k], k).toBeUndefined();
    }
  });

  it('has exactly one value per setting', () => {
    expect(Object.keys(cfg).sort()).toEqual(Object.keys(settings).sort());
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ TAPFLOW_GRPC_PORT: '', CLICKHOUSE_URL: '' })).toMatchObject({ TAPFLOW_GRPC_PORT: 50051, CLICKHOUSE_URL: undefined });
  });
});

describe('config - values and overrides', () => {
  it('parses numbers and booleans from the environment', () => {
    const cfg = loadConfig({ TAPFLOW_GRPC_PORT: '0', TAPFLOW_PARTITIONS: '1024', TAPFLOW_NATS_AUTOSTART: 'off', TAPFLOW_CLAIM_WAIT_MS: '1', CLICKHOUSE_URL: 'http://ch:8123', TAPFLOW_STORE_RETENTION_DAYS: '400' });
    expect(cfg).toMatchObject({ TAPFLOW_GRPC_PORT: 0, TAPFLOW_PARTITIONS: 1024, TAPFLOW_NATS_AUTOSTART: false, TAPFLOW_CLAIM_WAIT_MS: 1, CLICKHOUSE_URL: 'http://ch:8123', TAPFLOW_STORE_RETENTION_DAYS: 400 });
    for (const [v, b] of [['1', true], ['yes', true], ['on', true], ['true', true], ['0', false], ['no', false], ['false', false]] as const) {
      expect(loadConfig({ TAPFLOW_NATS_AUTOSTART: v }).TAPFLOW_NATS_AUTOSTART, v).toBe(b);
    }
  });

  it('lets overrides (flags) win over the environment; an undefined override does not', () => {
    const env = { TAPFLOW_GRPC_PORT: '6000', NATS_URL: 'nats://env:4222' };
    expect(loadConfig(env, { TAPFLOW_GRPC_PORT: '7000' }).TAPFLOW_GRPC_PORT).toBe(7000);
    expect(loadConfig(env, { TAPFLOW_GRPC_PORT: undefined }).TAPFLOW_GRPC_PORT).toBe(6000);
    expect(loadConfig(env, { TAPFLOW_MAX_INFLIGHT: 3 }).TAPFLOW_MAX_INFLIGHT).toBe(3);
    expect(loadConfig(env).NATS_URL).toBe('nats://env:4222');
  });

  it('ignores variables it does not know', () => {
    expect(() => loadConfig({ TAPFLOW_NOT_A_SETTING: 'x', PATH: '/bin' })).not.toThrow();
  });
});

describe('config - bad values', () => {
  it.each([
    ['TAPFLOW_GRPC_PORT', '65536'],
    ['TAPFLOW_GRPC_PORT', 'http'],
    ['TAPFLOW_METRICS_PORT', '-1'],
    ['TAPFLOW_PARTITIONS', '0'],
    ['TAPFLOW_PARTITIONS', '1025'],
    ['TAPFLOW_MAX_INFLIGHT', '1.5'],
    ['TAPFLOW_LEASE_TTL_MS', '999'],
    ['TAPFLOW_NATS_AUTOSTART', 'maybe'],
    ['TAPFLOW_INGEST_AUTH', 'secrets'],
    ['CLICKHOUSE_URL', 'not a url'],
    ['CLICKHOUSE_DATABASE', 'tap-flow'],
    ['TAPFLOW_STORE_RETENTION_DAYS', '-1'],
    ['TAPFLOW_STORE_RETENTION_DAYS', '1.5'],
    ['TAPFLOW_STORE_RETENTION_DAYS', '36501'],
    ['TAPFLOW_TOKEN_KEY', 'abcd'],
    ['TAPFLOW_SEAL_KEY', 'g'.repeat(64)],
    ['TAPFLOW_LOG_LEVEL', 'verbose'],
    ['TAPFLOW_LIVE_TIME_BOUND_MS', '0'],
    ['TAPFLOW_LIVE_TIME_BOUND_MS', String(30 * 86_400_000 + 1)],
    ['TAPFLOW_UPLOAD_MAX_AGE_MS', String(366 * 86_400_000 + 1)],
  ])('%s=%s is refused, naming the variable and the value', (key, value) => {
    const msg = problemsOf({ [key]: value });
    expect(msg).toContain(`${key}=${JSON.stringify(value)}`);
  });

  it('lists every bad value at once, and only those', () => {
    const msg = problemsOf({ TAPFLOW_GRPC_PORT: 'x', TAPFLOW_PARTITIONS: '0', NATS_URL: 'nats://ok:4222' });
    expect(msg).toMatch(/TAPFLOW_GRPC_PORT=/);
    expect(msg).toMatch(/TAPFLOW_PARTITIONS=/);
    expect(msg).not.toMatch(/NATS_URL/);
    expect(msg.split('\n').length).toBe(3); // heading + two problems
  });

  it('refuses device-time bounds out of order, naming both variables', () => {
    expect(problemsOf({ TAPFLOW_LIVE_TIME_BOUND_MS: '60000' })).toContain('TAPFLOW_LIVE_TIME_BOUND_MS=60000: must be at least TAPFLOW_CLOCK_SKEW_MS (300000)');
    expect(problemsOf({ TAPFLOW_UPLOAD_MAX_AGE_MS: '3600000' })).toContain('TAPFLOW_UPLOAD_MAX_AGE_MS=3600000: must be at least TAPFLOW_LIVE_TIME_BOUND_MS (86400000)');
    expect(loadConfig({ TAPFLOW_CLOCK_SKEW_MS: '1000', TAPFLOW_LIVE_TIME_BOUND_MS: '1000', TAPFLOW_UPLOAD_MAX_AGE_MS: '1000' }).TAPFLOW_UPLOAD_MAX_AGE_MS).toBe(1000);
  });

  it('checks overrides like the environment', () => {
    expect(problemsOf({}, { TAPFLOW_METRICS_PORT: 'abc' })).toContain('TAPFLOW_METRICS_PORT="abc"');
  });
});

describe('config - documentation', () => {
  it('documents every setting in the README table with its default', () => {
    const md = configMarkdown();
    for (const [k, s] of Object.entries(settings)) {
      // A default that depends on the install (a path) is shown by its description.
      const shown = 'shown' in s ? s.shown : s.default;
      expect(md).toContain(`| \`${k}\` | ${shown === undefined ? '(unset)' : `\`${shown}\``} |`);
      expect(s.doc.length, k).toBeGreaterThan(10);
    }
  });
});
