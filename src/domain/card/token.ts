/**
 * Card numbers and ID numbers never leave ingest in the clear: they are replaced by keyed
 * tokens (HMAC-SHA-256 under the deployment's token key, truncated to 128 bits, hex). The same
 * number always gives the same token under one key, so per-card state and aggregates work on
 * tokens; without the key a token cannot be turned back into a number, even by trying every
 * card number. The key is versioned and can be rotated; a token names its version and a card's
 * partition stays that of its version-1 token (token-keys.ts).
 */
import { createHmac } from 'node:crypto';
import type { Region } from '../types.js';

/** Domain separation: a card token and a person token of equal digits differ. */
export type TokenKind = 'card' | 'person';

export function tokenize(key: Uint8Array, kind: TokenKind, value: string): string {
  return createHmac('sha256', key).update(kind).update('\0').update(value).digest('hex').slice(0, 32);
}

/** Province codes that open a card number: 11 Beijing, 12 Tianjin, 13 Hebei. */
const PROVINCE_PREFIX: Record<string, Region> = { '11': 'BJ', '12': 'TJ', '13': 'HE' };

/** Card numbers: a province code (11, 12, 13) then 7 to 16 digits or capital letters. */
export const CARD_NUMBER_PATTERN = /^1[123][0-9A-Z]{7,16}$/;

/** Issuing region of a card number, or undefined when the number is not of the three regions. */
export function regionOfCardNumber(cardNumber: string): Region | undefined {
  if (!CARD_NUMBER_PATTERN.test(cardNumber)) return undefined;
  return PROVINCE_PREFIX[cardNumber.slice(0, 2)];
}

/** A stable 32-bit FNV-1a hash, used to spread tokens over partitions. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function partitionOf(token: string, partitions: number): number {
  return fnv1a32(token) % partitions;
}
