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
/**
 * Largest gRPC message ingest accepts (bytes). A tap at its limits (ids of 64 and 128
 * characters, a 2,048-character QR payload) encodes to under 2.4 KB; a batch of MAX_BATCH_TAPS
 * taps with ordinary QR codes (about 450 bytes each) to under 5 MB. 8 MiB leaves room and is
 * still far from what a terminal could use to exhaust memory.
 */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

/** True for an integer n with lo ≤ n ≤ hi (bigint or number). */
export function inRange(n: bigint | number, lo: number, hi: number): boolean {
  if (typeof n === 'bigint') return n >= BigInt(lo) && n <= BigInt(hi);
  return Number.isSafeInteger(n) && n >= lo && n <= hi;
}
