/**
 * The pure parts of the reports: the time range of --day/--from/--to, CSV per RFC 4180 and its
 * reading back, and the dashboards' macros expanded for a report range and as Grafana does.
 */
import { describe, expect, it } from 'vitest';
import { businessDays, describeRange, resolveRange, TimeRangeError } from '../../../src/cli/time-range.js';
import { csvField, displayWidth, parseCsv, toCsv, toTable } from '../../../src/cli/tabular.js';
import { expandPanelSql } from '../../../src/store/panels.js';

const at = (iso: string) => Date.parse(iso);

describe('cli - time range', () => {
  it('--day is the business day in Asia/Shanghai, [00:00, next 00:00)', () => {
    expect(resolveRange({ day: '2026-03-10' })).toEqual({ fromMs: at('2026-03-09T16:00:00Z'), toMs: at('2026-03-10T16:00:00Z'), day: '2026-03-10', fromGiven: false, toGiven: false });
    // The default day applies only when no flag is given.
    expect(resolveRange({}, '2026-03-10').day).toBe('2026-03-10');
    expect(resolveRange({ from: at('2026-03-10T00:00:00+08:00') }, '2026-01-01').day).toBeUndefined();
  });

  it('--from included, --to excluded, either side open', () => {
    const r = resolveRange({ from: 1_000, to: 2_000 });
    expect([r.fromMs, r.toMs]).toEqual([1_000, 2_000]);
    expect(resolveRange({ from: at('2026-03-10T00:00:00+08:00') }).toMs).toBe(Date.UTC(2100, 0, 1));
    expect(resolveRange({ to: at('2026-03-10T00:00:00+08:00') }).fromMs).toBe(Date.UTC(2015, 0, 1));
    expect(describeRange(resolveRange({}))).toBe('all events');
    expect(describeRange(resolveRange({ from: at('2026-03-10T08:00:00+08:00') }))).toBe('from 2026-03-10T08:00:00.000+08:00 (included) to the last');
  });

  it('refuses --day with --from or --to, and a range whose --to is not after --from', () => {
    expect(() => resolveRange({ day: '2026-03-10', to: 5 })).toThrow(TimeRangeError);
    expect(() => resolveRange({ day: '2026-03-10', from: 5 })).toThrow(/--day cannot be combined with --from or --to/);
    expect(() => resolveRange({ from: 5, to: 5 })).toThrow(/--to .* must be after --from/);
    expect(() => resolveRange({ from: 6, to: 5 })).toThrow(/must be after --from/);
  });

  it('the business days a range touches end with the day of its last millisecond', () => {
    expect(businessDays(resolveRange({ day: '2026-03-10' }))).toEqual({ first: '2026-03-10', last: '2026-03-10' });
    expect(businessDays(resolveRange({ from: at('2026-03-10T23:00:00+08:00'), to: at('2026-03-11T00:00:01+08:00') }))).toEqual({ first: '2026-03-10', last: '2026-03-11' });
  });
});

describe('cli - CSV and tables', () => {
  it('quotes fields with commas, quotes and line breaks, and reads them back', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(-150)).toBe('-150');
    const rows = [
      { venue: 'bj-subway:西直门', note: 'a,b "c"\r\nd', fen: 400 },
      { venue: '', note: '', fen: -1 },
    ];
    const csv = toCsv(['venue', 'note', 'fen'], rows);
    expect(csv.startsWith('venue,note,fen\r\n')).toBe(true);
    expect(parseCsv(csv)).toEqual([
      ['venue', 'note', 'fen'],
      ['bj-subway:西直门', 'a,b "c"\r\nd', '400'],
      ['', '', '-1'],
    ]);
    expect(toCsv(['a'], [])).toBe('a\r\n');
  });

  it('aligns tables by display width, numbers to the right', () => {
    expect(displayWidth('西直门')).toBe(6);
    const t = toTable(['venue', 'n'], [{ venue: '西直门', n: 5 }, { venue: 'abc', n: 123 }]);
    expect(t).toEqual(['  venue     n', '  西直门    5', '  abc     123']);
    expect(toTable(['x'], [])).toEqual(['  (none)']);
  });
});

describe('store - dashboard macros', () => {
  const q = { rawSql: 'SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND $__dateFilter(d) AND $__fromTime < $__toTime', variables: {} };
  const from = at('2026-03-10T08:00:00.250+08:00');
  const to = at('2026-03-11T00:00:00+08:00');

  it('report: --from included, --to excluded, to the millisecond; the business days of the range', () => {
    expect(expandPanelSql(q, { fromMs: from, toMs: to, interval: { count: 15, unit: 'minute' }, mode: 'report' })).toBe(
      `SELECT toStartOfInterval(toDateTime(t), INTERVAL 15 minute) AS time FROM x WHERE t >= fromUnixTimestamp64Milli(${from}) AND t < fromUnixTimestamp64Milli(${to}) AND d >= toDate('2026-03-10') AND d <= toDate('2026-03-10') AND fromUnixTimestamp64Milli(${from}) < fromUnixTimestamp64Milli(${to})`,
    );
  });

  it('grafana: as the plugin expands them, both ends included, whole seconds', () => {
    const s = Math.floor(from / 1000);
    expect(expandPanelSql(q, { fromMs: from, toMs: to, mode: 'grafana' })).toBe(
      `SELECT toStartOfInterval(toDateTime(t), INTERVAL 60 second) AS time FROM x WHERE t >= toDateTime(${s}) AND t <= toDateTime(${to / 1000}) AND d >= toDate('2026-03-10') AND d <= toDate('2026-03-11') AND toDateTime(${s}) < toDateTime(${to / 1000})`,
    );
  });

  it('substitutes dashboard variables and refuses anything left over', () => {
    expect(expandPanelSql({ rawSql: 'SELECT 1 LIMIT $top OFFSET ${skip}', variables: { top: '10', skip: '5' } }, { fromMs: 0, toMs: 1, mode: 'grafana' })).toBe('SELECT 1 LIMIT 10 OFFSET 5');
    expect(() => expandPanelSql({ rawSql: 'SELECT $__unknown(x)', variables: {} }, { fromMs: 0, toMs: 1, mode: 'grafana' })).toThrow(/unknown macro or variable \$__unknown/);
  });
});
