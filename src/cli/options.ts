/**
 * Parsers of option and argument values for commander's `argParser`. Each takes the text as
 * typed and returns the value, or throws commander's InvalidArgumentError saying the accepted
 * form; commander puts the option in front and exits with status 1, e.g.
 *
 *   error: option '--rate <taps/s>' argument '-5' is invalid. Expected a number above 0 and at most 100000 (taps per second), e.g. 200.
 *
 * Values that need tapflow's data (stations, networks) are checked by the commands themselves.
 * Pure and light: no engine, bus or domain data is loaded here (the CLI starts fast).
 */
import { statSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';

const invalid = (expected: string): never => {
  throw new InvalidArgumentError(`Expected ${expected}.`);
};

/** An integer from `min` to `max`, digits only (no 1e3, 0x10, 1.0 or blanks). */
export function integer(min: number, max: number, what: string): (text: string) => number {
  return (text) => {
    const n = /^-?\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) invalid(`an integer from ${min} to ${max} (${what})`);
    return n;
  };
}

/** A decimal number above 0 and at most `max` (digits with an optional fraction). */
export function positiveNumber(max: number, what: string, example: string): (text: string) => number {
  return (text) => {
    const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
    if (!(n > 0 && n <= max)) invalid(`a number above 0 and at most ${max} (${what}), e.g. ${example}`);
    return n;
  };
}

/** A TCP port to listen on; 0 picks a free one. */
export const listenPort = integer(0, 65535, 'a TCP port; 0 = any free port');
/** The TCP port of something running. */
export const serverPort = integer(1, 65535, 'the TCP port of a running tapflow');

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/** True when year, month (1–12) and day exist in the calendar. */
function isCalendarDate(y: number, m: number, d: number): boolean {
  return m >= 1 && m <= 12 && d >= 1 && d <= (m === 2 && isLeap(y) ? 29 : DAYS_IN_MONTH[m - 1]!);
}

/** A calendar day YYYY-MM-DD that exists (2026-02-30 and 2026-13-45 do not). */
export function calendarDay(text: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m || !isCalendarDate(Number(m[1]), Number(m[2]), Number(m[3]))) invalid('a calendar day YYYY-MM-DD that exists, e.g. 2026-03-10');
  return text;
}

const SHANGHAI_OFFSET_MIN = 8 * 60;

/**
 * Epoch milliseconds of a time given as epoch ms (digits only) or ISO 8601: a date
 * (`2026-03-10`), a date and time (`2026-03-10T08:15`, seconds and milliseconds optional) read
 * in Asia/Shanghai — the zone every calendar rule of tapflow uses, never the host's — or with a
 * zone (`Z`, `+08:00`). Every field is checked against the calendar: 2026-02-30 is not a day.
 * Undefined when the text is none of these.
 */
export function parseInstantText(text: string): number | undefined {
  const s = text.trim();
  if (/^\d+$/.test(s)) {
    const ms = Number(s);
    return Number.isSafeInteger(ms) ? ms : undefined;
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h = 0, mi = 0, sec = 0] = m.slice(1, 7).map((x) => (x === undefined ? undefined : Number(x))) as number[];
  const frac = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0'));
  if (!isCalendarDate(y!, mo!, d!) || h > 23 || mi > 59 || sec > 59) return undefined;
  let offsetMin = SHANGHAI_OFFSET_MIN;
  const zone = m[8];
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
    if (Number(z[2]) > 23 || Number(z[3]) > 59) return undefined;
    offsetMin = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3]));
  } else if (zone !== undefined) offsetMin = 0;
  return Date.UTC(y!, mo! - 1, d!, h, mi, sec, frac) - offsetMin * 60_000;
}

/** The accepted forms of a time, for messages. */
export const INSTANT_FORMS = 'epoch milliseconds or ISO 8601 (2026-03-10, 2026-03-10T08:15 read in Asia/Shanghai, or with Z / +08:00)';

/** A time: see {@link parseInstantText}. */
export function instant(text: string): number {
  return parseInstantText(text) ?? invalid(INSTANT_FORMS);
}

/** Non-empty text. */
export function nonEmpty(what: string): (text: string) => string {
  return (text) => (text.trim() === '' ? invalid(`${what}, not an empty string`) : text);
}

/** A folder to use: any path that is not an existing file (created when missing). */
export function folder(text: string): string {
  if (text.trim() === '') invalid('a folder path, not an empty string');
  const st = statSync(text, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) invalid(`a folder; ${text} is a file`);
  return text;
}

/** An existing folder. */
export function existingFolder(text: string): string {
  const st = statSync(text, { throwIfNoEntry: false });
  if (!st?.isDirectory()) invalid(`an existing folder; ${text} ${st ? 'is a file' : 'does not exist'}`);
  return text;
}

/** An existing, readable file. */
export function existingFile(text: string): string {
  const st = statSync(text, { throwIfNoEntry: false });
  if (!st?.isFile()) invalid(`an existing file; ${text} ${st ? 'is a folder' : 'does not exist'}`);
  return text;
}

/**
 * NATS server URLs, comma-separated: `nats://host:port`, `tls://host:port`, or `host:port`
 * (port 4222 when omitted).
 */
export function natsUrls(text: string): string {
  const forms = 'NATS server URLs, comma-separated: nats://host:4222, tls://host:4222 or host:4222';
  const parts = text.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '')) invalid(forms);
  for (const p of parts) {
    let u: URL;
    try {
      u = new URL(p.includes('://') ? p : `nats://${p}`);
    } catch {
      return invalid(forms);
    }
    if (!['nats:', 'tls:', 'ws:', 'wss:'].includes(u.protocol) || u.hostname === '' || u.pathname.replace(/^\/$/, '') !== '') invalid(forms);
  }
  return text;
}

/** An http(s) URL of a ClickHouse server. */
export function httpUrl(text: string): string {
  let u: URL | undefined;
  try {
    u = new URL(text);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') invalid('an http(s) URL of a ClickHouse server, e.g. http://127.0.0.1:8123');
  return text;
}

/** A comma-separated list of names out of `known` (at least one, no repeats). */
export function listOf<T extends string>(known: readonly T[]): (text: string) => T[] {
  return (text) => {
    const names = text.split(',').map((s) => s.trim());
    const unknown = names.filter((n) => !(known as readonly string[]).includes(n));
    if (names.length === 0 || unknown.length > 0 || new Set(names).size !== names.length) invalid(`a comma-separated list of ${known.join(', ')}, each at most once`);
    return names as T[];
  };
}

/** One of `known`, case ignored; returned as spelled in `known`. */
export function oneOf<T extends string>(known: readonly T[]): (text: string) => T {
  return (text) => known.find((k) => k.toLowerCase() === text.trim().toLowerCase()) ?? invalid(`one of ${known.join(', ')}`);
}

/** --workers: a count of worker threads (0 to 64) or "auto". */
export function workersValue(text: string): string {
  if (text === 'auto') return text;
  return String(integer(0, 64, 'worker threads, or auto')(text));
}
