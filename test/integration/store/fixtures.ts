/**
 * Builders of domain objects for the store tests: plausible values, overridable per field.
 * Times are fixed (no clock): 2024-05-01 08:00:00 Asia/Shanghai = 2024-05-01T00:00:00Z.
 * And the store a test file works in: one chdb data directory (chdb binds one per process;
 * vitest runs each file in its own fork), a fresh database per test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { ClaimSplit, Decision, LedgerEntry, RiskFlag, Settlement } from '../../../src/domain/types.js';
import { type ClickHouseEngine, migrate, openClickHouse } from '../../../src/store/mod.js';

/**
 * Registers this file's data directory (made before its tests, removed after them with every
 * engine opened on it) and returns `freshDb(name)`: an engine on a new database of that
 * directory, migrated unless told not to.
 */
export function testStore(prefix: string): {
  freshDb(name: string, opts?: { migrate?: boolean }): Promise<ClickHouseEngine>;
  dataDir(): string;
} {
  let dir: string | undefined;
  const engines: ClickHouseEngine[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    for (const e of engines) await e.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const dataDir = () => {
    if (!dir) throw new Error('testStore: the data directory exists only while the tests run');
    return dir;
  };
  return {
    dataDir,
    async freshDb(name, opts = {}) {
      const engine = await openClickHouse({ dataDir: dataDir(), database: name });
      engines.push(engine);
      if (opts.migrate !== false) await migrate(engine);
      return engine;
    },
  };
}

export const T0 = Date.UTC(2024, 4, 1, 0, 0, 0); // 2024-05-01 08:00:00 in Beijing
export const DAY = '2024-05-01';

export function decision(n: number, over: Partial<Decision> = {}): Decision {
  const terminalId = over.terminalId ?? 'bj-gate-001';
  return {
    eventId: `${terminalId}:${n}`,
    terminalId,
    seq: n,
    terminalRegion: 'BJ',
    operatorId: 'bj-subway',
    deviceTime: T0 + n * 1000,
    ingestTime: T0 + n * 1000 + 40,
    scene: 'RAIL',
    venueId: 'bj-subway:西直门',
    direction: 'ENTRY',
    cardToken: `tok-${(n % 97).toString(16)}`,
    cardRegion: 'BJ',
    form: 'CHIP',
    amountFen: 0,
    riderCategory: 'ADULT',
    offline: false,
    partition: n % 8,
    decisionTime: T0 + n * 1000 + 55,
    verdict: 'ACCEPTED',
    reason: 'OK',
    trace: [{ rule: 'hotlist', version: 'v1', detail: 'not listed' }],
    riskRules: [],
    ...over,
  };
}

/** A balanced fare settlement: the card pays `amountFen`, via clearing when cross-region. */
export function fare(id: string, amountFen: number, over: Partial<Settlement> = {}): Settlement {
  const cardRegion = over.cardRegion ?? 'BJ';
  const terminalRegion = over.terminalRegion ?? 'BJ';
  const operator = over.operatorId ?? 'bj-subway';
  // Cross-region: the card's region owes the terminal's (clearing:<card>:<terminal> credited),
  // and the terminal's region pays its operator against that receivable.
  const ledger: LedgerEntry[] =
    cardRegion === terminalRegion
      ? [
          { entryId: `${id}:1`, account: `card:${cardRegion}`, debitFen: amountFen, creditFen: 0 },
          { entryId: `${id}:2`, account: `operator:${operator}`, debitFen: 0, creditFen: amountFen },
        ]
      : [
          { entryId: `${id}:1`, account: `card:${cardRegion}`, debitFen: amountFen, creditFen: 0 },
          { entryId: `${id}:2`, account: `clearing:${cardRegion}:${terminalRegion}`, debitFen: 0, creditFen: amountFen },
          { entryId: `${id}:3`, account: `receivable:${terminalRegion}`, debitFen: amountFen, creditFen: 0 },
          { entryId: `${id}:4`, account: `operator:${operator}`, debitFen: 0, creditFen: amountFen },
        ];
  return {
    settlementId: `fare:${id}`,
    eventId: id,
    kind: 'FARE',
    cardToken: 'tok-1',
    cardRegion,
    terminalRegion,
    operatorId: operator,
    network: 'bj-subway',
    scene: 'RAIL',
    venueId: 'bj-subway:国贸',
    entryVenueId: 'bj-subway:西直门',
    deviceTime: T0 + 60_000,
    settleTime: T0 + 60_100,
    businessDay: DAY,
    amountFen,
    baseFareFen: amountFen,
    distanceM: 12_300,
    tariffVersion: 'bj-subway@2024-01',
    trace: [{ rule: 'distance-band', version: 'bj-subway@2024-01', detail: '12.3 km → 5 yuan' }],
    ledger,
    adjustsEventId: '',
    partition: 3,
    ingestTime: T0 + 60_050,
    ...over,
  };
}

export function riskFlag(n: number, over: Partial<RiskFlag> = {}): RiskFlag {
  return {
    flagId: `flag-${n}`,
    eventId: `bj-gate-001:${n}`,
    ruleId: 'VELOCITY',
    ruleVersion: 'v1',
    severity: 'WARNING',
    keyKind: 'card',
    key: 'tok-1',
    detail: '2 taps 300 km apart in 10 min',
    deviceTime: T0 + n * 1000,
    flagTime: T0 + n * 1000 + 70,
    region: 'BJ',
    ...over,
  };
}

/** A settled medical claim's split (fen): 10,000 billed, 7,000 from the pool, 1,750 from the account, 1,250 cash. */
export function claimSplit(over: Partial<ClaimSplit> = {}): ClaimSplit {
  return {
    claimId: 'c-1',
    status: 'SETTLED',
    reason: 'OK',
    medfee_sumamt: 10_000,
    fulamt_ownpay_amt: 500,
    preselfpay_amt: 300,
    inscp_scp_amt: 9_200,
    deductible_amt: 0,
    hifp_pay: 7_000,
    acct_pay: 1_750,
    cash_payamt: 1_250,
    over_cap_amt: 0,
    policy_version: 'HE-2024',
    ...over,
  };
}
