/**
 * The validator role: decides every tap (accept / reject with a reason code and a trace) with
 * the pure core (src/domain/validate), per partition of card tokens.
 *
 * Per batch of a partition, in stream order: decode, load the cards' state from KV (cached while
 * the partition is owned), decide, publish each decision to tapflow.decisions.<P> and each risk
 * flag to tapflow.risk.<P> (Nats-Msg-Id = event id / flag id), then write the cards' state
 * (compare-and-set), then acknowledge. A redelivered tap whose decision is already recorded in
 * its card's state produces nothing new (its outputs were published before the state was
 * written).
 *
 * The same process also runs the risk-window rules keyed by terminal, venue or institution,
 * which need every partition's decisions: a single owner (lease) consumes all decisions.
 */
import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { JsMsg } from '@nats-io/jetstream';
import { partitionedWorker, type AppContext, type Role } from '../runtime/app.js';
import { decodeBusTap, decodeCredentials, decodeDecision, encodeDecision, encodeRiskFlag } from '../bus/codec.js';
import { deadLetter } from '../bus/dead-letter.js';
import { PartitionWorker } from '../bus/partitions.js';
import { StateStore } from '../bus/state-store.js';
import { Buckets, subjects } from '../bus/subjects.js';
import { unseal } from '../domain/card/seal.js';
import { loadVenueDirectory } from '../domain/network/index.js';
import {
  DEFAULT_VALIDATOR_SETTINGS,
  ProjectList,
  decideTap,
  parseProjectList,
  type CardValidationState,
  type ValidatorData,
} from '../domain/validate/index.js';
import { observeSeries, windowKeysFor, type WindowSeries } from '../domain/validate/risk-windows.js';
import { parseDataText } from '../domain/validate/data-format.js';
import type { CardCredentials, RiskFlag, TapEvent } from '../domain/types.js';
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

export async function createValidatorRole(ctx: AppContext): Promise<Role> {
  const { cfg, log, metrics, publisher, buckets } = ctx;
  await seedDefaults(ctx);
  const live = new LiveValidatorData(log);
  await live.start(buckets);
  const trust = loadTrust(cfg);
  const venues = loadVenueDirectory(cfg.TAPFLOW_TARIFF_DIR);
  const settings = DEFAULT_VALIDATOR_SETTINGS;
  const stores = new Map<number, StateStore<CardValidationState>>();
  const sealKey = ctx.keys.sealKey;

  const data = (): ValidatorData => ({
    projectList: live.projectList ?? EMPTY_PROJECTS,
    hotlist: live.hotlist,
    trust,
    venues,
    riskRules: live.riskRules,
    settings,
  });

  const handle = async (p: number, msgs: JsMsg[]): Promise<void> => {
    const store = stores.get(p);
    if (!store) throw new Error(`partition ${p} is not owned`);
    const taps: { msg: JsMsg; tap: TapEvent; creds: CardCredentials | undefined }[] = [];
    for (const m of msgs) {
      try {
        const { tap, sealedCard } = decodeBusTap(m.data);
        const opened = unseal(sealKey, sealedCard, tap.eventId);
        taps.push({ msg: m, tap, creds: opened ? decodeCredentials(opened) : undefined });
      } catch (err) {
        await deadLetter(publisher, metrics, 'validator', m, 'TF_DECODE_FAILED', (err as Error).message);
      }
    }
    try {
      log.debug({ partition: p, n: taps.length }, 'validator batch: loading state');
      await store.load(taps.map((t) => t.tap.cardToken));
      log.debug({ partition: p }, 'validator batch: state loaded');
      const d = data();
      const pubs: Promise<unknown>[] = [];
      const now = Date.now();
      for (const { tap, creds } of taps) {
        const prev = store.get(tap.cardToken);
        const r = decideTap(d, prev, tap, creds, now);
        if (prev !== undefined && r.state === prev) continue; // decided before: outputs already published
        store.set(tap.cardToken, r.state);
        pubs.push(publisher.publish(subjects.decision(p), encodeDecision(r.decision), r.decision.eventId));
        for (const f of r.flags) pubs.push(publisher.publish(subjects.risk(p), encodeRiskFlag(f), f.flagId));
        metrics.decisions.inc({ verdict: r.decision.verdict, reason: r.decision.reason, scene: tap.scene, region: tap.terminalRegion });
        for (const f of r.flags) metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
      }
      await Promise.all(pubs);
      log.debug({ partition: p }, 'validator batch: published');
      await store.flush();
      log.debug({ partition: p }, 'validator batch: flushed');
    } catch (err) {
      store.clear();
      throw err;
    }
  };

  const worker = partitionedWorker(ctx, 'validator', {
    consumers: (p) => [{ stream: 'TAPS', durable: `validator-p${p}` }],
    onAcquire: (p) => void stores.set(p, new StateStore<CardValidationState>(buckets.validatorState, Buckets.VALIDATOR_STATE, publisher)),
    onRelease: (p) => void stores.delete(p),
    handle: (p, _spec, msgs) => handle(p, msgs),
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
  const { buckets, publisher, metrics, log, cfg } = ctx;
  let store: StateStore<WindowSeries | { seq: number }> | undefined;
  const kvKey = (seriesKey: string) => 'w' + createHash('sha1').update(seriesKey).digest('hex');
  return new PartitionWorker({
    bus: ctx.bus,
    leases: buckets.leases,
    role: 'risk-windows',
    instanceId: ctx.instanceId,
    partitions: 1,
    leaseTtlMs: cfg.TAPFLOW_LEASE_TTL_MS,
    batch: cfg.TAPFLOW_CONSUMER_BATCH * 4,
    log,
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
          const decided = fresh.map((m) => ({ m, d: decodeDecision(m.data) }));
          const touched = decided.map(({ d }) => windowKeysFor(rules, d));
          await s.load(touched.flat().map((t) => kvKey(t.seriesKey)));
          const now = Date.now();
          const flags: RiskFlag[] = [];
          decided.forEach(({ d }, i) => {
            for (const { rule, key, seriesKey } of touched[i]!) {
              const k = kvKey(seriesKey);
              const r = observeSeries(rule, s.get(k) as WindowSeries | undefined, d, key, now);
              s.set(k, r.series);
              if (r.flag) flags.push({ ...r.flag, region: d.terminalRegion });
            }
          });
          await Promise.all(flags.map((f) => publisher.publish(subjects.risk(0), encodeRiskFlag(f), f.flagId)));
          for (const f of flags) metrics.riskFlags.inc({ rule: f.ruleId, severity: f.severity });
          s.set('_applied', { seq: fresh[fresh.length - 1]!.seq });
          await s.flush();
        } catch (err) {
          s.clear();
          throw err;
        }
      },
    },
  });
}
