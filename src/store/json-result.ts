/**
 * Decoding of ClickHouse `FORMAT JSON` results, the same on chdb and on a server.
 *
 * Wire format: `{"meta":[{"name":"c","type":"Int64"},…],"data":[{"c":"42"},…],"rows":1,…}`.
 * Both engines are told to quote 64-bit integers (`output_format_json_quote_64bit_integers=1`)
 * because an unquoted 2^53+1 would silently lose precision in JSON.parse. Here, guided by
 * `meta`, every (U)Int64/128/256 value — also inside Nullable, LowCardinality and Array — is
 * turned back into a JS number when it is a safe integer (|n| ≤ 2^53−1), and left as its
 * decimal string otherwise. Fen sums and counts are far below 2^53, so callers see numbers.
 * Other types keep ClickHouse's JSON form: DateTime64 as 'YYYY-MM-DD hh:mm:ss.sss' in the
 * column's time zone, Date as 'YYYY-MM-DD', Decimal as numbers or strings per server settings.
 */

export interface JsonFormatBody {
  meta: { name: string; type: string }[];
  data: Record<string, unknown>[];
}

type Convert = (v: unknown) => unknown;

const WIDE_INT = /^U?Int(64|128|256)$/;

function unwrap(type: string): string {
  for (;;) {
    const m = /^(?:Nullable|LowCardinality)\((.*)\)$/.exec(type);
    if (!m) return type;
    type = m[1]!;
  }
}

function wideIntToNumber(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

/** A converter for one column type, or undefined when values pass through unchanged. */
export function converterFor(type: string): Convert | undefined {
  const t = unwrap(type);
  if (WIDE_INT.test(t)) return wideIntToNumber;
  const arr = /^Array\((.*)\)$/.exec(t);
  if (arr) {
    const inner = converterFor(arr[1]!);
    if (!inner) return undefined;
    return (v) => (Array.isArray(v) ? v.map(inner) : v);
  }
  return undefined;
}

/** Rows of a FORMAT JSON body, with 64-bit integers made numbers where safe. */
export function decodeJsonRows<T>(body: JsonFormatBody): T[] {
  const conversions: [string, Convert][] = [];
  for (const { name, type } of body.meta) {
    const c = converterFor(type);
    if (c) conversions.push([name, c]);
  }
  if (conversions.length > 0) {
    for (const row of body.data) {
      for (const [name, c] of conversions) row[name] = c(row[name]);
    }
  }
  return body.data as T[];
}
