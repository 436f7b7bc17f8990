/**
 * Versioned schema migrations, the same SQL on chdb and on a server.
 *
 * Files: `migrations/NNNN_name.sql` (four digits, then a snake_case name), applied in version
 * order. A file holds one or more statements, each ending with `;` as the last character of a
 * line; lines starting with `--` are comments and never end a statement. Names are unqualified
 * (the engine's database). Statements are idempotent (`IF NOT EXISTS`), because a migration
 * interrupted halfway is applied again from its first statement.
 *
 * Applied migrations are recorded in `schema_migrations` (version, name, SHA-256 of the file,
 * time). A recorded migration is never run again; if its file has changed since, migrate()
 * refuses (TF_STORE_MIGRATION): schema changes go into a new file. Two processes migrating at
 * once both run the idempotent statements and both record the version; the ReplacingMergeTree
 * keeps one row per version.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TapflowError } from '../domain/reasons.js';
import type { ClickHouseEngine } from './engine.js';
import { StoreConfigError } from './errors.js';

/** The folder of tapflow's migration files (next to this module). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

export interface Migration {
  /** "0001" */
  version: string;
  /** "0001_base_tables" (the file name without .sql) */
  name: string;
  /** SHA-256 (hex) of the file with line endings normalised to \n. */
  checksum: string;
  statements: string[];
}

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

const SCHEMA_MIGRATIONS_DDL = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version String,
    name String,
    checksum String,
    applied_at DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version`;

/** Splits a migration file into statements (see the module comment for the rules). */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  let hasCode = false;
  for (const line of sql.replace(/\r\n/g, '\n').split('\n')) {
    const trimmed = line.trim();
    const isComment = trimmed.startsWith('--');
    if (!isComment && trimmed !== '') hasCode = true;
    if (!isComment && trimmed.endsWith(';')) {
      current.push(line.slice(0, line.lastIndexOf(';')));
      statements.push(current.join('\n').trim());
      current = [];
      hasCode = false;
    } else {
      current.push(line);
    }
  }
  if (hasCode) {
    throw new StoreConfigError('TF_STORE_MIGRATION', `statement without a closing ';' at the end of a line: ${current.join('\n').trim().slice(0, 80)}…`);
  }
  return statements;
}

/** Reads and checks the migration files of a folder, in version order. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const migrations: Migration[] = [];
  const seen = new Set<string>();
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_NAME.exec(file);
    if (!m) throw new StoreConfigError('TF_STORE_MIGRATION', `migration file ${file} is not named NNNN_snake_case.sql`);
    const version = m[1]!;
    if (seen.has(version)) throw new StoreConfigError('TF_STORE_MIGRATION', `two migration files have version ${version}`);
    seen.add(version);
    const text = readFileSync(join(dir, file), 'utf8').replace(/\r\n/g, '\n');
    const statements = splitStatements(text);
    if (statements.length === 0) throw new StoreConfigError('TF_STORE_MIGRATION', `migration ${file} has no statements`);
    migrations.push({
      version,
      name: file.slice(0, -'.sql'.length),
      checksum: createHash('sha256').update(text).digest('hex'),
      statements,
    });
  }
  return migrations;
}

/**
 * Applies the migrations not yet recorded, in order, and returns the names applied now
 * (empty when the schema is up to date).
 * @param opts.dir folder of migration files @default MIGRATIONS_DIR
 */
export async function migrate(engine: ClickHouseEngine, opts: { dir?: string } = {}): Promise<string[]> {
  await engine.exec(SCHEMA_MIGRATIONS_DDL);
  const appliedNow: string[] = [];
  for (const m of await pending(engine, loadMigrations(opts.dir))) {
    for (const [i, statement] of m.statements.entries()) {
      try {
        await engine.exec(statement);
      } catch (err) {
        // Keep the code: an unreachable engine stays retryable, a bad statement does not.
        const where = `migration ${m.name}, statement ${i + 1}: ${(err as Error).message}`;
        if (err instanceof TapflowError) throw new TapflowError(err.code, where, { cause: err });
        throw new StoreConfigError('TF_STORE_MIGRATION', where, { cause: err });
      }
    }
    await engine.insert('schema_migrations', [{ version: m.version, name: m.name, checksum: m.checksum }]);
    appliedNow.push(m.name);
  }
  return appliedNow;
}

/**
 * The names of the migrations not yet applied, changing nothing (no table is created): all of
 * them on an empty database. Refuses (TF_STORE_MIGRATION) when an applied one has changed.
 */
export async function pendingMigrations(engine: ClickHouseEngine, opts: { dir?: string } = {}): Promise<string[]> {
  const migrations = loadMigrations(opts.dir);
  const exists = await engine.query<{ n: number | string }>("SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'");
  if (Number(exists[0]?.n ?? 0) === 0) return migrations.map((m) => m.name);
  return (await pending(engine, migrations)).map((m) => m.name);
}

/** The migrations schema_migrations does not record, in order; refuses one changed after it was applied. */
async function pending(engine: ClickHouseEngine, migrations: Migration[]): Promise<Migration[]> {
  const rows = await engine.query<{ version: string; checksum: string }>(
    'SELECT version, argMax(checksum, applied_at) AS checksum FROM schema_migrations GROUP BY version',
  );
  const applied = new Map(rows.map((r) => [r.version, r.checksum]));
  return migrations.filter((m) => {
    const recorded = applied.get(m.version);
    if (recorded === undefined) return true;
    if (recorded !== m.checksum) {
      throw new StoreConfigError(
        'TF_STORE_MIGRATION',
        `migration ${m.name} was changed after it was applied (checksum ${recorded.slice(0, 12)}… recorded, ${m.checksum.slice(0, 12)}… on disk); put schema changes in a new migration`,
      );
    }
    return false;
  });
}
