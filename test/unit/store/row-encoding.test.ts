/**
 * The insert payload (src/store/row-encoding.ts) byte for byte, without an engine: every field
 * form of the CSV, strings and JSON text exactly as Buffer.from and JSON.stringify give them
 * (for hand-picked and random strings, lone surrogates included), and the checks that keep a
 * batch's rows aligned with its columns. Round trips through ClickHouse are in
 * test/integration/store/encoding.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InsertBatch, encodeRows } from '../../../src/store/row-encoding.js';
import { dateTime64, decisionRow, riskFlagRow, settlementRows, writeClaim, writeDecision, writeLedger, writeRiskFlag, writeSettlement } from '../../../src/store/rows.js';
import { T0, decision, fare, riskFlag } from '../../integration/store/fixtures.js';

/** The payload of a one-row batch written by `write`. */
function row(write: (b: InsertBatch) => void): string {
  const b = new InsertBatch();
  write(b);
  b.endRow();
  return b.payload().toString('utf8');
}

/** The bytes inside a quoted CSV field: quotes stripped, `""` back to `"`. */
function unquote(field: Buffer): Buffer {
  expect(field[0]).toBe(0x22);
  expect(field[field.length - 1]).toBe(0x22);
  const inner = field.subarray(1, field.length - 1);
  const out: number[] = [];
  for (let i = 0; i < inner.length; i++) {
    out.push(inner[i]!);
    if (inner[i] === 0x22) {
      expect(inner[i + 1], 'a lone " inside a quoted field').toBe(0x22);
      i++;
    }
  }
  return Buffer.from(out);
}

/** The one field of a one-column, one-row batch, without its line end. */
function field(write: (b: InsertBatch) => void): Buffer {
  const b = new InsertBatch(16); // small, so that growing is exercised too
  write(b);
  b.endRow();
  const p = b.payload();
  expect(p[p.length - 1]).toBe(0x0a);
  return Buffer.from(p.subarray(0, p.length - 1));
}

/** Any UTF-16 string, lone surrogates included. */
const anyUtf16 = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }).map((units) => String.fromCharCode(...units));

describe('store encoding - fields', () => {
  it('strings are double-quoted, " doubled, everything else verbatim UTF-8', () => {
    expect(row((b) => b.string('s', 'plain'))).toBe('"plain"\n');
    expect(row((b) => b.string('s', ''))).toBe('""\n');
    expect(row((b) => b.string('s', 'say "hi", then\nleave\\'))).toBe('"say ""hi"", then\nleave\\"\n');
    expect(row((b) => b.string('s', ' \\N '))).toBe('" \\N "\n');
    expect(row((b) => b.string('s', 'bj-subway:西直门'))).toBe('"bj-subway:西直门"\n');
  });

  it('strings: the same bytes as Buffer.from, for any UTF-16 string', () => {
    fc.assert(
      fc.property(fc.oneof(anyUtf16, fc.string({ unit: 'binary' })), (s) => {
        expect(unquote(field((b) => b.string('s', s)))).toEqual(Buffer.from(s, 'utf8'));
      }),
      { numRuns: 500 },
    );
    // A lone surrogate, which UTF-8 cannot carry, becomes U+FFFD as with Buffer.from.
    expect(unquote(field((b) => b.string('s', 'a\ud800b\udc00')))).toEqual(Buffer.from('a\ufffdb\ufffd'));
    expect(unquote(field((b) => b.string('s', '😀')))).toEqual(Buffer.from([0xf0, 0x9f, 0x98, 0x80]));
  });

  it('integers as digits; only safe integers', () => {
    expect(row((b) => (b.int('a', 0), b.int('b', -150), b.int('c', Number.MAX_SAFE_INTEGER), b.int('d', Number.MIN_SAFE_INTEGER)))).toBe(
      '0,-150,9007199254740991,-9007199254740991\n',
    );
    for (const bad of [1.5, 2 ** 53, Number.NaN, Infinity]) expect(() => new InsertBatch().int('a', bad)).toThrow(RangeError);
  });

  it('DateTime64(3) as <epoch seconds>.<millis>', () => {
    expect(row((b) => (b.dateTime64('a', 0), b.dateTime64('b', 7), b.dateTime64('c', 1_700_000_000_123), b.dateTime64('d', 1_700_000_000_020)))).toBe(
      '0.000,0.007,1700000000.123,1700000000.020\n',
    );
    for (const bad of [-1, 1.5, 2 ** 53]) expect(() => new InsertBatch().dateTime64('t', bad)).toThrow(RangeError);
    // Any time: the batch's field and the row objects' string are <seconds>.<three digits>.
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })), (ms) => {
        const text = `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;
        expect(field((b) => b.dateTime64('t', ms)).toString()).toBe(text);
        expect(dateTime64(ms)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it("string arrays in ClickHouse's text form, one quoted field", () => {
    expect(row((b) => b.stringArray('a', []))).toBe('"[]"\n');
    expect(row((b) => b.stringArray('a', ['VELOCITY', 'PASSBACK']))).toBe(`"['VELOCITY','PASSBACK']"\n`);
    expect(row((b) => b.stringArray('a', [`it's "x"\\`, 'a,b\n\t\r\0]']))).toBe(`"['it\\'s ""x""\\\\','a,b\\n\\t\\r\\0]']"\n`);
  });

  it('JSON records: the same bytes as JSON.stringify, for any strings', () => {
    const keys = ['rule', 'version', 'detail'] as const;
    const step = fc.record({ rule: anyUtf16, version: fc.string(), detail: fc.oneof(anyUtf16, fc.string({ unit: 'binary' })) });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 6 }), (steps) => {
        const json = JSON.stringify(steps.map((s) => ({ rule: s.rule, version: s.version, detail: s.detail })));
        expect(unquote(field((b) => b.jsonRecords('trace', steps, keys))).toString('latin1')).toBe(Buffer.from(json, 'utf8').toString('latin1'));
      }),
      { numRuns: 500 },
    );
    const tricky = [{ rule: 'q"\\', version: '\u0000\u0008\u0009\u000a\u000c\u000d\u001f\u007f', detail: '\ud800 西 😀 \u2028' }];
    expect(unquote(field((b) => b.jsonRecords('trace', tricky, keys))).toString('utf8')).toBe(JSON.stringify(tricky));
    expect(() => new InsertBatch().jsonRecords('trace', [{ rule: 1 } as unknown as { rule: string }], ['rule'])).toThrow(/rule must be a string/);
  });

  it('plain rows as JSONCompactEachRow, in the first row\'s column order', async () => {
    const e = await encodeRows([
      { a: null, b: true, c: 0.25, d: [[1, 2], []], s: 'x"西' },
      { s: 'y', d: [], c: -7, b: false, a: 'n' },
    ]);
    expect([e.format, e.columns, e.rows]).toEqual(['JSONCompactEachRow', ['a', 'b', 'c', 'd', 's'], 2]);
    expect(e.payload().toString('utf8')).toBe('[null,true,0.25,[[1,2],[]],"x\\"西"]\n["n",false,-7,[],"y"]\n');
  });
});

describe('store encoding - rows and batches', () => {
  it('the first row names the columns; every other row must write the same, in order', () => {
    const b = new InsertBatch();
    b.string('a', 'x');
    b.int('b', 1);
    b.endRow();
    expect(b.columns).toEqual(['a', 'b']);
    expect(() => b.int('b', 2)).toThrow(/row 1: column 1 is b, the first row has a/);
    const c = new InsertBatch();
    c.string('a', 'x');
    c.endRow();
    c.string('a', 'y');
    expect(() => c.string('extra', 'z')).toThrow(/row 1: column 2 is extra, the first row has no such column/);
    const d = new InsertBatch();
    d.string('a', 'x');
    d.string('b', 'x');
    d.endRow();
    d.string('a', 'y');
    expect(() => d.endRow()).toThrow(/row 1 has 1 columns, the first row 2/);
    expect(() => new InsertBatch().string('bad-name', 'x')).toThrow(/not a plain identifier/);
    expect(() => new InsertBatch().endRow()).toThrow(/no columns/);
  });

  it('a half-written row blocks the payload; rollback drops the rows after a mark', () => {
    const b = new InsertBatch();
    b.string('a', 'kept');
    b.endRow();
    const mark = b.mark();
    b.string('a', 'dropped');
    b.endRow();
    b.string('a', 'half');
    expect(() => b.payload()).toThrow(/not closed/);
    expect(() => b.mark()).toThrow(/middle of a row/);
    b.rollback(mark);
    expect(b.rows).toBe(1);
    expect(b.payload().toString()).toBe('"kept"\n');
    b.string('a', 'next');
    b.endRow();
    expect(b.payload().toString()).toBe('"kept"\n"next"\n');
    b.rollback({ bytes: 0, rows: 0 });
    expect([b.rows, b.bytes, b.columns]).toEqual([0, 0, []]);
    expect(() => b.rollback({ bytes: 99, rows: 0 })).toThrow(/beyond/);
  });

  it('a mapping that throws half way is rolled back whole (the sink drops the message, not the batch)', () => {
    const b = new InsertBatch();
    writeDecision(b, decision(1), 1);
    const mark = b.mark();
    expect(() => writeDecision(b, decision(2, { amountFen: 1.5 }), 2)).toThrow(/amountFen must be an integer number of fen/);
    b.rollback(mark);
    writeDecision(b, decision(3), 3);
    expect(b.rows).toBe(2);
    expect(b.payload().toString().split('\n')[1]).toMatch(/^"bj-gate-001:3",/);
  });

  it('the writers and the row objects come from one mapping: same columns, same rows', () => {
    const d = decision(7, { riskRules: ['VELOCITY'], offline: true, trace: [{ rule: 'r"1', version: 'v\\1', detail: '西直门\n' }] });
    const s = { ...fare('e1', 420, { cardRegion: 'TJ' }), claim: undefined };
    const f = riskFlag(3);
    const cases: [InsertBatch, Record<string, unknown>[]][] = [];
    const batch = (write: (b: InsertBatch) => unknown) => {
      const b = new InsertBatch();
      write(b);
      return b;
    };
    cases.push([batch((b) => writeDecision(b, d, 42)), [decisionRow(d, 42)]]);
    cases.push([batch((b) => writeSettlement(b, s, 9)), [settlementRows(s, 9).settlement]]);
    cases.push([batch((b) => writeLedger(b, s, 9)), settlementRows(s, 9).ledger]);
    cases.push([batch((b) => writeRiskFlag(b, f, 5, 'DECISIONS')), [riskFlagRow(f, 5, 'DECISIONS')]]);
    for (const [b, objects] of cases) {
      // Same columns in the same order; the values are compared through ClickHouse in
      // test/integration/store/encoding.test.ts (stored rows from both paths are equal).
      expect(b.columns).toEqual(Object.keys(objects[0]!));
      expect(b.rows).toBe(objects.length);
    }
    expect(writeClaim(new InsertBatch(), s, 1)).toBe(false);
    expect(riskFlagRow(f, 5)).toMatchObject({ source_stream: 'RISK', stream_seq: 5, device_time: `${(T0 + 3000) / 1000}.000` });
    expect(() => riskFlagRow(f, 5, 'TAPS' as 'RISK')).toThrow(/does not feed risk_flags/);
  });
});
