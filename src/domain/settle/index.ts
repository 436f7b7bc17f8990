/**
 * The pure settlement core: fares, journeys and late re-rating, culture entries, medical direct
 * settlement, double-entry ledger and inter-region clearing. No I/O after loading the data; no
 * clock (time is passed in). Rules and the chart of accounts: README.md in this folder.
 */
export { loadSettlerData, type SettlerData } from './data.js';
export {
  settleDecision,
  sweepDueAt,
  sweepExpired,
  nextSweepAt,
  MAX_RECENT,
  type CardSettleState,
  type SettleNotice,
  type SettleResult,
  type StoredTap,
} from './card.js';
export {
  quoteFare,
  baseFare,
  applyDiscounts,
  applyMonthlyTiers,
  type FareData,
  type FareQuote,
  type FareQuoteInput,
  type LegSpec,
  type RateContext,
} from './fares.js';
export {
  settleClaim,
  quoteClaim,
  accumulationsOf,
  loadMedicalPolicies,
  MAX_CLAIMS,
  type Accumulation,
  type MedicalPolicies,
  type PersonMedicalState,
  type RegionPolicy,
  type TreatmentPolicy,
  type YearToDate,
} from './medical.js';
export { loadEntryPolicies, priceEntry, type EntryPolicies, type EntryPolicy } from './entries.js';
export { loadTariffs, bandFare, type BandTable, type NetworkTariff, type Tariffs, type TransferRule } from './tariffs.js';
export {
  checkBalanced,
  netPositions,
  netPositionsByDay,
  negateEntries,
  postCardPayment,
  Posting,
  type ClearingInput,
  type NetPositions,
} from './ledger.js';
export { ACCOUNTS, accountClass, parseClearingAccount, type ClearingSide } from './accounts.js';
export { businessDay, shanghaiMonth, shanghaiYear, shanghaiTime } from './time.js';
export { percentOf } from './money.js';
