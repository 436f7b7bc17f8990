/**
 * The validators' run-time data in JetStream KV, and the live view every validator keeps of it.
 *
 * KV layout (values are JSON):
 *   tapflow_hotlist     key <card token>  -> HotlistEntry {cardToken, reason, since, note}
 *   tapflow_projects    key "current"     -> the application project list document (as parsed
 *                                            from its YAML/JSON file: {version, items: [...]})
 *   tapflow_risk_rules  key <rule id>     -> one rule (format in data/risk-rules/README.md)
 * Every validator watches the three buckets and swaps in a new immutable snapshot on each change;
 * a change reaches every validator within the watch's delivery time (milliseconds).
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { Hotlist, hotlistEntryFromData, projectListFromData, type HotlistEntry, type ProjectList } from '../domain/validate/index.js';
import { makeRiskRuleSet, riskRuleFromData, type RiskRule, type RiskRuleSet } from '../domain/validate/risk-rules.js';
import type { Logger } from '../observe/log.js';

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const dec = (e: { value: Uint8Array }) => JSON.parse(new TextDecoder().decode(e.value)) as unknown;

export const PROJECT_LIST_KEY = 'current';

export async function putHotlistEntry(kv: KV, e: HotlistEntry): Promise<number> {
  hotlistEntryFromData(e);
  return kv.put(e.cardToken, enc(e));
}

export async function removeHotlistEntry(kv: KV, cardToken: string): Promise<boolean> {
  const cur = await kv.get(cardToken);
  if (!cur || cur.operation !== 'PUT') return false;
  await kv.delete(cardToken);
  return true;
}

export async function listHotlist(kv: KV): Promise<HotlistEntry[]> {
  const out: HotlistEntry[] = [];
  for await (const k of await kv.keys()) {
    const e = await kv.get(k);
    if (e && e.operation === 'PUT') out.push(hotlistEntryFromData(dec(e)));
  }
  return out;
}

/** Stores a project list document (already validated by projectListFromData). */
export async function putProjectList(kv: KV, doc: unknown): Promise<number> {
  projectListFromData(doc);
  return kv.put(PROJECT_LIST_KEY, enc(doc));
}

export async function getProjectListDoc(kv: KV): Promise<unknown | undefined> {
  const e = await kv.get(PROJECT_LIST_KEY);
  return e && e.operation === 'PUT' ? dec(e) : undefined;
}

export async function putRiskRule(kv: KV, raw: unknown): Promise<RiskRule> {
  const rule = riskRuleFromData(raw);
  await kv.put(rule.id, enc(raw));
  return rule;
}

export async function removeRiskRule(kv: KV, id: string): Promise<boolean> {
  const cur = await kv.get(id);
  if (!cur || cur.operation !== 'PUT') return false;
  await kv.delete(id);
  return true;
}

export async function listRiskRules(kv: KV): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const k of await kv.keys()) {
    const e = await kv.get(k);
    if (e && e.operation === 'PUT') out.push(dec(e));
  }
  return out;
}

/** A live snapshot of hotlist, project list and risk rules, updated by KV watches. */
export class LiveValidatorData {
  hotlist = new Hotlist([], 'hotlist@0');
  projectList: ProjectList | undefined;
  riskRules: RiskRuleSet = makeRiskRuleSet('rules@0', []);
  private readonly stops: (() => void)[] = [];

  constructor(private readonly log: Logger) {}

  /** Starts the watches; resolves once the current values are loaded. */
  async start(buckets: { hotlist: KV; projects: KV; riskRules: KV }): Promise<void> {
    const hot = new Map<string, HotlistEntry>();
    await this.watch(buckets.hotlist, (e) => {
      if (e.operation === 'PUT') {
        try {
          hot.set(e.key, hotlistEntryFromData(dec(e)));
        } catch (err) {
          this.log.error({ key: e.key, err: (err as Error).message }, 'ignoring a malformed hotlist entry');
        }
      } else hot.delete(e.key);
      this.hotlist = new Hotlist(hot.values(), `hotlist@${e.revision}`);
    });
    await this.watch(buckets.projects, (e) => {
      if (e.key !== PROJECT_LIST_KEY) return;
      if (e.operation !== 'PUT') {
        this.projectList = undefined;
        return;
      }
      try {
        this.projectList = projectListFromData(dec(e));
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'ignoring a malformed project list; keeping the previous one');
      }
    });
    const rules = new Map<string, RiskRule>();
    await this.watch(buckets.riskRules, (e) => {
      if (e.operation === 'PUT') {
        try {
          rules.set(e.key, riskRuleFromData(dec(e)));
        } catch (err) {
          this.log.error({ key: e.key, err: (err as Error).message }, 'ignoring a malformed risk rule');
        }
      } else rules.delete(e.key);
      this.riskRules = makeRiskRuleSet(`rules@${e.revision}`, [...rules.values()]);
    });
  }

  stop(): void {
    for (const s of this.stops) s();
  }

  private async watch(kv: KV, apply: (e: KvWatchEntry) => void): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((r) => (initialized = r));
    const iter = await kv.watch();
    this.stops.push(() => iter.stop());
    // The watch first replays the last value of every key; `delta` counts what is still to come.
    if ((await kv.status()).values === 0) initialized();
    void (async () => {
      for await (const e of iter) {
        apply(e);
        if ((e.delta ?? 0) === 0) initialized();
      }
    })();
    await ready;
  }
}
