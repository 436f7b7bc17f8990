/**
 * Double-entry postings: every settlement carries entries whose debits equal their credits, in
 * integer fen. Each entry is one-sided (exactly one of debitFen / creditFen is non-zero, both
 * non-negative); a negative amount (an adjustment down, a reversal) swaps sides instead of
 * writing negative numbers. Entry ids are `<settlementId>#<n>`, n from 1 in posting order.
 * Chart of accounts: accounts.ts.
 */
import { fen, Regions, type Fen, type LedgerEntry, type Region } from '../types.js';
import { ACCOUNTS, parseClearingAccount } from './accounts.js';

/** Builds the entries of one settlement. Zero amounts are skipped. */
export class Posting {
  private readonly entries: LedgerEntry[] = [];
  constructor(private readonly settlementId: string) {}

  /** Debits `account` (a negative amount credits it). */
  debit(account: string, amountFen: Fen): this {
    return this.add(account, fen(amountFen, `debit of ${account}`));
  }

  /** Credits `account` (a negative amount debits it). */
  credit(account: string, amountFen: Fen): this {
    return this.add(account, -fen(amountFen, `credit of ${account}`));
  }

  /** The entries; throws if they do not balance (a programming error, never data). */
  done(): LedgerEntry[] {
    const c = checkBalanced(this.entries);
    if (!c.balanced) throw new Error(`unbalanced posting ${this.settlementId}: Dr ${c.debitFen} Cr ${c.creditFen}`);
    return this.entries;
  }

  private add(account: string, signed: number): this {
    if (signed === 0) return this;
    this.entries.push({
      entryId: `${this.settlementId}#${this.entries.length + 1}`,
      account,
      debitFen: signed > 0 ? signed : 0,
      creditFen: signed < 0 ? -signed : 0,
    });
    return this;
  }
}

/**
 * Posts a payment by a cardholder to an operator: Dr cardholder account, Cr operator; through
 * the clearing pair when the card's region differs from the terminal's.
 */
export function postCardPayment(p: {
  settlementId: string;
  amountFen: Fen;
  /** `card:<R>` or `purse:<R>`. */
  cardAccount: string;
  cardRegion: Region;
  terminalRegion: Region;
  operatorId: string;
}): LedgerEntry[] {
  const post = new Posting(p.settlementId).debit(p.cardAccount, p.amountFen);
  if (p.cardRegion !== p.terminalRegion) {
    post
      .credit(ACCOUNTS.clearingPayable(p.cardRegion, p.terminalRegion), p.amountFen)
      .debit(ACCOUNTS.clearingReceivable(p.cardRegion, p.terminalRegion), p.amountFen);
  }
  return post.credit(ACCOUNTS.operator(p.operatorId), p.amountFen).done();
}

/** The same entries with debit and credit swapped (ids renumbered under `settlementId`). */
export function negateEntries(settlementId: string, entries: readonly LedgerEntry[]): LedgerEntry[] {
  return entries.map((e, i) => ({
    entryId: `${settlementId}#${i + 1}`,
    account: e.account,
    debitFen: e.creditFen,
    creditFen: e.debitFen,
  }));
}

/**
 * Sums debits and credits. `balanced` requires equal sums and every entry to be well formed:
 * integer fen, non-negative, exactly one side non-zero.
 */
export function checkBalanced(entries: readonly Pick<LedgerEntry, 'debitFen' | 'creditFen'>[]): {
  debitFen: number;
  creditFen: number;
  balanced: boolean;
} {
  let debitFen = 0;
  let creditFen = 0;
  let wellFormed = true;
  for (const e of entries) {
    debitFen += e.debitFen;
    creditFen += e.creditFen;
    const oneSided = (e.debitFen > 0 && e.creditFen === 0) || (e.creditFen > 0 && e.debitFen === 0);
    if (!Number.isSafeInteger(e.debitFen) || !Number.isSafeInteger(e.creditFen) || !oneSided) wellFormed = false;
  }
  return { debitFen, creditFen, balanced: wellFormed && debitFen === creditFen };
}

/** A ledger line as netPositions reads it (a LedgerEntry, or a row of the ledger table). */
export interface ClearingInput {
  account: string;
  debitFen: number;
  creditFen: number;
  /** YYYY-MM-DD; only {@link netPositionsByDay} uses it. */
  businessDay?: string;
}

export interface NetPositions {
  /** Gross obligations: region `from` owes region `to` (payable balances), fen. */
  obligations: { from: Region; to: Region; amountFen: number }[];
  /** Bilateral netting per pair: `payer` owes `payee` the difference (payer omitted when 0). */
  bilateral: { payer: Region; payee: Region; amountFen: number }[];
  /** Net position per region: positive = the region receives, negative = it pays. Sums to 0. */
  regions: Record<Region, number>;
  /** Payable balances equal receivable balances for every pair. */
  consistent: boolean;
}

/**
 * Net positions between BJ, TJ and HE from the inter-region clearing accounts of the given
 * entries (pass one business day's entries for a daily position). Other accounts are ignored.
 */
export function netPositions(entries: readonly ClearingInput[]): NetPositions {
  const payable = new Map<string, number>();
  const receivable = new Map<string, number>();
  for (const e of entries) {
    const c = parseClearingAccount(e.account);
    if (!c) continue;
    const key = `${c.from}>${c.to}`;
    if (c.side === 'payable') payable.set(key, (payable.get(key) ?? 0) + e.creditFen - e.debitFen);
    else receivable.set(key, (receivable.get(key) ?? 0) + e.debitFen - e.creditFen);
  }
  const regions: Record<Region, number> = { BJ: 0, TJ: 0, HE: 0 };
  const obligations: NetPositions['obligations'] = [];
  let consistent = true;
  for (const from of Regions) {
    for (const to of Regions) {
      if (from === to) continue;
      const amount = payable.get(`${from}>${to}`) ?? 0;
      if (amount !== (receivable.get(`${from}>${to}`) ?? 0)) consistent = false;
      obligations.push({ from, to, amountFen: amount });
      regions[from] -= amount;
      regions[to] += amount;
    }
  }
  const bilateral: NetPositions['bilateral'] = [];
  for (let i = 0; i < Regions.length; i++) {
    for (let j = i + 1; j < Regions.length; j++) {
      const a = Regions[i]!;
      const b = Regions[j]!;
      const net = (payable.get(`${a}>${b}`) ?? 0) - (payable.get(`${b}>${a}`) ?? 0);
      if (net > 0) bilateral.push({ payer: a, payee: b, amountFen: net });
      else if (net < 0) bilateral.push({ payer: b, payee: a, amountFen: -net });
    }
  }
  return { obligations, bilateral, regions, consistent };
}

/** {@link netPositions} per business day, days in ascending order. */
export function netPositionsByDay(entries: readonly ClearingInput[]): { businessDay: string; positions: NetPositions }[] {
  const days = new Map<string, ClearingInput[]>();
  for (const e of entries) {
    const d = e.businessDay ?? '';
    const list = days.get(d) ?? [];
    list.push(e);
    days.set(d, list);
  }
  return [...days.keys()].sort().map((businessDay) => ({ businessDay, positions: netPositions(days.get(businessDay)!) }));
}
