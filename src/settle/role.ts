/**
 * The settler role: prices and clears accepted events with the pure core (src/domain/settle),
 * per partition.
 *
 * Decision bundles (tapflow.decisions.<P>, partitioned by card token): accepted decisions are
 * priced against their cards' states (open journeys, month-to-date spend, the month's priced taps
 * for late re-rating); one SettlementBundle per input bundle, with the settlements' ledger entries
 * and any risk flags, goes to tapflow.settlements.<P> (Nats-Msg-Id "s:<DECISIONS seq>"), then one
 * changelog message holds the batch's states (src/bus/partition-state.ts), then the batch is
 * acknowledged. Periodically each owned partition closes journeys whose time limit passed
 * (incomplete) and checkpoints its state.
 *
 * Claim decisions (tapflow.claimdecisions.<P>, partitioned by person token; the validator of the
 * card's partition decided the card, hotlist and institution): an accepted claim is split
 * against the person's annual accumulations, a rejected one is recorded REJECTED with the
 * validator's reason and moves no money. The settlement is published, the result stored in the
 * tapflow_claims bucket (for GetClaim) and announced on tapflow.claimresult.<key> for the ingest
 * waiting on it.
 *
 * Every settlement's ledger is checked: debits must equal credits (an unbalanced one is counted,
 * tapflow_ledger_imbalanced_total, and logged). The ledger's balance as a whole,
 * tapflow_ledger_imbalance_fen, is computed from ClickHouse by the sink (src/sink/store-gauges.ts).
 */
import { createHash } from 'node:crypto';
import type { JsMsg } from '@nats-io/jetstream';
import { partitionedWorker, type AppContext, type Role } from '../runtime/app.js';
import { awaitedLater } from '../bus/publisher.js';
import { derivedOutputHeaders } from '../bus/replay.js';
import { decodeClaimDecision, decodeDecision, encodeSettlementBundle, splitDecisionBundle } from '../bus/codec.js';
import { answerDeadClaim, putClaimResult } from '../bus/claims-store.js';
import { messageFailure } from '../bus/failures.js';
import type { BatchOutcome, ConsumerSpec, DeadMessage } from '../bus/partitions.js';
import { OwnedStates } from '../bus/owned-states.js';
import { stateCodec } from '../bus/partition-state.js';
import { Buckets, stateKeys, subjects } from '../bus/subjects.js';
import { checkBalanced, loadSettlerData, settleClaim, settleDecision, sweepDueAt, sweepExpired, type CardSettleState, type PersonMedicalState } from '../domain/settle/index.js';
import type { ClaimDecision, Decision, RiskFlag, Settlement } from '../domain/types.js';
import { crashPoint } from '../runtime/crash-points.js';
import { pacer } from '../runtime/pacer.js';

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
const PERSON_PREFIX = personKey('');

type SettlerValue = CardSettleState | PersonMedicalState;

export async function createSettlerRole(ctx: AppContext): Promise<Role> {
  const { cfg, log, metrics, publisher, buckets } = ctx;
  const data = loadSettlerData(cfg.TAPFLOW_TARIFF_DIR);
  // Card states (key: the card token) and person states ("person.<token>") of a partition share
  // one changelog: the decisions and the claims consumers of a partition take turns.
  const states = new OwnedStates<SettlerValue>({
    role: 'settler',
    bus: ctx.bus,
    publisher,
    kv: buckets.settlerState,
    bucket: Buckets.SETTLER_STATE,
    codec: stateCodec<SettlerValue>(),
    maxCachedPerPartition: Math.ceil(cfg.TAPFLOW_STATE_CACHE / cfg.TAPFLOW_PARTITIONS),
    // The tick's sweep visits only the cards whose open journey's time limit has passed.
    due: (key, value) => (key.startsWith(PERSON_PREFIX) ? undefined : sweepDueAt(data, value as CardSettleState)),
    log,
    metrics,
  });
  const lastCheckpoint = new Map<number, number>();

  const account = (s: Settlement) => {
    const b = checkBalanced(s.ledger);
    if (!b.balanced) {
      metrics.ledgerImbalanced.inc();
      log.error({ settlementId: s.settlementId, debit: b.debitFen, credit: b.creditFen }, 'unbalanced ledger entries');
    }
    metrics.settlements.inc({ kind: s.kind, region: s.terminalRegion });
    if (s.kind === 'FARE' || s.kind === 'ADJUSTMENT' || s.kind === 'ENTRY') metrics.fareFen.inc({ network: s.network || s.kind.toLowerCase(), region: s.terminalRegion }, Math.max(0, s.amountFen));
  };

  /** One SettlementBundle (when there is anything in it), with its message id. */
  const publishBundle = (p: number, settlements: Settlement[], flags: RiskFlag[], msgId: string, headers?: Record<string, string>): Promise<unknown> | undefined => {
    if (settlements.length === 0 && flags.length === 0) return undefined;
    for (const s of settlements) account(s);
    for (const f of flags) metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
    return publisher.publish(subjects.settlement(p), encodeSettlementBundle(settlements, flags), msgId, headers && { headers });
  };

  /**
   * Decision bundles of partition p: the accepted decisions are priced against their cards'
   * states; one SettlementBundle per input bundle ("s:<DECISIONS seq>"), then the states.
   */
  const handleDecisions = (p: number, msgs: JsMsg[]): Promise<BatchOutcome> =>
    states.run(p, async (state) => {
      const dead: DeadMessage[] = [];
      const inputs: { msg: JsMsg; decided: { d: Decision; raw: Uint8Array; i: number }[] }[] = [];
      const pace = pacer();
      for (const m of msgs) {
        await pace();
        let parts: Uint8Array[];
        try {
          parts = splitDecisionBundle(m.data).decisions;
        } catch (err) {
          dead.push({ msg: m, error: messageFailure(err, 'decode') });
          continue;
        }
        const decided: (typeof inputs)[number]['decided'] = [];
        parts.forEach((raw, i) => {
          try {
            const d = decodeDecision(raw);
            if (d.verdict === 'ACCEPTED') decided.push({ d, raw, i });
          } catch (err) {
            dead.push({ msg: m, error: messageFailure(err, 'decode'), part: { name: `decision-${i}`, data: raw } });
          }
        });
        if (decided.length > 0) inputs.push({ msg: m, decided });
      }
      if (inputs.length === 0) return { dead };
      try {
        // During a token key rotation overlap, a card's state may still be under a previous token.
        if (inputs.some((x) => x.decided.some(({ d }) => d.previousCardTokens))) {
          await state.loadAliased(inputs.flatMap((x) => x.decided.map(({ d }) => ({ key: d.cardToken, previous: d.previousCardTokens }))));
        } else await state.load(inputs.flatMap((x) => x.decided.map(({ d }) => d.cardToken)));
        const now = Date.now();
        const outputs: Promise<unknown>[] = [];
        for (const { msg, decided } of inputs) {
          const out: Settlement[] = [];
          const flags: RiskFlag[] = [];
          for (const { d, raw, i } of decided) {
            await pace();
            let r: ReturnType<typeof settleDecision>;
            if (d.previousCardTokens) state.rekey(d.cardToken, d.previousCardTokens, (st) => ({ ...(st as CardSettleState), cardToken: d.cardToken }));
            try {
              r = settleDecision(data, state.get(d.cardToken) as CardSettleState | undefined, d, now);
            } catch (err) {
              dead.push({ msg, error: messageFailure(err, 'process'), part: { name: `decision-${i}`, data: raw } });
              continue;
            }
            state.set(d.cardToken, r.state);
            out.push(...r.settlements);
            for (const n of r.notices) {
              // A terminal that debited a purse other than the tariff: flagged for the risk team.
              if (n.kind === 'PURSE_MISMATCH') flags.push(purseMismatchFlag(d, n.debitedFen, n.tariffFen, now));
            }
          }
          // Made from a replayed decision (or one derived from a replay): the sink keeps only rows not stored yet.
          const published = publishBundle(p, out, flags, `s:${msg.seq}`, derivedOutputHeaders(msg, 'DECISIONS'));
          if (published) outputs.push(awaitedLater(published));
        }
        await Promise.all(outputs);
        crashPoint('settler', 'after-outputs');
        await state.commit();
        crashPoint('settler', 'after-commit');
      } catch (err) {
        state.rollback();
        throw err;
      }
      return { dead };
    });

  /**
   * Claim decisions of partition p (the person's): split an accepted claim, record a refused one;
   * the settlement ("s:c:<CLAIMS seq>"), then the answer in the claims bucket, then the states.
   */
  const handleClaims = (p: number, msgs: JsMsg[]): Promise<BatchOutcome> =>
    states.run(p, async (state) => {
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
        await state.loadAliased(claims.map(({ c }) => ({ key: personKey(c.personToken), previous: c.previousPersonTokens?.map(personKey) })));
        const out: { c: ClaimDecision; s: Settlement }[] = [];
        const now = Date.now();
        const outputs: Promise<unknown>[] = [];
        for (const { msg, c } of claims) {
          let r: ReturnType<typeof settleClaim>;
          // A person's accumulations kept under a previous key version's token move to the current one.
          if (c.previousPersonTokens) state.rekey(personKey(c.personToken), c.previousPersonTokens.map(personKey));
          try {
            const refused = c.verdict === 'ACCEPTED' ? undefined : { reason: c.reason, trace: c.trace };
            r = settleClaim(data, state.get(personKey(c.personToken)) as PersonMedicalState | undefined, c, now, refused);
          } catch (err) {
            dead.push({ msg, error: messageFailure(err, 'process') });
            continue;
          }
          state.set(personKey(c.personToken), r.state);
          const settlement = { ...r.settlement, personToken: c.personToken };
          out.push({ c, s: settlement });
          outputs.push(awaitedLater(publishBundle(p, [settlement], [], `s:c:${msg.seq}`)!));
        }
        await Promise.all(outputs);
        // Results for GetClaim (kept with the submitting terminal: only it may read the claim), then
        // the answer to a waiting SettleClaim.
        await Promise.all(out.map(({ c, s }) => putClaimResult(buckets.claims, ctx.bus.nc, c.claimKey, c.terminalId, s.claim!)));
        await state.commit();
      } catch (err) {
        state.rollback();
        throw err;
      }
      return { dead };
    });

  /**
   * Between batches: close the journeys whose time limit passed (among the partition's cards in
   * memory), and checkpoint the partition's state every TAPFLOW_CHECKPOINT_INTERVAL_MS.
   */
  const tick = async (p: number) => {
    await states.run(p, async (state) => {
      const now = Date.now();
      const out: Settlement[] = [];
      for (const [key, value] of state.dueEntries(now)) {
        const r = sweepExpired(data, value as CardSettleState, now);
        if (r.settlements.length > 0) {
          state.set(key, r.state);
          out.push(...r.settlements);
        }
      }
      if (out.length === 0) return;
      try {
        // The same expired journeys give the same settlement ids: a sweep redone after a failure
        // publishes a copy JetStream drops.
        const id = createHash('sha256').update(out.map((s) => s.settlementId).join('\n')).digest('hex').slice(0, 32);
        await publishBundle(p, out, [], `s:w:${p}:${id}`);
        await state.commit();
      } catch (err) {
        state.rollback();
        throw err;
      }
    });
    if (Date.now() - (lastCheckpoint.get(p) ?? 0) >= cfg.TAPFLOW_CHECKPOINT_INTERVAL_MS) {
      await states.checkpoint(p);
      lastCheckpoint.set(p, Date.now());
    }
  };

  const isClaims = (durable: string) => durable.startsWith('settler-claims-');
  const worker = partitionedWorker(ctx, 'settler', {
    consumers: (p): ConsumerSpec[] => [
      { stream: 'DECISIONS', durable: `settler-p${p}` },
      { stream: 'CLAIMS', durable: `settler-claims-p${p}`, batch: 64, expiresMs: 100 },
    ],
    onAcquire: (p) => {
      states.acquire(p);
      lastCheckpoint.set(p, Date.now());
    },
    onRelease: (p, graceful) => states.release(p, graceful),
    handle: (p, spec, msgs) => (isClaims(spec.durable) ? handleClaims(p, msgs) : handleDecisions(p, msgs)),
    onDeadLetter: async (_p, spec, dead) => {
      if (isClaims(spec.durable)) await answerDeadClaim(ctx.buckets.claims, ctx.bus.nc, dead, ctx.log);
    },
    tickMs: Math.min(5000, cfg.TAPFLOW_CHECKPOINT_INTERVAL_MS),
    tick,
  });
  await worker.start();
  return { name: 'settler', ready: () => ctx.bus.connected(), stop: () => worker.stop() };
}
