/**
 * The time range of the commands that read results (`report`, `clearing report`, `entries`):
 * `--day YYYY-MM-DD`, or `--from TIME` and/or `--to TIME`. One parser for the three.
 *
 * Times are read by {@link parseInstantText}: epoch ms, or ISO 8601 with a zone (`Z`, `+08:00`)
 * or without one, then in Asia/Shanghai — China Standard Time, UTC+8, the zone of tapflow's
 * business days, never the host's. A date alone is its midnight there.
 *
 * - `--day D` is the business day D: [D 00:00, D+1 00:00) in Asia/Shanghai.
 * - `--from` is included, `--to` excluded: [from, to). Either may be left out (the range is then
 *   open on that side).
 * - `--day` with `--from` or `--to`, an end that is not a time, or `--to` not after `--from`
 *   are refused with a message naming the options.
 */
import { InvalidArgumentError, Option } from 'commander';
import { businessDay, shanghaiTime } from '../domain/settle/time.js';
import { MAX_DEVICE_TIME, MIN_DEVICE_TIME } from '../domain/limits.js';
import { calendarDay, INSTANT_FORMS, parseInstantText } from './options.js';

const DAY_MS = 86_400_000;
/** Earliest and latest device times tapflow accepts: the ends of an open range. */
export const RANGE_START = MIN_DEVICE_TIME;
export const RANGE_END = MAX_DEVICE_TIME;

/** A resolved range, [fromMs, toMs). */
export interface TimeRange {
  fromMs: number;
  toMs: number;
  /** The business day when given as --day (or the default day). */
  day?: string;
  /** Whether --from / --to bounded the range (otherwise it is open on that side). */
  fromGiven: boolean;
  toGiven: boolean;
}

export interface RangeFlags {
  day?: string;
  from?: number;
  to?: number;
}

/** A range refused: the CLI prints `tapflow: <message>` and exits with status 1. */
export class TimeRangeError extends Error {
  override readonly name = 'TimeRangeError';
}

/**
 * The range of the flags. `defaultDay`: the business day when no flag is given (undefined: the
 * whole time tapflow accepts, 2015 to 2100).
 */
export function resolveRange(flags: RangeFlags, defaultDay?: string): TimeRange {
  if (flags.day !== undefined && (flags.from !== undefined || flags.to !== undefined)) {
    throw new TimeRangeError(`--day cannot be combined with --from or --to: give a business day (--day ${flags.day}) or a range (--from … --to …)`);
  }
  const day = flags.day ?? (flags.from === undefined && flags.to === undefined ? defaultDay : undefined);
  if (day !== undefined) return { fromMs: shanghaiTime(day), toMs: shanghaiTime(day) + DAY_MS, day, fromGiven: false, toGiven: false };
  const fromMs = flags.from ?? RANGE_START;
  const toMs = flags.to ?? RANGE_END;
  if (toMs <= fromMs) {
    throw new TimeRangeError(`--to (${formatTime(toMs)}) must be after --from (${formatTime(fromMs)}): the range is [from, to), from included, to excluded`);
  }
  return { fromMs, toMs, fromGiven: flags.from !== undefined, toGiven: flags.to !== undefined };
}

/** An instant as ISO 8601 in Asia/Shanghai with milliseconds, e.g. 2026-03-10T08:15:30.123+08:00. */
export function formatTime(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().replace('Z', '+08:00');
}

/** The range in words, for the heading of a report. */
export function describeRange(r: TimeRange): string {
  if (r.day !== undefined) return `business day ${r.day} (Asia/Shanghai)`;
  if (!r.fromGiven && !r.toGiven) return 'all events';
  return `${r.fromGiven ? `from ${formatTime(r.fromMs)} (included)` : 'from the first event'} ${r.toGiven ? `to ${formatTime(r.toMs)} (excluded)` : 'to the last'}`;
}

/** The business days a range touches: from the day of its start to the day of its last millisecond. */
export function businessDays(r: TimeRange): { first: string; last: string } {
  return { first: businessDay(r.fromMs), last: businessDay(r.toMs - 1) };
}

const instantOf = (which: string) => (text: string) => {
  const ms = parseInstantText(text);
  if (ms === undefined) throw new InvalidArgumentError(`Expected ${INSTANT_FORMS}.`);
  if (ms < RANGE_START || ms > RANGE_END) throw new InvalidArgumentError(`Expected a time from 2015-01-01 to 2100-01-01 (the device times tapflow accepts) for ${which}.`);
  return ms;
};

/** The options --day, --from, --to. `dayDefault`: what a missing range means, for --help. */
export function rangeOptions(dayDefault: string): Option[] {
  return [
    new Option('--day <YYYY-MM-DD>', `business day (Asia/Shanghai); ${dayDefault} when neither --day nor --from/--to is given`).argParser(calendarDay),
    new Option('--from <time>', 'start of the range, included: epoch ms or ISO 8601 (Asia/Shanghai when no zone)').argParser(instantOf('--from')),
    new Option('--to <time>', 'end of the range, excluded: epoch ms or ISO 8601 (Asia/Shanghai when no zone)').argParser(instantOf('--to')),
  ];
}
