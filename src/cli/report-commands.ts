/**
 * Commands that read results: the main aggregates and the daily clearing report from ClickHouse.
 * While `tapflow start` runs with the embedded engine, its data dir belongs to that process, so
 * these ask the running process (its metrics port serves /summary and /clearing); otherwise they
 * open the store themselves.
 */
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config/config.js';
import { openStore, todayInShanghai } from '../store/sink.js';
import { clearingReport, ledgerBalance, summary, type ClickHouseEngine } from '../store/mod.js';

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

const fen = (n: number) => `¥${(n / 100).toFixed(2)}`;

export function printSummary(s: Awaited<ReturnType<typeof summary>>, out: (line: string) => void = console.log): void {
  out(JSON.stringify(s, null, 2));
}

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description('print the main aggregates from ClickHouse: taps by verdict and reason, fares by region and network, ledger totals, risk flags')
    .option('--metrics-port <port>', 'metrics port of a running tapflow (TAPFLOW_METRICS_PORT)')
    .option('--json', 'as JSON')
    .action(async (flags) => {
      const cfg = loadConfig(process.env, { TAPFLOW_METRICS_PORT: flags.metricsPort });
      const s = ((await fromRunning(cfg, '/summary')) ?? (await withStore(cfg, (e) => summary(e)))) as Awaited<ReturnType<typeof summary>>;
      printSummary(s);
    });

  const clearing = program.command('clearing').description('inter-region clearing from the ledger');
  clearing
    .command('report')
    .description('per-account debits and credits of a business day and the net positions between BJ, TJ and HE')
    .option('--day <YYYY-MM-DD>', 'business day (Asia/Shanghai)', todayInShanghai())
    .option('--metrics-port <port>', 'metrics port of a running tapflow')
    .option('--json', 'as JSON')
    .action(async (flags) => {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(flags.day)) throw new Error(`--day must be YYYY-MM-DD, got ${flags.day}`);
      const cfg = loadConfig(process.env, { TAPFLOW_METRICS_PORT: flags.metricsPort });
      const viaHttp = await fromRunning(cfg, `/clearing?day=${flags.day}`);
      const r = viaHttp
        ? { report: viaHttp as Awaited<ReturnType<typeof clearingReport>>, balance: (await fromRunning(cfg, '/ledger-balance')) as Awaited<ReturnType<typeof ledgerBalance>> }
        : await withStore(cfg, async (e) => ({ report: await clearingReport(e, flags.day), balance: await ledgerBalance(e) }));
      if (flags.json) return console.log(JSON.stringify(r, null, 2));
      console.log(JSON.stringify(r.report, null, 2));
      void fen;
    });
}
