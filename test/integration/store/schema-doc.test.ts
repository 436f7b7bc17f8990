/**
 * docs/schema.md describes exactly the schema the migrations make: every table and materialized
 * view, its engine, keys and skip indexes, and every column with its type, a unit from the
 * document's legend and a meaning. Read from system.tables, system.columns and
 * system.data_skipping_indices of a freshly migrated embedded engine (chdb). The checker itself is
 * shown to fail on a column, a table or an index the document does not have.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ClickHouseEngine } from '../../../src/store/mod.js';
import { testStore } from './fixtures.js';

const ROOT = new URL('../../../', import.meta.url);
const DOC = readFileSync(new URL('docs/schema.md', ROOT), 'utf8');

const { freshDb } = testStore('tapflow-schema-doc-');

interface DocColumn {
  name: string;
  type: string;
  unit: string;
  meaning: string;
}

interface DocObject {
  name: string;
  engine?: string;
  partitionKey?: string;
  sortingKey?: string;
  /** Materialized views: the table they read and the table they write. */
  from?: string;
  into?: string;
  /** "name expr" of each skip index. */
  indexes: string[];
  columns: DocColumn[];
}

/** The cells of a Markdown table row `| a | b | c |`. */
function cells(line: string): string[] {
  return line.trim().slice(1, -1).split(' | ').map((c) => c.trim());
}

/** The text between backticks of a cell: "`Int64`" → "Int64". */
function code(cell: string): string {
  const m = /^`([^`]+)`$/.exec(cell);
  if (!m) throw new Error(`expected a single \`code\` cell, got ${JSON.stringify(cell)}`);
  return m[1]!;
}

/** The units of the legend under "### Units". */
function docUnits(doc: string): Set<string> {
  const section = doc.slice(doc.indexOf('### Units'));
  const table = section.slice(section.indexOf('| unit |'), section.indexOf('\n\n', section.indexOf('| unit |')));
  return new Set(
    table
      .split('\n')
      .slice(2)
      .map((l) => code(cells(l)[0]!)),
  );
}

/** Every `### \`name\`` section of the document with what it states. */
function docObjects(doc: string): DocObject[] {
  const parts = doc.split(/^### `(\w+)`$/m);
  const out: DocObject[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    const name = parts[i]!;
    const body = parts[i + 1]!.split(/^#{2,3} /m)[0]!;
    const engineLine = /^Engine: (.*)$/m.exec(body)?.[1] ?? '';
    const indexLine = /^Skip indexes: (.*)$/m.exec(body)?.[1] ?? '';
    const mv = / from `(\w+)` into `(\w+)`/.exec(engineLine);
    out.push({
      name,
      engine: /^`([^`]+)`/.exec(engineLine)?.[1],
      partitionKey: /partition key: `([^`]+)`/.exec(engineLine)?.[1],
      sortingKey: /sorting key: `([^`]+)`/.exec(engineLine)?.[1],
      from: mv?.[1],
      into: mv?.[2],
      indexes: [...indexLine.matchAll(/`(\w+)` \(bloom filter on (\w+)\)/g)].map((m) => `${m[1]} ${m[2]}`),
      columns: body
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .map((l) => {
          const [name, type, unit, meaning, ...rest] = cells(l);
          if (rest.length > 0) throw new Error(`${l}: more than four cells (a "|" in a meaning?)`);
          return { name: code(name!), type: code(type!), unit: unit ?? '', meaning: meaning ?? '' };
        }),
    });
  }
  return out;
}

/** What the engine's database holds, in the shape of {@link DocObject}. */
async function engineObjects(engine: ClickHouseEngine): Promise<DocObject[]> {
  const tables = await engine.query<{ name: string; engine: string; partition_key: string; sorting_key: string; create_table_query: string; as_select: string }>(
    'SELECT name, engine, partition_key, sorting_key, create_table_query, as_select FROM system.tables WHERE database = currentDatabase() ORDER BY name',
  );
  const columns = await engine.query<{ table: string; name: string; type: string }>(
    'SELECT table, name, type FROM system.columns WHERE database = currentDatabase() ORDER BY table, position',
  );
  const indexes = await engine.query<{ table: string; name: string; type_full: string; expr: string }>(
    'SELECT table, name, type_full, expr FROM system.data_skipping_indices WHERE database = currentDatabase() ORDER BY table, name',
  );
  const [{ db }] = (await engine.query<{ db: string }>('SELECT currentDatabase() AS db')) as [{ db: string }];
  return tables.map((t) => ({
    name: t.name,
    engine: t.engine,
    partitionKey: t.partition_key || undefined,
    sortingKey: t.sorting_key || undefined,
    from: new RegExp(`\\bFROM ${db}\\.(\\w+)`).exec(t.as_select)?.[1],
    into: new RegExp(`^CREATE MATERIALIZED VIEW \\S+ TO ${db}\\.(\\w+)`).exec(t.create_table_query)?.[1],
    indexes: indexes.filter((i) => i.table === t.name).map((i) => `${i.name} ${i.expr}${i.type_full.startsWith('bloom_filter') ? '' : ` (${i.type_full})`}`),
    columns: columns.filter((c) => c.table === t.name).map((c) => ({ name: c.name, type: c.type, unit: '', meaning: '' })),
  }));
}

/** Every way the document and the engine disagree, one line each; empty when they agree. */
function differences(doc: DocObject[], actual: DocObject[]): string[] {
  const out: string[] = [];
  const described = new Map(doc.map((o) => [o.name, o]));
  const exists = new Map(actual.map((o) => [o.name, o]));
  for (const name of exists.keys()) if (!described.has(name)) out.push(`${name}: exists, not described`);
  for (const name of described.keys()) if (!exists.has(name)) out.push(`${name}: described, does not exist`);
  for (const [name, a] of exists) {
    const d = described.get(name);
    if (!d) continue;
    for (const key of ['engine', 'partitionKey', 'sortingKey', 'from', 'into'] as const) {
      if (d[key] !== a[key]) out.push(`${name}: ${key} is ${JSON.stringify(a[key])}, described as ${JSON.stringify(d[key])}`);
    }
    if (d.indexes.join(', ') !== a.indexes.join(', ')) out.push(`${name}: skip indexes are [${a.indexes.join(', ')}], described as [${d.indexes.join(', ')}]`);
    const docCols = new Map(d.columns.map((c) => [c.name, c]));
    const realCols = new Set(a.columns.map((c) => c.name));
    for (const c of a.columns) {
      const dc = docCols.get(c.name);
      if (!dc) out.push(`${name}.${c.name} (${c.type}): exists, not described`);
      else if (dc.type !== c.type) out.push(`${name}.${c.name}: type is ${c.type}, described as ${dc.type}`);
    }
    for (const c of d.columns) if (!realCols.has(c.name)) out.push(`${name}.${c.name}: described, does not exist`);
    const inOrder = a.columns.map((c) => c.name).filter((c) => docCols.has(c));
    const docOrder = d.columns.map((c) => c.name).filter((c) => realCols.has(c));
    if (inOrder.join() !== docOrder.join()) out.push(`${name}: columns described in another order than the table's`);
  }
  return out;
}

describe('store - docs/schema.md', () => {
  const described = docObjects(DOC);

  it('describes every table, view and column the migrations create, and nothing else', async () => {
    const engine = await freshDb('tf_schema_doc');
    const actual = await engineObjects(engine);
    // The schema this test reads is the real one: base tables, aggregates, views, bookkeeping.
    expect(actual.map((o) => o.name)).toEqual(expect.arrayContaining(['decisions', 'ledger_per_day_mv', 'schema_migrations']));
    expect(actual.find((o) => o.name === 'risk_flags')?.columns.at(-1)?.name).toBe('source_stream'); // migration 0003
    expect(actual.map((o) => o.name)).not.toContain('taps_per_minute'); // dropped by 0004
    expect(differences(described, actual)).toEqual([]);
  });

  it('gives every column a unit of the legend and a meaning', () => {
    const units = docUnits(DOC);
    expect([...units]).toEqual(expect.arrayContaining(['fen', 'ms', 'seconds', 'count', 'enum text', 'token']));
    expect(described.length).toBeGreaterThan(0);
    for (const o of described) {
      expect(o.columns.length, `${o.name}: no column table`).toBeGreaterThan(0);
      for (const c of o.columns) {
        for (const u of c.unit.split(' or ')) expect(units.has(u), `${o.name}.${c.name}: unit "${c.unit}" is not in the legend`).toBe(true);
        expect(c.meaning.length, `${o.name}.${c.name}: no meaning`).toBeGreaterThan(3);
      }
    }
  });

  it('money columns are in fen and times in ms, by the naming of the migrations', () => {
    for (const o of described) {
      for (const c of o.columns) {
        if (/_fen$/.test(c.name) || c.type === 'Int64') expect(c.unit, `${o.name}.${c.name}`).toBe('fen');
        if (c.type.startsWith('DateTime64(3')) expect(c.unit, `${o.name}.${c.name}`).toBe('ms');
      }
    }
  });

  it('the checker fails on an undescribed column, table or index, and on a described one that is gone', async () => {
    const baseline = new Set(differences(described, await engineObjects(await freshDb('tf_schema_doc_base'))));
    const engine = await freshDb('tf_schema_doc_drift');
    await engine.exec('ALTER TABLE decisions ADD COLUMN IF NOT EXISTS refund_fen Int64 DEFAULT 0');
    await engine.exec('ALTER TABLE ledger ADD INDEX IF NOT EXISTS idx_account account TYPE bloom_filter(0.01) GRANULARITY 4');
    await engine.exec('CREATE TABLE IF NOT EXISTS refunds (refund_id String) ENGINE = MergeTree ORDER BY refund_id');
    await engine.exec('DROP VIEW IF EXISTS ledger_per_day_mv');
    // Only what the changes made: the document's own errors are the first test's business.
    const diff = differences(described, await engineObjects(engine)).filter((d) => !baseline.has(d));
    expect(diff).toEqual(
      expect.arrayContaining([
        'decisions.refund_fen (Int64): exists, not described',
        expect.stringMatching(/^ledger: skip indexes are \[.*idx_account account.*\]/),
        'refunds: exists, not described',
        'ledger_per_day_mv: described, does not exist',
      ]),
    );
    expect(diff).toHaveLength(4);
  });

  it('is linked from the README', () => {
    expect(readFileSync(new URL('README.md', ROOT), 'utf8')).toContain('(docs/schema.md)');
  });
});
