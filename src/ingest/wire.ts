/**
 * Strict, lossless reading of what terminals send (the gRPC request messages of
 * tapflow.v1.TerminalIngest), in place of the generated decoders, which stop silently at a
 * field number 0 or an end-group tag (accepting trailing garbage) and throw on a 64-bit value
 * above 2^53 (which made grpc-js end the whole stream with INTERNAL).
 *
 * A frame is read in two passes over its bytes:
 * 1. a wire scan against the message descriptors (src/gen/tapflow.binpb): every tag must have a
 *    field number ≥ 1 and the wire type its field expects (recursively into sub-messages), no
 *    group tags, 32-bit varints must fit their field, no varint above 2^64 − 1, lengths must
 *    stay inside the frame, strings must be UTF-8 (each error names the field); unknown field
 *    numbers (a newer contract) are skipped;
 * 2. @bufbuild/protobuf's reflective decoder, with 64-bit integers as bigint (never rounded) and
 *    strict UTF-8.
 * Range checks of the values (seq ≤ 2^53 − 1 and so on) are shape checks (shape.ts), which name
 * the field. When a frame fails to read, {@link salvageIds} still tries to recover its
 * terminal_id and seq, so that a live tap can be answered INVALID by (terminal_id, seq) while the
 * stream goes on; a frame with no recoverable seq ends its stream.
 */
import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createFileRegistry, fromBinary, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type { ChipCard, ClaimItem, ClaimQuery, MedicalClaim, QrCode, Tap } from '../gen/tapflow/v1/ingest.js';

/** A Tap as read from the wire: 64-bit integers as bigint, not yet range-checked. */
export interface WireTap extends Omit<Tap, 'seq' | 'deviceTime' | 'amountFen'> {
  seq: bigint;
  deviceTime: bigint;
  amountFen: bigint;
}

export interface WireBatch {
  terminalId: string;
  taps: WireTap[];
}

export interface WireClaimItem extends Omit<ClaimItem, 'amountFen'> {
  amountFen: bigint;
}

export interface WireClaim extends Omit<MedicalClaim, 'deviceTime' | 'items' | 'personalAccountBalanceFen'> {
  deviceTime: bigint;
  items: WireClaimItem[];
  personalAccountBalanceFen: bigint;
}

/** What reading one frame gave. */
export type Frame<T> = { ok: true; value: T } | { ok: false; error: string };

const descriptorPath = fileURLToPath(new URL('../gen/tapflow.binpb', import.meta.url));
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorPath)));

function message(name: string): DescMessage {
  const d = registry.getMessage(`tapflow.v1.${name}`);
  if (!d) throw new Error(`tapflow.v1.${name} is missing from ${descriptorPath}: run npm run gen`);
  return d;
}

const TAP = message('Tap');
const BATCH = message('TapBatch');
const CLAIM = message('MedicalClaim');
const QUERY = message('ClaimQuery');

// ScalarType numbers of google.protobuf.FieldDescriptorProto.Type.
const FIXED64_TYPES = new Set([1, 6, 16]); // double, fixed64, sfixed64
const FIXED32_TYPES = new Set([2, 7, 15]); // float, fixed32, sfixed32
const LEN_TYPES = new Set([9, 12]); // string, bytes
const WIRE_NAMES = ['varint', '64-bit', 'length-delimited', 'start-group', 'end-group', '32-bit'];

/** How a varint must fit its field. */
const enum Fit {
  Any, // 64-bit integers: any varint of at most 10 bytes
  Uint32,
  Int32, // int32 and enums: negative values are sign-extended to 10 bytes
  Bool,
}

interface FieldPlan {
  name: string;
  wire: WireType;
  fit: Fit;
  /** Sub-message of a message field or a list of messages. */
  sub?: MessagePlan;
  list: boolean;
  /** A list of numbers, which may also come packed (length-delimited). */
  packable: boolean;
  /** A string: its bytes must be UTF-8. */
  utf8: boolean;
}

interface MessagePlan {
  name: string;
  fields: Map<number, FieldPlan>;
}

const plans = new Map<DescMessage, MessagePlan>();

/** The wire expectations of a message's fields, computed once per descriptor. */
function planOf(desc: DescMessage): MessagePlan {
  let plan = plans.get(desc);
  if (plan) return plan;
  plan = { name: desc.name, fields: new Map() };
  plans.set(desc, plan);
  for (const f of desc.fields) {
    const list = f.fieldKind === 'list';
    const isMessage = f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message');
    if (isMessage) {
      plan.fields.set(f.number, { name: f.name, wire: WireType.LengthDelimited, fit: Fit.Any, sub: planOf(f.message!), list, packable: false, utf8: false });
      continue;
    }
    const scalar = f.fieldKind === 'scalar' ? f.scalar : f.fieldKind === 'list' && f.listKind === 'scalar' ? f.scalar : undefined;
    const wire = scalar === undefined ? WireType.Varint : FIXED64_TYPES.has(scalar) ? WireType.Bit64 : FIXED32_TYPES.has(scalar) ? WireType.Bit32 : LEN_TYPES.has(scalar) ? WireType.LengthDelimited : WireType.Varint;
    const fit = scalar === undefined || scalar === 5 ? Fit.Int32 : scalar === 13 || scalar === 17 ? Fit.Uint32 : scalar === 8 ? Fit.Bool : Fit.Any;
    plan.fields.set(f.number, { name: f.name, wire, fit, list, packable: list && wire !== WireType.LengthDelimited, utf8: scalar === 9 });
  }
  return plan;
}

class WireError extends Error {}

/**
 * Reads a varint at `c.pos`; checks it fits `fit`. Values of up to 7 bytes (below 2^49) are read
 * as numbers; longer ones as bigint, only to check 32-bit fields.
 */
function varint(b: Uint8Array, c: { pos: number }, end: number, fit: Fit, at: string): number {
  let v = 0;
  let mul = 1;
  const start = c.pos;
  for (let i = 0; i < 10; i++) {
    if (c.pos >= end) throw new WireError(`${at}: premature end of a varint`);
    const byte = b[c.pos++]!;
    // The tenth byte holds bit 63 only: more would be a value above 2^64 − 1, which other
    // decoders would cut to its low 64 bits (a seq 2^64 + 1 read as 1).
    if (i === 9 && byte > 1 && byte < 0x80) throw new WireError(`${at}: a varint above 2^64 − 1`);
    if (i < 7) v += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) {
      if (fit === Fit.Any) return v;
      if (i < 7) {
        if (fit === Fit.Bool ? v <= 1 : v <= (fit === Fit.Uint32 ? 0xffff_ffff : 0x7fff_ffff)) return v;
        throw new WireError(`${at}: ${v} does not fit the field`);
      }
      let big = 0n;
      for (let j = c.pos - 1; j >= start; j--) big = (big << 7n) | BigInt(b[j]! & 0x7f);
      // int32 and enums: a negative value, sign-extended to 64 bits.
      if (fit === Fit.Int32 && big >= 0xffff_ffff_8000_0000n && big <= 0xffff_ffff_ffff_ffffn) return -1;
      throw new WireError(`${at}: ${big} does not fit the field`);
    }
  }
  throw new WireError(`${at}: a varint longer than 10 bytes`);
}

/**
 * Scans bytes [pos, end) as message `plan`; throws WireError naming the field path. `path`
 * prefixes field names (e.g. "taps[3].").
 */
function scan(plan: MessagePlan, b: Uint8Array, pos: number, end: number, path: string, depth: number): void {
  const self = path ? path.slice(0, -1) : 'message';
  if (depth > 8) throw new WireError(`${self}: nested too deeply`);
  const c = { pos };
  let counts: Map<number, number> | undefined;
  while (c.pos < end) {
    const tag = varint(b, c, end, Fit.Uint32, `${path}tag`);
    const no = tag >>> 3;
    const wt = tag & 7;
    if (no === 0) throw new WireError(`${self}: field number 0 (trailing bytes?)`);
    const field = plan.fields.get(no);
    const at = field ? `${path}${field.name}` : `${path}field ${no}`;
    if (wt === WireType.StartGroup || wt === WireType.EndGroup || wt > 5) throw new WireError(`${at}: unexpected ${WIRE_NAMES[wt] ?? `wire type ${wt}`} tag`);
    if (field && wt !== field.wire && !(field.packable && wt === WireType.LengthDelimited)) {
      throw new WireError(`${at}: wire type ${WIRE_NAMES[wt]}, expected ${WIRE_NAMES[field.wire]}`);
    }
    if (wt === WireType.Varint) varint(b, c, end, field ? field.fit : Fit.Any, at);
    else if (wt === WireType.Bit64 || wt === WireType.Bit32) {
      c.pos += wt === WireType.Bit64 ? 8 : 4;
      if (c.pos > end) throw new WireError(`${at}: premature end`);
    } else {
      const len = varint(b, c, end, Fit.Uint32, at);
      const stop = c.pos + len;
      if (stop > end) throw new WireError(`${at}: length ${len} beyond the end of the message`);
      if (field?.sub) {
        let n = 0;
        if (field.list) {
          counts ??= new Map();
          n = counts.get(no) ?? 0;
          counts.set(no, n + 1);
        }
        scan(field.sub, b, c.pos, stop, field.list ? `${at}[${n}].` : `${at}.`, depth + 1);
      } else if (field?.utf8 && !utf8(b, c.pos, stop)) {
        throw new WireError(`${at}: not valid UTF-8`);
      }
      c.pos = stop;
    }
  }
}

/** True when bytes [start, stop) are UTF-8; an ASCII string (ids, card numbers, QR codes) is checked without allocating. */
function utf8(b: Uint8Array, start: number, stop: number): boolean {
  for (let i = start; i < stop; i++) if (b[i]! >= 0x80) return isUtf8(b.subarray(i, stop));
  return true;
}

function read<T>(desc: DescMessage, bytes: Uint8Array, convert: (m: Record<string, unknown>) => T): Frame<T> {
  try {
    scan(planOf(desc), bytes, 0, bytes.length, '', 0);
  } catch (err) {
    if (err instanceof WireError) return { ok: false, error: `malformed ${desc.name}: ${err.message}` };
    throw err;
  }
  try {
    return { ok: true, value: convert(fromBinary(desc, bytes) as unknown as Record<string, unknown>) };
  } catch (err) {
    return { ok: false, error: `malformed ${desc.name}: ${(err as Error).message}` };
  }
}

type PeCard = { case: 'chip'; value: { cardNumber: string; counter: number; mac: Uint8Array } } | { case: 'qr'; value: { payload: string } } | { case: undefined };

function card(c: PeCard): Tap['card'] {
  if (c.case === 'chip') return { $case: 'chip', value: { cardNumber: c.value.cardNumber, counter: c.value.counter, mac: Buffer.from(c.value.mac) } satisfies ChipCard };
  if (c.case === 'qr') return { $case: 'qr', value: { payload: c.value.payload } satisfies QrCode };
  return undefined;
}

function tapOf(m: Record<string, unknown>): WireTap {
  return {
    terminalId: m.terminalId as string,
    seq: m.seq as bigint,
    deviceTime: m.deviceTime as bigint,
    scene: m.scene as number,
    venueId: m.venueId as string,
    direction: m.direction as number,
    card: card(m.card as PeCard),
    amountFen: m.amountFen as bigint,
    riderCategory: m.riderCategory as number,
  };
}

/** Reads a StreamTaps frame. */
export function readTap(bytes: Uint8Array): Frame<WireTap> {
  return read(TAP, bytes, tapOf);
}

/** Reads an UploadBatch request. */
export function readBatch(bytes: Uint8Array): Frame<WireBatch> {
  return read(BATCH, bytes, (m) => ({ terminalId: m.terminalId as string, taps: (m.taps as Record<string, unknown>[]).map(tapOf) }));
}

/** Reads a SettleClaim request. */
export function readClaim(bytes: Uint8Array): Frame<WireClaim> {
  return read(CLAIM, bytes, (m) => ({
    claimId: m.claimId as string,
    terminalId: m.terminalId as string,
    institutionId: m.institutionId as string,
    institutionLevel: m.institutionLevel as number,
    treatment: m.treatment as number,
    card: card(m.card as PeCard),
    idNumber: m.idNumber as string,
    insuredRegion: m.insuredRegion as number,
    deviceTime: m.deviceTime as bigint,
    items: (m.items as Record<string, unknown>[]).map((i) => ({ code: i.code as string, name: i.name as string, catalogueClass: i.catalogueClass as number, amountFen: i.amountFen as bigint })),
    reversesClaimId: m.reversesClaimId as string,
    personalAccountBalanceFen: m.personalAccountBalanceFen as bigint,
  }));
}

/** Reads a GetClaim request. */
export function readClaimQuery(bytes: Uint8Array): Frame<ClaimQuery> {
  return read(QUERY, bytes, (m) => ({ claimId: m.claimId as string, terminalId: m.terminalId as string }));
}

/**
 * The terminal_id (field 1) and seq (field 2) of a Tap frame that did not read, as far as the
 * bytes can be walked from the start; seq undefined when it cannot be found.
 */
export function salvageIds(bytes: Uint8Array): { terminalId: string; seq: bigint | undefined } {
  const r = new BinaryReader(bytes);
  let terminalId = '';
  let seq: bigint | undefined;
  try {
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      if (no === 1 && wt === WireType.LengthDelimited) terminalId = r.string();
      else if (no === 2 && wt === WireType.Varint) {
        const start = r.pos;
        seq = BigInt(r.uint64());
        // A varint above 2^64 − 1 was cut to its low bits: no seq to answer by.
        if (r.pos - start === 10 && bytes[r.pos - 1]! > 1) return { terminalId, seq: undefined };
      }
      else if (wt === WireType.StartGroup || wt === WireType.EndGroup) break;
      else r.skip(wt, no);
    }
  } catch {
    // as far as it goes
  }
  return { terminalId, seq };
}
