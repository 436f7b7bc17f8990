/**
 * The settler role: prices and clears accepted events with the pure core (src/domain/settle),
 * per partition.
 *
 * Decisions (tapflow.decisions.<P>, partitioned by card token): accepted ones are priced against
 * the card's state (open journeys, month-to-date spend, the month's priced taps for late
 * re-rating); settlements with their ledger entries go to tapflow.settlements.<P>
 * (Nats-Msg-Id = settlement id), then the card state is written, then the batch is acked.
 * Periodically each owned partition closes journeys whose time limit passed (incomplete).
 *
 * Claim decisions (tapflow.claimdecisions.<P>, partitioned by person token; the validator of the
 * card's partition decided the card, hotlist and institution): an accepted claim is split
 * against the person's annual accumulations, a rejected one is recorded REJECTED with the
 * validator's reason and moves no money. The settlement is published, the result stored in the
 * tapflow_claims bucket (for GetClaim) and announced on tapflow.claimresult.<key> for the ingest
 * waiting on it.
 *
 * Every settlement's ledger is checked: debits must equal credits (metric
 * tapflow_ledger_imbalance_fen stays 0; an unbalanced one is counted and logged).
 */
import type { JsMsg } from '@nats-io/jetstream';
import { partitionedWorker, type AppContext, type Role } from '../runtime/app.js';
import { decodeClaimDecision, decodeDecision, encodeRiskFlag, encodeSettlement } from '../bus/codec.js';
import { answerDeadClaim, putClaimResult } from '../bus/claims-store.js';
import { messageFailure } from '../bus/failures.js';
import type { BatchOutcome, ConsumerSpec, DeadMessage } from '../bus/partitions.js';
import { StateStore } from '../bus/state-store.js';
import { Buckets, stateKeys, subjects } from '../bus/subjects.js';
import { checkBalanced, loadSettlerData, settleClaim, settleDecision, sweepExpired, type CardSettleState, type PersonMedicalState } from '../domain/settle/index.js';
import type { ClaimDecision, Decision, RiskFlag, Settlement } from '../domain/types.js';

/** Rule id and version of the flag raised when a terminal's purse debit differs from the tariff. */
export const PURSE_MISMATCH_RULE = { id: 'builtin:PURSE_MISMATCH', version: '1' } as const;

function purseMismatchFlag(d: Decision, debitedFen: number, tariffFen: number, nowMs: number): RiskFlag {
  return {
    flagId: `${d.eventId}:${PURSE_MISMATCH_RULE.id}`,
    eventId: d.eventId,
    ruleId: PURSE_MISMATCH_RULE.id,
    ruleVersion: PURSE_MISMATCH_RULE.version,
    severity: 'WARNING',
    keyKind: 'terminal',
    key: d.terminalId,
    detail: `terminal debited ${debitedFen} fen, the tariff says ${tariffFen} fen`,
    deviceTime: d.deviceTime,
    flagTime: nowMs,
    region: d.terminalRegion,
  };
}

/** Person state shares the bucket with card state, under its own key prefix. */
const personKey = stateKeys.person;

export async function createSettlerRole(ctx: AppContext): Promise<Role> {
  const { cfg, log, metrics, publisher, buckets } = ctx;
  const data = loadSettlerData(cfg.TAPFLOW_TARIFF_DIR);
  const cards = new Map<number, StateStore<CardSettleState>>();
  const persons = new Map<number, StateStore<PersonMedicalState>>();
  let imbalance = 0;

  const account = (s: Settlement) => {
    const b = checkBalanced(s.ledger);
    if (!b.balanced) {
      imbalance += b.debitFen - b.creditFen;
      metrics.ledgerImbalance.set(imbalance);
      metrics.ledgerImbalanced.inc();
      log.error({ settlementId: s.settlementId, debit: b.debitFen, credit: b.creditFen }, 'unbalanced ledger entries');
    }
    metrics.settlements.inc({ kind: s.kind, region: s.terminalRegion });
    if (s.kind === 'FARE' || s.kind === 'ADJUSTMENT' || s.kind === 'ENTRY') metrics.fareFen.inc({ network: s.network || s.kind.toLowerCase(), region: s.terminalRegion }, Math.max(0, s.amountFen));
  };

  const publishAll = (p: number, settlements: Settlement[]) =>
    Promise.all(
      settlements.map((s) => {
        account(s);
        return publisher.publish(subjects.settlement(p), encodeSettlement(s), s.settlementId);
      }),
    );

  const handleDecisions = async (p: number, msgs: JsMsg[]): Promise<BatchOutcome> => {
    const store = cards.get(p)!;
    const dead: DeadMessage[] = [];
    const decided: { msg: JsMsg; d: Decision }[] = [];
    for (const m of msgs) {
      try {
        const d = decodeDecision(m.data);
        if (d.verdict === 'ACCEPTED') decided.push({ msg: m, d });
      } catch (err) {
        dead.push({ msg: m, error: messageFailure(err, 'decode') });
      }
    }
    if (decided.length === 0) return { dead };
    try {
      await store.load(decided.map(({ d }) => d.cardToken));
      const out: Settlement[] = [];
      const now = Date.now();
      const flags: RiskFlag[] = [];
      for (const { msg, d } of decided) {
        let r: ReturnType<typeof settleDecision>;
        try {
          r = settleDecision(data, store.get(d.cardToken), d, now);
        } catch (err) {
          dead.push({ msg, error: messageFailure(err, 'process') });
          continue;
        }
        store.set(d.cardToken, r.state);
        out.push(...r.settlements);
        for (const n of r.notices) {
          // A terminal that debited a purse other than the tariff: flagged for the risk team.
          if (n.kind === 'PURSE_MISMATCH') flags.push(purseMismatchFlag(d, n.debitedFen, n.tariffFen, now));
        }
      }
      await Promise.all([
        publishAll(p, out),
        ...flags.map((f) => {
          metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
          return publisher.publish(subjects.risk(p), encodeRiskFlag(f), f.flagId);
        }),
      ]);
      await store.flush();
    } catch (err) {
      store.clear();
      throw err;
    }
    return { dead };
  };

  const handleClaims = async (p: number, msgs: JsMsg[]): Promise<BatchOutcome> => {
    const store = persons.get(p)!;
    const dead: DeadMessage[] = [];
    const claims: { msg: JsMsg; c: ClaimDecision }[] = [];
    for (const m of msgs) {
      try {
        claims.push({ msg: m, c: decodeClaimDecision(m.data) });
      } catch (err) {
        dead.push({ msg: m, error: messageFailure(err, 'decode') });
      }
    }
    if (claims.length === 0) return { dead };
    try {
      await store.load(claims.map(({ c }) => personKey(c.personToken)));
      const out: { c: ClaimDecision; s: Settlement }[] = [];
      const now = Date.now();
      for (const { msg, c } of claims) {
        let r: ReturnType<typeof settleClaim>;
        try {
          const refused = c.verdict === 'ACCEPTED' ? undefined : { reason: c.reason, trace: c.trace };
          r = settleClaim(data, store.get(personKey(c.personToken)), c, now, refused);
        } catch (err) {
          dead.push({ msg, error: messageFailure(err, 'process') });
          continue;
        }
        store.set(personKey(c.personToken), r.state);
        out.push({ c, s: { ...r.settlement, personToken: c.personToken } });
      }
      await publishAll(
        p,
        out.map((o) => o.s),
      );
      // Results for GetClaim (kept with the submitting terminal: only it may read the claim), then
      // the answer to a waiting SettleClaim.
      await Promise.all(out.map(({ c, s }) => putClaimResult(buckets.claims, ctx.bus.nc, c.claimKey, c.terminalId, s.claim!)));
      await store.flush();
    } catch (err) {
      store.clear();
      throw err;
    }
    return { dead };
  };

  const worker = partitionedWorker(ctx, 'settler', {
    consumers: (p): ConsumerSpec[] => [
      { stream: 'DECISIONS', durable: `settler-p${p}` },
      { stream: 'CLAIMS', durable: `settler-claims-p${p}`, batch: 64, expiresMs: 100 },
    ],
    onAcquire: (p) => {
      cards.set(p, new StateStore<CardSettleState>(buckets.settlerState, Buckets.SETTLER_STATE, publisher));
      persons.set(p, new StateStore<PersonMedicalState>(buckets.settlerState, Buckets.SETTLER_STATE, publisher));
    },
    onRelease: (p) => {
      cards.delete(p);
      persons.delete(p);
    },
    handle: (p, spec, msgs) => (spec.durable.startsWith('settler-claims-') ? handleClaims(p, msgs) : handleDecisions(p, msgs)),
    onDeadLetter: async (_p, spec, dead) => {
      if (spec.durable.startsWith('settler-claims-')) await answerDeadClaim(ctx.buckets.claims, ctx.bus.nc, dead, ctx.log);
    },
    tickMs: 5000,
    tick: async (p) => {
      // Close journeys whose time limit passed, among the cards this partition has in memory.
      const store = cards.get(p);
      if (!store) return;
      const now = Date.now();
      const out: Settlement[] = [];
      for (const [token, state] of store.entries()) {
        const r = sweepExpired(data, state, now);
        if (r.settlements.length > 0) {
          store.set(token, r.state);
          out.push(...r.settlements);
        }
      }
      if (out.length === 0) return;
      try {
        await publishAll(p, out);
        await store.flush();
      } catch (err) {
        store.clear();
        throw err;
      }
    },
  });
  await worker.start();
  return { name: 'settler', ready: () => ctx.bus.connected(), stop: () => worker.stop() };
}
