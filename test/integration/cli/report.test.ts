/**
 * `tapflow report`, `clearing report` and `entries` over a time range, as tables, JSON and CSV,
 * through the real CLI (a child process) reading the embedded ClickHouse a pipeline run filled:
 * the scripted run of test/support/dashboard-scenario.ts, with taps at exactly the range's ends.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { expectedFlags, runDashboardScenario, type DashboardScenario } from '../../support/dashboard-scenario.js';
import { parseCsv } from '../../../src/cli/tabular.js';
import { formatTime } from '../../../src/cli/time-range.js';
import { businessDay } from '../../../src/domain/settle/time.js';
import { REPORT_VIEW_NAMES } from '../../../src/store/report-views.js';
import { runCli } from './run-cli.js';

const MIN = 60_000;
/** An instant as ISO 8601 with the +08:00 offset, as a user in Beijing would type it. */
const iso = formatTime;

let p: TestPipeline;
let sc: DashboardScenario;
let env: Record<string, string>;
/** The outputs of {@link viaRunning}'s commands read through the running pipeline. */
const answeredByRunning = new Map<string, string>();
const viaRunning = () => [
  ['report', '--from', iso(sc.rangeFrom), '--to', iso(sc.rangeTo), '--format', 'json'],
  ['report', '--from', iso(sc.rangeFrom), '--to', iso(sc.rangeTo), '--view', 'medical', '--format', 'csv'],
  ['clearing', 'report', '--from', iso(sc.rangeFrom), '--to', iso(sc.rangeTo), '--format', 'json'],
  ['entries', '--from', iso(sc.rangeFrom), '--to', iso(sc.rangeTo), '--format', 'csv'],
];

interface ReportJson {
  taps: number;
  range: { fromMs: number; toMs: number };
  views: Record<string, Record<string, unknown>[]>;
}

beforeAll(async () => {
  p = await startTestPipeline();
  sc = await runDashboardScenario(p);
  // While it runs, the commands read through its metrics port (the data dir is the process's).
  // They are given an empty data dir of their own: a figure read from a store there would be 0.
  const through = { TAPFLOW_DATA_DIR: join(p.dataDir, 'elsewhere'), NATS_URL: p.nats.url, TAPFLOW_NATS_AUTOSTART: 'false', TAPFLOW_METRICS_PORT: String(p.app.metricsPort) };
  for (const args of viaRunning()) {
    const r = await runCli(args, through);
    if (r.code !== 0) throw new Error(`tapflow ${args.join(' ')} through the running process exited ${r.code}: ${r.stderr}`);
    answeredByRunning.set(args.join(' '), r.stdout);
  }
  // Stop the pipeline but keep its data dir: the CLI opens the store itself, as after a demo run.
  p.client.close();
  await p.app.shutdown('test done');
  await p.nats.stop();
  env = { TAPFLOW_DATA_DIR: p.dataDir, NATS_URL: p.nats.url, TAPFLOW_NATS_AUTOSTART: 'false', TAPFLOW_METRICS_PORT: '1' };
}, 180_000);

afterAll(async () => {
  if (p) await rm(p.dataDir, { recursive: true, force: true });
});

const cli = async (args: string[]) => {
  const r = await runCli(args, env);
  if (r.code !== 0) throw new Error(`tapflow ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};
const range = () => ['--from', iso(sc.rangeFrom), '--to', iso(sc.rangeTo)];
const inRange = (ms: number, from = sc.rangeFrom, to = sc.rangeTo) => ms >= from && ms < to;

describe('cli - report over a time range', { timeout: 60_000 }, () => {
  it('reports the events of [--from, --to) by device time: the views and the summary agree with the run', async () => {
    const r = JSON.parse(await cli(['report', ...range(), '--format', 'json'])) as ReportJson;
    const taps = sc.taps.filter((t) => inRange(t.deviceTime));
    expect(r.range).toMatchObject({ fromMs: sc.rangeFrom, toMs: sc.rangeTo });
    expect(r.taps).toBe(taps.length);
    expect(Object.keys(r.views)).toEqual(REPORT_VIEW_NAMES);
    // Throughput: per hour by default; the range is one hour, so one bucket per verdict.
    const verdicts = (v: string) => taps.filter((t) => t.verdict === v).length;
    expect(r.views.throughput).toEqual(['ACCEPTED', 'REJECTED'].map((verdict) => ({ time: iso(sc.rangeFrom).slice(0, 19).replace('T', ' '), verdict, taps: verdicts(verdict) })));
    const reasons = new Map<string, number>();
    for (const t of taps) if (t.verdict === 'REJECTED') reasons.set(t.reason, (reasons.get(t.reason) ?? 0) + 1);
    expect(r.views['rejects-by-reason']).toEqual([...reasons].map(([reason, rejects]) => ({ reason, rejects })).sort((a, b) => b.rejects - a.rejects || a.reason.localeCompare(b.reason)));
    const flags = expectedFlags(taps);
    expect(r.views['risk-flags']!.map((f) => `${f.rule_id} ${f.flags}`).sort()).toEqual([...new Set(flags.map((f) => f.ruleId))].map((id) => `${id} ${flags.filter((f) => f.ruleId === id).length}`).sort());
    // Medical splits by business day: both claims of the run (their day is the range's).
    expect(r.views.medical!.map((m) => [m.insured_region, m.treatment_region, m.claims_settled, m.acct_pay_fen])).toEqual(sc.claims.map((c) => [c.insuredRegion, c.treatmentRegion, 1, c.result.acctPay]));
    expect(r.views.clearing!.length).toBeGreaterThan(0);
  });

  it('includes a tap at exactly --from and leaves out one at exactly --to', async () => {
    // The run's first tap is at exactly rangeFrom; the palace-museum entry at exactly rangeTo.
    expect(sc.taps.filter((t) => t.deviceTime === sc.rangeFrom)).toHaveLength(1);
    expect(sc.taps.filter((t) => t.deviceTime === sc.rangeTo)).toHaveLength(1);
    const before = JSON.parse(await cli(['report', '--from', iso(sc.rangeFrom - MIN), '--to', iso(sc.rangeFrom), '--json'])) as ReportJson;
    expect(before.taps).toBe(0);
    const first = JSON.parse(await cli(['report', '--from', iso(sc.rangeFrom), '--to', iso(sc.rangeFrom + 1), '--json'])) as ReportJson;
    expect(first.taps).toBe(1);
    const last = JSON.parse(await cli(['report', '--from', String(sc.rangeTo), '--to', String(sc.rangeTo + 1), '--json'])) as ReportJson;
    expect(last.taps).toBe(1);
    expect(last.views.throughput).toEqual([{ time: iso(sc.rangeTo).slice(0, 19).replace('T', ' '), verdict: 'ACCEPTED', taps: 1 }]);
  });

  it('writes each view as CSV that reads back as the JSON', async () => {
    const json = JSON.parse(await cli(['report', ...range(), '--format', 'json'])) as ReportJson;
    const check = (view: string, csv: string) => {
      const [header, ...records] = parseCsv(csv);
      const rows = json.views[view]!;
      if (rows.length > 0) expect(header, view).toEqual(Object.keys(rows[0]!));
      expect(records.map((rec) => Object.fromEntries(header!.map((h, i) => [h, rec[i]]))), view).toEqual(rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, String(v)]))));
      // Fen are integers in CSV, never yuan.
      for (const rec of records) for (const [i, h] of header!.entries()) if (/fen|receivable|payable|^net$/.test(h)) expect(rec[i], `${view}.${h}`).toMatch(/^-?\d+$/);
    };
    // Without --view: one section per view, each after a "# <view>: …" line, a blank line between.
    const all = await cli(['report', ...range(), '--format', 'csv']);
    const sections = all.split(/^# /m).slice(1);
    expect(sections.map((x) => x.split(':')[0])).toEqual(REPORT_VIEW_NAMES);
    for (const x of sections) check(x.split(':')[0]!, x.slice(x.indexOf('\r\n') + 2).replace(/\r\n\r\n$/, '\r\n'));
    // With --view: that view alone, a plain CSV document.
    for (const view of ['rejects-by-venue', 'medical']) {
      const csv = await cli(['report', ...range(), '--view', view, '--format', 'csv']);
      expect(csv.endsWith('\r\n'), view).toBe(true);
      expect(csv.startsWith('#'), view).toBe(false);
      check(view, csv);
    }
  });

  it('prints the views as tables with the range', async () => {
    const out = await cli(['report', ...range()]);
    expect(out).toContain(`from ${iso(sc.rangeFrom).replace('+08:00', '').slice(0, 19)}`);
    expect(out).toMatch(/rejected taps by reason \[view rejects-by-reason; tapflow-risk \/ Rejects by reason \(ClickHouse\)\]:\n\s+reason\s+rejects\n\s+VENUE_NOT_LISTED\s+3/);
    expect(out).toMatch(/medical splits by insured and treating region/);
  });

  it('clearing report and entries take the same range, and write CSV', async () => {
    const day = businessDay(sc.rangeFrom);
    const byDay = JSON.parse(await cli(['clearing', 'report', '--day', day, '--json'])) as { report: { positions: Record<string, unknown>[]; accounts: { account: string; debitFen: number }[] } };
    const byRange = JSON.parse(await cli(['clearing', 'report', ...range(), '--json'])) as typeof byDay;
    expect(byRange.report).toEqual(byDay.report); // the range lies in that business day
    const csv = parseCsv(await cli(['clearing', 'report', '--day', day, '--format', 'csv', '--view', 'positions']));
    expect(csv[0]).toEqual(['debtor', 'creditor', 'amount_fen']);
    expect(csv.slice(1)).toEqual(byDay.report.positions.map((x) => [String(x.debtor), String(x.creditor), String(x.amountFen)]));
    expect(csv.length).toBeGreaterThan(1);

    // Entries: hours that start in the range; the palace-museum entry at exactly --to is not in it.
    const entries = parseCsv(await cli(['entries', ...range(), '--format', 'csv']));
    expect(entries[0]).toEqual(['hour', 'venueId', 'entries', 'crossRegion']);
    const want = sc.taps.filter((t) => inRange(t.deviceTime) && t.scene === 'CULTURE' && t.verdict === 'ACCEPTED');
    expect(entries.slice(1).reduce((n, r) => n + Number(r[2]), 0)).toBe(want.length);
    expect(entries.slice(1).map((r) => r[1])).not.toContain('museum:BJ:palace-museum');
  });

  it('answers the same through a running tapflow (its metrics port) as from the store', async () => {
    expect(answeredByRunning.size).toBe(4);
    for (const args of viaRunning()) expect(await cli(args), args.join(' ')).toBe(answeredByRunning.get(args.join(' ')));
  });

  it('refuses a bad or contradictory range with a message naming the options', async () => {
    const cases: [string[], RegExp][] = [
      [['report', '--day', '2026-03-10', '--from', '2026-03-10'], /--day cannot be combined with --from or --to/],
      [['entries', '--day', '2026-03-10', '--to', '2026-03-11'], /--day cannot be combined with --from or --to/],
      [['clearing', 'report', '--from', '2026-03-11', '--to', '2026-03-10'], /--to \(2026-03-10T00:00:00.000\+08:00\) must be after --from \(2026-03-11T00:00:00.000\+08:00\)/],
      [['report', '--from', '2026-03-10T10:00', '--to', '2026-03-10T10:00'], /must be after --from/],
      [['report', '--from', 'yesterday'], /option '--from <time>' argument 'yesterday' is invalid/],
      [['report', '--to', '2026-02-30'], /option '--to <time>' argument '2026-02-30' is invalid/],
      [['report', '--since', '2026-03-10', '--to', '2026-03-11'], /--since \(ingest time\) cannot be combined/],
      [['report', '--json', '--format', 'csv'], /--json and --format csv contradict/],
      [['report', '--view', 'nope'], /option '--view <names>' argument 'nope' is invalid/],
      [['report', '--bucket', '7s'], /option '--bucket <interval>' argument '7s' is invalid/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args, env);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});
