/**
 * A run of the real pipeline with known content, for the tests that check the dashboards'
 * ClickHouse panels and `tapflow report` on what the pipeline stored: accepted and rejected taps
 * for several reasons at several venues, journeys priced in all three regions (two of them
 * cross-region), culture entries, medical claims split for two insured regions, risk flags of
 * several rules, and a venue whose acceptance drops in the last hour.
 *
 * Every tap says what it should come to (verdict, reason, fare in fen from the published tariffs
 * of data/tariffs, network); the claims' splits come from SettleClaim's answers. The tests compute
 * what each panel should show from this script and those answers, not from the store.
 *
 * Time line (device times; NOW is when the script is built, H the start of its hour):
 *   A = H − 2 h: the report range [A, A + 1 h). A tap at exactly A and one at exactly A + 1 h.
 *   A + 1 … 48 min: the journeys, rejects, claims and 24 accepted entries at the dropping venue.
 *   NOW − 40 … NOW − 2 min: 20 taps at the dropping venue, 8 of them refused (hotlisted cards).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { MedicalClaim, ClaimResult } from '../../src/gen/tapflow/v1/ingest.js';
import { ClaimStatus, Region as PbRegion } from '../../src/gen/tapflow/v1/ingest.js';
import { ReasonCodes, type ReasonCode } from '../../src/domain/reasons.js';
import { builtinRuleId } from '../../src/domain/validate/decide.js';
import { putHotlistEntry } from '../../src/validate/data-store.js';
import { tokenize } from '../../src/domain/card/token.js';
import { trustFilePath } from '../../src/validate/trust.js';
import { claim, item, CLASS_A, CLASS_B, SELF_PAY, ok, settleClaim, signClaimsWith, TJ_COUNTER } from '../integration/claims/grpc-claims.js';
import type { TestPipeline } from './pipeline.js';
import { readIssuerKeys, sendScript, TapScript, TapSender, tapsOf, type AckLog, type ScriptStep, type TapFields } from './scenario.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const ROOT = join(import.meta.dirname, '..', '..');

/** What a decided tap of the script should come to. */
export interface ExpectedTap {
  eventId: string;
  /** The terminal that sent it (a demo-registry id: its first two letters are its region). */
  terminalId: string;
  deviceTime: number;
  verdict: 'ACCEPTED' | 'REJECTED';
  reason: ReasonCode;
  scene: TapFields['scene'];
  venue: string;
  direction: TapFields['direction'];
  terminalRegion: string;
  cardRegion: string;
  /**
   * The settlement an accepted tap makes: a fare (on the exit or a flat tap) or a culture entry,
   * with its amount from the tariffs; absent for a tap that settles nothing on its own (an entry
   * into the metro: the exit carries the fare).
   */
  settlement?: { kind: 'FARE' | 'ENTRY'; network: string; amountFen: number };
}

/** A medical claim of the script and what SettleClaim answered. */
export interface ExpectedClaim {
  claimId: string;
  deviceTime: number;
  insuredRegion: string;
  treatmentRegion: string;
  result: ClaimResult;
}

export interface DashboardScenario {
  now: number;
  /** Start of the report range (an hour boundary). */
  rangeFrom: number;
  /** End of the report range (excluded), rangeFrom + 1 h. */
  rangeTo: number;
  taps: ExpectedTap[];
  claims: ExpectedClaim[];
  /** The venue whose acceptance drops in the last hour. */
  dropVenue: string;
  acks: AckLog;
}

/** The entry price of a culture venue for an adult, from data/tariffs/entries.yaml (0 when free). */
function entryPrice(venue: string): number {
  const doc = parse(readFileSync(join(ROOT, 'data', 'tariffs', 'entries.yaml'), 'utf8')) as { venues?: Record<string, { priceFen: number }> };
  return doc.venues?.[venue]?.priceFen ?? 0;
}

const regionOfCard = (card: string) => ({ '11': 'BJ', '12': 'TJ', '13': 'HE' })[card.slice(0, 2)]!;

/** Builds the script, sends it through the pipeline, settles the claims, and waits until all is stored. */
export async function runDashboardScenario(p: TestPipeline): Promise<DashboardScenario> {
  const now = Date.now();
  const H = Math.floor(now / HOUR) * HOUR;
  const A = H - 2 * HOUR;
  const s = new TapScript(readIssuerKeys(trustFilePath(p.cfg)));
  const steps: ScriptStep[] = [];
  const taps: ExpectedTap[] = [];
  const dropVenue = 'park:BJ:temple-of-heaven';
  const hot: string[] = [];

  const tap = (f: TapFields & { expect: { verdict: 'ACCEPTED' | 'REJECTED'; reason: ReasonCode } }, settlement?: ExpectedTap['settlement'], o: { badMac?: boolean; qr?: boolean } = {}) => {
    const t = o.qr ? s.qr(f) : s.chip(f, { badMac: o.badMac });
    steps.push({ kind: 'tap', tap: t });
    taps.push({
      eventId: t.eventId,
      terminalId: f.terminal,
      deviceTime: f.at,
      verdict: f.expect.verdict,
      reason: f.expect.reason,
      scene: f.scene,
      venue: f.venue,
      direction: f.direction,
      terminalRegion: f.terminal.slice(0, 2),
      cardRegion: regionOfCard(f.card),
      ...(settlement && { settlement }),
    });
  };
  const ok_ = { verdict: 'ACCEPTED' as const, reason: 'OK' as const };
  const no = (reason: ReasonCode) => ({ verdict: 'REJECTED' as const, reason });

  // Journeys, one per region and two across regions. Fares from data/tariffs (README, Tariffs):
  // 西直门 → 国贸 11.9 km, Beijing's 6–12 km band: 4 yuan; 刘园 → 佳园里 one station, 2 yuan less the
  // Tianjin card holder's 10 %; a Shijiazhuang bus: flat 1.50 yuan.
  const rail = (card: string, terminal: string, from: string, to: string, at: number, network: string, fen: number) => {
    tap({ card, terminal: `${terminal}-IN`, venue: from, scene: 'RAIL', direction: 'ENTRY', at, expect: ok_ });
    tap({ card, terminal: `${terminal}-OUT`, venue: to, scene: 'RAIL', direction: 'EXIT', at: at + 20 * MIN, expect: ok_ }, { kind: 'FARE', network, amountFen: fen });
  };
  // The tap at exactly A: the first of the range.
  rail('110000009001', 'BJ-RAIL-D1', 'bj-subway:西直门', 'bj-subway:国贸', A, 'bj-subway', 400);
  rail('120000009002', 'TJ-RAIL-D1', 'tj-metro:刘园', 'tj-metro:佳园里', A + 2 * MIN, 'tj-metro', 180);
  tap({ card: '130000009003', terminal: 'HE-BUS-D1', venue: 'sjz-bus:1:0', scene: 'BUS', direction: 'SINGLE', at: A + 3 * MIN, expect: ok_ }, { kind: 'FARE', network: 'sjz-bus', amountFen: 150 });
  // Across regions: a Tianjin card in Beijing's subway, a Beijing card on a Shijiazhuang bus.
  rail('120000009004', 'BJ-RAIL-D2', 'bj-subway:西直门', 'bj-subway:国贸', A + 4 * MIN, 'bj-subway', 400);
  tap({ card: '110000009005', terminal: 'HE-BUS-D2', venue: 'sjz-bus:1:0', scene: 'BUS', direction: 'SINGLE', at: A + 5 * MIN, expect: ok_ }, { kind: 'FARE', network: 'sjz-bus', amountFen: 150 });

  // Refusals for several reasons at several venues.
  for (let i = 0; i < 3; i++) tap({ card: `11000000910${i}`, terminal: 'BJ-CULTURE-D1', venue: 'museum:BJ:not-on-the-list', scene: 'CULTURE', direction: 'SINGLE', at: A + (6 + i) * MIN, expect: no('VENUE_NOT_LISTED') });
  tap({ card: '110000009110', terminal: 'BJ-CULTURE-D2', venue: 'museum:BJ:palace-museum', scene: 'CULTURE', direction: 'SINGLE', at: A + 10 * MIN, expect: no('CHIP_MAC_INVALID') }, undefined, { badMac: true });
  tap({ card: '130000009111', terminal: 'HE-BUS-D3', venue: 'sjz-bus:1:0', scene: 'BUS', direction: 'SINGLE', at: A + 11 * MIN, expect: no('FORM_NOT_ACCEPTED') }, undefined, { qr: true });
  for (let i = 0; i < 2; i++) {
    const card = `11000000912${i}`;
    hot.push(card);
    tap({ card, terminal: 'BJ-RAIL-D3', venue: 'bj-subway:王府井', scene: 'RAIL', direction: 'ENTRY', at: A + (12 + i) * MIN, expect: no('HOTLIST_LOST') });
  }

  // 24 accepted entries at the dropping venue in the hours before the last (one card each).
  const price = entryPrice(dropVenue);
  for (let i = 0; i < 24; i++) {
    tap({ card: `1100000092${String(i).padStart(2, '0')}`, terminal: 'BJ-CULTURE-D3', venue: dropVenue, scene: 'CULTURE', direction: 'SINGLE', at: A + 15 * MIN + i * MIN, expect: ok_ }, price > 0 ? { kind: 'ENTRY', network: '', amountFen: price } : undefined);
  }
  // The tap at exactly A + 1 h: outside the range [A, A + 1 h).
  tap({ card: '110000009300', terminal: 'BJ-CULTURE-D4', venue: 'museum:BJ:palace-museum', scene: 'CULTURE', direction: 'SINGLE', at: A + HOUR, expect: ok_ }, { kind: 'ENTRY', network: '', amountFen: entryPrice('museum:BJ:palace-museum') });

  // The last hour at the dropping venue: 20 taps, the 8 of hotlisted cards refused.
  for (let i = 0; i < 20; i++) {
    const card = `1100000094${String(i).padStart(2, '0')}`;
    const refused = i % 5 === 1 || i % 5 === 3;
    if (refused) hot.push(card);
    tap({ card, terminal: `BJ-CULTURE-D${5 + (i % 4)}`, venue: dropVenue, scene: 'CULTURE', direction: 'SINGLE', at: now - 40 * MIN + i * 2 * MIN, expect: refused ? no('HOTLIST_LOST') : ok_ }, refused || price === 0 ? undefined : { kind: 'ENTRY', network: '', amountFen: price });
  }

  const token = (n: string) => tokenize(p.app.ctx.keys.tokenKey, 'card', n);
  for (const card of hot) await putHotlistEntry(p.app.ctx.buckets.hotlist, { cardToken: token(card), reason: 'LOST', since: 0 });
  await new Promise((r) => setTimeout(r, 500)); // the validators' hotlist watch delivers

  const sender = new TapSender(`127.0.0.1:${p.grpcPort}`, p.app.ctx.keys.fleetKey);
  let acks: AckLog;
  try {
    acks = await sendScript(sender, steps);
  } finally {
    await sender.close();
  }

  // Medical claims at a Tianjin hospital: a Beijing-insured person (cross-region) and a
  // Tianjin-insured one; what each was split into is SettleClaim's answer.
  signClaimsWith(p.dataDir);
  const claimsSent: { c: MedicalClaim; insured: string }[] = [
    { c: claim('dash-claim-1', { deviceTime: A + 30 * MIN, items: [item('A1', CLASS_A, 120_000), item('B1', CLASS_B, 30_000), item('S1', SELF_PAY, 5_000)] }), insured: 'BJ' },
    {
      c: claim('dash-claim-2', {
        deviceTime: A + 31 * MIN,
        card: { $case: 'chip', value: { cardNumber: '120000009501', counter: 1, mac: Buffer.alloc(8) } },
        idNumber: '12010519800101002X',
        insuredRegion: PbRegion.TJ,
        items: [item('A1', CLASS_A, 80_000)],
      }),
      insured: 'TJ',
    },
  ];
  const claims: ExpectedClaim[] = [];
  for (const { c, insured } of claimsSent) {
    const result = ok(await settleClaim(p.client, p.metadata(TJ_COUNTER), c));
    if (result.status !== ClaimStatus.SETTLED) throw new Error(`claim ${c.claimId} answered ${ClaimStatus[result.status]} ${result.reason}`);
    claims.push({ claimId: c.claimId, deviceTime: c.deviceTime, insuredRegion: insured, treatmentRegion: 'TJ', result });
  }

  // Every tap acknowledged durable, then everything stored.
  for (const t of tapsOf(steps)) {
    const a = acks.get(t.eventId)?.[0];
    if (!a || a.status !== 1) throw new Error(`tap ${t.eventId} was not accepted durable: ${JSON.stringify(a)}`);
  }
  const count = async (sql: string) => Number((await p.query<{ n: number }>(sql))[0]!.n);
  const settled = taps.filter((t) => t.settlement).length + claims.length;
  await p.until(async () => (await count('SELECT count() AS n FROM decisions')) >= taps.length, 60_000, `${taps.length} decisions`);
  await p.until(async () => (await count('SELECT count() AS n FROM settlements')) >= settled, 60_000, `${settled} settlements`);
  await p.until(async () => (await count('SELECT count() AS n FROM risk_flags')) >= expectedFlags(taps).length, 60_000, 'risk flags');
  return { now, rangeFrom: A, rangeTo: A + HOUR, taps, claims, dropVenue, acks };
}

/** The risk flags the script's taps raise: one per refused tap whose reason has a risk severity. */
export function expectedFlags(taps: readonly ExpectedTap[]): { ruleId: string; severity: string; deviceTime: number; region: string }[] {
  return taps.flatMap((t) => {
    const risk = (ReasonCodes[t.reason] as { risk?: string }).risk;
    return t.verdict === 'REJECTED' && risk ? [{ ruleId: builtinRuleId(t.reason), severity: risk, deviceTime: t.deviceTime, region: t.terminalRegion }] : [];
  });
}
