/**
 * The hotlist: card tokens reported lost, frozen or cancelled.
 *
 * Entries are keyed by card token, and the token of a card is the same whichever form presents
 * it: ingest tokenises the chip's card number and the card number named inside a QR code with
 * the same key (tokenize(key, 'card', number)). So one entry blocks the physical card and its
 * electronic card alike: a cancelled physical card also stops its QR codes (DESIGN, Domain), and
 * LOST and FROZEN block both forms as well. `lookup` takes the form anyway so that a future
 * form-specific status can be added without changing callers.
 *
 * An entry applies to taps whose device time is at or after `since`: an offline tap made before
 * the card was reported is judged as it would have been live.
 *
 * JSON of an entry (the KV value; the lead's CLI stores one entry per card token):
 *   {"cardToken": "<32 hex>", "reason": "LOST" | "FROZEN" | "CANCELLED", "since": <epoch ms>, "note": "…"}
 */
import type { CardForm } from '../types.js';
import { DataFormatError, isPlainObject, optionalString, rejectUnknownFields, requireOneOf, requireString } from './data-format.js';

export const HotlistReasons = ['LOST', 'FROZEN', 'CANCELLED'] as const;
export type HotlistReason = (typeof HotlistReasons)[number];

export interface HotlistEntry {
  cardToken: string;
  reason: HotlistReason;
  /** Epoch ms from which the entry applies (device time of taps). */
  since: number;
  note?: string;
}

/** Reason code of a decision rejected by a hotlist entry. */
export const HOTLIST_REASON_CODES = {
  LOST: 'HOTLIST_LOST',
  FROZEN: 'HOTLIST_FROZEN',
  CANCELLED: 'HOTLIST_CANCELLED',
} as const satisfies Record<HotlistReason, string>;

/** An immutable hotlist snapshot with a version (e.g. the KV revision it was read at). */
export class Hotlist {
  private readonly byToken: ReadonlyMap<string, HotlistEntry>;

  constructor(
    entries: Iterable<HotlistEntry>,
    readonly version: string,
  ) {
    const m = new Map<string, HotlistEntry>();
    for (const e of entries) m.set(e.cardToken, e);
    this.byToken = m;
  }

  /** The entry blocking this card in this form at this device time (all reasons block both forms). */
  lookup(cardToken: string, _form: CardForm, deviceTime?: number): HotlistEntry | undefined {
    const e = this.byToken.get(cardToken);
    if (!e) return undefined;
    if (deviceTime !== undefined && deviceTime < e.since) return undefined;
    return e;
  }

  get size(): number {
    return this.byToken.size;
  }

  entries(): IterableIterator<HotlistEntry> {
    return this.byToken.values();
  }

  /** A new hotlist with this entry added or replaced. */
  with(entry: HotlistEntry, version: string): Hotlist {
    return new Hotlist([...this.byToken.values(), entry], version);
  }

  /** A new hotlist without this card token. */
  without(cardToken: string, version: string): Hotlist {
    return new Hotlist([...this.byToken.values()].filter((e) => e.cardToken !== cardToken), version);
  }
}

const ENTRY_FIELDS = ['cardToken', 'reason', 'since', 'note'] as const;

/** Validates a decoded hotlist entry (a KV value). Throws DataFormatError naming the field. */
export function hotlistEntryFromData(raw: unknown, field = 'entry'): HotlistEntry {
  if (!isPlainObject(raw)) throw new DataFormatError(field, 'expected an object');
  rejectUnknownFields(raw, ENTRY_FIELDS, field);
  const cardToken = requireString(raw, 'cardToken', field);
  const reason = requireOneOf(raw.reason, HotlistReasons, `${field}.reason`);
  if (!Number.isSafeInteger(raw.since)) throw new DataFormatError(`${field}.since`, 'expected integer epoch milliseconds');
  const note = optionalString(raw, 'note', field);
  return { cardToken, reason, since: raw.since as number, ...(note !== undefined && { note }) };
}
