/**
 * Medical claims in the KV bucket tapflow_claims, keyed by claim key (src/domain/claim-key.ts).
 * One JSON value per claim:
 *
 *   {"terminalId": "TJ-CLINIC-0001", "state": "SUBMITTED"}   ingest reserved the id (before publishing)
 *   {"terminalId": …, "state": "PUBLISHED"}                  JetStream holds the claim: it will be answered
 *   {"terminalId": …, "state": "DONE", "result": ClaimSplit} the answer (settled, rejected, reversed)
 *
 * The first terminal to reserve a claim id owns it: only it may settle or read the claim. The
 * answer is also announced on core NATS (tapflow.claimresult.<key>, not stored) for the ingest
 * waiting on it. Values written before this layout (a ClaimSplit with a terminalId) read as DONE.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ClaimSplit } from '../domain/types.js';
import { BusClaim as PbBusClaim, ClaimDecision as PbClaimDecision } from '../gen/tapflow/v1/bus.js';
import type { Logger } from '../observe/log.js';
import type { DeadMessage } from './partitions.js';
import { subjects } from './subjects.js';

export type ClaimState = 'SUBMITTED' | 'PUBLISHED' | 'DONE';

export interface StoredClaim {
  terminalId: string;
  state: ClaimState;
  result?: ClaimSplit;
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function parse(value: Uint8Array): StoredClaim {
  const raw = JSON.parse(new TextDecoder().decode(value)) as Partial<StoredClaim> & Partial<ClaimSplit>;
  if (raw.state === 'SUBMITTED' || raw.state === 'PUBLISHED' || raw.state === 'DONE') return raw as StoredClaim;
  // The earlier layout: the result itself, with the submitting terminal.
  const { terminalId, ...result } = raw as ClaimSplit & { terminalId?: string };
  return { terminalId: terminalId ?? '', state: 'DONE', result };
}

/** The stored claim and its KV revision, or undefined. */
export async function readClaim(kv: KV, key: string): Promise<{ claim: StoredClaim; revision: number } | undefined> {
  const e = await kv.get(key);
  if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
  return { claim: parse(e.value), revision: e.revision };
}

/**
 * Reserves a claim id for a terminal: creates the record, or finds the existing one. The caller
 * compares `claim.terminalId` with its terminal.
 */
export async function reserveClaim(kv: KV, key: string, terminalId: string): Promise<{ claim: StoredClaim; revision: number; created: boolean }> {
  try {
    const revision = await kv.create(key, enc({ terminalId, state: 'SUBMITTED' } satisfies StoredClaim));
    return { claim: { terminalId, state: 'SUBMITTED' }, revision, created: true };
  } catch (err) {
    const found = await readClaim(kv, key);
    if (!found) throw err;
    return { ...found, created: false };
  }
}

/**
 * Marks a reserved claim as durable in JetStream. False when the record changed since
 * `revision` (its answer may have been written meanwhile: read it to know).
 */
export async function markPublished(kv: KV, key: string, terminalId: string, revision: number): Promise<boolean> {
  return kv.update(key, enc({ terminalId, state: 'PUBLISHED' } satisfies StoredClaim), revision).then(
    () => true,
    () => false,
  );
}

/** Stores a claim's answer and announces it to a waiting ingest. */
export async function putClaimResult(kv: KV, nc: NatsConnection, key: string, terminalId: string, result: ClaimSplit): Promise<void> {
  await kv.put(key, enc({ terminalId, state: 'DONE', result } satisfies StoredClaim));
  nc.publish(subjects.claimResult(key), JSON.stringify(result));
}

const ZERO_SPLIT = {
  medfee_sumamt: 0,
  fulamt_ownpay_amt: 0,
  preselfpay_amt: 0,
  inscp_scp_amt: 0,
  deductible_amt: 0,
  hifp_pay: 0,
  acct_pay: 0,
  cash_payamt: 0,
  over_cap_amt: 0,
} as const;

/** Claim key, id and terminal of a BusClaim or ClaimDecision message, read leniently. */
function claimIdsOf(data: Uint8Array): { claimKey: string; claimId: string; terminalId: string } | undefined {
  for (const type of [PbBusClaim, PbClaimDecision]) {
    try {
      const m = type.decode(data);
      if (m.claimKey && m.terminalId) return { claimKey: m.claimKey, claimId: m.claimId, terminalId: m.terminalId };
    } catch {
      // not this type, or too broken
    }
  }
  return undefined;
}

/**
 * A claim that was dead-lettered will never be decided: its terminal is answered REJECTED with
 * the failure code, so that GetClaim does not say PENDING forever. Best effort: a message too
 * broken to name its claim cannot be answered (the dead letter keeps it for replay).
 */
export async function answerDeadClaim(kv: KV, nc: NatsConnection, dead: DeadMessage, log: Logger): Promise<void> {
  const ids = claimIdsOf(dead.msg.data);
  if (!ids) return;
  const result: ClaimSplit = { ...ZERO_SPLIT, claimId: ids.claimId, status: 'REJECTED', reason: `${dead.error.code}: ${dead.error.message}`, policy_version: '' };
  try {
    await putClaimResult(kv, nc, ids.claimKey, ids.terminalId, result);
  } catch (err) {
    log.warn({ claimKey: ids.claimKey, err: (err as Error).message }, 'could not answer a dead-lettered claim');
  }
}
