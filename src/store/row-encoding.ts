/**
 * How insert batches travel: one payload is one INSERT, the same bytes to chdb and to a server,
 * in one of two ClickHouse formats with an explicit column list.
 *
 * 1. CSV, written straight into bytes by {@link InsertBatch} as the rows.ts mappings write each
 *    field — the sink's path. `INSERT INTO t (c1, c2, …) SETTINGS … FORMAT CSV` (settings in
 *    engine.ts), then one line per row, fields separated by `,`, each line ending in `\n`:
 *
 *      "bj-gate-001:7","bj-gate-001",7,"BJ",…,1714521601.234,…,"['VELOCITY']",42\n
 *
 *    - Strings (String, LowCardinality(String), Date 'YYYY-MM-DD'): always double-quoted, a `"`
 *      inside doubled (RFC 4180); every other character verbatim as UTF-8, newlines and
 *      backslashes included (ClickHouse's CSV reader takes quoted fields literally). Quoting
 *      every string keeps leading and trailing blanks (unquoted fields are trimmed) and keeps
 *      the text `\N` a string. A lone UTF-16 surrogate, which UTF-8 cannot carry, becomes
 *      U+FFFD (as Buffer.from does).
 *    - Integers (Int64 fen, UInt64 sequences, UInt32, UInt8): decimal digits, unquoted. Values
 *      must be safe integers (|n| ≤ 2^53−1): anything else throws instead of storing a rounded
 *      value.
 *    - DateTime64(3): `<epoch seconds>.<millis>` unquoted (`1714521601.234`), parsed exactly by
 *      both engines with date_time_input_format=basic whatever their time zone.
 *    - JSON text in a String column (the trace steps): written straight from the objects, byte
 *      for byte what JSON.stringify gives, inside the quoted field (its `"` doubled for CSV).
 *    - Array(String): ClickHouse's text form of the array as one quoted field:
 *      `"['a','b\'c']"`, elements single-quoted with `\\`, `\'`, `\n`, `\t`, `\r`, `\0` escapes
 *      (then `"` doubled for CSV).
 *
 * 2. JSONCompactEachRow for plain row objects ({@link encodeRows}: migrations, tests, callers
 *    with rows of their own): one JSON array per line, values in column order,
 *    `["bj-gate-001:7",7,"BJ",…]\n`. JSON.stringify encodes arbitrary values natively, at a cost
 *    that does not depend on how many row shapes and kinds of string a process has met — which
 *    a JS encoder's does (measured: mixing the four tables' objects made the CSV encoder
 *    ~1.5× dearer than JSON.stringify, while alone it was cheaper).
 *
 * Why CSV for the sink and not a binary format: chdb's JS API accepts text formats only (JSON*,
 * CSV, TSV; `chdb` 3.4 rawInsert.js), and @clickhouse/client sends only CSV, TSV,
 * CustomSeparated, Parquet and JSON raw. Of the text formats ClickHouse parsed CSV with the
 * least CPU on tapflow's decisions rows (measured with chdb 3.4: CSV < JSON by ≈ 8%, TSV
 * dearest), and CSV's only escape (`"` doubled) is cheap to write: the trace JSON needs no
 * backslash escaping, unlike inside a JSON string. Writing bytes directly, instead of building
 * an object per row and JSON.stringify'ing its values, takes most of the main thread's share of
 * an insert away (bench/store-insert.ts).
 */
import { StoreConfigError } from './errors.js';
import { checkIdentifier } from './engine.js';

/** Rows encoded per slice before yielding to the event loop ({@link encodeRows}; a few ms of CPU). */
export const SLICE_ROWS = 2_000;

const QUOTE = 0x22;
const COMMA = 0x2c;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const APOSTROPHE = 0x27;

/**
 * Where the rows of a table come from, field by field: the mapping functions of rows.ts write
 * each row through this, once into bytes ({@link InsertBatch}) and once into plain objects
 * (rows.ts `objectRows`), so both forms come from one mapping.
 */
export interface RowWriter {
  /** String, LowCardinality(String), or a Date given as 'YYYY-MM-DD'. */
  string(column: string, value: string): void;
  /** Any integer column; `value` must be a safe integer. */
  int(column: string, value: number): void;
  /** DateTime64(3) from epoch milliseconds (a non-negative safe integer). */
  dateTime64(column: string, ms: number): void;
  /** Array(String) or Array(LowCardinality(String)). */
  stringArray(column: string, values: readonly string[]): void;
  /**
   * A String column holding a JSON array of objects with string values, exactly
   * `JSON.stringify(items.map((i) => ({ [keys[0]]: i[keys[0]], … })))`, e.g. the trace steps
   * `[{"rule":"hotlist","version":"v1","detail":"not listed"}]`. Keys must be plain identifiers
   * and every value a string.
   */
  jsonRecords<K extends string>(column: string, items: readonly Readonly<Record<K, string>>[], keys: readonly K[]): void;
  /** Closes the row: every row of a batch must name the same columns in the same order. */
  endRow(): void;
}

/** A position in a batch, to undo rows written after it (see {@link InsertBatch.rollback}). */
export interface BatchMark {
  readonly bytes: number;
  readonly rows: number;
}

/** Rows encoded for one INSERT, as the engines send them. */
export interface EncodedRows {
  readonly format: 'CSV' | 'JSONCompactEachRow';
  /** The column list, in the order of the fields of each line. */
  readonly columns: readonly string[];
  readonly rows: number;
  payload(): Buffer;
}

/**
 * Rows of one INSERT, encoded as CSV while they are written. The columns are those of the first
 * row, in order; every later row must write the same ones (checked field by field, so a mapping
 * that skipped or reordered a column throws instead of shifting values into other columns).
 * Pass it to `engine.insert(table, batch, opts)`; do not write to it while that insert runs.
 * Writing costs the main thread about 1–4 µs a row (bench/store-insert.ts): a caller filling a
 * batch of tens of thousands of rows in one go should yield to the event loop every SLICE_ROWS
 * rows or so (between messages), as encodeRows does, so that gRPC and NATS are not held up.
 */
export class InsertBatch implements RowWriter, EncodedRows {
  readonly format = 'CSV' as const;
  #buf: Buffer;
  #pos = 0;
  #rows = 0;
  /** Column of the next field in the current row. */
  #field = 0;
  readonly #columns: string[] = [];

  /** @param initialBytes first buffer size; it doubles as needed. @default 64 KiB */
  constructor(initialBytes = 64 * 1024) {
    this.#buf = Buffer.allocUnsafe(Math.max(256, initialBytes));
  }

  /** Rows written and closed. */
  get rows(): number {
    return this.#rows;
  }

  /** Bytes of the payload so far. */
  get bytes(): number {
    return this.#pos;
  }

  /** The column list (those of the first row). */
  get columns(): readonly string[] {
    return this.#columns;
  }

  /** The payload: a view of the batch's buffer, valid until more rows are written. */
  payload(): Buffer {
    if (this.#field !== 0) throw new StoreConfigError('TF_STORE_CONFIG', `row ${this.#rows} was not closed with endRow()`);
    return this.#buf.subarray(0, this.#pos);
  }

  /** The current end of the batch (between rows). */
  mark(): BatchMark {
    if (this.#field !== 0) throw new StoreConfigError('TF_STORE_CONFIG', 'mark() in the middle of a row');
    return { bytes: this.#pos, rows: this.#rows };
  }

  /**
   * Drops every row written after `mark`, including a row left half-written by a mapping that
   * threw: the sink maps a message's rows after a mark and rolls back when one of them fails,
   * so a message is stored whole or not at all.
   */
  rollback(mark: BatchMark): void {
    if (mark.bytes > this.#pos || mark.rows > this.#rows) throw new StoreConfigError('TF_STORE_CONFIG', 'rollback() to a mark beyond the batch');
    this.#pos = mark.bytes;
    this.#rows = mark.rows;
    this.#field = 0;
    if (this.#rows === 0) this.#columns.length = 0;
  }

  string(column: string, value: string): void {
    this.#begin(column);
    this.#ensure(value.length * 3 + 3);
    const b = this.#buf;
    b[this.#pos++] = QUOTE;
    this.#pos = writeUtf8(b, this.#pos, value, false);
    b[this.#pos++] = QUOTE;
    b[this.#pos++] = COMMA;
  }

  int(column: string, value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`${column} must be a safe integer, got ${value}`);
    this.#begin(column);
    this.#ascii(String(value));
  }

  dateTime64(column: string, ms: number): void {
    if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${column} must be non-negative integer epoch milliseconds, got ${ms}`);
    this.#begin(column);
    // The digits of the milliseconds with a dot before the last three, and no string built by
    // concatenation: V8 keeps one of 13 or more characters as a rope, and a character loop that
    // has met ropes runs about three times slower for every string after.
    const digits = String(ms).padStart(4, '0');
    const dot = digits.length - 3;
    this.#ensure(digits.length + 2);
    const b = this.#buf;
    let p = this.#pos;
    for (let i = 0; i < digits.length; i++) {
      if (i === dot) b[p++] = 0x2e; // .
      b[p++] = digits.charCodeAt(i);
    }
    b[p++] = COMMA;
    this.#pos = p;
  }

  stringArray(column: string, values: readonly string[]): void {
    this.#begin(column);
    let need = 4;
    for (const v of values) need += v.length * 3 + 5;
    this.#ensure(need);
    const b = this.#buf;
    let p = this.#pos;
    b[p++] = QUOTE;
    b[p++] = 0x5b; // [
    for (let i = 0; i < values.length; i++) {
      if (i > 0) b[p++] = COMMA;
      b[p++] = APOSTROPHE;
      p = writeUtf8(b, p, values[i]!, true);
      b[p++] = APOSTROPHE;
    }
    b[p++] = 0x5d; // ]
    b[p++] = QUOTE;
    b[p++] = COMMA;
    this.#pos = p;
  }

  jsonRecords<K extends string>(column: string, items: readonly Readonly<Record<K, string>>[], keys: readonly K[]): void {
    this.#begin(column);
    const prefixes = jsonKeyPrefixes(keys);
    // Worst case per UTF-16 unit: 6 bytes (a \u00XX or \udXXX escape).
    let need = 5;
    for (const item of items) {
      need += 2;
      for (let k = 0; k < keys.length; k++) {
        const v = item[keys[k]!];
        if (typeof v !== 'string') throw new StoreConfigError('TF_STORE_CONFIG', `column ${column}: ${keys[k]} must be a string, got ${typeof v}`);
        need += prefixes[k]!.length + 3 + v.length * 6;
      }
    }
    this.#ensure(need);
    const b = this.#buf;
    let p = this.#pos;
    b[p++] = QUOTE;
    b[p++] = 0x5b; // [
    for (let i = 0; i < items.length; i++) {
      if (i > 0) b[p++] = COMMA;
      b[p++] = 0x7b; // {
      const item = items[i]!;
      for (let k = 0; k < keys.length; k++) {
        const prefix = prefixes[k]!; // ,""key"":""  (the first without its comma)
        for (let j = k === 0 ? 1 : 0; j < prefix.length; j++) b[p++] = prefix[j]!;
        p = writeJsonString(b, p, item[keys[k]!]);
        b[p++] = QUOTE; // the closing "" of the value
        b[p++] = QUOTE;
      }
      b[p++] = 0x7d; // }
    }
    b[p++] = 0x5d; // ]
    b[p++] = QUOTE;
    b[p++] = COMMA;
    this.#pos = p;
  }

  endRow(): void {
    if (this.#field === 0) throw new StoreConfigError('TF_STORE_CONFIG', `row ${this.#rows} has no columns`);
    if (this.#rows > 0 && this.#field !== this.#columns.length) {
      throw new StoreConfigError('TF_STORE_CONFIG', `row ${this.#rows} has ${this.#field} columns, the first row ${this.#columns.length}`);
    }
    this.#buf[this.#pos - 1] = NEWLINE; // the last field's comma
    this.#rows += 1;
    this.#field = 0;
  }

  /** Checks the column against the first row's, or records it while writing the first row. */
  #begin(column: string): void {
    const i = this.#field++;
    if (this.#rows === 0) {
      if (i === 0) this.#columns.length = 0;
      this.#columns.push(checkIdentifier(column, 'column'));
    } else if (this.#columns[i] !== column) {
      throw new StoreConfigError(
        'TF_STORE_CONFIG',
        `row ${this.#rows}: column ${i + 1} is ${column}, the first row has ${this.#columns[i] ?? 'no such column'}`,
      );
    }
  }

  /** Writes an ASCII token and a comma. */
  #ascii(s: string): void {
    this.#ensure(s.length + 1);
    const b = this.#buf;
    let p = this.#pos;
    for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
    b[p++] = COMMA;
    this.#pos = p;
  }

  #ensure(extra: number): void {
    if (this.#pos + extra <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }
}

/**
 * Writes `s` as UTF-8 at `p` with CSV's `"` doubling, and — inside a single-quoted array element
 * (`quotedElement`) — ClickHouse's backslash escapes for `\`, `'`, newline, tab, CR and NUL.
 * The caller has made room for 3 bytes per UTF-16 unit. Returns the new position.
 */
function writeUtf8(b: Buffer, p: number, s: string, quotedElement: boolean): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === QUOTE) {
        b[p++] = QUOTE;
      } else if (quotedElement && (c === BACKSLASH || c === APOSTROPHE || c === 0x0a || c === 0x09 || c === 0x0d || c === 0)) {
        b[p++] = BACKSLASH;
        c = c === 0x0a ? 0x6e : c === 0x09 ? 0x74 : c === 0x0d ? 0x72 : c === 0 ? 0x30 : c;
      }
      b[p++] = c;
    } else if (c < 0xd800 || c > 0xdfff) {
      p = writeBmp(b, p, c);
    } else if (isSurrogatePair(c, s.charCodeAt(i + 1))) {
      p = writeAstral(b, p, c, s.charCodeAt(++i));
    } else {
      b[p++] = 0xef; // a lone surrogate: U+FFFD
      b[p++] = 0xbf;
      b[p++] = 0xbd;
    }
  }
  return p;
}

/** Whether `c`, `next` are a high and a low surrogate: one code point above U+FFFF. */
function isSurrogatePair(c: number, next: number): boolean {
  return c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
}

/** UTF-8 of a code point from U+0080 to U+FFFF that is not a surrogate: 2 or 3 bytes. */
function writeBmp(b: Buffer, p: number, c: number): number {
  if (c < 0x800) {
    b[p++] = 0xc0 | (c >> 6);
  } else {
    b[p++] = 0xe0 | (c >> 12);
    b[p++] = 0x80 | ((c >> 6) & 0x3f);
  }
  b[p++] = 0x80 | (c & 0x3f);
  return p;
}

/** UTF-8 of the code point of a surrogate pair: 4 bytes. */
function writeAstral(b: Buffer, p: number, high: number, low: number): number {
  const cp = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
  b[p++] = 0xf0 | (cp >> 18);
  b[p++] = 0x80 | ((cp >> 12) & 0x3f);
  b[p++] = 0x80 | ((cp >> 6) & 0x3f);
  b[p++] = 0x80 | (cp & 0x3f);
  return p;
}

const HEX = '0123456789abcdef';

/**
 * Writes `s` as the inside of a JSON string, escaped exactly as JSON.stringify escapes it (`"`,
 * `\`, \b \f \n \r \t, other controls and lone surrogates as lowercase \uXXXX), then as CSV
 * (each `"` doubled). The caller has made room for 6 bytes per UTF-16 unit.
 */
function writeJsonString(b: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x80) {
      if (c === QUOTE) {
        b[p++] = BACKSLASH;
        b[p++] = QUOTE;
        b[p++] = QUOTE;
      } else if (c === BACKSLASH) {
        b[p++] = BACKSLASH;
        b[p++] = BACKSLASH;
      } else {
        b[p++] = c;
      }
    } else if (c < 0x20) {
      b[p++] = BACKSLASH;
      const short = c === 0x08 ? 0x62 : c === 0x09 ? 0x74 : c === 0x0a ? 0x6e : c === 0x0c ? 0x66 : c === 0x0d ? 0x72 : 0;
      if (short !== 0) {
        b[p++] = short;
      } else {
        b[p++] = 0x75; // u00XX
        b[p++] = 0x30;
        b[p++] = 0x30;
        b[p++] = HEX.charCodeAt(c >> 4);
        b[p++] = HEX.charCodeAt(c & 0xf);
      }
    } else if (c < 0xd800 || c > 0xdfff) {
      p = writeBmp(b, p, c);
    } else if (isSurrogatePair(c, s.charCodeAt(i + 1))) {
      p = writeAstral(b, p, c, s.charCodeAt(++i));
    } else {
      b[p++] = BACKSLASH; // a lone surrogate: \udXXX, as JSON.stringify writes it
      b[p++] = 0x75;
      for (let shift = 12; shift >= 0; shift -= 4) b[p++] = HEX.charCodeAt((c >> shift) & 0xf);
    }
  }
  return p;
}

/** Per key list, the bytes before each value: `,""key"":""` (CSV-doubled JSON), built once. */
const keyPrefixCache = new WeakMap<readonly string[], Uint8Array[]>();

function jsonKeyPrefixes(keys: readonly string[]): Uint8Array[] {
  let prefixes = keyPrefixCache.get(keys);
  if (!prefixes) {
    prefixes = keys.map((k) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new StoreConfigError('TF_STORE_CONFIG', `JSON key ${JSON.stringify(k)} is not a plain identifier`);
      return Buffer.from(`,""${k}"":""`, 'latin1');
    });
    keyPrefixCache.set(keys, prefixes);
  }
  return prefixes;
}


const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Encodes plain JS rows (the generic `engine.insert(table, rows)`) as JSONCompactEachRow: the
 * columns are the first row's keys, in order; every other row must have exactly the same keys
 * (a missing key or an extra one throws instead of silently storing a default or dropping a
 * value; pass null for NULL). Values must be JSON-serialisable (no bigint; DateTime64 as
 * '<epoch s>.<ms>' strings, see rows.ts). SLICE_ROWS rows at a time, yielding to the event
 * loop between slices, so a 100k-row batch does not stall gRPC or NATS for the hundreds of
 * milliseconds JSON.stringify takes on it.
 */
export async function encodeRows(rows: readonly Record<string, unknown>[]): Promise<EncodedRows> {
  const columns = batchColumns(rows);
  const parts: Buffer[] = [];
  for (let start = 0; start < rows.length; start += SLICE_ROWS) {
    if (start > 0) await yieldToEventLoop();
    const end = Math.min(rows.length, start + SLICE_ROWS);
    let text = '';
    for (let i = start; i < end; i++) text += JSON.stringify(rowValues(rows[i]!, columns, i)) + '\n';
    parts.push(Buffer.from(text, 'utf8'));
  }
  const payload = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return { format: 'JSONCompactEachRow', columns, rows: rows.length, payload: () => payload };
}

/** The column list of plain rows: the first row's keys, checked as identifiers. */
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
