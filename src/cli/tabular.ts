/**
 * Rows of named columns as CSV (RFC 4180) or as an aligned text table, for the commands that
 * print results. Money stays integer fen in both (columns named `…_fen`, `…Fen`); text tables
 * that show yuan do so in their own formatters, never in CSV.
 */
import { Option } from 'commander';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** --format, with --json kept as its shorthand. */
export function formatOptions(): Option[] {
  return [new Option('--format <format>', 'output: an aligned table, JSON, or CSV (RFC 4180, a header row, money in integer fen)').choices(OUTPUT_FORMATS), new Option('--json', 'as JSON (the same as --format json)')];
}

/** The format of --format / --json; both given and different is refused. */
export function outputFormat(flags: { format?: OutputFormat; json?: boolean }): OutputFormat {
  if (flags.json && flags.format !== undefined && flags.format !== 'json') throw new Error(`--json and --format ${flags.format} contradict each other: give one`);
  return flags.json ? 'json' : (flags.format ?? 'table');
}

/** One CSV field: quoted when it holds a comma, a quote, CR or LF (quotes doubled), per RFC 4180. */
export function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A CSV document: the header row, then one record per row; lines end with CRLF (RFC 4180). */
export function toCsv(columns: readonly string[], rows: readonly Record<string, unknown>[]): string {
  const line = (fields: unknown[]) => `${fields.map(csvField).join(',')}\r\n`;
  return line([...columns]) + rows.map((r) => line(columns.map((c) => r[c]))).join('');
}

/** Parses a CSV document of {@link toCsv} back into rows of text fields (for tests and tools). */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') record.push(field), (field = '');
    else if (ch === '\n' || (ch === '\r' && text[i + 1] === '\n')) {
      if (ch === '\r') i++;
      record.push(field);
      records.push(record);
      (field = ''), (record = []);
    } else field += ch;
  }
  if (field !== '' || record.length > 0) records.push([...record, field]);
  return records;
}

/** Columns a text takes in a terminal: CJK ideographs and full-width forms take two. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    w += (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) || (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) || (c >= 0xffe0 && c <= 0xffe6) ? 2 : 1;
  }
  return w;
}

/** An aligned text table: numbers right-aligned, `(none)` when there are no rows. */
export function toTable(columns: readonly string[], rows: readonly Record<string, unknown>[], indent = '  '): string[] {
  if (rows.length === 0) return [`${indent}(none)`];
  const text = rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c]))));
  const numeric = columns.map((c) => rows.every((r) => typeof r[c] === 'number'));
  const widths = columns.map((c, i) => Math.max(displayWidth(c), ...text.map((t) => displayWidth(t[i]!))));
  const pad = (s: string, i: number) => ' '.repeat(widths[i]! - displayWidth(s));
  const fmt = (cells: string[]) => indent + cells.map((s, i) => (numeric[i] ? pad(s, i) + s : s + pad(s, i))).join('  ').trimEnd();
  return [fmt([...columns]), ...text.map(fmt)];
}
