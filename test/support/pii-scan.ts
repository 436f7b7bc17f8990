/**
 * Looking for personal information where tapflow must keep none: known card and ID numbers
 * searched for, byte by byte, in everything the pipeline wrote.
 *
 * A number is looked for in every form a leak would take (see {@link leakForms}):
 *   ascii          the characters themselves (also what JSON, CSV, protobuf and msgpack strings hold)
 *   utf-16le/be    two bytes a character
 *   hex, HEX       the hex of its ASCII bytes, lower and upper case, and "31 31 30 …" (Node's
 *                  inspect of a Buffer)
 *   decimal bytes  "49,49,48,…" and "49, 49, 48, …" (a Buffer or byte array as JSON or inspected)
 *   base64@k       base64 and base64url of its ASCII bytes when they start k = 0, 1, 2 bytes into
 *                  the encoded data: only the characters that those bytes alone determine
 *   bcd@k          packed BCD of its digits (two a byte), starting at the high (k = 0) or low
 *                  (k = 1) nibble of a byte
 * Sealed credentials (AES-256-GCM between ingest and validators) are ciphertext: they are not a
 * leak, and nothing here decrypts them.
 *
 * Where: {@link busPlaces} (every message of every JetStream stream, KV buckets included, read
 * raw by sequence), {@link storePlaces} (every column of every row of every table of the
 * ClickHouse database), {@link filePlaces} (files on disk), and log lines and HTTP bodies given
 * as text ({@link logPlaces}; byte arrays inside a JSON log line are decoded and searched too).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { ClickHouseEngine } from '../../src/store/engine.js';

export type KnownKind = 'card number' | 'ID number';

/** A number that must not appear anywhere. */
export interface KnownValue {
  kind: KnownKind;
  value: string;
}

/** Something to search: where it is, and its bytes (text is searched as UTF-8). */
export interface Place {
  place: string;
  bytes: Uint8Array | string;
}

export interface Finding {
  place: string;
  kind: KnownKind;
  value: string;
  form: string;
  /** Byte offset in the place. */
  offset: number;
}

/** One form of one number, as bytes; BCD forms check the half bytes at their ends too. */
export interface LeakForm {
  known: KnownValue;
  form: string;
  bytes: Buffer;
  /** BCD at an odd nibble: the digit in the low half of the byte before `bytes`. */
  lowNibbleBefore?: number;
  /** BCD of an odd count of digits: the last digit, in the high half of the byte after `bytes`. */
  highNibbleAfter?: number;
}

/** The characters of base64 (or base64url) of `data` that its bytes alone determine, starting k bytes in. */
function base64Fragment(data: Buffer, k: number, url: boolean): string {
  const encoded = Buffer.concat([Buffer.alloc(k), data]).toString(url ? 'base64url' : 'base64');
  // Character i covers bits [6i, 6i + 6): keep those within the data's bits [8k, 8(k + n)).
  return encoded.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + data.length)) / 6));
}

/** Packed BCD of `digits` starting at a high nibble: full bytes, and an odd last digit. */
function packBcd(digits: string): { bytes: Buffer; last?: number } {
  const pairs = Math.floor(digits.length / 2);
  const bytes = Buffer.alloc(pairs);
  for (let i = 0; i < pairs; i++) bytes[i] = (Number(digits[2 * i]) << 4) | Number(digits[2 * i + 1]);
  return digits.length % 2 === 1 ? { bytes, last: Number(digits[digits.length - 1]) } : { bytes };
}

/** Every form of `known` the scanner looks for (see the module comment). */
export function leakForms(known: KnownValue): LeakForm[] {
  const ascii = Buffer.from(known.value, 'latin1');
  const forms: LeakForm[] = [];
  const add = (form: string, bytes: Buffer | string, extra: Partial<LeakForm> = {}) => {
    const b = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    // base64 and base64url agree where the fragment has no + or /: one form, both names.
    const same = forms.find((f) => f.bytes.equals(b) && f.lowNibbleBefore === extra.lowNibbleBefore && f.highNibbleAfter === extra.highNibbleAfter);
    if (same) same.form += `/${form}`;
    else forms.push({ known, form, bytes: b, ...extra });
  };
  add('ascii', ascii);
  add('utf-16le', Buffer.from(known.value, 'utf16le'));
  add('utf-16be', Buffer.from(known.value, 'utf16le').swap16());
  add('hex', ascii.toString('hex'));
  add('HEX', ascii.toString('hex').toUpperCase());
  add('hex bytes', [...ascii].map((b) => b.toString(16).padStart(2, '0')).join(' '));
  add('decimal bytes', [...ascii].join(','));
  add('decimal bytes, spaced', [...ascii].join(', '));
  for (const k of [0, 1, 2]) {
    add(`base64@${k}`, base64Fragment(ascii, k, false));
    add(`base64url@${k}`, base64Fragment(ascii, k, true));
  }
  // Packed BCD of the leading digits (an ID number's check character X is not a digit).
  const digits = /^[0-9]+/.exec(known.value)?.[0] ?? '';
  if (digits.length >= 12) {
    const even = packBcd(digits);
    add('bcd@0', even.bytes, even.last === undefined ? {} : { highNibbleAfter: even.last });
    const odd = packBcd(digits.slice(1));
    add('bcd@1', odd.bytes, { lowNibbleBefore: Number(digits[0]), ...(odd.last !== undefined && { highNibbleAfter: odd.last }) });
  }
  return forms;
}

/** The shortest form: every form is at least this long, so four bytes index them all. */
const KEY_BYTES = 4;

const keyAt = (b: Uint8Array, i: number) => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;

/**
 * Searches places for every form of the known numbers in one pass over each place: the forms
 * are indexed by their first four bytes, so the cost is that of reading the bytes once, however
 * many numbers are looked for.
 */
export class LeakScanner {
  private readonly index = new Map<number, LeakForm[]>();
  readonly forms: LeakForm[];
  /** Places searched and bytes read, for the summary. */
  places = 0;
  bytes = 0;

  constructor(known: readonly KnownValue[]) {
    this.forms = known.flatMap(leakForms);
    for (const f of this.forms) {
      if (f.bytes.length < KEY_BYTES) throw new Error(`${f.known.kind} ${f.known.value} is too short to look for as ${f.form}`);
      const k = keyAt(f.bytes, 0);
      const list = this.index.get(k);
      if (list) list.push(f);
      else this.index.set(k, [f]);
    }
  }

  /** Every form found in one place. */
  scan(p: Place): Finding[] {
    const b = typeof p.bytes === 'string' ? Buffer.from(p.bytes, 'utf8') : Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
    this.places++;
    this.bytes += b.length;
    const found: Finding[] = [];
    for (let i = 0; i + KEY_BYTES <= b.length; i++) {
      const candidates = this.index.get(keyAt(b, i));
      if (!candidates) continue;
      for (const f of candidates) {
        const end = i + f.bytes.length;
        if (end > b.length || b.compare(f.bytes, 0, f.bytes.length, i, end) !== 0) continue;
        if (f.lowNibbleBefore !== undefined && (i === 0 || (b[i - 1]! & 0x0f) !== f.lowNibbleBefore)) continue;
        if (f.highNibbleAfter !== undefined && (end >= b.length || b[end]! >> 4 !== f.highNibbleAfter)) continue;
        found.push({ place: p.place, kind: f.known.kind, value: f.known.value, form: f.form, offset: f.lowNibbleBefore !== undefined ? i - 1 : i });
      }
    }
    return found;
  }

  /** Every form found in any of the places. */
  async scanAll(places: AsyncIterable<Place> | Iterable<Place>): Promise<Finding[]> {
    const found: Finding[] = [];
    for await (const p of places) found.push(...this.scan(p));
    return found;
  }
}

/** A finding as a line of a failure message. */
export function describeFinding(f: Finding): string {
  return `${f.place}: ${f.kind} ${f.value} as ${f.form} at byte ${f.offset}`;
}

/** Findings as failure lines: the first `max`, then how many more and of how many numbers. */
export function findingsReport(findings: readonly Finding[], max = 40): string[] {
  const lines = findings.slice(0, max).map(describeFinding);
  if (findings.length > max) lines.push(`… and ${findings.length - max} more; ${new Set(findings.map((f) => f.value)).size} numbers found in all`);
  return lines;
}

/** Headers as the text they travel as ("Name: value" lines). */
export function headersText(h: MsgHdrs | undefined): string {
  if (!h) return '';
  const lines: string[] = [];
  for (const [k, vs] of h) for (const v of vs) lines.push(`${k}: ${v}`);
  return lines.join('\r\n');
}

/** What {@link busPlaces} read from each stream. */
export type StreamCounts = Map<string, { messages: number; bytes: number }>;

/**
 * Every message of every stream on the server, read raw by sequence: subject, headers and data,
 * each a place. KV buckets are the streams KV_<bucket>, one message per revision kept (their
 * history). `counts` receives what was read per stream.
 */
export async function* busPlaces(jsm: JetStreamManager, counts: StreamCounts = new Map()): AsyncGenerator<Place> {
  const names: string[] = [];
  for await (const si of jsm.streams.list()) names.push(si.config.name);
  for (const name of names.sort()) {
    const si = await jsm.streams.info(name);
    const bucket = name.startsWith('KV_') ? name.slice(3) : undefined;
    const c = { messages: 0, bytes: 0 };
    counts.set(name, c);
    if (si.state.messages === 0) continue;
    for (let seq = si.state.first_seq; seq <= si.state.last_seq; seq++) {
      // A sequence removed (acknowledged under interest retention, or deleted) is not there.
      const m = await jsm.streams.getMessage(name, { seq }).catch(() => null);
      if (!m) continue;
      c.messages++;
      c.bytes += m.data.length;
      const where = bucket ? `KV ${bucket} key ${m.subject.slice(`$KV.${bucket}.`.length)} (stream seq ${seq})` : `stream ${name} ${m.subject} seq ${seq}`;
      yield { place: `${where} subject`, bytes: m.subject };
      yield { place: `${where} headers`, bytes: headersText(m.header) };
      yield { place: `${where} data`, bytes: m.data };
    }
  }
}

/** Quotes a ClickHouse identifier. */
const ident = (name: string) => `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;

/** What {@link storePlaces} read from each table. */
export type TableCounts = Map<string, { rows: number; columns: number }>;

/**
 * Every value of every column of every table of the engine's database, as ClickHouse writes it
 * as text (toString), byte for byte (hex on the way, so no JSON decoding changes a byte): one
 * place per table, column and row. Views are read through the tables they write to.
 */
export async function* storePlaces(engine: ClickHouseEngine, counts: TableCounts = new Map()): AsyncGenerator<Place> {
  const tables = await engine.query<{ name: string; engine: string }>('SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name');
  for (const t of tables) {
    if (t.engine === 'MaterializedView' || t.engine === 'View') continue;
    const cols = await engine.query<{ name: string }>('SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} ORDER BY position', { t: t.name });
    const rows = await engine.query<Record<string, string>>(`SELECT ${cols.map((c, i) => `hex(toString(${ident(c.name)})) AS c${i}`).join(', ')} FROM ${ident(t.name)}`);
    counts.set(t.name, { rows: rows.length, columns: cols.length });
    for (const [r, row] of rows.entries()) {
      for (const [i, c] of cols.entries()) yield { place: `table ${t.name} column ${c.name} row ${r + 1}`, bytes: Buffer.from(row[`c${i}`]!, 'hex') };
    }
  }
}

/** Every file under the directories, whole, as its bytes on disk. */
export async function* filePlaces(dirs: readonly string[]): AsyncGenerator<Place> {
  for (const dir of dirs) {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    for (const e of entries) {
      if (!e.isFile()) continue;
      const path = join(e.parentPath, e.name);
      const bytes = await readFile(path).catch(() => undefined); // removed meanwhile (a merged part)
      if (bytes) yield { place: `file ${path}`, bytes };
    }
  }
}

/** Byte arrays inside a parsed JSON value: [49, 49, …] and {"0": 49, "1": 49, …}, with their paths. */
function byteArrays(v: unknown, path: string, out: { path: string; bytes: Buffer }[]): void {
  if (Array.isArray(v)) {
    if (v.length >= 8 && v.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)) out.push({ path, bytes: Buffer.from(v as number[]) });
    else v.forEach((x, i) => byteArrays(x, `${path}[${i}]`, out));
  } else if (v && typeof v === 'object') {
    const entries = Object.entries(v);
    if (entries.length >= 8 && entries.every(([k, x], i) => k === String(i) && Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 255)) {
      out.push({ path, bytes: Buffer.from(entries.map(([, x]) => x as number)) });
    } else for (const [k, x] of entries) byteArrays(x, `${path}.${k}`, out);
  }
}

/**
 * Log lines as places: each line as written, and each byte array a JSON line holds (a logged
 * Buffer or Uint8Array) decoded to its bytes.
 */
export function* logPlaces(name: string, text: string): Generator<Place> {
  for (const [i, line] of text.split('\n').entries()) {
    if (!line) continue;
    yield { place: `${name} line ${i + 1}`, bytes: line };
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    const arrays: { path: string; bytes: Buffer }[] = [];
    byteArrays(parsed, '', arrays);
    for (const a of arrays) yield { place: `${name} line ${i + 1} bytes at ${a.path || '(line)'}`, bytes: a.bytes };
  }
}
