/**
 * Helpers of the claims integration tests: MedicalClaim messages as a Tianjin clinic counter
 * sends them, and promise wrappers of the unary calls that keep the gRPC error.
 */
import type * as grpc from '@grpc/grpc-js';
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

export function settleClaim(client: TerminalIngestClient, md: grpc.Metadata, c: MedicalClaim): Promise<CallResult<ClaimResult>> {
  return new Promise((resolve) => client.settleClaim(c, md, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value })));
}

export function getClaim(client: TerminalIngestClient, md: grpc.Metadata, claimId: string): Promise<CallResult<ClaimResult>> {
  return new Promise((resolve) => client.getClaim({ claimId, terminalId: TJ_COUNTER }, md, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value })));
}

/** The value of a call that must succeed. */
export function ok<T>(r: CallResult<T>): T {
  if (!r.ok) throw new Error(`call failed: ${r.error.code} ${r.error.details}`);
  return r.value;
}
