/**
 * Commands that read results: the main aggregates, culture entries and the daily clearing report
 * from ClickHouse. While `tapflow start` runs with the embedded engine, its data dir belongs to
 * that process, so these ask the running process (its metrics port serves /summary, /entries and
 * /clearing); otherwise they open the store themselves. The store code is loaded only then.
 */
import { Option, type Command } from 'commander';
import type { Config } from '../config/config.js';
import type { ClearingReport, ClickHouseEngine, LedgerBalance, RegionPart, StoreSummary } from '../store/mod.js';
import { businessDay } from '../domain/settle/time.js';
import { Regions } from '../domain/types.js';
import { calendarDay, instant, serverPort } from './options.js';

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

/** An instant as ISO 8601 in Asia/Shanghai with milliseconds, e.g. 2026-03-10T08:15:30.123+08:00. */
export function formatTime(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().replace('Z', '+08:00');
}

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
  const lines: string[] = [`clearing report for business day ${r.businessDay} (Asia/Shanghai)`, '', `${'account'.padEnd(44)} ${'debit'.padStart(14)} ${'credit'.padStart(17)} ${'net'.padStart(17)}`];
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
/** --day: a business day that exists; today in Asia/Shanghai by default. */
const dayOption = () => new Option('--day <YYYY-MM-DD>', 'business day (Asia/Shanghai)').argParser(calendarDay).default(businessDay(Date.now()), 'today');

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description('print the main aggregates from ClickHouse: taps by verdict and reason, fares by region and network, ledger totals, risk flags')
    .addOption(metricsPortOption())
    .addOption(
      new Option('--since <time>', 'only the events ingested since this time, e.g. one demo run (its closing summary gives the command): epoch ms or ISO 8601 (Asia/Shanghai when no zone)').argParser(
        instant,
      ),
    )
    .option('--json', 'as JSON')
    .action(async (flags: { metricsPort?: number; since?: number; json?: boolean }) => {
      const cfg = await reportConfig(flags);
      const viaHttp = (await fromRunning(cfg, flags.since === undefined ? '/summary' : `/summary?since=${flags.since}`)) as StoreSummary | undefined;
      if (viaHttp && viaHttp.sinceMs !== flags.since) {
        throw new Error(`--since: the tapflow running with metrics port ${cfg.TAPFLOW_METRICS_PORT} answered for another time range (an older version?); run the report once it has stopped (it then reads the store), or without --since`);
      }
      const s = viaHttp ?? (await withStore(cfg, async (e) => (await import('../store/mod.js')).summary(e, { sinceMs: flags.since })));
      console.log(flags.json ? JSON.stringify(s, null, 2) : formatSummary(s));
    });

  program
    .command('entries')
    .description('culture and tourism entries per venue and hour of a business day')
    .addOption(dayOption())
    .addOption(metricsPortOption())
    .option('--json', 'as JSON')
    .action(async (flags: { day: string; metricsPort?: number; json?: boolean }) => {
      const cfg = await reportConfig(flags);
      type Rows = Awaited<ReturnType<typeof import('../store/mod.js').venueEntries>>;
      const rows = ((await fromRunning(cfg, `/entries?day=${flags.day}`)) ?? (await withStore(cfg, async (e) => (await import('../store/mod.js')).venueEntries(e, flags.day)))) as Rows;
      if (flags.json) return console.log(JSON.stringify(rows, null, 2));
      console.log(`entries per venue and hour, ${flags.day} (Asia/Shanghai)`);
      if (rows.length === 0) console.log('  none');
      for (const r of rows) console.log(`  ${r.hour}  ${r.venueId.padEnd(40)} ${String(r.entries).padStart(6)}  (${r.crossRegion} from other regions)`);
    });

  const clearing = program.command('clearing').description('inter-region clearing from the ledger');
  clearing
    .command('report')
    .description('per-account debits and credits of a business day and the net positions between BJ, TJ and HE')
    .addOption(dayOption())
    .addOption(metricsPortOption())
    .option('--json', 'as JSON')
    .action(async (flags: { day: string; metricsPort?: number; json?: boolean }) => {
      const cfg = await reportConfig(flags);
      const viaHttp = await fromRunning(cfg, `/clearing?day=${flags.day}`);
      const r = viaHttp
        ? { report: viaHttp as ClearingReport, balance: (await fromRunning(cfg, '/ledger-balance')) as LedgerBalance }
        : await withStore(cfg, async (e) => {
            const { clearingReport, ledgerBalance } = await import('../store/mod.js');
            return { report: await clearingReport(e, flags.day), balance: await ledgerBalance(e) };
          });
      if (flags.json) return console.log(JSON.stringify(r, null, 2));
      console.log(formatClearing(r.report, r.balance));
    });
}
