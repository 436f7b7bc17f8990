/**
 * The validator role: decides every tap (accept / reject with a reason code and a trace) and
 * every medical claim (card, hotlist, institution on the project list) with the pure core
 * (src/domain/validate), per partition of card tokens.
 *
 * Taps come in bundles (tapflow.taps.<P>, one TapBundle per ingest publish). Per batch of a
 * partition, in stream order: decode the bundles, read the cards not in memory from the
 * partition's state, decide; publish one DecisionBundle per input bundle on
 * tapflow.decisions.<P> (its decisions and risk flags; Nats-Msg-Id "v:<TAPS seq>"); then one
 * changelog message with the batch's card states (src/bus/partition-state.ts); then acknowledge.
 * A tap already applied by its card's state (a redelivery, or a terminal's re-send in another
 * bundle) produces nothing new: its decision was published before the state that records it.
 *
 * Claims (tapflow.claims.<P>, one per message) are decided against the same card states and their
 * decisions go to tapflow.claimdecisions.<Q> (Q the person's partition). Taps and claims of a
 * partition take turns: they share its state.
 *
 * The same process also runs the risk-window rules keyed by terminal, venue or institution,
 * which need every partition's decisions: a single owner (lease) consumes all decision bundles.
 */
import { createHash } from 'node:crypto';
import type { JsMsg } from '@nats-io/jetstream';
import { partitionedWorker, workerOptions, type AppContext, type Role } from '../runtime/app.js';
import {
  decodeBusClaim,
  decodeBusTap,
  decodeClaimDecision,
  decodeCredentials,
  decodeDecision,
  encodeClaimDecision,
  encodeDecisionBundle,
  encodeRiskFlag,
  splitDecisionBundle,
  splitTapBundle,
} from '../bus/codec.js';
import { answerDeadClaim } from '../bus/claims-store.js';
import { awaitedLater } from '../bus/publisher.js';
import { derivedOutputHeaders } from '../bus/replay.js';
import { messageFailure } from '../bus/failures.js';
import { OwnedStates } from '../bus/owned-states.js';
import { stateCodec } from '../bus/partition-state.js';
import { PartitionWorker, type BatchOutcome, type DeadMessage } from '../bus/partitions.js';
import { Buckets, subjects } from '../bus/subjects.js';
import { unseal } from '../domain/card/seal.js';
import { pacer } from '../runtime/pacer.js';
import { crashPoint } from '../runtime/crash-points.js';
import { loadVenueDirectory } from '../domain/network/index.js';
import {
  DEFAULT_VALIDATOR_SETTINGS,
  ProjectList,
  claimEventId,
  claimRiskSubject,
  decideClaim,
  decideTap,
  type CardValidationState,
  type ValidatorData,
} from '../domain/validate/index.js';
import { observeSeries, windowKeysFor, type WindowSeries } from '../domain/validate/risk-windows.js';
import type { RiskSubject } from '../domain/validate/risk-rules.js';
import type { CardCredentials, Decision, RiskFlag, TapEvent } from '../domain/types.js';
import { LiveValidatorData } from './data-store.js';
import { loadTrust } from './trust.js';

const EMPTY_PROJECTS = new ProjectList('none', []);

export async function createValidatorRole(ctx: AppContext): Promise<Role> {
  const { cfg, log, metrics, publisher, buckets } = ctx;
  const live = new LiveValidatorData(log);
  await live.start(buckets);
  const trust = loadTrust(cfg);
  const venues = loadVenueDirectory(cfg.TAPFLOW_TARIFF_DIR);
  const settings = DEFAULT_VALIDATOR_SETTINGS;
  const sealKey = ctx.keys.sealKey;
  const states = new OwnedStates<CardValidationState>({
    role: 'validator',
    bus: ctx.bus,
    publisher,
    kv: buckets.validatorState,
    bucket: Buckets.VALIDATOR_STATE,
    codec: stateCodec<CardValidationState>(),
    maxCachedPerPartition: Math.ceil(cfg.TAPFLOW_STATE_CACHE / cfg.TAPFLOW_PARTITIONS),
    log,
    metrics,
  });

  const data = (): ValidatorData => ({
    projectList: live.projectList ?? EMPTY_PROJECTS,
    hotlist: live.hotlist,
    trust,
    venues,
    riskRules: live.riskRules,
    settings,
  });

  const countFlags = (flags: RiskFlag[]) => {
    for (const f of flags) metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
  };

  /**
   * Tap bundles of partition p: one DecisionBundle per input bundle, then the cards' state. A tap
   * that cannot be decoded or decided is dead-lettered alone; the rest of its bundle goes on.
   */
  const handleTaps = (p: number, msgs: JsMsg[]): Promise<BatchOutcome> =>
    states.run(p, async (state) => {
      const dead: DeadMessage[] = [];
      const inputs: { msg: JsMsg; taps: { tap: TapEvent; creds: CardCredentials | undefined; raw: Uint8Array; i: number }[] }[] = [];
      const pace = pacer();
      for (const m of msgs) {
        await pace();
        let parts: Uint8Array[];
        try {
          parts = splitTapBundle(m.data);
        } catch (err) {
          dead.push({ msg: m, error: messageFailure(err, 'decode') });
          continue;
        }
        const taps: (typeof inputs)[number]['taps'] = [];
        parts.forEach((raw, i) => {
          try {
            const { tap, sealedCard } = decodeBusTap(raw);
            const opened = unseal(sealKey, sealedCard, tap.eventId);
            taps.push({ tap, creds: opened ? decodeCredentials(opened) : undefined, raw, i });
          } catch (err) {
            dead.push({ msg: m, error: messageFailure(err, 'decode'), part: { name: `tap-${i}`, data: raw } });
          }
        });
        inputs.push({ msg: m, taps });
      }
      try {
        // During a token key rotation overlap, a card's state may still be under a previous token.
        if (inputs.some((x) => x.taps.some((t) => t.tap.previousCardTokens))) {
          await state.loadAliased(inputs.flatMap((x) => x.taps.map((t) => ({ key: t.tap.cardToken, previous: t.tap.previousCardTokens }))));
        } else await state.load(inputs.flatMap((x) => x.taps.map((t) => t.tap.cardToken)));
        const d = data();
        const now = Date.now();
        const outputs: Promise<unknown>[] = [];
        for (const { msg, taps } of inputs) {
          const decisions: Decision[] = [];
          const flags: RiskFlag[] = [];
          for (const { tap, creds, raw, i } of taps) {
            await pace();
            // Moved from a previous key version's token on the card's first tap since the rotation.
            if (tap.previousCardTokens) state.rekey(tap.cardToken, tap.previousCardTokens);
            let r;
            try {
              r = decideTap(d, state.get(tap.cardToken), tap, creds, now);
            } catch (err) {
              dead.push({ msg, error: messageFailure(err, 'process'), part: { name: `tap-${i}`, data: raw } });
              continue;
            }
            if (r.already) {
              // Applied before: nothing new — unless the terminal reused the seq for another tap.
              if (r.seqReused) {
                metrics.seqReused.inc({ stage: 'validator' });
                flags.push(r.seqReused);
              }
              continue;
            }
            state.set(tap.cardToken, r.state);
            decisions.push(r.decision);
            flags.push(...r.flags);
            metrics.decisions.inc({ verdict: r.decision.verdict, reason: r.decision.reason, scene: tap.scene, region: tap.terminalRegion });
          }
          if (decisions.length === 0 && flags.length === 0) continue;
          countFlags(flags);
          // Made from a replayed tap bundle: the sink keeps only rows not stored yet (src/bus/replay.ts).
          const headers = derivedOutputHeaders(msg, 'TAPS');
          outputs.push(awaitedLater(publisher.publish(subjects.decision(p), encodeDecisionBundle(decisions, flags), `v:${msg.seq}`, headers && { headers })));
        }
        // Outputs before the state that records them; the ack after both.
        await Promise.all(outputs);
        crashPoint('validator', 'after-outputs');
        await state.commit();
        crashPoint('validator', 'after-commit');
      } catch (err) {
        state.rollback();
        throw err;
      }
      return { dead };
    });

  /**
   * Claims of partition p (the card's): decided before any money moves; each decision goes to the
   * settler of the person's partition.
   */
  const handleClaims = (p: number, msgs: JsMsg[]): Promise<BatchOutcome> =>
    states.run(p, async (state) => {
      const dead: DeadMessage[] = [];
      const claims: { msg: JsMsg; claim: ReturnType<typeof decodeBusClaim>['claim']; creds: CardCredentials | undefined }[] = [];
      for (const m of msgs) {
        try {
          const { claim, sealedCard } = decodeBusClaim(m.data);
          const opened = unseal(sealKey, sealedCard, claimEventId(claim.claimKey));
          claims.push({ msg: m, claim, creds: opened ? decodeCredentials(opened) : undefined });
        } catch (err) {
          dead.push({ msg: m, error: messageFailure(err, 'decode') });
        }
      }
      try {
        await state.loadAliased(claims.map((c) => ({ key: c.claim.cardToken, previous: c.claim.previousCardTokens })));
        const d = data();
        const now = Date.now();
        const outputs: Promise<unknown>[] = [];
        for (const { msg, claim, creds } of claims) {
          if (claim.previousCardTokens) state.rekey(claim.cardToken, claim.previousCardTokens);
          let r;
          try {
            r = decideClaim(d, state.get(claim.cardToken), claim, creds, now);
          } catch (err) {
            dead.push({ msg, error: messageFailure(err, 'process') });
            continue;
          }
          if (r.already) continue; // decided before: its decision was published
          state.set(claim.cardToken, r.state);
          outputs.push(awaitedLater(publisher.publish(subjects.claimDecision(claim.partition), encodeClaimDecision(r.decision), `claimdecision:${claim.claimKey}`)));
          // A claim's flags go with no bundle: alone on the risk subject of its card's partition.
          for (const f of r.flags) outputs.push(awaitedLater(publisher.publish(subjects.risk(p), encodeRiskFlag(f), f.flagId)));
          countFlags(r.flags);
          metrics.claimDecisions.inc({ verdict: r.decision.verdict, reason: r.decision.reason, region: claim.treatmentRegion });
        }
        await Promise.all(outputs);
        await state.commit();
      } catch (err) {
        state.rollback();
        throw err;
      }
      return { dead };
    });

  const isClaims = (durable: string) => durable.startsWith('validator-claims-');
  const worker = partitionedWorker(ctx, 'validator', {
    consumers: (p) => [
      { stream: 'TAPS', durable: `validator-p${p}` },
      { stream: 'CLAIMS', durable: `validator-claims-p${p}`, batch: 64, expiresMs: 100 },
    ],
    onAcquire: (p) => states.acquire(p),
    onRelease: (p, graceful) => states.release(p, graceful),
    handle: (p, spec, msgs) => (isClaims(spec.durable) ? handleClaims(p, msgs) : handleTaps(p, msgs)),
    onDeadLetter: async (_p, spec, dead) => {
      if (isClaims(spec.durable)) await answerDeadClaim(buckets.claims, ctx.bus.nc, dead, log);
    },
    tickMs: cfg.TAPFLOW_CHECKPOINT_INTERVAL_MS,
    tick: (p) => states.checkpoint(p),
  });
  await worker.start();
  const windows = createRiskWindows(ctx, live);
  await windows.start();
  return {
    name: 'validator',
    ready: () => live.projectList !== undefined && ctx.bus.connected(),
    stop: async () => {
      await worker.stop();
      await windows.stop();
      live.stop();
    },
  };
}

/**
 * Risk rules keyed by terminal, venue or institution: a single owner consumes all decision bundles
 * and all claim decisions (a claim is a MEDICAL event at its institution, of the bill's total:
 * claimRiskSubject) and keeps one window series per (rule, key) (key = hash of the series key) and
 * the last applied sequence of each consumer under "_applied" (decisions) and "_applied_claims"
 * (claim decisions) — so a redelivered batch is not counted twice — as
 * partition-local state (partition-state.ts): one changelog message per batch, checkpoints to
 * the window bucket.
 */
function createRiskWindows(ctx: AppContext, live: LiveValidatorData): PartitionWorker {
  const { buckets, publisher, metrics, cfg, log } = ctx;
  type WindowValue = WindowSeries | { seq: number };
  const states = new OwnedStates<WindowValue>({
    role: 'risk-windows',
    bus: ctx.bus,
    publisher,
    kv: buckets.windowState,
    bucket: Buckets.WINDOW_STATE,
    codec: stateCodec<WindowValue>(),
    maxCachedPerPartition: cfg.TAPFLOW_STATE_CACHE,
    log,
    metrics,
  });
  const kvKey = (seriesKey: string) => 'w' + createHash('sha1').update(seriesKey).digest('hex');
  return new PartitionWorker({
    ...workerOptions(ctx, 'risk-windows'),
    partitions: 1,
    batch: cfg.TAPFLOW_CONSUMER_BATCH * 4,
    handler: {
      // Decisions of taps and of medical claims: an institution's claims are money out of the fund.
      consumers: () => [
        { stream: 'DECISIONS', durable: 'risk-windows' },
        { stream: 'CLAIMS', durable: 'risk-windows-claims' },
      ],
      onAcquire: (p) => states.acquire(p),
      onRelease: (p, graceful) => states.release(p, graceful),
      tickMs: cfg.TAPFLOW_CHECKPOINT_INTERVAL_MS,
      tick: (p) => states.checkpoint(p),
      handle: (p, spec, msgs) =>
        states.run(p, async (s) => {
          const rules = live.riskRules;
          // Each consumer's last applied sequence: a redelivered batch is not counted twice.
          const appliedKey = spec.stream === 'CLAIMS' ? '_applied_claims' : '_applied';
          try {
            await s.load([appliedKey]);
            const applied = (s.get(appliedKey) as { seq: number } | undefined)?.seq ?? 0;
            const fresh = msgs.filter((m) => m.seq > applied);
            if (fresh.length === 0) return;
            if (rules.otherRules.length === 0) {
              s.set(appliedKey, { seq: fresh[fresh.length - 1]!.seq });
              await s.commit();
              return;
            }
            const dead: DeadMessage[] = [];
            /** What the rules see, from which message (and which part of it, for a bundle). */
            const decided: { m: JsMsg; d: RiskSubject; part?: { name: string; data: Uint8Array } }[] = [];
            const pace = pacer();
            for (const m of fresh) {
              await pace();
              if (spec.stream === 'CLAIMS') {
                try {
                  const c = decodeClaimDecision(m.data);
                  decided.push({ m, d: claimRiskSubject(c, c.verdict) });
                } catch (err) {
                  dead.push({ msg: m, error: messageFailure(err, 'decode') });
                }
                continue;
              }
              let parts: Uint8Array[];
              try {
                parts = splitDecisionBundle(m.data).decisions;
              } catch (err) {
                dead.push({ msg: m, error: messageFailure(err, 'decode') });
                continue;
              }
              parts.forEach((raw, i) => {
                const part = { name: `decision-${i}`, data: raw };
                try {
                  decided.push({ m, d: decodeDecision(raw), part });
                } catch (err) {
                  dead.push({ msg: m, error: messageFailure(err, 'decode'), part });
                }
              });
            }
            const touched = decided.map(({ d }) => windowKeysFor(rules, d));
            await s.load(touched.flat().map((t) => kvKey(t.seriesKey)));
            const now = Date.now();
            const flags: RiskFlag[] = [];
            /** A flag raised by a replayed decision bundle (or one derived from a replay) says so. */
            const flagHeaders = new Map<RiskFlag, Record<string, string>>();
            decided.forEach(({ m, d, part }, i) => {
              try {
                const next = touched[i]!.map(({ rule, key, seriesKey }) => ({ k: kvKey(seriesKey), r: observeSeries(rule, s.get(kvKey(seriesKey)) as WindowSeries | undefined, d, key, now) }));
                const headers = derivedOutputHeaders(m, spec.stream);
                for (const { k, r } of next) {
                  s.set(k, r.series);
                  if (!r.flag) continue;
                  const flag = { ...r.flag, region: d.terminalRegion };
                  flags.push(flag);
                  if (headers) flagHeaders.set(flag, headers);
                }
              } catch (err) {
                dead.push({ msg: m, error: messageFailure(err, 'process'), ...(part && { part }) });
              }
            });
            // Flags before the state that records their batch; the ack after both.
            await Promise.all(
              flags.map((f) => {
                const headers = flagHeaders.get(f);
                return publisher.publish(subjects.risk(0), encodeRiskFlag(f), f.flagId, headers && { headers });
              }),
            );
            for (const f of flags) metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
            s.set(appliedKey, { seq: fresh[fresh.length - 1]!.seq });
            await s.commit();
            return { dead };
          } catch (err) {
            s.rollback();
            throw err;
          }
        }),
    },
  });
}
