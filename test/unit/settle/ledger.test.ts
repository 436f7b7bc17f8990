import { describe, expect, it } from 'vitest';
import {
  ACCOUNTS,
  businessDay,
  checkBalanced,
  netPositions,
  netPositionsByDay,
  parseClearingAccount,
  percentOf,
  postCardPayment,
  Posting,
  shanghaiTime,
} from '../../../src/domain/settle/index.js';

describe('ledger - postings', () => {
  it('a payment of a card of another region goes through both halves of the clearing pair', () => {
    const e = postCardPayment({ settlementId: 's', amountFen: 250, cardAccount: ACCOUNTS.card('TJ'), cardRegion: 'TJ', terminalRegion: 'HE', operatorId: 'sjz-bus' });
    expect(e).toEqual([
      { entryId: 's#1', account: 'card:TJ', debitFen: 250, creditFen: 0 },
      { entryId: 's#2', account: 'clearing:TJ:HE', debitFen: 0, creditFen: 250 },
      { entryId: 's#3', account: 'clearing-receivable:TJ:HE', debitFen: 250, creditFen: 0 },
      { entryId: 's#4', account: 'operator:sjz-bus', debitFen: 0, creditFen: 250 },
    ]);
  });

  it('negative amounts swap sides; zero amounts post nothing; fractions are refused', () => {
    expect(new Posting('n').debit('a', -5).credit('b', -5).done()).toEqual([
      { entryId: 'n#1', account: 'a', debitFen: 0, creditFen: 5 },
      { entryId: 'n#2', account: 'b', debitFen: 5, creditFen: 0 },
    ]);
    expect(new Posting('z').debit('a', 0).credit('b', 0).done()).toEqual([]);
    expect(() => new Posting('f').debit('a', 1.5)).toThrow(RangeError);
    expect(() => new Posting('u').debit('a', 5).credit('b', 4).done()).toThrow(/unbalanced/);
  });

  it('checkBalanced sums and refuses two-sided, negative or fractional entries', () => {
    expect(checkBalanced([{ debitFen: 7, creditFen: 0 }, { debitFen: 0, creditFen: 7 }])).toEqual({ debitFen: 7, creditFen: 7, balanced: true });
    expect(checkBalanced([{ debitFen: 7, creditFen: 0 }, { debitFen: 0, creditFen: 6 }]).balanced).toBe(false);
    expect(checkBalanced([{ debitFen: 7, creditFen: 7 }]).balanced).toBe(false);
    expect(checkBalanced([{ debitFen: -7, creditFen: 0 }, { debitFen: 0, creditFen: -7 }]).balanced).toBe(false);
    expect(checkBalanced([{ debitFen: 0.5, creditFen: 0 }, { debitFen: 0, creditFen: 0.5 }]).balanced).toBe(false);
    expect(checkBalanced([])).toEqual({ debitFen: 0, creditFen: 0, balanced: true });
  });
});

describe('ledger - net positions', () => {
  const pay = (from: 'BJ' | 'TJ' | 'HE', to: 'BJ' | 'TJ' | 'HE', amountFen: number, id: string, businessDay?: string) =>
    postCardPayment({ settlementId: id, amountFen, cardAccount: ACCOUNTS.card(from), cardRegion: from, terminalRegion: to, operatorId: 'op' }).map((e) => ({ ...e, ...(businessDay ? { businessDay } : {}) }));

  it('nets the obligations between BJ, TJ and HE', () => {
    const entries = [...pay('BJ', 'TJ', 1000, 'a'), ...pay('TJ', 'BJ', 300, 'b'), ...pay('HE', 'BJ', 500, 'c'), ...pay('BJ', 'BJ', 9999, 'd'), ...pay('BJ', 'TJ', -100, 'e')];
    const p = netPositions(entries);
    expect(p.regions).toEqual({ BJ: -900 + 300 + 500 + 300 - 300, TJ: 900 - 300, HE: -500 });
    expect(p.regions.BJ + p.regions.TJ + p.regions.HE).toBe(0);
    expect(p.bilateral).toEqual([
      { payer: 'BJ', payee: 'TJ', amountFen: 600 },
      { payer: 'HE', payee: 'BJ', amountFen: 500 },
    ]);
    expect(p.obligations).toContainEqual({ from: 'BJ', to: 'TJ', amountFen: 900 });
    expect(p.consistent).toBe(true);
  });

  it('flags receivables that do not mirror payables', () => {
    const one = pay('BJ', 'TJ', 1000, 'a').filter((e) => !e.account.startsWith('clearing-receivable:'));
    expect(netPositions(one).consistent).toBe(false);
  });

  it('groups by business day', () => {
    const days = netPositionsByDay([...pay('BJ', 'HE', 100, 'a', '2026-03-02'), ...pay('HE', 'BJ', 40, 'b', '2026-03-01'), ...pay('BJ', 'HE', 10, 'c', '2026-03-02')]);
    expect(days.map((d) => [d.businessDay, d.positions.regions])).toEqual([
      ['2026-03-01', { BJ: 40, TJ: 0, HE: -40 }],
      ['2026-03-02', { BJ: -110, TJ: 0, HE: 110 }],
    ]);
  });

  it('parses clearing account names', () => {
    expect(parseClearingAccount('clearing:HE:BJ')).toEqual({ from: 'HE', to: 'BJ', side: 'payable' });
    expect(parseClearingAccount('clearing-receivable:HE:BJ')).toEqual({ from: 'HE', to: 'BJ', side: 'receivable' });
    expect(parseClearingAccount('clearing:BJ:BJ')).toBeUndefined();
    expect(parseClearingAccount('card:BJ')).toBeUndefined();
  });
});

describe('money and time', () => {
  it('percentages round half up in integer fen', () => {
    expect([percentOf(300, 80), percentOf(175, 50), percentOf(1, 70), percentOf(1, 49), percentOf(-175, 50)]).toEqual([240, 88, 1, 0, -88]);
  });

  it('the business day is the Asia/Shanghai date of the device time', () => {
    expect(businessDay(shanghaiTime('2026-03-01T00:10'))).toBe('2026-03-01');
    expect(businessDay(shanghaiTime('2026-02-28T23:59'))).toBe('2026-02-28');
    expect(businessDay(Date.parse('2026-02-28T16:00:00Z'))).toBe('2026-03-01');
  });
});
