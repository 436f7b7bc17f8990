/**
 * The bounds of what terminals may send: one table, used by ingest's shape checks, the bus
 * codec's checks of what it decodes, and the pure core. Documented to vendors in
 * proto/tapflow/v1/ingest.proto and in the README ("Limits of the wire contract").
 *
 * Every bound keeps sums far below 2^53, so adding amounts in JavaScript numbers is exact:
 * MAX_CLAIM_ITEMS × MAX_CLAIM_ITEM_FEN = 10^11 fen < 2^53 ≈ 9.007 × 10^15.
 */

/** Highest `seq` a terminal may use (2^53 − 1): the largest integer every client represents exactly. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/** Earliest device time accepted (2015-01-01 UTC): older means a terminal clock never set. */
export const MIN_DEVICE_TIME = Date.UTC(2015, 0, 1);
/** Latest device time accepted (2100-01-01 UTC): later is a corrupt clock, not a tap. */
export const MAX_DEVICE_TIME = Date.UTC(2100, 0, 1);

/** A purse debit larger than this (10,000 yuan) is not a tap. */
export const MAX_TAP_AMOUNT_FEN = 1_000_000;

/** Most items in one medical claim. */
export const MAX_CLAIM_ITEMS = 1_000;
/** Largest amount of one claim item: 1,000,000 yuan. */
export const MAX_CLAIM_ITEM_FEN = 100_000_000;
/** Largest total of one claim (medfee_sumamt): 10,000,000 yuan. */
export const MAX_CLAIM_TOTAL_FEN = 1_000_000_000;
/** Largest personal account balance a claim may state: 10,000,000 yuan. */
export const MAX_ACCOUNT_BALANCE_FEN = 1_000_000_000;

/** Longest claim id, institution id and venue id (characters). */
export const MAX_ID_LENGTH = 128;
/** Longest claim item code and name (characters). */
export const MAX_ITEM_TEXT_LENGTH = 256;
/** Longest QR payload (characters): a real code is about 300. */
export const MAX_QR_PAYLOAD_LENGTH = 2_048;

/** Most taps in one UploadBatch (the configured TAPFLOW_BATCH_MAX_TAPS may not exceed it). */
export const MAX_BATCH_TAPS = 10_000;

/** Longest terminal id: 1-64 of [A-Za-z0-9._-] (TERMINAL_ID_PATTERN, src/ingest/terminals.ts). */
export const MAX_TERMINAL_ID_LENGTH = 64;
/** Longest card number: 1, a province digit and 16 more (CARD_NUMBER_PATTERN, src/domain/card/token.ts). */
export const MAX_CARD_NUMBER_LENGTH = 18;
/** Length of a resident ID number (ID_NUMBER_PATTERN, src/ingest/shape.ts). */
export const ID_NUMBER_LENGTH = 18;

// The largest messages, computed from the bounds above as the generated encoders (and every
// standard protobuf encoder) write them: each field once, varints in their shortest form, no
// fields beyond the contract's. Every field number of the contract is below 16 (a one-byte tag)
// and every enum value below 128 (a one-byte varint). A string bounded in characters (UTF-16
// code units, as the shape checks count them) takes at most 3 UTF-8 bytes per character (a
// surrogate pair is 4 bytes for 2 units); ids, card and ID numbers and QR payloads are ASCII.

/** Bytes of the shortest varint of a non-negative safe integer. */
export function varintBytes(n: number): number {
  let bytes = 1;
  for (let v = n; v >= 128; v = Math.floor(v / 128)) bytes++;
  return bytes;
}
/** A varint field (one-byte tag) holding at most `max`. */
const varintField = (max: number) => 1 + varintBytes(max);
/** A length-delimited field (one-byte tag) of `len` bytes. */
const lenField = (len: number) => 1 + varintBytes(len) + len;
/** An enum field: a one-byte tag and a one-byte value. */
const ENUM_FIELD = 2;
/** Most UTF-8 bytes of a string of `chars` UTF-16 code units. */
const utf8Max = (chars: number) => 3 * chars;

/** A ChipCard at its limits: card number, counter (uint32), 8-byte MAC. */
const MAX_CHIP_BYTES = lenField(MAX_CARD_NUMBER_LENGTH) + varintField(0xffff_ffff) + lenField(8);
/** A QrCode at its limits: a payload of the base64url alphabet and dots (ASCII). */
const MAX_QR_BYTES = lenField(MAX_QR_PAYLOAD_LENGTH);
/** The larger of the two card forms of the `card` oneof. */
const MAX_CARD_FIELD = Math.max(lenField(MAX_CHIP_BYTES), lenField(MAX_QR_BYTES));

/**
 * The largest tap that passes the shape checks (2,533 bytes): terminal_id of 64 characters,
 * seq 2^53 − 1, device_time 2100-01-01, venue_id of 128 three-byte characters, a QR payload of
 * 2,048 characters, amount_fen 1,000,000, every enum set.
 */
export const MAX_TAP_BYTES =
  lenField(MAX_TERMINAL_ID_LENGTH) + // 1 terminal_id
  varintField(MAX_SEQ) + // 2 seq
  varintField(MAX_DEVICE_TIME) + // 3 device_time
  ENUM_FIELD + // 4 scene
  lenField(utf8Max(MAX_ID_LENGTH)) + // 5 venue_id
  ENUM_FIELD + // 6 direction
  MAX_CARD_FIELD + // 7 chip | 8 qr
  varintField(MAX_TAP_AMOUNT_FEN) + // 9 amount_fen
  ENUM_FIELD; // 10 rider_category

/** The largest TapBatch of `taps` taps: its terminal_id and `taps` taps of MAX_TAP_BYTES. */
export function maxBatchBytes(taps: number): number {
  return lenField(MAX_TERMINAL_ID_LENGTH) + taps * lenField(MAX_TAP_BYTES);
}

/** A ClaimItem at its limits: code and name of 256 three-byte characters, class, amount. */
const MAX_CLAIM_ITEM_BYTES = 2 * lenField(utf8Max(MAX_ITEM_TEXT_LENGTH)) + ENUM_FIELD + varintField(MAX_CLAIM_ITEM_FEN);

/**
 * An upper bound of the largest MedicalClaim that passes the shape checks (about 1.55 MB):
 * 1,000 items at their limits (the items' total bound is not counted: a bound, not exact).
 */
export const MAX_CLAIM_BYTES =
  lenField(utf8Max(MAX_ID_LENGTH)) + // 1 claim_id
  lenField(MAX_TERMINAL_ID_LENGTH) + // 2 terminal_id
  lenField(utf8Max(MAX_ID_LENGTH)) + // 3 institution_id
  ENUM_FIELD + // 4 institution_level
  ENUM_FIELD + // 5 treatment
  MAX_CARD_FIELD + // 6 chip | 7 qr
  lenField(ID_NUMBER_LENGTH) + // 8 id_number
  ENUM_FIELD + // 9 insured_region
  varintField(MAX_DEVICE_TIME) + // 10 device_time
  MAX_CLAIM_ITEMS * lenField(MAX_CLAIM_ITEM_BYTES) + // 11 items
  lenField(utf8Max(MAX_ID_LENGTH)) + // 12 reverses_claim_id
  varintField(MAX_ACCOUNT_BALANCE_FEN); // 13 personal_account_balance_fen

/**
 * The largest gRPC message ingest accepts (bytes), for a TAPFLOW_BATCH_MAX_TAPS of `batchMaxTaps`:
 * what the largest of its requests needs — a full batch of the largest taps, or the largest
 * claim when batches are small — and not a byte more. 12,680,066 bytes (about 12.1 MiB) for the
 * default 5,000 taps; 25,360,066 for 10,000. A message beyond it is refused by gRPC before it is
 * read (RESOURCE_EXHAUSTED), and a compressed one as soon as it inflates beyond it.
 */
export function maxMessageBytes(batchMaxTaps: number): number {
  return Math.max(maxBatchBytes(batchMaxTaps), MAX_CLAIM_BYTES);
}

/** True for an integer n with lo ≤ n ≤ hi (bigint or number). */
export function inRange(n: bigint | number, lo: number, hi: number): boolean {
  if (typeof n === 'bigint') return n >= BigInt(lo) && n <= BigInt(hi);
  return Number.isSafeInteger(n) && n >= lo && n <= hi;
}
