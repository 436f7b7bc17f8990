/**
 * `tapflow store setup`: the store's admin step (migrations and retention; src/store/setup.ts).
 * `tapflow store rebuild`: a range of the store made again from the ARCHIVE stream (README,
 * "Rebuilding a store range"). Options are checked when parsed; the bus and store code is loaded
 * when the command runs (store-rebuild.ts).
 */
import { Option, type Command } from 'commander';
import { instant, INSTANT_FORMS, listOf } from './options.js';

/** The tables `--table` names (those the sink fills; src/sink/rebuild.ts REBUILD_TABLES). */
export const STORE_TABLES = ['decisions', 'settlements', 'ledger', 'claims', 'risk_flags'] as const;

export interface RebuildFlags {
  table: (typeof STORE_TABLES)[number][];
  from: number;
  to: number;
  dryRun?: boolean;
  json?: boolean;
}

export function registerStoreCommands(program: Command): void {
  const group = program.command('store').description('the ClickHouse store: its admin step (schema and retention), and rebuilding a range of its tables from the ARCHIVE stream');
  group
    .command('setup')
    .summary('the admin step: apply the schema migrations and the retention (TAPFLOW_STORE_RETENTION_DAYS)')
    .description(
      "the admin step of the store: apply the schema migrations not applied yet and give the fact tables the retention TTL of TAPFLOW_STORE_RETENTION_DAYS (idempotent). Run it as a ClickHouse user allowed to create and alter tables in the database (CLICKHOUSE_USER); on a server the sink runs no DDL and refuses to start (TF_STORE_SETUP_MISSING) until this has been done. `tapflow start` runs it first; the embedded engine's sink applies it itself. With the embedded engine, stop tapflow first (its data dir is one process's).",
    )
    .option('--check', 'report what is missing and change nothing: exit status 1 when the step is still to be done')
    .action(async (flags: { check?: boolean }) => (await import('./store-rebuild.js')).storeSetupCommand(flags));
  group
    .command('rebuild')
    .summary('delete a range of store tables and make it again from the ARCHIVE stream')
    .description(
      'delete the rows of the given tables whose device time is in [--from, --to) and insert them again, made from the messages in the ARCHIVE stream with the sink\'s own row mapping; the aggregates the tables feed are rebuilt for the range. The range is whole business days (midnight Asia/Shanghai). Refuses, changing nothing, when a message the range\'s rows came from is no longer archived. With the embedded engine, stop tapflow first (its data dir is one process\'s).',
    )
    .addOption(new Option('--table <tables>', `tables to rebuild, comma-separated (${STORE_TABLES.join(', ')})`).argParser(listOf(STORE_TABLES)).makeOptionMandatory())
    .addOption(new Option('--from <time>', `first instant of the range, at midnight Asia/Shanghai: ${INSTANT_FORMS}`).argParser(instant).makeOptionMandatory())
    .addOption(new Option('--to <time>', `end of the range (excluded), at midnight Asia/Shanghai: ${INSTANT_FORMS}`).argParser(instant).makeOptionMandatory())
    .option('--dry-run', 'read the archive and report what would be rebuilt; change nothing')
    .option('--json', 'the summary as JSON')
    .action(async (flags: RebuildFlags) => (await import('./store-rebuild.js')).rebuildStore(flags));
}
