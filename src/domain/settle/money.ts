/** Integer-fen arithmetic for discounts. */
import { fen, type Fen } from '../types.js';

/**
 * `amount × percent / 100` rounded half up to the fen, in integer arithmetic (no float ever
 * reaches an amount). Percentages are integers 0–100 in the tariff data.
 */
export function percentOf(amountFen: Fen, percent: number): Fen {
  fen(amountFen);
  if (!Number.isInteger(percent) || percent < 0) throw new RangeError(`percent must be a non-negative integer, got ${percent}`);
  const sign = amountFen < 0 ? -1 : 1;
  return sign * Math.floor((Math.abs(amountFen) * percent + 50) / 100);
}
