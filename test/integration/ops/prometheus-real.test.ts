/**
 * A real Prometheus (Debian's `prometheus` server) scrapes a running tapflow — every role in this
 * process, metrics on a free port — while a simulated fleet sends taps with bad events among
 * them: malformed taps, rejected taps of several reasons (hotlist, unlisted venue, replayed QR
 * codes, impossible travel, broken MACs), a re-sent tap, an offline batch, a skewed clock, a
 * terminal with a wrong secret, two medical claims and a poison message on the bus. Then every
 * PromQL expression of every dashboard panel and of every rule in prometheus/ is evaluated through
 * Prometheus's HTTP API, after Grafana's variables are substituted the way Grafana does
 * (test/support/grafana-promql.ts). The test fails on:
 * - a syntax or evaluation error;
 * - a metric name no scraped target exposes (not even its HELP/TYPE);
 * - an expression that returns no series, unless it is listed below as empty by design (why);
 *   alert conditions are checked with their comparisons made `bool`, so that a wrong label
 *   value or metric in an alert that does not fire is still caught;
 * - a rule whose evaluation by Prometheus fails (rules API health "err");
 * - a `by`/`on`/`without`/`ignoring` label that none of the expression's metrics carries, or a
 *   panel legend's {{label}} that its series lack;
 * - an alert whose templates print a label ({{ $labels.x }}) its series do not carry.
 * Dashboards and rules are read when the test runs: new panels and rules are checked without
 * changing this file. It prints one line per expression (dashboard / panel / status).
 */
import * as grpc from '@grpc/grpc-js';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { startTestPrometheus, type InstantResult, type TestPrometheus } from '../../support/prometheus.js';
import { findPrometheus, promtoolInstallHelp, TEST_PROMETHEUS_BIN_ENV } from '../../support/promtool.js';
import {
  boolForm,
  dashboardQueries,
  groupingLabels,
  interpolate,
  parseGrafanaDuration,
  queryIntervals,
  readDashboards,
  relativeRangeMs,
  ruleFiles,
  ruleQueries,
  variableQuery,
  variableValue,
  type GrafanaDashboard,
  type VariableValue,
} from '../../support/grafana-promql.js';
import { metricNamesIn } from './metric-names.js';
import { TapGenerator } from '../../../src/demo/generator.js';
import { loadVenueDirectory } from '../../../src/domain/network/index.js';
import { parseKeyFile } from '../../../src/domain/card/keys.js';
import { tokenize } from '../../../src/domain/card/token.js';
import { trustFilePath } from '../../../src/validate/trust.js';
import { putHotlistEntry } from '../../../src/validate/data-store.js';
import { demoTerminalSecret } from '../../../src/ingest/terminals.js';
import { TapStatus, type Tap, type TapAck } from '../../../src/gen/tapflow/v1/ingest.js';
import { TJ_COUNTER, claim, settleClaim, signClaimsWith } from '../claims/grpc-claims.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DASHBOARDS = join(ROOT, 'grafana', 'dashboards');
const PROMETHEUS_DIR = join(ROOT, 'prometheus');

/** The test Prometheus's scrape interval, and the Grafana data source's "Scrape interval" that goes with it. */
const SCRAPE_INTERVAL = '1s';
/** Scrapes of tapflow before the expressions are evaluated (rate windows need several points). */
const MIN_SCRAPES = 20;

/**
 * Expressions that return no series in this run by design, by key ("dashboard / panel / refId",
 * or "alert Name" for an alert's condition with its thresholds made `bool`), and why.
 */
const EMPTY_BY_DESIGN: Record<string, string> = {
  'alert TapflowIngestUnavailable': 'JetStream stays reachable: no tap is refused with TF_BUS_UNAVAILABLE',
  'alert TapflowIngestBackpressure': 'ingest is not overloaded and no stream is full: nothing is refused with TF_INGEST_OVERLOADED or TF_BUS_STREAM_FULL',
  'alert TapflowRetriesExhausted': 'no dependency stays unavailable, so no message runs out of deliveries (TF_RETRIES_EXHAUSTED)',
  'alert TapflowBatchesFailing': 'bus and store stay up: no batch fails as a whole (tapflow_batch_failures_total has no series)',
  'alert TapflowRoleGone': 'every role that reported is still running',
};

/** Alert conditions whose outcome in this run is known: the condition holds (fires) or not (quiet). */
const ALERT_OUTCOME: Record<string, { fires: boolean; why: string }> = {
  TapflowDeadLetters: { fires: true, why: 'a poison message was dead-lettered by the validator' },
  TapflowLedgerImbalance: { fires: false, why: 'every settlement posts balanced ledger entries' },
  TapflowNoTaps: { fires: false, why: 'the fleet sends taps until the end' },
};

let p: TestPipeline;
let prom: TestPrometheus;
let fleet: { stats: FleetStats; stop(): Promise<void> } | undefined;

interface FleetStats {
  sent: number;
  acks: Record<string, number>;
}

/** The simulated fleet (src/demo/generator.ts) with a large share of bad events, until stopped. */
async function startFleet(pipeline: TestPipeline, ratePerS: number): Promise<{ stats: FleetStats; stop(): Promise<void> }> {
  const cfg = pipeline.cfg;
  const keys = parseKeyFile(readFileSync(trustFilePath(cfg), 'utf8'), trustFilePath(cfg));
  const gen = new TapGenerator({
    venues: loadVenueDirectory(cfg.TAPFLOW_TARIFF_DIR),
    keys,
    cards: 3000,
    terminalsPerGroup: 2,
    seed: 1234,
    firstSeq: Date.now(),
    bad: { hotlisted: 0.05, unlistedVenue: 0.05, malformed: 0.03, qrReplay: 0.04, impossibleTravel: 0.03 },
  });
  for (const c of gen.pickHotlisted(30)) {
    await putHotlistEntry(pipeline.app.ctx.buckets.hotlist, { cardToken: tokenize(pipeline.app.ctx.keys.tokenKey, 'card', c.number), reason: 'LOST', since: Date.now(), note: 'prometheus test' });
  }
  const fleetKey = pipeline.app.ctx.keys.fleetKey;
  const md = (terminalId: string) => {
    const m = new grpc.Metadata();
    m.set('x-terminal-id', terminalId);
    m.set('x-terminal-secret', demoTerminalSecret(fleetKey, terminalId));
    return m;
  };
  const stats: FleetStats = { sent: 0, acks: {} };
  const streams = new Map<string, grpc.ClientDuplexStream<Tap, TapAck>>();
  const streamFor = (terminalId: string) => {
    let s = streams.get(terminalId);
    if (!s) {
      s = pipeline.client.streamTaps(md(terminalId));
      s.on('data', (a: TapAck) => {
        const k = TapStatus[a.status] ?? String(a.status);
        stats.acks[k] = (stats.acks[k] ?? 0) + 1;
      });
      s.on('error', () => {});
      streams.set(terminalId, s);
    }
    return s;
  };

  // Scripted bad events besides the generator's, once at the start.
  const nextOk = (): { terminalId: string; tap: Tap } => {
    for (;;) {
      const e = gen.next(Date.now());
      if (e.kind === 'tap' && e.expect === 'ok') return e;
    }
  };
  // A terminal re-sends a tap (DUPLICATE).
  const dup = nextOk();
  streamFor(dup.terminalId).write(dup.tap);
  streamFor(dup.terminalId).write(dup.tap);
  stats.sent += 2;
  // A clock ten minutes behind: counted as clock skew; the MAC (over the device time) no longer verifies.
  const skewed = nextOk();
  streamFor(skewed.terminalId).write({ ...skewed.tap, deviceTime: skewed.tap.deviceTime - 10 * 60_000 });
  stats.sent++;
  // An offline upload (taps received of kind "batch").
  const held = nextOk();
  await new Promise<void>((resolve, reject) =>
    pipeline.client.uploadBatch({ terminalId: held.terminalId, taps: [held.tap] }, md(held.terminalId), (err) => (err ? reject(err) : resolve())),
  );
  // A terminal with a wrong secret (refused: TF_INGEST_UNAUTHENTICATED).
  const bad = new grpc.Metadata();
  bad.set('x-terminal-id', held.terminalId);
  bad.set('x-terminal-secret', 'not-the-secret');
  await new Promise<void>((resolve) => {
    const s = pipeline.client.streamTaps(bad);
    s.on('data', () => {});
    s.on('error', () => resolve());
    s.on('end', () => resolve());
    s.write(nextOk().tap);
  });
  // Two medical claims: one genuine (settled), one with a broken chip MAC (rejected).
  signClaimsWith(pipeline.dataDir);
  await settleClaim(pipeline.client, pipeline.metadata(TJ_COUNTER), claim('PROM-OK'));
  await settleClaim(pipeline.client, pipeline.metadata(TJ_COUNTER), claim('PROM-BAD-MAC', { card: { $case: 'chip', value: { cardNumber: '110000007002', counter: 1, mac: Buffer.alloc(8, 7) } } }));
  // A poison message on the bus (not a TapBundle): dead-lettered by the validator.
  const h = natsHeaders();
  h.set('Tapflow-Origin', 'prometheus-test');
  await pipeline.app.ctx.bus.js.publish('tapflow.taps.1', Buffer.from([0x08, 0x01]), { headers: h, msgID: `prometheus-test-poison-${Date.now()}` });

  let stop = false;
  const loop = (async () => {
    let credit = 0;
    let last = Date.now();
    while (!stop) {
      const now = Date.now();
      credit = Math.min(credit + (ratePerS * (now - last)) / 1000, ratePerS);
      last = now;
      let guard = 0;
      while (credit >= 1 && guard++ < 4 * ratePerS) {
        const e = gen.next(now);
        if (e.kind === 'idle') continue;
        credit -= 1;
        streamFor(e.terminalId).write(e.tap);
        stats.sent++;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stats,
    async stop() {
      stop = true;
      await loop;
      for (const s of streams.values()) s.end();
    },
  };
}

/** A value for a line of the report: NaN and ±Inf as Prometheus prints them, numbers shortened. */
function show(v: string): string {
  const n = Number(v);
  return Number.isFinite(n) ? String(Number(n.toPrecision(4))) : v;
}

function seriesCount(r: InstantResult): number {
  if (!r.ok) return 0;
  return r.resultType === 'vector' || r.resultType === 'matrix' ? r.result.length : 1;
}

function summary(r: InstantResult): string {
  if (!r.ok) return `ERROR ${r.errorType}: ${r.error}`;
  if (r.resultType === 'vector') {
    const vals = r.result.slice(0, 3).map((s) => show(s.value[1]));
    return `${r.result.length} series${vals.length ? ` (${vals.join(', ')}${r.result.length > 3 ? ', …' : ''})` : ''}`;
  }
  if (r.resultType === 'scalar' || r.resultType === 'string') return `${r.resultType} ${show(r.result[1])}`;
  return `${r.result.length} series`;
}

beforeAll(async () => {
  const bin = process.env[TEST_PROMETHEUS_BIN_ENV] || (await findPrometheus());
  if (!bin) throw new Error(promtoolInstallHelp('prometheus'));
  p = await startTestPipeline();
  // The Prometheus configuration for a local all-in-one tapflow, pointed at this one, scraping
  // every second, with every rule file of prometheus/.
  const local = parse(await readFile(join(PROMETHEUS_DIR, 'prometheus.local.yml'), 'utf8')) as {
    global: Record<string, unknown>;
    scrape_configs: { job_name: string; static_configs: { targets: string[]; labels?: Record<string, string> }[] }[];
  };
  const scrape = local.scrape_configs.map((s) => ({ ...s, static_configs: s.static_configs.map((c) => ({ ...c, targets: [`127.0.0.1:${p.app.metricsPort}`] })) }));
  prom = await startTestPrometheus({
    bin,
    config: {
      global: { ...local.global, scrape_interval: SCRAPE_INTERVAL, scrape_timeout: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
      rule_files: await ruleFiles(PROMETHEUS_DIR),
      scrape_configs: scrape,
    },
  });
  // Claims are answered once the settler owns its partitions.
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.some((v) => v.labels.role === 'settler' && v.value === p.cfg.TAPFLOW_PARTITIONS), 30_000, 'settler partitions');
  fleet = await startFleet(p, 25);
  // Enough scrapes for the rate windows, and the poison message dead-lettered.
  const end = Date.now() + 90_000;
  for (;;) {
    const r = await prom.query(`min(sum_over_time(up{job="tapflow"}[1m])) >= ${MIN_SCRAPES} and on() sum(tapflow_dead_letters_total) > 0 and on() sum(tapflow_claim_decisions_total) >= 2`);
    if (seriesCount(r) > 0) break;
    if (Date.now() > end) throw new Error(`Prometheus has not got ${MIN_SCRAPES} scrapes of tapflow with the dead letter and both claims within 90 s:\n${prom.output()}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}, 150_000);

afterAll(async () => {
  await fleet?.stop();
  await prom?.stop();
  await p?.stop();
});

describe('prometheus - a real Prometheus scraping a running tapflow', () => {
  it('the Grafana data source scrape interval is the one Prometheus scrapes with', async () => {
    // $__rate_interval is 4 scrape intervals only when the data source knows the real one.
    const ds = parse(await readFile(join(ROOT, 'grafana', 'provisioning', 'datasources', 'tapflow.yml'), 'utf8')) as { datasources: { type: string; jsonData?: { timeInterval?: string } }[] };
    const promDs = ds.datasources.find((d) => d.type === 'prometheus');
    for (const file of ['prometheus.yml', 'prometheus.local.yml']) {
      const cfg = parse(await readFile(join(PROMETHEUS_DIR, file), 'utf8')) as { global: { scrape_interval: string } };
      expect(parseGrafanaDuration(promDs?.jsonData?.timeInterval ?? '15s'), file).toBe(parseGrafanaDuration(cfg.global.scrape_interval));
    }
  });

  it('scrapes tapflow and evaluates every rule without errors', async () => {
    const targets = await prom.targets();
    expect(targets.map((t) => t.labels.job)).toEqual(['tapflow']);
    // Scrapes succeed (a rare one may time out on a loaded machine: the roles serve /metrics
    // from the event loop they work on).
    const up = await prom.query('avg_over_time(up{job="tapflow"}[1m])');
    expect(up.ok && up.resultType === 'vector' && up.result.length === 1, summary(up)).toBe(true);
    expect(Number((up as { result: { value: [number, string] }[] }).result[0]!.value[1]), `share of successful scrapes; last error: ${targets[0]?.lastError}`).toBeGreaterThanOrEqual(0.9);
    const groups = await prom.rules();
    const files = await ruleFiles(PROMETHEUS_DIR);
    expect(new Set(groups.map((g) => g.file))).toEqual(new Set(files));
    const rules = groups.flatMap((g) => g.rules.map((r) => ({ ...r, group: g.group })));
    expect(rules.length).toBe((await ruleQueries(files)).length);
    const lines: string[] = [];
    for (const r of rules) {
      lines.push(`[prometheus] rule ${r.group} / ${r.name}: health ${r.health}${r.state ? `, ${r.state}` : ''}${r.lastError ? ` — ${r.lastError}` : ''}`);
    }
    console.log(lines.join('\n'));
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`)).toEqual([]);
  });

  it('every PromQL expression of every dashboard and alert rule parses, uses exposed metrics and returns series', async () => {
    const dashboards = await readDashboards(DASHBOARDS);
    const queries = dashboardQueries(dashboards);
    const rules = await ruleQueries(await ruleFiles(PROMETHEUS_DIR));
    expect(queries.length).toBeGreaterThan(30);
    expect(rules.length).toBeGreaterThanOrEqual(10);
    const at = Date.now() / 1000;
    const present = new Set(await prom.metricNames());
    const declared = new Set(await prom.metadataNames());
    const exposed = (name: string) => present.has(name) || declared.has(name) || declared.has(name.replace(/_(bucket|sum|count|created)$/, ''));

    const problems: string[] = [];
    const lines: string[] = [];
    const seenKeys = new Set<string>();
    const check = async (key: string, label: string, expr: string) => {
      seenKeys.add(key);
      const names = metricNamesIn(expr);
      const unknown = names.filter((n) => !exposed(n));
      if (unknown.length > 0) problems.push(`${label}: unknown metric ${unknown.join(', ')} in ${expr}`);
      // Grouping and matching labels must be labels of the metrics (a misspelt `by (regoin)`
      // still returns a series, with the label empty). Labels made by label_replace/label_join
      // appear as strings in the expression and are skipped.
      const withSeries = names.filter((n) => present.has(n));
      const quoted = new Set([...expr.matchAll(/"([^"]*)"/g)].map((m) => m[1]!));
      for (const l of groupingLabels(expr).filter((x) => !quoted.has(x))) {
        if (withSeries.length === 0) break;
        const carried = await prom.query(`count({__name__=~"${withSeries.join('|')}", ${l}!=""})`, at);
        if (seriesCount(carried) === 0) problems.push(`${label}: groups or matches by label "${l}", which none of ${withSeries.join(', ')} carries: ${expr}`);
      }
      const r = await prom.query(expr, at);
      if (!r.ok) {
        problems.push(`${label}: ${r.errorType}: ${r.error} in ${expr}`);
        return { r, status: `ERROR ${r.error}` };
      }
      const n = seriesCount(r);
      const why = EMPTY_BY_DESIGN[key];
      if (n === 0 && !why) problems.push(`${label}: no series, and not listed as empty by design: ${expr}`);
      return { r, status: n === 0 && why ? `empty by design: ${why}` : `${summary(r)}${why ? ` (listed as empty by design: ${why})` : ''}` };
    };

    // Template variables: the values their queries offer now (label_values through the series API).
    const variablesOf = async (d: GrafanaDashboard, label: string): Promise<Map<string, VariableValue>> => {
      const vars = new Map<string, VariableValue>();
      for (const v of d.templating?.list ?? []) {
        const q = variableQuery(v);
        let offered: string[];
        if (v.type === 'custom') offered = (v.options?.length ? v.options.map((o) => String(o.value)) : q.split(/\s*,\s*/)).filter((x) => x !== '$__all');
        else if (v.type === 'constant' || v.type === 'textbox') offered = [q];
        else if (v.type === 'query' && (v.datasource === undefined || v.datasource === null || /prometheus/i.test(JSON.stringify(v.datasource)))) {
          const m = /^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$/.exec(q);
          const qr = /^\s*query_result\((.+)\)\s*$/.exec(q);
          if (m) {
            const r = await prom.query(`group by (${m[2]}) (${m[1] ?? `{${m[2]}!=""}`})`, at);
            offered = r.ok && r.resultType === 'vector' ? r.result.map((s) => s.metric[m[2]!]!).filter(Boolean).sort() : [];
            if (!r.ok) problems.push(`${label}: variable ${v.name}: ${r.error}`);
          } else if (qr) {
            const r = await prom.query(qr[1]!, at);
            offered = r.ok && r.resultType === 'vector' ? r.result.map((s) => JSON.stringify(s.metric)) : [];
            if (!r.ok) problems.push(`${label}: variable ${v.name}: ${r.error}`);
          } else throw new Error(`${label}: variable ${v.name}: query "${q}" is not supported by this test (label_values or query_result)`);
        } else if (v.type === 'datasource' || v.type === 'interval' || v.type === 'adhoc') continue;
        else throw new Error(`${label}: variable ${v.name} of type ${v.type} is not supported by this test`);
        lines.push(`[prometheus] ${label} / variable $${v.name}: ${offered.length} values`);
        if (offered.length === 0) {
          problems.push(`${label}: variable $${v.name} offers no value (${q})`);
          offered = [''];
        }
        vars.set(v.name, variableValue(v, offered));
      }
      return vars;
    };

    for (const { file, dashboard } of dashboards) {
      const rangeMs = relativeRangeMs(dashboard.time?.from, dashboard.time?.to);
      const variables = await variablesOf(dashboard, dashboard.title);
      for (const q of queries.filter((x) => x.file === file)) {
        let expr: string;
        try {
          expr = interpolate(q.expr, queryIntervals(q.panel, q.target, { rangeMs, dsScrapeInterval: SCRAPE_INTERVAL, variables }), variables);
        } catch (err) {
          problems.push(`${q.key}: ${(err as Error).message}`);
          lines.push(`[prometheus] ${q.key}: ERROR ${(err as Error).message}`);
          continue;
        }
        const { r, status } = await check(q.key, q.key, expr);
        // The legend's {{label}}s must be labels of the series it names.
        const legend = [...(q.target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
        if (r.ok && r.resultType === 'vector') {
          for (const l of legend) {
            const without = r.result.filter((x) => !x.metric[l]);
            if (without.length > 0) problems.push(`${q.key}: legend "${q.target.legendFormat}" uses {{${l}}}, which ${without.length} of its ${r.result.length} series lack (${JSON.stringify(without[0]!.metric)})`);
          }
        }
        lines.push(`[prometheus] ${q.key}: ${status}`);
      }
    }
    for (const rule of rules) {
      const plain = await prom.query(rule.expr, at);
      if (!plain.ok) problems.push(`${rule.key}: ${plain.errorType}: ${plain.error}`);
      const outcome = rule.kind === 'alert' ? ALERT_OUTCOME[rule.name] : undefined;
      if (outcome && plain.ok && (seriesCount(plain) > 0) !== outcome.fires) {
        problems.push(`${rule.key}: expected ${outcome.fires ? 'to fire' : 'to stay quiet'} (${outcome.why}) but got ${summary(plain)}`);
      }
      const looked = rule.kind === 'alert' ? boolForm(rule.expr) : undefined;
      const { r, status } = await check(rule.key, `${rule.key} (${looked ? 'thresholds as bool' : 'as written'})`, looked ?? rule.expr);
      // The labels its summary, description and labels print must be on the series it yields.
      if (r.ok && r.resultType === 'vector') {
        for (const l of rule.templateLabels) {
          const without = r.result.filter((x) => !x.metric[l]);
          if (without.length > 0) problems.push(`${rule.key}: its templates use $labels.${l}, which ${without.length} of its ${r.result.length} series lack (${JSON.stringify(without[0]!.metric)})`);
        }
      }
      const state = rule.kind === 'alert' ? (plain.ok && seriesCount(plain) > 0 ? `fires (${summary(plain)})` : 'quiet') : summary(plain);
      lines.push(`[prometheus] ${rule.key}: ${state}; ${looked ? 'without thresholds' : 'as written'}: ${status}`);
    }
    const acks = Object.entries(fleet?.stats.acks ?? {}).map(([k, n]) => `${k} ${n}`).join(', ');
    console.log(`[prometheus] fleet so far: ${fleet?.stats.sent ?? 0} taps sent, acks: ${acks}; ${present.size} metric names with series\n${lines.join('\n')}`);
    expect(Object.keys(EMPTY_BY_DESIGN).filter((k) => !seenKeys.has(k)), 'listed as empty by design, but no such panel query or alert').toEqual([]);
    expect(Object.keys(ALERT_OUTCOME).filter((a) => !rules.some((r) => r.kind === 'alert' && r.name === a)), 'expected outcomes of alerts that do not exist').toEqual([]);
    expect(problems).toEqual([]);
  });
});
