/**
 * Watching a fleet of tapflow processes from a test through NATS: waiting for a condition, who
 * owns each partition (the lease bucket), whether every durable consumer is drained, and loading
 * the run-time data (projects, risk rules, hotlist) the validators read. Used by the replica tests
 * (test/integration/replicas) and the fault suite (test/faults).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { consumerPlan } from '../../src/bus/topology.js';
import { Streams } from '../../src/bus/subjects.js';
import type { BucketSet } from '../../src/bus/topology.js';
import { tokenize } from '../../src/domain/card/token.js';
import { parseDataText } from '../../src/domain/validate/data-format.js';
import type { HotlistReason } from '../../src/domain/validate/index.js';
import { putHotlistEntry, putProjectList, putRiskRule } from '../../src/validate/data-store.js';

/** Polls `fn` every 100 ms until it is true; throws naming `what` after `timeoutMs`. */
export const until = async (fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
};

/**
 * Retries `fn` until it resolves (a JetStream API call while a cluster elects a new leader times
 * out for a few seconds); throws its last error, naming `what`, after `timeoutMs`.
 */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw new Error(`${what}: ${(err as Error).message} (still failing after ${timeoutMs} ms)`, { cause: err });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Owners of every partition of a role, from the lease bucket (undefined when one is unowned). */
export async function leaseOwners(leases: KV, role: string, partitions: number): Promise<string[] | undefined> {
  const out: string[] = [];
  for (let p = 0; p < partitions; p++) {
    const e = await leases.get(`part.${role}.${p}`);
    if (!e || e.operation !== 'PUT') return undefined;
    out.push(e.string());
  }
  return out;
}

/** Members of a role (replicas that announced themselves in the lease bucket), sorted. */
export async function leaseMembers(leases: KV, role: string): Promise<string[]> {
  const found = new Set<string>();
  for await (const k of await leases.keys(`member.${role}.*`)) found.add(k.slice(`member.${role}.`.length));
  return [...found].sort();
}

/**
 * True when exactly `n` replicas of a role are members and each holds its final share of the
 * partitions (partition p belongs to member p mod n, members sorted: src/bus/partitions.ts).
 */
export async function evenlyShared(leases: KV, role: string, n: number, partitions: number): Promise<boolean> {
  const w = await leaseOwners(leases, role, partitions);
  const members = await leaseMembers(leases, role);
  return w !== undefined && members.length === n && w.every((owner, p) => owner === members[p % n]);
}

/** What a durable consumer still has: not yet delivered, and delivered but not acknowledged. */
export interface ConsumerBacklog {
  consumer: string;
  pending: number;
  ackPending: number;
}

/** Every durable consumer of the topology with something pending or unacknowledged (empty: drained). */
export async function consumerBacklogs(jsm: JetStreamManager, partitions: number): Promise<ConsumerBacklog[]> {
  const out: ConsumerBacklog[] = [];
  for (const c of consumerPlan(partitions)) {
    const i = await jsm.consumers.info(Streams[c.stream].name, c.name);
    if (i.num_pending > 0 || i.num_ack_pending > 0) out.push({ consumer: c.name, pending: i.num_pending, ackPending: i.num_ack_pending });
  }
  return out;
}

/** True when every durable consumer has nothing left to deliver and nothing unacknowledged. */
export async function drained(jsm: JetStreamManager, partitions: number): Promise<boolean> {
  return (await consumerBacklogs(jsm, partitions)).length === 0;
}

/**
 * The run-time data a deployment loads before the validators start: the project list and risk
 * rules of `tariffDir` (data/), and the hotlist (cards tokenized with the token key).
 */
export async function loadRunTimeData(b: Pick<BucketSet, 'projects' | 'riskRules' | 'hotlist'>, tariffDir: string, tokenKey: Uint8Array, hotlist: { cardNumber: string; reason: HotlistReason }[]): Promise<void> {
  await putProjectList(b.projects, parseDataText(readFileSync(join(tariffDir, 'projects', 'default.yaml'), 'utf8'), 'yaml'));
  const rules = parseDataText(readFileSync(join(tariffDir, 'risk-rules', 'default.yaml'), 'utf8'), 'yaml') as { rules: unknown[] };
  for (const r of rules.rules) await putRiskRule(b.riskRules, r);
  for (const h of hotlist) await putHotlistEntry(b.hotlist, { cardToken: tokenize(tokenKey, 'card', h.cardNumber), reason: h.reason, since: 0 });
}
