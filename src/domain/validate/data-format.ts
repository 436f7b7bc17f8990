/**
 * Shared reading helpers for the validator's data files (project list, risk rules, hotlist):
 * one error type naming the offending field, durations and instants in one notation.
 */
import { parse as parseYaml } from 'yaml';

/** A data file or KV value that does not follow its documented format. `field` is a path like `items[3].forms[1]`. */
export class DataFormatError extends Error {
  override readonly name = 'DataFormatError';
  constructor(
    readonly field: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(field ? `${field}: ${problem}` : problem, options);
  }
}

/** Parses YAML or JSON text into plain data; a syntax error becomes a DataFormatError. */
export function parseDataText(text: string, format: 'yaml' | 'json'): unknown {
  try {
    // YAML 1.2 core schema: timestamps stay strings, so instants are read by parseInstant only.
    return format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new DataFormatError('', `not valid ${format.toUpperCase()}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration: a non-negative integer of milliseconds, or text "<number><unit>" with unit ms, s,
 * m (minutes), h or d (24 h), e.g. "90s", "5m", "24h", "1.5h". Result in integer milliseconds.
 */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new DataFormatError(field, `expected a non-negative integer of milliseconds, got ${value}`);
    return value;
  }
  if (typeof value === 'string') {
    const m = DURATION.exec(value.trim());
    if (m) {
      const ms = Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
      if (Number.isSafeInteger(ms)) return ms;
    }
  }
  throw new DataFormatError(field, `expected a duration like "30s", "5m", "24h" or milliseconds, got ${JSON.stringify(value)}`);
}

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;
/** Beijing time, UTC+8 (no daylight saving): the zone of a date without time. */
const CHINA_OFFSET_MS = 8 * 3_600_000;

/**
 * An instant: epoch milliseconds (integer), an ISO 8601 date-time with an explicit zone
 * ("2025-03-01T06:00:00+08:00", "…Z"), or a date "2025-03-01" meaning 00:00 China time (UTC+8).
 * A date-time without a zone is refused: it would depend on the reader's time zone.
 */
export function parseInstant(value: unknown, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new DataFormatError(field, `expected integer epoch milliseconds, got ${value}`);
    return value;
  }
  if (typeof value === 'string') {
    const d = DATE_ONLY.exec(value);
    if (d) {
      const ms = Date.UTC(Number(d[1]), Number(d[2]) - 1, Number(d[3])) - CHINA_OFFSET_MS;
      if (new Date(ms + CHINA_OFFSET_MS).toISOString().startsWith(value)) return ms;
    } else if (DATE_TIME_WITH_ZONE.test(value)) {
      const ms = Date.parse(value);
      if (Number.isFinite(ms)) return ms;
    }
  }
  throw new DataFormatError(field, `expected a date "YYYY-MM-DD", a date-time with zone "YYYY-MM-DDTHH:MM:SS+08:00" or epoch ms, got ${JSON.stringify(value)}`);
}

/** Formats an instant for data files and traces: ISO 8601 in China time, e.g. "2025-03-01T00:00:00+08:00". */
export function formatInstant(ms: number): string {
  return `${new Date(ms + CHINA_OFFSET_MS).toISOString().slice(0, 19)}+08:00`;
}

/** A non-null, non-array object. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Refuses fields a format does not define (a typo must not silently drop a setting). */
export function rejectUnknownFields(o: Record<string, unknown>, allowed: readonly string[], field: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new DataFormatError(field ? `${field}.${k}` : k, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

/** A required non-empty string field `o[key]`. */
export function requireString(o: Record<string, unknown>, key: string, field: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.trim().length === 0) throw new DataFormatError(`${field}.${key}`, 'expected a non-empty string');
  return v;
}

/** An optional string field `o[key]` (null counts as absent). */
export function optionalString(o: Record<string, unknown>, key: string, field: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new DataFormatError(`${field}.${key}`, 'expected a string');
  return v;
}

/** One value of an enumeration. */
export function requireOneOf<T extends string>(v: unknown, allowed: readonly T[], field: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new DataFormatError(field, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/** A list of enumeration values; a single value is accepted as a list of one. Duplicates are removed. */
export function requireListOf<T extends string>(v: unknown, allowed: readonly T[], field: string, { nonEmpty = true } = {}): T[] {
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  if (nonEmpty && list.length === 0) throw new DataFormatError(field, `expected a non-empty list of ${allowed.join(', ')}`);
  const out = list.map((x, i) => requireOneOf(x, allowed, `${field}[${i}]`));
  return [...new Set(out)];
}
