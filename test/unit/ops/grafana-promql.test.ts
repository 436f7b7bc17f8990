/**
 * The Grafana side of test/integration/ops/prometheus-real.test.ts: which queries of a dashboard
 * are Prometheus ones, how Grafana computes $__interval / $__rate_interval / $__range and formats
 * template variables for Prometheus, and the `bool` form of alert conditions.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  boolForm,
  dashboardQueries,
  formatInterval,
  goDuration,
  groupingLabels,
  interpolate,
  parseGrafanaDuration,
  queryIntervals,
  relativeRangeMs,
  roundInterval,
  ruleFiles,
  ruleQueries,
  variableValue,
  type GrafanaDashboard,
  type VariableValue,
} from '../../support/grafana-promql.js';

describe('ops - Grafana intervals for Prometheus queries', () => {
  it('parses, rounds and prints durations as Grafana does', () => {
    expect(parseGrafanaDuration('15s')).toBe(15_000);
    expect(parseGrafanaDuration('1m30s')).toBe(90_000);
    expect(parseGrafanaDuration('<10s>')).toBe(10_000);
    expect(parseGrafanaDuration('30')).toBe(30_000);
    expect(() => parseGrafanaDuration('soon')).toThrow(/not a duration/);
    expect(relativeRangeMs('now-1h', 'now')).toBe(3_600_000);
    expect(() => relativeRangeMs('now-1h', 'now-5m')).toThrow(/must end at "now"/);
    expect([3_750, 1_875, 1_000, 20, 40_000, 100_000].map(roundInterval)).toEqual([5_000, 2_000, 1_000, 20, 30_000, 120_000]);
    expect([1_000, 5_000, 90_000, 3_600_000, 500].map(formatInterval)).toEqual(['1s', '5s', '1m', '1h', '500ms']);
    expect([4_000, 60_000, 90_000, 1_500, 3_660_000].map(goDuration)).toEqual(['4s', '1m0s', '1m30s', '1.5s', '1h1m0s']);
  });

  it('$__rate_interval is max($__interval + scrape interval, 4 × scrape interval)', () => {
    const half = { gridPos: { w: 12 } }; // 960 px wide: maxDataPoints 960
    // 1 h over 960 points = 3.75 s, rounded to 5 s; 5 s + 1 s < 4 × 1 s? no: 6 s.
    expect(queryIntervals(half, {}, { rangeMs: 3_600_000, dsScrapeInterval: '1s' })).toEqual({ intervalMs: 5_000, rateIntervalMs: 6_000, rangeMs: 3_600_000 });
    // The provisioned 5 s scrape interval: $__interval 5 s, $__rate_interval 4 × 5 s = 20 s.
    expect(queryIntervals(half, {}, { rangeMs: 3_600_000, dsScrapeInterval: '5s' })).toEqual({ intervalMs: 5_000, rateIntervalMs: 20_000, rangeMs: 3_600_000 });
    // No scrape interval on the data source: Grafana assumes 15 s.
    expect(queryIntervals(half, {}, { rangeMs: 3_600_000 }).rateIntervalMs).toBe(60_000);
    // A short range: the scrape interval is the floor of $__interval.
    expect(queryIntervals(half, {}, { rangeMs: 300_000, dsScrapeInterval: '1s' })).toEqual({ intervalMs: 1_000, rateIntervalMs: 4_000, rangeMs: 300_000 });
    // A query's min step stands in for the scrape interval.
    expect(queryIntervals(half, { interval: '30s' }, { rangeMs: 3_600_000, dsScrapeInterval: '1s' })).toEqual({ intervalMs: 30_000, rateIntervalMs: 120_000, rangeMs: 3_600_000 });
    // A week over a 1920 px panel: 315 s, rounded to 5 m.
    expect(queryIntervals({ gridPos: { w: 24 } }, {}, { rangeMs: 7 * 86_400_000, dsScrapeInterval: '5s' }).intervalMs).toBe(300_000);
  });

  it('replaces the built-ins in both spellings, the _ms ones first', () => {
    const iv = { intervalMs: 5_000, rateIntervalMs: 6_000, rangeMs: 3_600_000 };
    expect(interpolate('rate(x[$__rate_interval]) + rate(y[${__rate_interval}]) + $__rate_interval_ms', iv)).toBe('rate(x[6s]) + rate(y[6s]) + 6000');
    expect(interpolate('increase(x[$__range]) / $__range_s + $__range_ms + avg_over_time(z[$__interval]) * $__interval_ms', iv)).toBe(
      'increase(x[3600s]) / 3600 + 3600000 + avg_over_time(z[5s]) * 5000',
    );
    expect(interpolate('label_replace(up, "a", "$1", "instance", "(.*):.*")', iv)).toBe('label_replace(up, "a", "$1", "instance", "(.*):.*")');
  });
});

describe('ops - Grafana template variables formatted for Prometheus', () => {
  const iv = { intervalMs: 1_000, rateIntervalMs: 4_000, rangeMs: 60_000 };
  const vars = (entries: [string, VariableValue][]) => new Map(entries);

  it('a single-value variable is escaped for a string, several values become a regex alternation', () => {
    const single: VariableValue = { values: ["B'J\\x"], multi: false, includeAll: false };
    const several: VariableValue = { values: ['BJ', 'T.J'], multi: true, includeAll: false };
    expect(interpolate('x{region="$region"}', iv, vars([['region', single]]))).toBe('x{region="B\\\\\'J\\\\x"}');
    expect(interpolate('x{region=~"$region"} + y{r=~"${region}"} + z{r=~"[[region]]"}', iv, vars([['region', several]]))).toBe(
      'x{region=~"(BJ|T\\\\.J)"} + y{r=~"(BJ|T\\\\.J)"} + z{r=~"(BJ|T\\\\.J)"}',
    );
    expect(interpolate('x{region=~"${region:pipe}"}', iv, vars([['region', several]]))).toBe('x{region=~"BJ|T.J"}');
    expect(interpolate('x{region=~"${region:regex}"}', iv, vars([['region', several]]))).toBe('x{region=~"(BJ|T\\.J)"}');
  });

  it('All is every value, or the custom all value as it is', () => {
    const v = { name: 'region', type: 'query', multi: true, includeAll: true };
    expect(interpolate('x{region=~"$region"}', iv, vars([['region', variableValue(v, ['BJ', 'HE', 'TJ'])]]))).toBe('x{region=~"(BJ|HE|TJ)"}');
    expect(interpolate('x{region=~"$region"}', iv, vars([['region', variableValue({ ...v, allValue: '.*' }, ['BJ'])]]))).toBe('x{region=~".*"}');
    expect(variableValue({ name: 'r', type: 'custom', current: { value: 'TJ' } }, ['BJ', 'TJ']).values).toEqual(['TJ']);
    expect(variableValue({ name: 'r', type: 'custom', current: { value: 'XX' } }, ['BJ', 'TJ']).values).toEqual(['BJ']);
  });

  it('a variable the dashboard does not define is an error', () => {
    expect(() => interpolate('x{region="$regoin"}', iv)).toThrow(/refers to \$regoin, which is neither a variable of the dashboard nor a Grafana built-in/);
  });
});

describe('ops - alert conditions as bool', () => {
  it('adds bool after comparisons outside strings, matchers and ranges', () => {
    expect(boolForm('(sum by (region) (rate(x{verdict!="REJECTED",a=~"b>c"}[5m])) / sum(y)) > 0.30\nand\nsum(z) > 0.1')).toBe(
      '(sum by (region) (rate(x{verdict!="REJECTED",a=~"b>c"}[5m])) / sum(y)) > bool 0.30\nand\nsum(z) > bool 0.1',
    );
    expect(boolForm('up{job=~"tapflow.*"} == 0')).toBe('up{job=~"tapflow.*"} == bool 0');
    expect(boolForm('a != 0 or b >= 1 unless c <= 2 and d < 3')).toBe('a != bool 0 or b >= bool 1 unless c <= bool 2 and d < bool 3');
    expect(boolForm('a > bool 1')).toBeUndefined();
    expect(boolForm('sum(rate(x[5m])) # a comment with > in it')).toBeUndefined();
    expect(boolForm('a > on(x) group_left b')).toBe('a > bool on(x) group_left b');
  });
});

describe('ops - collecting the expressions', () => {
  it('takes Prometheus targets of panels and nested rows, skips ClickHouse and hidden ones', () => {
    const d: GrafanaDashboard = {
      uid: 'u',
      title: 'D',
      panels: [
        { type: 'stat', title: 'P1', datasource: { type: 'prometheus', uid: 'prometheus' }, targets: [{ refId: 'A', expr: 'up' }, { refId: 'B', expr: 'x', hide: true }] },
        { type: 'table', title: 'CH', datasource: { type: 'grafana-clickhouse-datasource' }, targets: [{ refId: 'A', rawSql: 'SELECT 1' }] },
        {
          type: 'row',
          title: 'R',
          panels: [{ type: 'timeseries', title: 'Nested', datasource: { type: 'prometheus' }, targets: [{ refId: 'A', expr: 'y' }, { refId: 'B', datasource: { type: 'grafana-clickhouse-datasource' }, rawSql: 'SELECT 2' }] }],
        },
      ],
    };
    expect(dashboardQueries([{ file: 'd.json', dashboard: d }]).map((q) => [q.key, q.expr])).toEqual([
      ['D / P1 / A', 'up'],
      ['D / Nested / A', 'y'],
    ]);
  });

  it('reads every rule file of a folder but not promtool unit tests or scrape configurations', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tapflow-rules-'));
    try {
      await writeFile(
        join(dir, 'a.yml'),
        'groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels:\n          where: "{{ $labels.job }}"\n        annotations:\n          summary: "{{ $labels.instance }} down ({{ $value }}, {{$labels.job}})"\n      - record: job:up:sum\n        expr: sum by (job) (up)\n',
      );
      await writeFile(join(dir, 'a.test.yml'), 'rule_files: [a.yml]\ntests: []\n');
      await writeFile(join(dir, 'prometheus.yml'), 'global: {}\nrule_files: [a.yml]\n');
      const files = await ruleFiles(dir);
      expect(files).toEqual([join(dir, 'a.yml')]);
      expect((await ruleQueries(files)).map((r) => [r.key, r.expr, r.templateLabels])).toEqual([
        ['alert A', 'up == 0', ['instance', 'job']],
        ['record job:up:sum', 'sum by (job) (up)', []],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ops - grouping labels of an expression', () => {
  it('finds by, without, on, ignoring and group_left labels outside strings', () => {
    expect(
      groupingLabels('histogram_quantile(0.99, sum by (le, region) (rate(x{a="by (fake)"}[5m]))) / on(region) group_left(network) sum without (instance) (y) and ignoring (code) z and on() w'),
    ).toEqual(['code', 'instance', 'le', 'network', 'region']);
  });
});
