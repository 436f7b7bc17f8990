/**
 * The validator role: decides every tap (accept / reject with a reason code and a trace) and
 * every medical claim (card, hotlist, institution on the project list) with the pure core
 * (src/domain/validate), per partition of card tokens.
 *
 * Per batch of a partition, in stream order: decode, load the cards' state from KV (cached while
 * the partition is owned), decide, publish each decision to tapflow.decisions.<P> (a claim's to
 * tapflow.claimdecisions.<Q>, Q the person's partition) and each risk flag to tapflow.risk.<P>
 * (Nats-Msg-Id = event id / flag id), then write the cards' state (compare-and-set), then
 * acknowledge. A redelivered tap whose decision is already recorded in its card's state
 * produces nothing new (its outputs were published before the state was written). Taps and
 * claims of a partition take turns: they share the cards' state.
 *
 * The same process also runs the risk-window rules keyed by terminal, venue or institution,
 * which need every partition's decisions: a single owner (lease) consumes all decisions.
 */
import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { JsMsg } from '@nats-io/jetstream';
import { partitionedWorker, workerOptions, type AppContext, type Role } from '../runtime/app.js';
import { decodeBusClaim, decodeBusTap, decodeCredentials, decodeDecision, encodeClaimDecision, encodeDecision, encodeRiskFlag } from '../bus/codec.js';
import { answerDeadClaim } from '../bus/claims-store.js';
import { messageFailure } from '../bus/failures.js';
import { PartitionWorker, type BatchOutcome, type DeadMessage } from '../bus/partitions.js';
import { StateStore } from '../bus/state-store.js';
import { Buckets, subjects } from '../bus/subjects.js';
import { unseal } from '../domain/card/seal.js';
import { loadVenueDirectory } from '../domain/network/index.js';
import {
  DEFAULT_VALIDATOR_SETTINGS,
  ProjectList,
  claimEventId,
  decideClaim,
  decideTap,
  parseProjectList,
  type CardValidationState,
  type ClaimVerdict,
  type TapDecision,
  type ValidatorData,
} from '../domain/validate/index.js';
import { observeSeries, windowKeysFor, type WindowSeries } from '../domain/validate/risk-windows.js';
import { parseDataText } from '../domain/validate/data-format.js';
import type { CardCredentials, ClaimSubmission, Decision, RiskFlag, TapEvent } from '../domain/types.js';
import { LiveValidatorData, getProjectListDoc, listRiskRules, putProjectList, putRiskRule } from './data-store.js';
import { loadTrust } from './trust.js';

const EMPTY_PROJECTS = new ProjectList('none', []);

/** Seeds the project list and risk rules from the data folder when their buckets are empty. */
async function seedDefaults(ctx: AppContext): Promise<void> {
  const dir = ctx.cfg.TAPFLOW_TARIFF_DIR;
  if ((await getProjectListDoc(ctx.buckets.projects)) === undefined) {
    const path = join(dir, 'projects', 'default.yaml');
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8');
      parseProjectList(text, 'yaml');
      await putProjectList(ctx.buckets.projects, parseDataText(text, 'yaml'));
      ctx.log.info({ path }, 'no application project list in KV: applied the default one');
    }
  }
  if ((await ctx.buckets.riskRules.status()).values === 0 && (await listRiskRules(ctx.buckets.riskRules)).length === 0) {
    const path = join(dir, 'risk-rules', 'default.yaml');
    if (existsSync(path)) {
      const doc = parseDataText(readFileSync(path, 'utf8'), 'yaml') as { rules?: unknown[] };
      for (const r of doc.rules ?? []) await putRiskRule(ctx.buckets.riskRules, r);
      ctx.log.info({ path, rules: doc.rules?.length ?? 0 }, 'no risk rules in KV: applied the default ones');
    }
  }
}

/** Runs one task at a time per partition: the taps and claims of a partition share its card states. */
class PartitionLocks {
  private readonly tails = new Map<number, Promise<unknown>>();
  run<T>(p: number, fn: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(p) ?? Promise.resolve()).then(fn, fn);
    this.tails.set(p, next.catch(() => undefined));
    return next;
  }
}

export async function createValidatorRole(ctx: AppContext): Promise<Role> {
  const { cfg, log, metrics, publisher, buckets } = ctx;
  await seedDefaults(ctx);
  const live = new LiveValidatorData(log);
  await live.start(buckets);
  const trust = loadTrust(cfg);
  const venues = loadVenueDirectory(cfg.TAPFLOW_TARIFF_DIR);
  const settings = DEFAULT_VALIDATOR_SETTINGS;
  const stores = new Map<number, StateStore<CardValidationState>>();
  const locks = new PartitionLocks();
  const sealKey = ctx.keys.sealKey;

  const data = (): ValidatorData => ({
    projectList: live.projectList ?? EMPTY_PROJECTS,
    hotlist: live.hotlist,
    trust,
    venues,
    riskRules: live.riskRules,
    settings,
  });

  const storeOf = (p: number): StateStore<CardValidationState> => {
    const store = stores.get(p);
    if (!store) throw new Error(`partition ${p} is not owned`);
    return store;
  };

  const publishFlags = (p: number, flags: RiskFlag[], pubs: Promise<unknown>[]) => {
    for (const f of flags) {
      pubs.push(publisher.publish(subjects.risk(p), encodeRiskFlag(f), f.flagId));
      metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
    }
  };

  /**
   * One batch of a partition, in stream order: decode each message (with its sealed credentials),
   * load the cards' state, decide each event, publish what it produced, write the cards' state;
   * then the worker acknowledges. A message that cannot be decoded or decided is returned dead.
   */
  async function decideBatch<E extends { cardToken: string }, R extends { state: CardValidationState }>(
    p: number,
    msgs: JsMsg[],
    how: {
      decode(data: Uint8Array): { event: E; sealedCard: Uint8Array; aad: string };
      decide(d: ValidatorData, prev: CardValidationState | undefined, event: E, creds: CardCredentials | undefined, now: number): R;
      /** Publishes what a decision produced (pushes the publishes); false: nothing to record. */
      publish(r: R, event: E, prev: CardValidationState | undefined, pubs: Promise<unknown>[]): boolean;
    },
  ): Promise<BatchOutcome> {
    const store = storeOf(p);
    const dead: DeadMessage[] = [];
    const events: { msg: JsMsg; event: E; creds: CardCredentials | undefined }[] = [];
    for (const m of msgs) {
      try {
        const { event, sealedCard, aad } = how.decode(m.data);
        const opened = unseal(sealKey, sealedCard, aad);
        events.push({ msg: m, event, creds: opened ? decodeCredentials(opened) : undefined });
      } catch (err) {
        dead.push({ msg: m, error: messageFailure(err, 'decode') });
      }
    }
    try {
      await store.load(events.map((e) => e.event.cardToken));
      const d = data();
      const pubs: Promise<unknown>[] = [];
      const now = Date.now();
      for (const { msg, event, creds } of events) {
        const prev = store.get(event.cardToken);
        let r: R;
        try {
          r = how.decide(d, prev, event, creds, now);
        } catch (err) {
          dead.push({ msg, error: messageFailure(err, 'process') });
          continue;
        }
        if (how.publish(r, event, prev, pubs)) store.set(event.cardToken, r.state);
      }
      await Promise.all(pubs);
      await store.flush();
    } catch (err) {
      store.clear();
      throw err;
    }
    return { dead };
  }

  /** Taps: decisions to tapflow.decisions.<P> and flags to tapflow.risk.<P>. */
  const handleTaps = (p: number, msgs: JsMsg[]) =>
    decideBatch<TapEvent, TapDecision>(p, msgs, {
      decode: (bytes) => {
        const { tap, sealedCard } = decodeBusTap(bytes);
        return { event: tap, sealedCard, aad: tap.eventId };
      },
      decide: decideTap,
      publish: (r, tap, prev, pubs) => {
        if (r.seqReused) {
          // The first tap under this event id counts; the terminal is flagged.
          metrics.seqReused.inc({ stage: 'validator' });
          publishFlags(p, [r.seqReused], pubs);
          return false;
        }
        if (prev !== undefined && r.state === prev) return false; // decided before: outputs already published
        pubs.push(publisher.publish(subjects.decision(p), encodeDecision(r.decision), r.decision.eventId));
        publishFlags(p, r.flags, pubs);
        metrics.decisions.inc({ verdict: r.decision.verdict, reason: r.decision.reason, scene: tap.scene, region: tap.terminalRegion });
        return true;
      },
    });

  /**
   * Claims of partition p (the card's): decided before any money moves; each decision goes to the
   * settler of the person's partition.
   */
  const handleClaims = (p: number, msgs: JsMsg[]) =>
    decideBatch<ClaimSubmission, ClaimVerdict>(p, msgs, {
      decode: (bytes) => {
        const { claim, sealedCard } = decodeBusClaim(bytes);
        return { event: claim, sealedCard, aad: claimEventId(claim.claimKey) };
      },
      decide: decideClaim,
      publish: (r, claim, prev, pubs) => {
        if (prev !== undefined && r.state === prev) return false; // decided before: outputs already published
        pubs.push(publisher.publish(subjects.claimDecision(claim.partition), encodeClaimDecision(r.decision), `claimdecision:${claim.claimKey}`));
        publishFlags(p, r.flags, pubs);
        metrics.claimDecisions.inc({ verdict: r.decision.verdict, reason: r.decision.reason, region: claim.treatmentRegion });
        return true;
      },
    });

  const isClaims = (durable: string) => durable.startsWith('validator-claims-');
  const worker = partitionedWorker(ctx, 'validator', {
    consumers: (p) => [
      { stream: 'TAPS', durable: `validator-p${p}` },
      { stream: 'CLAIMS', durable: `validator-claims-p${p}`, batch: 64, expiresMs: 100 },
    ],
    onAcquire: (p) => void stores.set(p, new StateStore<CardValidationState>(buckets.validatorState, Buckets.VALIDATOR_STATE, publisher)),
    onRelease: (p) => void stores.delete(p),
    handle: (p, spec, msgs) => locks.run(p, () => (isClaims(spec.durable) ? handleClaims(p, msgs) : handleTaps(p, msgs))),
    onDeadLetter: async (_p, spec, dead) => {
      if (isClaims(spec.durable)) await answerDeadClaim(buckets.claims, ctx.bus.nc, dead, log);
    },
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
 * Risk rules keyed by terminal, venue or institution: a single owner consumes all decisions,
 * keeps one window series per (rule, key) in KV (key = hash of the series key) and the last
 * applied decisions sequence under "_applied", so a redelivered batch is not counted twice.
 */
function createRiskWindows(ctx: AppContext, live: LiveValidatorData): PartitionWorker {
  const { buckets, publisher, metrics, cfg } = ctx;
  let store: StateStore<WindowSeries | { seq: number }> | undefined;
  const kvKey = (seriesKey: string) => 'w' + createHash('sha1').update(seriesKey).digest('hex');
  return new PartitionWorker({
    ...workerOptions(ctx, 'risk-windows'),
    partitions: 1,
    batch: cfg.TAPFLOW_CONSUMER_BATCH * 4,
    handler: {
      consumers: () => [{ stream: 'DECISIONS', durable: 'risk-windows' }],
      onAcquire: () => void (store = new StateStore(buckets.windowState, Buckets.WINDOW_STATE, publisher)),
      onRelease: () => void (store = undefined),
      handle: async (_p, _spec, msgs) => {
        const s = store!;
        const rules = live.riskRules;
        try {
          await s.load(['_applied']);
          const applied = (s.get('_applied') as { seq: number } | undefined)?.seq ?? 0;
          const fresh = msgs.filter((m) => m.seq > applied);
          if (fresh.length === 0 || rules.otherRules.length === 0) {
            if (fresh.length > 0) {
              s.set('_applied', { seq: fresh[fresh.length - 1]!.seq });
              await s.flush();
            }
            return;
          }
          const dead: DeadMessage[] = [];
          const decided: { m: JsMsg; d: Decision }[] = [];
          for (const m of fresh) {
            try {
              decided.push({ m, d: decodeDecision(m.data) });
            } catch (err) {
              dead.push({ msg: m, error: messageFailure(err, 'decode') });
            }
          }
          const touched = decided.map(({ d }) => windowKeysFor(rules, d));
          await s.load(touched.flat().map((t) => kvKey(t.seriesKey)));
          const now = Date.now();
          const flags: RiskFlag[] = [];
          decided.forEach(({ m, d }, i) => {
            try {
              const next = touched[i]!.map(({ rule, key, seriesKey }) => ({ k: kvKey(seriesKey), r: observeSeries(rule, s.get(kvKey(seriesKey)) as WindowSeries | undefined, d, key, now) }));
              for (const { k, r } of next) {
                s.set(k, r.series);
                if (r.flag) flags.push({ ...r.flag, region: d.terminalRegion });
              }
            } catch (err) {
              dead.push({ msg: m, error: messageFailure(err, 'process') });
            }
          });
          await Promise.all(flags.map((f) => publisher.publish(subjects.risk(0), encodeRiskFlag(f), f.flagId)));
          for (const f of flags) metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
          s.set('_applied', { seq: fresh[fresh.length - 1]!.seq });
          await s.flush();
          return { dead };
        } catch (err) {
          s.clear();
          throw err;
        }
      },
    },
  });
}
