/**
 * Helpers of the claims integration tests: MedicalClaim messages as a Tianjin clinic counter
 * sends them, and promise wrappers of the unary calls that keep the gRPC error.
 */
import type * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { computeChipMac } from '../../../src/domain/card/chip.js';
import { hmacSha256Mac, parseKeyFile, type KeysFile } from '../../../src/domain/card/keys.js';
import { regionOfCardNumber } from '../../../src/domain/card/token.js';
import {
  CatalogueClass,
  InstitutionLevel,
  Region,
  Treatment,
  type ClaimItem,
  type ClaimResult,
  type MedicalClaim,
  type TerminalIngestClient,
} from '../../../src/gen/tapflow/v1/ingest.js';

/** A Tianjin terminal of the demo registry: the place of treatment is TJ. */
export const TJ_COUNTER = 'TJ-CLINIC-0001';
/** 2026-03-10 10:00 in Beijing time: business day 2026-03-10, calendar year 2026. */
export const DEVICE_TIME = Date.parse('2026-03-10T10:00:00+08:00');

export const item = (code: string, catalogueClass: CatalogueClass, amountFen: number): ClaimItem => ({ code, name: code, catalogueClass, amountFen });
export const { CLASS_A, CLASS_B, SELF_PAY } = CatalogueClass;

/** An outpatient claim of a Beijing-insured person at a tertiary hospital in Tianjin. */
export function claim(claimId: string, over: Partial<MedicalClaim> = {}): MedicalClaim {
  return {
    claimId,
    terminalId: TJ_COUNTER,
    institutionId: 'hospital:TJ:tmu-general-hospital',
    institutionLevel: InstitutionLevel.TERTIARY,
    treatment: Treatment.OUTPATIENT,
    card: { $case: 'chip', value: { cardNumber: '110000007001', counter: 1, mac: Buffer.alloc(8) } },
    idNumber: '11010519800101001X',
    insuredRegion: Region.BJ,
    deviceTime: DEVICE_TIME,
    items: [item('A1', CLASS_A, 100_000)],
    reversesClaimId: '',
    personalAccountBalanceFen: 50_000,
    ...over,
  };
}

export type CallResult<T> = { ok: true; value: T } | { ok: false; error: grpc.ServiceError };

let keys: KeysFile | undefined;
const counters = new Map<string, number>();

/**
 * From now on settleClaim signs chip claims whose MAC is all zeros as a genuine card would: the
 * card's next counter, the MAC over the claim's terminal, device time, total and institution,
 * with the issuer key of the pipeline's development key set (<dataDir>/keys/trust.json).
 */
export function signClaimsWith(dataDir: string): void {
  const path = join(dataDir, 'keys', 'trust.json');
  keys = parseKeyFile(readFileSync(path, 'utf8'), path);
}

/** The claim as a genuine chip card signs it (see {@link signClaimsWith}); `counter` overrides the next one. */
export function signed(c: MedicalClaim, counter?: number): MedicalClaim {
  if (!keys || c.card?.$case !== 'chip') return c;
  const chip = c.card.value;
  const master = keys.regions[regionOfCardNumber(chip.cardNumber)!]?.chipMasterKey;
  if (!master) return c;
  const n = counter ?? (counters.get(chip.cardNumber) ?? 0) + 1;
  counters.set(chip.cardNumber, Math.max(n, counters.get(chip.cardNumber) ?? 0));
  const mac = computeChipMac(hmacSha256Mac, master, {
    cardNumber: chip.cardNumber,
    counter: n,
    terminalId: c.terminalId,
    deviceTime: c.deviceTime,
    amountFen: c.items.reduce((sum, i) => sum + i.amountFen, 0),
    venueId: c.institutionId,
  });
  return { ...c, card: { $case: 'chip', value: { cardNumber: chip.cardNumber, counter: n, mac: Buffer.from(mac) } } };
}

export function settleClaim(client: TerminalIngestClient, md: grpc.Metadata, c: MedicalClaim): Promise<CallResult<ClaimResult>> {
  const zeroMac = c.card?.$case === 'chip' && c.card.value.mac.every((b) => b === 0);
  const sent = zeroMac ? signed(c) : c;
  return new Promise((resolve) => client.settleClaim(sent, md, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value })));
}

export function getClaim(client: TerminalIngestClient, md: grpc.Metadata, claimId: string): Promise<CallResult<ClaimResult>> {
  return new Promise((resolve) => client.getClaim({ claimId, terminalId: TJ_COUNTER }, md, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value })));
}

/** The value of a call that must succeed. */
export function ok<T>(r: CallResult<T>): T {
  if (!r.ok) throw new Error(`call failed: ${r.error.code} ${r.error.details}`);
  return r.value;
}
