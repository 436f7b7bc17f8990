/**
 * Commands that read results: the main aggregates, culture entries and the daily clearing report
 * from ClickHouse. While `tapflow start` runs with the embedded engine, its data dir belongs to
 * that process, so these ask the running process (its metrics port serves /summary, /entries and
 * /clearing); otherwise they open the store themselves. The store code is loaded only then.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Config } from '../config/config.js';
import type { ClearingReport, ClickHouseEngine, LedgerBalance, RegionPart, ReportView, StoreSummary, SummaryFilter, VenueHourEntries } from '../store/mod.js';
import { REPORT_VIEW_NAMES, type ReportViewName } from '../domain/report-views.js';
import type { Interval } from '../store/panels.js';
import { businessDay } from '../domain/settle/time.js';
import { Regions } from '../domain/types.js';
import { instant, listOf, serverPort } from './options.js';
import { businessDays, describeRange, formatTime, rangeOptions, resolveRange, type RangeFlags } from './time-range.js';
import { formatOptions, outputFormat, toCsv, toTable, type OutputFormat } from './tabular.js';

async function fromRunning(cfg: Config, path: string): Promise<unknown | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${cfg.TAPFLOW_METRICS_PORT}${path}`, { signal: AbortSignal.timeout(3000) });
    if (res.status === 404) return undefined;
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
    return await res.json();
  } catch (err) {
    if ((err as Error).message.startsWith(path)) throw err;
    return undefined; // nothing running there
  }
}

async function withStore<T>(cfg: Config, fn: (e: ClickHouseEngine) => Promise<T>): Promise<T> {
  const { openStore } = await import('../store/open.js');
  let engine: ClickHouseEngine;
  try {
    engine = await openStore(cfg);
  } catch (err) {
    throw new Error(`cannot open ClickHouse (${cfg.CLICKHOUSE_URL ?? `embedded, ${cfg.TAPFLOW_DATA_DIR}/chdb`}): ${(err as Error).message}. If tapflow is running, pass its --metrics-port so the report is read through it.`);
  }
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

/** The configuration of a report command: the environment, and --metrics-port over it. */
async function reportConfig(flags: { metricsPort?: number }): Promise<Config> {
  const { loadConfig } = await import('../config/config.js');
  return loadConfig(process.env, { TAPFLOW_METRICS_PORT: flags.metricsPort });
}

const fen = (n: number) => `${n < 0 ? '-' : ''}¥${(Math.abs(n) / 100).toFixed(2)}`;

export { formatTime };

/**
 * Each region's transit fares (RAIL and BUS: the sum of its networks above) with the parts they
 * are made of, and its culture entries.
 */
export function formatRegionFares(parts: readonly RegionPart[]): string[] {
  const lines = ['fares by region (RAIL and BUS), and what they are made of:'];
  const section = (scenes: readonly string[]) =>
    Regions.map((region) => {
      const mine = parts.filter((p) => p.terminalRegion === region && scenes.includes(p.scene));
      const byKind = new Map<string, { n: number; fen: number }>();
      for (const p of mine) {
        const k = byKind.get(p.kind) ?? { n: 0, fen: 0 };
        byKind.set(p.kind, { n: k.n + p.settlements, fen: k.fen + p.amountFen });
      }
      const total = mine.reduce((n, p) => n + p.amountFen, 0);
      const made = [...byKind].filter(([, k]) => k.fen !== 0).map(([kind, k]) => `${kind} ${fen(k.fen)} (${k.n})`);
      return `  ${region} ${fen(total).padStart(14)}${made.length > 0 ? ` = ${made.join(' + ')}` : ''}`;
    });
  lines.push(...section(['RAIL', 'BUS']), 'culture entries by region:', ...section(['CULTURE']));
  return lines;
}

/** The main aggregates as text. */
export function formatSummary(s: StoreSummary): string {
  const lines: string[] = [];
  if (s.sinceMs !== undefined) lines.push(`events ingested since ${formatTime(s.sinceMs)}`);
  const pct = (n: number) => (s.taps > 0 ? ((100 * n) / s.taps).toFixed(1) : '0.0');
  lines.push(`taps decided: ${s.taps}  (accepted ${s.byVerdict.ACCEPTED ?? 0} = ${pct(s.byVerdict.ACCEPTED ?? 0)}%, rejected ${s.byVerdict.REJECTED ?? 0} = ${pct(s.byVerdict.REJECTED ?? 0)}%)`);
  if (s.topReasons.length > 0) {
    lines.push('top rejection reasons:');
    for (const r of s.topReasons) lines.push(`  ${r.reason.padEnd(24)} ${String(r.taps).padStart(8)}`);
  }
  lines.push('fares by region and network:');
  for (const f of s.fares) lines.push(`  ${f.terminalRegion} ${f.network.padEnd(12)} ${String(f.settlements).padStart(8)} settlements  ${fen(f.amountFen).padStart(14)}`);
  lines.push(...formatRegionFares(s.regionParts));
  lines.push('settlements by kind:');
  for (const k of s.settlementsByKind) lines.push(`  ${k.kind.padEnd(12)} ${String(k.settlements).padStart(8)}  ${fen(k.amountFen).padStart(14)}`);
  lines.push(`ledger: ${s.ledger.entries} entries, debits ${fen(s.ledger.debitFen)}, credits ${fen(s.ledger.creditFen)} ${s.ledger.debitFen === s.ledger.creditFen ? '(balanced)' : '(NOT BALANCED)'}`);
  if (s.riskFlags.length > 0) {
    lines.push('risk flags:');
    for (const r of s.riskFlags) lines.push(`  ${r.ruleId.padEnd(32)} ${r.severity.padEnd(8)} ${String(r.flags).padStart(8)}`);
  }
  return lines.join('\n');
}

/** A day's clearing report as text. */
export function formatClearing(r: ClearingReport, b?: LedgerBalance): string {
  const days = r.lastBusinessDay === undefined || r.lastBusinessDay === r.businessDay ? `business day ${r.businessDay}` : `business days ${r.businessDay} to ${r.lastBusinessDay}`;
  const lines: string[] = [`clearing report for ${days} (Asia/Shanghai)`, '', `${'account'.padEnd(44)} ${'debit'.padStart(14)} ${'credit'.padStart(17)} ${'net'.padStart(17)}`];
  for (const a of r.accounts) lines.push(`${a.account.padEnd(44)} ${fen(a.debitFen).padStart(14)} ${fen(a.creditFen).padStart(17)} ${fen(a.netFen).padStart(17)}`);
  lines.push(`${'total'.padEnd(44)} ${fen(r.totals.debitFen).padStart(14)} ${fen(r.totals.creditFen).padStart(17)}   ${r.totals.balanced ? 'balanced' : 'NOT BALANCED'}`);
  lines.push('', 'net positions between regions:');
  if (r.positions.length === 0) lines.push('  none (no cross-region activity)');
  for (const p of r.positions) lines.push(`  ${p.debtor} owes ${p.creditor} ${fen(p.amountFen)}`);
  lines.push(`  per region (owed to it minus it owes): ${Object.entries(r.regionNet).map(([k, v]) => `${k} ${fen(v)}`).join(', ')}`);
  if (b) lines.push('', `ledger overall: ${b.entries} entries, ${b.balanced ? 'balanced' : 'NOT BALANCED'}; settlements with unbalanced entries: ${b.unbalancedSettlements}`);
  return lines.join('\n');
}

/** --metrics-port of a running tapflow, read through instead of opening the store. */
const metricsPortOption = () => new Option('--metrics-port <port>', 'metrics port of a running tapflow (TAPFLOW_METRICS_PORT)').argParser(serverPort);

/** --bucket: throughput's interval, e.g. 15m, 1h, 1d. */
export function bucket(text: string): Interval {
  const m = /^(\d{1,4})([mhd])$/.exec(text.trim());
  const count = m ? Number(m[1]) : NaN;
  const unit = m ? ({ m: 'minute', h: 'hour', d: 'day' } as const)[m[2] as 'm' | 'h' | 'd'] : undefined;
  const max = { minute: 1440, hour: 168, day: 366 };
  if (!unit || !(count >= 1 && count <= max[unit])) throw new InvalidArgumentError('Expected an interval of minutes (1m-1440m), hours (1h-168h) or days (1d-366d), e.g. 15m or 1h.');
  return { count, unit };
}

/** A report's sections: each a named table of columns and rows. */
interface Section {
  name: string;
  heading: string;
  columns: string[];
  rows: Record<string, unknown>[];
}

/** Sections as CSV: one document when there is one, else each after a `# name: heading` line and a blank line between. */
function sectionsCsv(sections: Section[]): string {
  if (sections.length === 1) return toCsv(sections[0]!.columns, sections[0]!.rows);
  return sections.map((s) => `# ${s.name}: ${s.heading}\r\n${toCsv(s.columns, s.rows)}`).join('\r\n');
}

const write = (text: string): void => {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
};

/** The views of a report as text: heading, where the SQL comes from, the table. */
export function formatViews(views: readonly ReportView[]): string[] {
  const lines: string[] = [];
  for (const v of views) lines.push('', `${v.heading} [view ${v.name}; ${v.panel}]:`, ...toTable(v.columns, v.rows));
  return lines;
}

/** The JSON of a report: the summary, the range, and each view's rows by name. */
export interface ReportJson extends Partial<StoreSummary> {
  range: { from: string; to: string; fromMs: number; toMs: number; description: string };
  views: Partial<Record<ReportViewName, Record<string, unknown>[]>>;
}

export function registerReportCommands(program: Command): void {
  const report = program
    .command('report')
    .description(
      'print the key views of the dashboards from ClickHouse for a time range (by device time): taps by verdict and reason, throughput, rejects by reason and venue, risk flags by rule, fares and medical splits by region, clearing positions',
    )
    .addOption(metricsPortOption());
  for (const o of rangeOptions('every event')) report.addOption(o);
  report
    .addOption(
      new Option('--since <time>', 'only the events ingested since this time, e.g. one demo run (its closing summary gives the command): epoch ms or ISO 8601 (Asia/Shanghai when no zone); the views then start at that device time').argParser(instant),
    )
    .addOption(new Option('--view <names>', `only these views, comma-separated (no summary): ${REPORT_VIEW_NAMES.join(', ')}`).argParser(listOf(REPORT_VIEW_NAMES)))
    .addOption(new Option('--bucket <interval>', 'interval of the throughput view: 15m, 1h, 1d, …').argParser(bucket).default({ count: 1, unit: 'hour' }, '1h'));
  for (const o of formatOptions()) report.addOption(o);
  report.action(async (flags: RangeFlags & { metricsPort?: number; since?: number; view?: ReportViewName[]; bucket: Interval; format?: OutputFormat; json?: boolean }) => {
    const format = outputFormat(flags);
    if (flags.since !== undefined && (flags.day !== undefined || flags.from !== undefined || flags.to !== undefined)) {
      throw new Error('--since (ingest time) cannot be combined with --day, --from or --to (device time): give one');
    }
    const range = resolveRange(flags.since !== undefined ? { from: flags.since } : flags, undefined);
    const cfg = await reportConfig(flags);
    const views = flags.view ?? REPORT_VIEW_NAMES;
    const withSummary = flags.view === undefined;
    const filter: SummaryFilter = flags.since !== undefined ? { sinceMs: flags.since } : { ...(range.fromGiven && { fromMs: range.fromMs }), ...(range.toGiven && { toMs: range.toMs }) };
    const q = new URLSearchParams({ from: String(range.fromMs), to: String(range.toMs), bucket: `${flags.bucket.count} ${flags.bucket.unit}`, views: views.join(',') });
    const summaryQuery = new URLSearchParams(Object.fromEntries(Object.entries(filter).map(([k, v]) => [k.replace(/Ms$/, ''), String(v)])));
    let s: StoreSummary | undefined;
    let v = (await fromRunning(cfg, `/report-views?${q}`)) as ReportView[] | undefined;
    if (v) {
      if (withSummary) s = (await fromRunning(cfg, `/summary?${summaryQuery}`)) as StoreSummary;
      if (withSummary && (s?.sinceMs !== filter.sinceMs || s?.fromMs !== filter.fromMs || s?.toMs !== filter.toMs)) {
        throw new Error(`the tapflow running with metrics port ${cfg.TAPFLOW_METRICS_PORT} answered for another time range (an older version?); run the report once it has stopped (it then reads the store)`);
      }
    } else {
      ({ s, v } = await withStore(cfg, async (e) => {
        const { summary, reportViews } = await import('../store/mod.js');
        return { s: withSummary ? await summary(e, filter) : undefined, v: await reportViews(e, { fromMs: range.fromMs, toMs: range.toMs, interval: flags.bucket, views }) };
      }));
    }
    if (format === 'json') {
      const out: ReportJson = {
        ...s,
        range: { from: formatTime(range.fromMs), to: formatTime(range.toMs), fromMs: range.fromMs, toMs: range.toMs, description: describeRange(range) },
        views: Object.fromEntries(v.map((x) => [x.name, x.rows])),
      };
      return write(JSON.stringify(out, null, 2));
    }
    if (format === 'csv') return write(sectionsCsv(v));
    const lines = [`report: ${flags.since !== undefined ? `events ingested since ${formatTime(flags.since)} (views: device time from then on)` : describeRange(range)}`];
    if (s) lines.push(formatSummary(s));
    lines.push(...formatViews(v));
    write(lines.join('\n'));
  });

  const entries = program.command('entries').description('culture and tourism entries per venue and hour of a business day or a time range (hours that start in it)');
  for (const o of rangeOptions('today')) entries.addOption(o);
  entries.addOption(metricsPortOption());
  for (const o of formatOptions()) entries.addOption(o);
  entries.action(async (flags: RangeFlags & { metricsPort?: number; format?: OutputFormat; json?: boolean }) => {
    const format = outputFormat(flags);
    const range = resolveRange(flags, businessDay(Date.now()));
    const cfg = await reportConfig(flags);
    const rows = ((await fromRunning(cfg, `/entries?from=${range.fromMs}&to=${range.toMs}`)) ??
      (await withStore(cfg, async (e) => (await import('../store/mod.js')).venueEntries(e, { fromMs: range.fromMs, toMs: range.toMs })))) as VenueHourEntries[];
    if (format === 'json') return write(JSON.stringify(rows, null, 2));
    if (format === 'csv') return write(toCsv(['hour', 'venueId', 'entries', 'crossRegion'], rows as unknown as Record<string, unknown>[]));
    const lines = [`entries per venue and hour, ${describeRange(range)}`];
    if (rows.length === 0) lines.push('  none');
    for (const r of rows) lines.push(`  ${r.hour}  ${r.venueId.padEnd(40)} ${String(r.entries).padStart(6)}  (${r.crossRegion} from other regions)`);
    write(lines.join('\n'));
  });

  const clearing = program.command('clearing').description('inter-region clearing from the ledger');
  const clearingReport = clearing
    .command('report')
    .description('per-account debits and credits of a business day (or of the business days a --from/--to range touches) and the net positions between BJ, TJ and HE');
  for (const o of rangeOptions('today')) clearingReport.addOption(o);
  clearingReport.addOption(metricsPortOption());
  clearingReport.addOption(new Option('--view <names>', 'CSV: only these sections, comma-separated: accounts, positions').argParser(listOf(['accounts', 'positions'] as const)));
  for (const o of formatOptions()) clearingReport.addOption(o);
  clearingReport.action(async (flags: RangeFlags & { metricsPort?: number; view?: ('accounts' | 'positions')[]; format?: OutputFormat; json?: boolean }) => {
    const format = outputFormat(flags);
    const range = resolveRange(flags, businessDay(Date.now()));
    const { first, last } = businessDays(range);
    const cfg = await reportConfig(flags);
    const viaHttp = (await fromRunning(cfg, `/clearing?day=${first}&lastDay=${last}`)) as ClearingReport | undefined;
    if (viaHttp && (viaHttp.lastBusinessDay ?? viaHttp.businessDay) !== last) {
      throw new Error(`the tapflow running with metrics port ${cfg.TAPFLOW_METRICS_PORT} answered for another range of days (an older version?); run the report once it has stopped`);
    }
    const r = viaHttp
      ? { report: viaHttp, balance: (await fromRunning(cfg, '/ledger-balance')) as LedgerBalance }
      : await withStore(cfg, async (e) => {
          const { clearingReport, ledgerBalance } = await import('../store/mod.js');
          return { report: await clearingReport(e, first, { lastDay: last }), balance: await ledgerBalance(e) };
        });
    if (format === 'json') return write(JSON.stringify(r, null, 2));
    if (format === 'csv') {
      const sections: Section[] = [
        { name: 'accounts', heading: `ledger by account, business days ${first} to ${last}`, columns: ['account', 'entries', 'debit_fen', 'credit_fen', 'net_fen'], rows: r.report.accounts.map((a) => ({ account: a.account, entries: a.entries, debit_fen: a.debitFen, credit_fen: a.creditFen, net_fen: a.netFen })) },
        { name: 'positions', heading: `net positions between regions, business days ${first} to ${last}`, columns: ['debtor', 'creditor', 'amount_fen'], rows: r.report.positions.map((p) => ({ debtor: p.debtor, creditor: p.creditor, amount_fen: p.amountFen })) },
      ];
      return write(sectionsCsv(sections.filter((x) => !flags.view || flags.view.includes(x.name as 'accounts'))));
    }
    write(formatClearing(r.report, r.balance));
  });
}
