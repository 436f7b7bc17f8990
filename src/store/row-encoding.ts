/**
 * How insert batches travel: JSONCompactEachRow with an explicit column list.
 *
 * Wire format: `INSERT INTO t (c1, c2, …) FORMAT JSONCompactEachRow` followed by one JSON array
 * per line, values in column order: `["bj-gate-001:7",7,"BJ",…]\n`. Compared with JSONEachRow
 * (one object per line) it is half the bytes and about 30% less main-thread time to produce,
 * because the keys are not repeated on every row (measured: 50k decision rows, 27.7 MB as
 * JSONEachRow, 13.8 MB compact).
 *
 * The columns are the keys of the first row; every other row must have exactly the same keys
 * (rows from rows.ts always do). A missing key or an extra one throws instead of silently
 * storing a default or dropping a value.
 */
import { StoreConfigError } from './errors.js';
import { checkIdentifier } from './engine.js';

/** Rows serialised per slice before yielding to the event loop (a few ms of CPU each). */
export const SLICE_ROWS = 2_000;

/** The column list of a batch: the first row's keys, checked as identifiers. */
export function batchColumns(rows: readonly Record<string, unknown>[]): string[] {
  const first = rows[0];
  if (!first) return [];
  return Object.keys(first).map((c) => checkIdentifier(c, 'column'));
}

/** One row's values in column order; throws on a missing or extra key. */
export function rowValues(row: Record<string, unknown>, columns: readonly string[], index: number): unknown[] {
  const values = new Array<unknown>(columns.length);
  for (let c = 0; c < columns.length; c++) {
    const v = row[columns[c]!];
    if (v === undefined) {
      throw new StoreConfigError('TF_STORE_CONFIG', `row ${index} has no value for column ${columns[c]} (the first row has it); pass null for NULL`);
    }
    values[c] = v;
  }
  if (Object.keys(row).length !== columns.length) {
    const extra = Object.keys(row).filter((k) => !columns.includes(k));
    throw new StoreConfigError('TF_STORE_CONFIG', `row ${index} has columns the first row has not: ${extra.join(', ')}`);
  }
  return values;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Serialises a batch as a JSONCompactEachRow payload, SLICE_ROWS rows at a time, yielding to the
 * event loop between slices so that a 100k-row batch does not stall gRPC or NATS for the
 * hundreds of milliseconds JSON.stringify takes on it.
 */
export async function encodeCompactRows(rows: readonly Record<string, unknown>[]): Promise<{ columns: string[]; payload: Buffer }> {
  const columns = batchColumns(rows);
  const parts: Buffer[] = [];
  for (let start = 0; start < rows.length; start += SLICE_ROWS) {
    if (start > 0) await yieldToEventLoop();
    const end = Math.min(rows.length, start + SLICE_ROWS);
    let text = '';
    for (let i = start; i < end; i++) text += JSON.stringify(rowValues(rows[i]!, columns, i)) + '\n';
    parts.push(Buffer.from(text, 'utf8'));
  }
  return { columns, payload: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
}
