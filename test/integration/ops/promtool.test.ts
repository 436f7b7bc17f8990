/**
 * The Prometheus configuration and alert rules, checked and unit-tested by promtool itself
 * (rule tests live in prometheus/alerts.test.yml).
 */
import { execFile } from 'node:child_process';
import { access, constants, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const PROMETHEUS_DIR = join(import.meta.dirname, '..', '..', '..', 'prometheus');

async function findPromtool(): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin'];
  for (const dir of dirs) {
    const p = join(dir, 'promtool');
    if (await access(p, constants.X_OK).then(() => true, () => false)) return p;
  }
  return undefined;
}

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
    const found = await findPromtool();
    if (!found) {
      throw new Error(
        'promtool was not found on PATH. It ships with Debian\'s prometheus package: ' +
          'apt-get install --no-install-recommends prometheus (.ci/run installs it), or put a promtool ' +
          'from https://github.com/prometheus/prometheus/releases on PATH.',
      );
    }
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
