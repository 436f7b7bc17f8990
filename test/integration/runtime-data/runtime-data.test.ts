/**
 * Run-time data (issue 3 items 3, 4 and 7): a change of the application project list, the
 * hotlist or the risk rules, written to KV as the CLI writes it, is seen by every validator
 * within one second; a cancelled physical card also stops its QR codes (hotlisted through the
 * `tapflow hotlist add` command itself).
 *
 * Two validators share the partitions: the one in the pipeline and a second replica (its own
 * app, own NATS connection and KV watches) in this process. Taps go out every 50 ms, round robin
 * over one card per partition, so each validator decides a tap about every 100 ms. A change is
 * written at t0 (just before the KV put); the test then checks, per validator, that
 *   - every tap it decided before t0 follows the old data (the change did not leak early), and
 *   - every tap it decided more than 1000 ms after t0 follows the new data,
 * and reports the time from t0 to its first decision under the new data. Decision times are the
 * validator's clock when it took its data snapshot for the batch (src/validate/role.ts), on this
 * machine, so they compare with t0 directly. The 1000 ms bound is the functional
 * requirement, not a benchmark: a KV watch delivers in milliseconds, the slack is for a busy
 * CI machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { readIssuerKeys, TapScript, TapSender, type ScriptedTap } from '../../support/scenario.js';
import { REPO_ROOT } from '../../support/processes.js';
import { startApp, type RunningApp } from '../../../src/runtime/app.js';
import { ROLE_FACTORIES } from '../../../src/cli/roles.js';
import { createLogger } from '../../../src/observe/log.js';
import { trustFilePath } from '../../../src/validate/trust.js';
import { partitionOf, tokenize } from '../../../src/domain/card/token.js';
import { parseDataText } from '../../../src/domain/validate/data-format.js';
import { putHotlistEntry, putProjectList, putRiskRule, removeHotlistEntry, removeRiskRule } from '../../../src/validate/data-store.js';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';

const BOUND_MS = 1000;
const TICK_MS = 50;
const VENUE = 'museum:TJ:tianjin-museum';

let p: TestPipeline;
let second: RunningApp;
let script: TapScript;
let sender: TapSender;
/** One card per partition, and which validator owns that partition. */
let cards: { number: string; partition: number; validator: string }[];
/**
 * Device time of each card's next tap: 31 minutes apart, beyond the culture passback time
 * (30 min), from 20 hours ago — live taps are refused beyond TAPFLOW_LIVE_TIME_BOUND_MS (24 h)
 * from ingest time either way.
 */
const START = Date.now() - 20 * 3600_000;
const deviceTimes = new Map<string, number>();
const counters = new Map<string, number>();

interface Decided {
  eventId: string;
  validator: string;
  sentAt: number;
  decidedAt: number;
  verdict: string;
  reason: string;
  trace: { rule: string; version: string; detail: string }[];
}

/** Owner instance of every validator partition, labelled A (the pipeline's) or B (the second). */
async function owners(): Promise<string[]> {
  const out: string[] = [];
  for (let q = 0; q < p.cfg.TAPFLOW_PARTITIONS; q++) {
    const e = await p.app.ctx.buckets.leases.get(`part.validator.${q}`);
    const id = e && e.operation === 'PUT' ? e.string() : '';
    out.push(id === p.app.ctx.instanceId ? 'A' : id === second.ctx.instanceId ? 'B' : '?');
  }
  return out;
}

/** A chip tap at the museum, or a QR tap with `qr`. */
function tapOf(card: string, form: 'CHIP' | 'QR' = 'CHIP'): ScriptedTap {
  const at = (deviceTimes.get(card) ?? START) + 31 * 60_000;
  deviceTimes.set(card, at);
  const f = { card, terminal: 'TJ-CULTURE-RT', venue: VENUE, scene: 'CULTURE' as const, direction: 'SINGLE' as const, at };
  if (form === 'QR') return script.qr(f);
  const counter = (counters.get(card) ?? 0) + 1;
  counters.set(card, counter);
  return script.chip(f, { counter });
}

/** Waits until these events are decided and stored; returns them. */
async function decisions(sent: { tap: ScriptedTap; at: number; validator: string }[]): Promise<Decided[]> {
  const ids = sent.map((s) => `'${s.tap.eventId}'`).join(',');
  const sql = `SELECT event_id, verdict, reason, trace, toUnixTimestamp64Milli(decision_time) AS dt FROM decisions WHERE event_id IN (${ids})`;
  await p.until(async () => (await p.query(sql)).length === sent.length, 30_000, `${sent.length} decisions`);
  const rows = new Map((await p.query<{ event_id: string; verdict: string; reason: string; trace: string; dt: number }>(sql)).map((r) => [r.event_id, r]));
  return sent.map((s) => {
    const r = rows.get(s.tap.eventId)!;
    return { eventId: s.tap.eventId, validator: s.validator, sentAt: s.at, decidedAt: Number(r.dt), verdict: r.verdict, reason: r.reason, trace: JSON.parse(r.trace) as Decided['trace'] };
  });
}

/**
 * Sends a tap every 50 ms (round robin over the cards), applies `change` after `beforeMs`, goes
 * on for `afterMs`, and returns the decisions with t0.
 */
async function across(change: () => Promise<unknown>, o: { beforeMs?: number; afterMs?: number; form?: 'CHIP' | 'QR' } = {}): Promise<{ t0: number; decided: Decided[] }> {
  const sent: { tap: ScriptedTap; at: number; validator: string }[] = [];
  const chains = new Map<string, Promise<unknown>>();
  let i = 0;
  const timer = setInterval(() => {
    const c = cards[i++ % cards.length]!;
    const tap = tapOf(c.number, o.form);
    sent.push({ tap, at: Date.now(), validator: c.validator });
    // A card's taps stay in order: each is written after the previous one's ack.
    chains.set(
      c.number,
      (chains.get(c.number) ?? Promise.resolve()).then(async () => {
        const ack = await sender.send(tap);
        if (ack.status !== TapStatus.ACCEPTED_DURABLE) throw new Error(`${tap.eventId}: ${TapStatus[ack.status]} ${ack.reason}`);
      }),
    );
  }, TICK_MS);
  let t0 = 0;
  try {
    await new Promise((r) => setTimeout(r, o.beforeMs ?? 400));
    t0 = Date.now();
    await change();
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + (o.afterMs ?? 1600) - Date.now())));
  } finally {
    clearInterval(timer);
  }
  await Promise.all(chains.values());
  return { t0, decided: await decisions(sent) };
}

/**
 * The checks of the module comment, per validator; returns each validator's time from t0 to its
 * first decision under the new data.
 */
function expectSeenWithinBound(t0: number, decided: Decided[], isNew: (d: Decided) => boolean): Record<string, number> {
  const latency: Record<string, number> = {};
  for (const v of ['A', 'B']) {
    const mine = decided.filter((d) => d.validator === v);
    const before = mine.filter((d) => d.decidedAt < t0);
    const late = mine.filter((d) => d.decidedAt > t0 + BOUND_MS);
    expect(before.length, `validator ${v}: taps decided before the change`).toBeGreaterThan(0);
    expect(late.length, `validator ${v}: taps decided after ${BOUND_MS} ms`).toBeGreaterThan(0);
    expect(before.filter(isNew).map((d) => d.eventId), `validator ${v}: new rule before the change`).toEqual([]);
    expect(
      late.filter((d) => !isNew(d)).map((d) => `${d.eventId} at t0+${d.decidedAt - t0} ms: ${d.verdict} ${d.reason}`),
      `validator ${v}: old rule more than ${BOUND_MS} ms after the change`,
    ).toEqual([]);
    const first = mine.filter(isNew).sort((a, b) => a.decidedAt - b.decidedAt)[0]!;
    latency[v] = first.decidedAt - t0;
    expect(latency[v], `validator ${v}: first decision under the new data`).toBeLessThan(BOUND_MS);
  }
  console.log(`[runtime-data] first decision under the new data, ms after the write: ${JSON.stringify(latency)}`);
  return latency;
}

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_PARTITIONS: '4', TAPFLOW_LEASE_TTL_MS: '2000' });
  // A second validator replica with its own connection and watches.
  second = await startApp(p.cfg, [{ name: 'validator', create: ROLE_FACTORIES.validator }], { installSignalHandlers: false, log: createLogger(p.cfg.TAPFLOW_LOG_LEVEL, { test: 'second-validator' }) });
  await p.until(
    async () => {
      const o = await owners();
      return !o.includes('?') && o.filter((x) => x === 'A').length === 2 && o.filter((x) => x === 'B').length === 2;
    },
    30_000,
    'the two validators to share the partitions',
  );
  const own = await owners();
  const token = (n: string) => tokenize(p.app.ctx.keys.tokenKey, 'card', n);
  cards = [];
  for (let q = 0; q < p.cfg.TAPFLOW_PARTITIONS; q++) {
    let n = 0;
    while (partitionOf(token(`1200007${String(n).padStart(5, '0')}`), p.cfg.TAPFLOW_PARTITIONS) !== q) n++;
    cards.push({ number: `1200007${String(n).padStart(5, '0')}`, partition: q, validator: own[q]! });
  }
  script = new TapScript(readIssuerKeys(trustFilePath(p.cfg)));
  sender = new TapSender(`127.0.0.1:${p.grpcPort}`, p.app.ctx.keys.fleetKey);
}, 120_000);

afterAll(async () => {
  await sender?.close();
  await second?.shutdown('test done');
  await p?.stop();
});

describe('runtime data - every validator sees a change within one second', () => {
  const defaultList = () => parseDataText(readFileSync(join(REPO_ROOT, 'data/projects/default.yaml'), 'utf8'), 'yaml') as { version: string; items: { venue: string }[] };

  it('project list: removing and re-adding a venue', async () => {
    const without = defaultList();
    without.version = 'projects-test-without-tianjin-museum';
    without.items = without.items.filter((i) => i.venue !== VENUE);
    const removed = await across(() => putProjectList(p.app.ctx.buckets.projects, without));
    expectSeenWithinBound(removed.t0, removed.decided, (d) => d.reason === 'VENUE_NOT_LISTED');
    // The deciding version is named in the trace.
    const last = removed.decided[removed.decided.length - 1]!;
    expect(last.trace.find((s) => s.rule === 'project-list')?.version).toBe('projects-test-without-tianjin-museum');

    const back = { ...defaultList(), version: 'projects-test-back' };
    const readded = await across(() => putProjectList(p.app.ctx.buckets.projects, back));
    expectSeenWithinBound(readded.t0, readded.decided, (d) => d.verdict === 'ACCEPTED' && d.trace.some((s) => s.rule === 'project-list' && s.version === 'projects-test-back'));
  });

  it('hotlist: adding and removing cards', async () => {
    const token = (n: string) => tokenize(p.app.ctx.keys.tokenKey, 'card', n);
    const added = await across(() => Promise.all(cards.map((c) => putHotlistEntry(p.app.ctx.buckets.hotlist, { cardToken: token(c.number), reason: 'FROZEN', since: 0 }))));
    expectSeenWithinBound(added.t0, added.decided, (d) => d.reason === 'HOTLIST_FROZEN');
    const removed = await across(() => Promise.all(cards.map((c) => removeHotlistEntry(p.app.ctx.buckets.hotlist, token(c.number)))));
    expectSeenWithinBound(removed.t0, removed.decided, (d) => d.verdict === 'ACCEPTED');
  });

  it('risk rules: added, changed and removed, each flag with its rule version', async () => {
    // Flags every tap at the museum (count > 0 per card within an hour): a rule that shows at once.
    const rule = (version: number) => ({ id: 'rt-museum-visit', version, keyKind: 'card', filter: { venuePrefix: VENUE }, metric: 'count', window: '1h', threshold: 0, severity: 'INFO' });
    const flaggedBy = (version: number) => (d: Decided) => d.trace.some((s) => s.rule === 'risk-rules' && s.detail.includes(`rt-museum-visit@${version}`));
    const added = await across(() => putRiskRule(p.app.ctx.buckets.riskRules, rule(1)));
    expectSeenWithinBound(added.t0, added.decided, flaggedBy(1));
    const changed = await across(() => putRiskRule(p.app.ctx.buckets.riskRules, rule(2)));
    expectSeenWithinBound(changed.t0, changed.decided, flaggedBy(2));
    const removed = await across(() => removeRiskRule(p.app.ctx.buckets.riskRules, 'rt-museum-visit'));
    expectSeenWithinBound(removed.t0, removed.decided, (d) => !d.trace.some((s) => s.detail.includes('rt-museum-visit')));

    // The flags reached ClickHouse with the rule's version: one per flagged decision.
    const all = [...added.decided, ...changed.decided, ...removed.decided];
    const flagged = all.flatMap((d) => (flaggedBy(1)(d) ? [[d.eventId, '1']] : flaggedBy(2)(d) ? [[d.eventId, '2']] : [])).sort();
    expect(flagged.length).toBeGreaterThan(0);
    await p.until(async () => (await p.query("SELECT 1 FROM risk_flags WHERE rule_id = 'rt-museum-visit'")).length >= flagged.length, 15_000, 'rule flags');
    const rows = await p.query<{ event_id: string; rule_version: string }>("SELECT event_id, rule_version FROM risk_flags WHERE rule_id = 'rt-museum-visit' ORDER BY event_id");
    expect(rows.map((r) => [r.event_id, r.rule_version]).sort()).toEqual(flagged);
  });

  it('a cancelled physical card, hotlisted with `tapflow hotlist add`, stops its QR codes', async () => {
    const cancelled = cards[0]!.number;
    const other = cards[1]!.number;
    // Before: the card's QR code is accepted.
    const before = await decisions([{ tap: await sent(tapOf(cancelled, 'QR')), at: Date.now(), validator: cards[0]!.validator }]);
    expect(before.map((d) => `${d.verdict} ${d.reason}`)).toEqual(['ACCEPTED OK']);

    const out = await cli(['hotlist', 'add', cancelled, '--reason', 'cancelled', '--since', '0', '--note', 'card replaced']);
    expect(out).toContain(`hotlisted card token ${tokenize(p.app.ctx.keys.tokenKey, 'card', cancelled)} (CANCELLED)`);
    await new Promise((r) => setTimeout(r, BOUND_MS));
    const taps = [
      { tap: await sent(tapOf(cancelled, 'QR')), at: Date.now(), validator: cards[0]!.validator },
      { tap: await sent(tapOf(cancelled, 'CHIP')), at: Date.now(), validator: cards[0]!.validator },
      { tap: await sent(tapOf(other, 'QR')), at: Date.now(), validator: cards[1]!.validator },
    ];
    const after = await decisions(taps);
    expect(after.map((d) => `${d.verdict} ${d.reason}`)).toEqual(['REJECTED HOTLIST_CANCELLED', 'REJECTED HOTLIST_CANCELLED', 'ACCEPTED OK']);
    expect(after[0]!.trace.map((s) => s.rule)).toContain('qr-signature');
  }, 60_000);
});

/** Sends one tap and checks it was made durable. */
async function sent(tap: ScriptedTap): Promise<ScriptedTap> {
  const ack = await sender.send(tap);
  expect(TapStatus[ack.status]).toBe('ACCEPTED_DURABLE');
  return tap;
}

/** Runs a tapflow CLI command against the test's NATS and data dir; resolves with its stdout. */
function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), ...args], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        NATS_URL: p.nats.url,
        TAPFLOW_NATS_AUTOSTART: 'false',
        TAPFLOW_DATA_DIR: p.dataDir,
        TAPFLOW_PARTITIONS: String(p.cfg.TAPFLOW_PARTITIONS),
        TAPFLOW_LEASE_TTL_MS: String(p.cfg.TAPFLOW_LEASE_TTL_MS),
        TAPFLOW_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`tapflow ${args.join(' ')} exited ${code}: ${err}`))));
  });
}
