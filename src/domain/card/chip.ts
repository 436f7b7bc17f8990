/**
 * Chip card transaction MAC.
 *
 * A third-generation card keeps an offline transaction counter and computes a MAC over each
 * transaction with its card key (derived from the issuer's master key, see keys.ts). The MAC
 * binds the card, the counter and the tap's terminal, time, amount and venue, so a captured
 * transaction cannot be replayed at another terminal or moved to another time; a replay at the
 * same terminal repeats the counter, which the validator catches.
 *
 * MAC input layout (all integers big-endian; strings UTF-8, length-prefixed):
 *
 *   offset  size  field
 *   0       4     magic "TFC1" (ASCII): domain separation and layout version
 *   4       1     n1 = byte length of the card number (1..255)
 *   5       n1    card number (ASCII digits and capital letters)
 *   …       4     counter, uint32
 *   …       2     n2 = byte length of the terminal id (uint16)
 *   …       n2    terminal id
 *   …       8     device time, epoch milliseconds, int64
 *   …       8     amount in fen, int64 (0 when the terminal debited nothing)
 *   …       2     n3 = byte length of the venue id (uint16)
 *   …       n3    venue id
 */
import { timingSafeEqual } from 'node:crypto';
import type { MacAlgorithm } from './keys.js';

/** The fields a chip MAC covers. */
export interface ChipMacFields {
  cardNumber: string;
  /** Card transaction counter, 0..2^32-1. */
  counter: number;
  terminalId: string;
  /** Epoch ms. */
  deviceTime: number;
  amountFen: number;
  venueId: string;
}

const MAGIC = Buffer.from('TFC1', 'ascii');
const MAX_U32 = 0xffff_ffff;

/** The exact bytes a chip MAC covers (layout in the module comment). Throws RangeError on fields out of range. */
export function chipMacInput(t: ChipMacFields): Uint8Array {
  if (!Number.isSafeInteger(t.counter) || t.counter < 0 || t.counter > MAX_U32) throw new RangeError(`counter must be a uint32, got ${t.counter}`);
  if (!Number.isSafeInteger(t.deviceTime)) throw new RangeError(`deviceTime must be integer epoch ms, got ${t.deviceTime}`);
  if (!Number.isSafeInteger(t.amountFen)) throw new RangeError(`amountFen must be an integer number of fen, got ${t.amountFen}`);
  const card = Buffer.from(t.cardNumber, 'utf8');
  const terminal = Buffer.from(t.terminalId, 'utf8');
  const venue = Buffer.from(t.venueId, 'utf8');
  if (card.length === 0 || card.length > 0xff) throw new RangeError('cardNumber must be 1..255 bytes');
  if (terminal.length > 0xffff || venue.length > 0xffff) throw new RangeError('terminalId and venueId must be at most 65535 bytes');
  const out = Buffer.allocUnsafe(4 + 1 + card.length + 4 + 2 + terminal.length + 8 + 8 + 2 + venue.length);
  let o = MAGIC.copy(out, 0);
  o = out.writeUInt8(card.length, o);
  o += card.copy(out, o);
  o = out.writeUInt32BE(t.counter, o);
  o = out.writeUInt16BE(terminal.length, o);
  o += terminal.copy(out, o);
  o = out.writeBigInt64BE(BigInt(t.deviceTime), o);
  o = out.writeBigInt64BE(BigInt(t.amountFen), o);
  o = out.writeUInt16BE(venue.length, o);
  venue.copy(out, o);
  return out;
}

/** The MAC a genuine card of this issuer computes for these fields. */
export function computeChipMac(alg: MacAlgorithm, master: Uint8Array, fields: ChipMacFields): Uint8Array {
  return alg.mac(alg.deriveCardKey(master, fields.cardNumber), chipMacInput(fields));
}

/** True when `mac` is the card's MAC over these fields (constant-time compare; false on out-of-range fields). */
export function verifyChipMac(alg: MacAlgorithm, master: Uint8Array, fields: ChipMacFields, mac: Uint8Array): boolean {
  let expected: Uint8Array;
  try {
    expected = computeChipMac(alg, master, fields);
  } catch {
    return false;
  }
  return expected.length === mac.length && timingSafeEqual(expected, mac);
}
