/**
 * The Prometheus configuration and alert rules, checked and unit-tested by promtool itself
 * (rule tests live in prometheus/alerts.test.yml).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensurePrometheus, ensurePromtool, findPromtool, promtoolInstallHelp, PromtoolMissingError, TEST_PROMETHEUS_BIN_ENV, TEST_PROMTOOL_BIN_ENV } from '../../support/promtool.js';

const PROMETHEUS_DIR = join(import.meta.dirname, '..', '..', '..', 'prometheus');

function promtool(bin: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(bin, args, { cwd: PROMETHEUS_DIR, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, output: `${stdout}${stderr}` });
    });
  });
}

describe('prometheus - promtool', () => {
  let bin: string;
  beforeAll(async () => {
    // Set (and installed when allowed) by test/support/global-setup.ts.
    const found = process.env[TEST_PROMTOOL_BIN_ENV] || (await findPromtool());
    if (!found) throw new Error(promtoolInstallHelp());
    bin = found;
  });

  it('accepts both scrape configurations', async () => {
    for (const file of ['prometheus.yml', 'prometheus.local.yml']) {
      const r = await promtool(bin, ['check', 'config', file]);
      expect(r.output, r.output).toMatch(/SUCCESS/);
      expect(r.code, r.output).toBe(0);
    }
  });

  it('accepts the alert rules', async () => {
    const r = await promtool(bin, ['check', 'rules', 'alerts.yml']);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('has a unit test of every alert both firing and staying quiet', async () => {
    const rules = parse(await readFile(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8')) as { groups: { rules: { alert?: string }[] }[] };
    const tests = parse(await readFile(join(PROMETHEUS_DIR, 'alerts.test.yml'), 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter((a): a is string => a !== undefined);
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    const firing = new Set(cases.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname));
    const quiet = new Set(cases.filter((c) => (c.exp_alerts ?? []).length === 0).map((c) => c.alertname));
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    expect(alerts.filter((a) => !firing.has(a)), 'alerts without a firing test').toEqual([]);
    expect(alerts.filter((a) => !quiet.has(a)), 'alerts without a quiet test').toEqual([]);
    expect([...firing, ...quiet].filter((a) => !alerts.includes(a)), 'tests of unknown alerts').toEqual([]);
  });

  it('passes the alert rule unit tests', async () => {
    const r = await promtool(bin, ['test', 'rules', 'alerts.test.yml']);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS/);
  });
});

describe('prometheus - promtool install (test setup)', () => {
  const nowhere = { env: { PATH: '' }, cwd: PROMETHEUS_DIR, wellKnownDirs: [] };

  it('without install, a missing promtool is an error naming the Debian package', async () => {
    const err = await ensurePromtool({ install: false, log: { info: () => {}, warn: () => {} }, find: nowhere }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PromtoolMissingError);
    expect((err as Error).message).toContain('apt-get install -y --no-install-recommends prometheus');
  });

  it('where apt-get cannot install, the error gives the reason and installs nothing', async () => {
    const messages: string[] = [];
    const log = { info: (m: string) => messages.push(m), warn: (m: string) => messages.push(m) };
    const facts = { platform: 'linux' as const, osRelease: { ID: 'debian' }, isRoot: false, hasSudo: false, aptGetAvailable: true };
    const err = await ensurePromtool({ install: true, log, find: nowhere, facts }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/not installed automatically: installing needs root/);
    expect(messages).toEqual([]);
  });

  it('the Prometheus server comes from the same package, found and explained the same way', async () => {
    const err = await ensurePrometheus({ install: false, log: { info: () => {}, warn: () => {} }, find: nowhere }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PromtoolMissingError);
    expect((err as Error).message).toMatch(/^prometheus was not found on PATH/);
    expect((err as Error).message).toContain('apt-get install -y --no-install-recommends prometheus');
    const bin = process.env[TEST_PROMETHEUS_BIN_ENV];
    if (!bin) throw new Error(promtoolInstallHelp('prometheus'));
    expect(bin).toMatch(/\/prometheus$/);
    expect(await ensurePrometheus({ install: false, log: { info: () => {}, warn: () => {} }, find: { env: { PATH: dirname(bin) }, wellKnownDirs: [] } })).toBe(bin);
  });

  it('finds promtool on PATH without installing anything', async () => {
    expect(await findPromtool({ env: { PATH: '' }, cwd: PROMETHEUS_DIR, wellKnownDirs: [] })).toBeUndefined();
    const bin = process.env[TEST_PROMTOOL_BIN_ENV];
    if (!bin) throw new Error(promtoolInstallHelp());
    expect(await ensurePromtool({ install: false, log: { info: () => {}, warn: () => {} }, find: { env: { PATH: dirname(bin) }, wellKnownDirs: [] } })).toBe(bin);
  });
});
