/**
 * Dashboards and alert rules use only the metrics tapflow exports, and the dashboards are
 * wired to the provisioned datasources.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createMetrics } from '../../../src/observe/metrics.js';
import { allowedSeries, metricNamesIn, TAPFLOW_METRICS } from './metric-names.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DASHBOARDS = join(ROOT, 'grafana', 'dashboards');

interface Target {
  refId?: string;
  datasource?: { type?: string; uid?: string };
  expr?: string;
  rawSql?: string;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
}

async function dashboards(): Promise<{ file: string; dashboard: Dashboard }[]> {
  const files = (await readdir(DASHBOARDS)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(files.map(async (file) => ({ file, dashboard: JSON.parse(await readFile(join(DASHBOARDS, file), 'utf8')) as Dashboard })));
}

function panelsOf(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

describe('ops - PromQL metric name scanner', () => {
  it('finds selected metrics and skips functions, labels, ranges, keywords and numbers', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le) (rate(tapflow_ack_latency_seconds_bucket{job=~"tapflow.*", le!="x"}[$__rate_interval]))) > 0.010 ' +
          'and on() max(tapflow_role_up{role="ingest"} offset 10m) == 1 or vector(0) unless sum without (instance) (up) * 1e3',
      ).sort(),
    ).toEqual(['tapflow_ack_latency_seconds_bucket', 'tapflow_role_up', 'up']);
    expect(metricNamesIn('topk(10, sum by (reason) (increase(made_up_metric_total[1h])))')).toEqual(['made_up_metric_total']);
  });
});

describe('ops - metric names in dashboards and alert rules', () => {
  it('the documented list matches what src/observe/metrics.ts registers', async () => {
    const registered = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const listed = [...TAPFLOW_METRICS.counters, ...TAPFLOW_METRICS.gauges, ...TAPFLOW_METRICS.histograms];
    expect(listed.filter((n) => !registered.has(n)), 'listed but not registered').toEqual([]);
  });

  it('every Prometheus expression of every dashboard uses known metric names only', async () => {
    const allowed = await allowedSeries();
    const unknown: string[] = [];
    let exprs = 0;
    for (const { file, dashboard } of await dashboards()) {
      for (const panel of panelsOf(dashboard)) {
        for (const t of panel.targets ?? []) {
          if ((t.datasource ?? panel.datasource)?.type !== 'prometheus') continue;
          expect(t.expr, `${file} / ${panel.title} / ${t.refId}`).toBeTruthy();
          exprs++;
          const names = metricNamesIn(t.expr!);
          expect(names.length, `${file} / ${panel.title}: no metric in ${t.expr}`).toBeGreaterThan(0);
          for (const n of names) if (!allowed.has(n)) unknown.push(`${file} / ${panel.title}: ${n}`);
        }
      }
    }
    expect(exprs).toBeGreaterThan(30);
    expect(unknown).toEqual([]);
  });

  it('every alert rule uses known metric names only', async () => {
    const allowed = await allowedSeries();
    const rules = parse(await readFile(join(ROOT, 'prometheus', 'alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const unknown = rules.groups.flatMap((g) => g.rules.flatMap((r) => metricNamesIn(r.expr).filter((n) => !allowed.has(n)).map((n) => `${r.alert}: ${n}`)));
    expect(unknown).toEqual([]);
  });
});

describe('ops - grafana dashboards', () => {
  it('has the three dashboards, with unique uids', async () => {
    const all = await dashboards();
    expect(all.map((d) => d.dashboard.title).sort()).toEqual(['tapflow — finance', 'tapflow — operations', 'tapflow — risk']);
    expect(new Set(all.map((d) => d.dashboard.uid)).size).toBe(all.length);
  });

  it('queries only the provisioned datasources, ClickHouse panels with SQL', async () => {
    const provisioned = parse(await readFile(join(ROOT, 'grafana', 'provisioning', 'datasources', 'tapflow.yml'), 'utf8')) as {
      datasources: { uid: string; type: string }[];
    };
    const known = new Map(provisioned.datasources.map((d) => [d.uid, d.type]));
    expect(known.get('clickhouse')).toBe('grafana-clickhouse-datasource');
    expect(known.get('prometheus')).toBe('prometheus');
    const perDashboard = new Map<string, Set<string>>();
    for (const { file, dashboard } of await dashboards()) {
      for (const panel of panelsOf(dashboard).filter((p) => p.type !== 'row')) {
        expect(panel.targets?.length, `${file} / ${panel.title}`).toBeGreaterThan(0);
        for (const t of panel.targets ?? []) {
          const ds = t.datasource ?? panel.datasource;
          expect(known.get(ds?.uid ?? ''), `${file} / ${panel.title}: datasource ${JSON.stringify(ds)}`).toBe(ds?.type);
          if (ds?.type === 'grafana-clickhouse-datasource') expect(t.rawSql, `${file} / ${panel.title}`).toMatch(/^SELECT/);
          perDashboard.set(dashboard.title, (perDashboard.get(dashboard.title) ?? new Set()).add(ds!.type!));
        }
      }
    }
    // Risk and finance combine live metrics with ClickHouse; operations is Prometheus only.
    expect([...(perDashboard.get('tapflow — risk') ?? [])].sort()).toEqual(['grafana-clickhouse-datasource', 'prometheus']);
    expect([...(perDashboard.get('tapflow — finance') ?? [])].sort()).toEqual(['grafana-clickhouse-datasource', 'prometheus']);
  });
});
