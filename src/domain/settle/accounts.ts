/**
 * The chart of accounts of the tapflow ledger. Account names are `<class>:<id>` strings; they
 * never contain a card token, a person token or any other personal data.
 *
 * | account                          | what it holds (normal side)                                         |
 * |----------------------------------|----------------------------------------------------------------------|
 * | `card:<R>`                       | account-based card payments of cardholders issued in region R (Dr)   |
 * | `purse:<R>`                      | payments taken offline from the card purse, cards of region R (Dr)   |
 * | `operator:<operatorId>`          | revenue owed to a transit or venue operator (Cr)                     |
 * | `fund:<R>`                       | pooled medical fund (统筹基金) of insured region R (Dr = fund pays)    |
 * | `medacct:<R>`                    | personal medical accounts (个人账户) of insured region R (Dr)          |
 * | `cash:<R>`                       | cash paid by patients at counters in treating region R (Dr)          |
 * | `institution:<institutionId>`    | amount due to the treating institution (Cr)                          |
 * | `clearing:<A>:<B>`               | in A's books: what region A owes region B (Cr balance)               |
 * | `clearing-receivable:<A>:<B>`    | in B's books: what region B is owed by region A (Dr balance)         |
 *
 * A cross-region event (card or insured region A, terminal or treating region B) is booked in
 * both regions' books: A debits its cardholder (or fund) and credits `clearing:A:B`; B debits
 * `clearing-receivable:A:B` and credits the operator (or institution). Each half is balanced, so
 * the whole posting is. Net positions between regions come from the `clearing:A:B` accounts (the
 * credit balance is A's obligation to B; see netPositions in ledger.ts); the receivables mirror
 * them and are checked. Every account that starts with `clearing:` is such an obligation.
 */
import type { Region } from '../types.js';

export const ACCOUNTS = {
  card: (region: Region): string => `card:${region}`,
  purse: (region: Region): string => `purse:${region}`,
  operator: (operatorId: string): string => `operator:${operatorId}`,
  fund: (region: Region): string => `fund:${region}`,
  medicalAccount: (region: Region): string => `medacct:${region}`,
  cash: (region: Region): string => `cash:${region}`,
  institution: (institutionId: string): string => `institution:${institutionId}`,
  clearingPayable: (from: Region, to: Region): string => `clearing:${from}:${to}`,
  clearingReceivable: (from: Region, to: Region): string => `clearing-receivable:${from}:${to}`,
} as const;

export type ClearingSide = 'payable' | 'receivable';

const CLEARING = /^(clearing|clearing-receivable):(BJ|TJ|HE):(BJ|TJ|HE)$/;

/** Parses an inter-region clearing account name, or undefined for any other account. */
export function parseClearingAccount(account: string): { from: Region; to: Region; side: ClearingSide } | undefined {
  const m = CLEARING.exec(account);
  if (!m || m[2] === m[3]) return undefined;
  return { from: m[2] as Region, to: m[3] as Region, side: m[1] === 'clearing' ? 'payable' : 'receivable' };
}

/** The account class (the part before the first colon). */
export function accountClass(account: string): string {
  const i = account.indexOf(':');
  return i < 0 ? account : account.slice(0, i);
}
