/**
 * Calendar arithmetic in Asia/Shanghai: a fixed UTC+8 offset (China has no daylight saving time
 * since 1991), so no time-zone database is needed and results never depend on the host's zone.
 */
import type { EpochMs } from '../types.js';

const OFFSET_MS = 8 * 3_600_000;

/** YYYY-MM-DD in Asia/Shanghai: the business day of a device time. */
export function businessDay(ms: EpochMs): string {
  return new Date(ms + OFFSET_MS).toISOString().slice(0, 10);
}

// The month of the last call and its bounds: fares ask for the month of every charge while
// re-rating, nearly always the same one, and formatting a Date each time showed in profiles.
let monthCache = { from: 0, to: -1, key: '' };

/** YYYY-MM in Asia/Shanghai: the calendar month of monthly fare discounts. */
export function shanghaiMonth(ms: EpochMs): string {
  if (ms >= monthCache.from && ms < monthCache.to) return monthCache.key;
  const d = new Date(ms + OFFSET_MS);
  const from = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) - OFFSET_MS;
  const to = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - OFFSET_MS;
  monthCache = { from, to, key: d.toISOString().slice(0, 7) };
  return monthCache.key;
}

/** YYYY in Asia/Shanghai: the calendar year of medical accumulations. */
export function shanghaiYear(ms: EpochMs): string {
  return new Date(ms + OFFSET_MS).toISOString().slice(0, 4);
}

/** Day of week in Asia/Shanghai, 0 = Sunday … 6 = Saturday. */
export function shanghaiWeekday(ms: EpochMs): number {
  return new Date(ms + OFFSET_MS).getUTCDay();
}

/** Minutes since local midnight in Asia/Shanghai. */
export function shanghaiMinuteOfDay(ms: EpochMs): number {
  const d = new Date(ms + OFFSET_MS);
  return d.getUTCHours() * 60 + d.getUTCMinutes();
}

/** Epoch ms of a local Asia/Shanghai wall-clock time, e.g. shanghaiTime('2026-03-02T08:15'). */
export function shanghaiTime(isoLocal: string): EpochMs {
  const ms = Date.parse(`${isoLocal}${isoLocal.length <= 10 ? 'T00:00' : ''}+08:00`);
  if (Number.isNaN(ms)) throw new RangeError(`not a local date-time: ${isoLocal}`);
  return ms;
}
