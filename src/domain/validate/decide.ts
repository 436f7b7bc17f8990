/**
 * decideTap: the validator's answer to one tap, as a pure function of (data, card state, tap,
 * credentials, clock).
 *
 * Order of checks — the first failing rule decides, and the trace lists every rule that ran
 * with the version of the data it used:
 *
 *   1. credentials   sealed credentials opened and of the tap's form   CREDENTIALS_UNREADABLE
 *   2. authenticity  chip: issuer has a master key, MAC verifies          CHIP_UNKNOWN_ISSUER, CHIP_MAC_INVALID
 *                    QR: parses, issuer trusted (and is the card's),      QR_MALFORMED, QR_UNKNOWN_ISSUER,
 *                    signature, validity window ≤ qrMaxValidityMs,        QR_BAD_SIGNATURE, QR_MALFORMED,
 *                    iat − skew ≤ device time ≤ exp + skew                QR_NOT_YET_VALID, QR_EXPIRED
 *   3. hotlist       card token listed at the device time                 HOTLIST_LOST / _FROZEN / _CANCELLED
 *   4. project list  venue, scene, item validity, form                    VENUE_NOT_LISTED, SCENE_NOT_LISTED,
 *                                                                         ITEM_NOT_YET_VALID, ITEM_EXPIRED, FORM_NOT_ACCEPTED
 *   5. single use    chip counter new and rising with device time         CHIP_COUNTER_REPLAY, CHIP_COUNTER_BACKWARDS
 *                    QR nonce not seen; level 2 unless an identity scene  QR_REPLAYED, QR_LEVEL_TOO_LOW
 *   6. behaviour     duplicate, passback, impossible travel               DUPLICATE_TAP, PASSBACK, IMPOSSIBLE_TRAVEL
 *   7. risk rules    card-keyed data rules: flags only, never a reject
 *
 * Authenticity comes before the hotlist so that a forged code naming a lost card is reported as
 * forged, not as a lost card in use. A chip counter or QR nonce is remembered once the tap has
 * passed steps 1–4 (the card really produced it at a listed venue), even when the tap is then
 * refused by a later rule: a QR code is spent when presented.
 *
 * Offline taps and device-time order: the state keeps the card's accepted taps and chip
 * counters sorted by device time, and a tap is judged against the entries on both sides of its
 * own device time — not against the latest one. A tap from an offline batch that is older than
 * taps already decided is thus a duplicate or passback of a neighbour within the window on either
 * side, impossible travel is checked against the nearest earlier and the nearest later tap with
 * coordinates, and its chip counter must lie between the counters before and after it in device
 * time (a lower counter at a later time, or a higher one at an earlier time, is
 * CHIP_COUNTER_BACKWARDS). Taps already decided are never revised; the tap being judged carries
 * the verdict. Taps older than the state's memory (stateHorizonMs, memory limits) are judged
 * against what remains.
 *
 * Idempotence: the state remembers the events it applied (at most `memory.decided`, within
 * stateHorizonMs of device time) with their content digests; a tap whose event id is among them
 * is answered `already` with the state unchanged — a redelivery or a re-send produces nothing new,
 * and other content under that id (a reused seq) raises a flag on the terminal. Determinism: no clock or randomness is read; decisionTime and flagTime
 * are `nowMs`; flag ids are "<eventId>:<ruleId>".
 */
import { ReasonCodes, type ReasonCode } from '../reasons.js';
import type { CardCredentials, Decision, RiskFlag, TapEvent, TraceStep, VenueDirectory, Verdict } from '../types.js';
import { verifyChipMac } from '../card/chip.js';
import type { TrustStore } from '../card/keys.js';
import { verifyQr } from '../card/qr-sign.js';
import { regionOfCardNumber } from '../card/token.js';
import { emptyCardState, insertionIndex, type CardValidationState, type ChipMemo, type DecidedMemo, type NonceMemo, type TapMemo } from './card-state.js';
import { formatInstant } from './data-format.js';
import { HOTLIST_REASON_CODES, type Hotlist } from './hotlist.js';
import { lookupProject, type ProjectItem, type ProjectList } from './project-list.js';
import { riskSubjectOf, type RiskRuleSet } from './risk-rules.js';
import { evaluateCardRules } from './risk-windows.js';
import type { ValidatorSettings } from './settings.js';
import { greatCircleKm, isImpossibleTravel } from './travel.js';

/** Everything a validator decides with, each piece versioned. Built once per change, not per tap. */
export interface ValidatorData {
  projectList: ProjectList;
  hotlist: Hotlist;
  trust: TrustStore;
  venues: VenueDirectory;
  riskRules: RiskRuleSet;
  settings: ValidatorSettings;
}

/** The answer of decideTap: a new decision, or the news that the tap was decided before. */
export type TapDecision =
  | {
      already: false;
      decision: Decision;
      /** The card's new state. */
      state: CardValidationState;
      /** Built-in flags of a rejection with a risk severity, then flags of card-keyed rules. */
      flags: RiskFlag[];
    }
  | {
      /** Decided before (a redelivery or a re-send): its outputs exist; nothing new. */
      already: true;
      /** The input state itself. */
      state: CardValidationState;
      /**
       * Set when the event id was decided before with other content (a terminal reused a seq):
       * the first tap counts, and this flag on the terminal is new.
       */
      seqReused?: RiskFlag;
    };

/** Version of the built-in flag rules (a rejection whose reason has a severity in reasons.ts). */
export const BUILTIN_RULES_VERSION = '1';

/** Rule id of the built-in flag raised with a rejection: "builtin:<REASON>". */
export function builtinRuleId(reason: ReasonCode): string {
  return `builtin:${reason}`;
}

export interface Rejection {
  reason: ReasonCode;
}

/**
 * Decides one tap. `state` undefined: the card has no state yet. `creds` undefined: the sealed
 * credentials could not be opened (REJECTED, CREDENTIALS_UNREADABLE). Does not modify its inputs.
 */
export function decideTap(
  data: ValidatorData,
  state: CardValidationState | undefined,
  tap: TapEvent,
  creds: CardCredentials | undefined,
  nowMs: number,
): TapDecision {
  const prior = state ?? emptyCardState();
  for (const m of prior.decided) {
    if (m.e !== tap.eventId) continue;
    if (m.d !== undefined && tap.contentDigest !== undefined && m.d !== tap.contentDigest) return { already: true, state: prior, seqReused: seqReusedFlag(tap, m.d, nowMs) };
    return { already: true, state: prior };
  }

  const trace: TraceStep[] = [];
  const step = { chip: undefined as ChipMemo | undefined, nonce: undefined as NonceMemo | undefined };
  const rejection = runChecks(data, prior, tap, creds, trace, step);
  const verdict: Verdict = rejection ? 'REJECTED' : 'ACCEPTED';
  const reason: ReasonCode = rejection ? rejection.reason : 'OK';

  const flags = rejectionFlags(reason, tap, trace, nowMs);
  const risk = applyCardRules(data, prior, riskSubjectOf(tap, verdict), trace, flags, nowMs);

  const memo: DecidedMemo = { e: tap.eventId, t: tap.deviceTime, ...(tap.contentDigest !== undefined && { d: tap.contentDigest }) };
  const next = nextState(data.settings, prior, tap, verdict === 'ACCEPTED', step.chip, step.nonce, memo, risk);
  const decision = decisionOf(tap, { decisionTime: nowMs, verdict, reason, trace, riskRules: flags.map((f) => f.ruleId) });
  return { already: false, decision, state: next, flags };
}

/**
 * The built-in flag of a rejection whose reason carries a severity (reasons.ts), keyed by the
 * card; none for an acceptance. Its detail is the last trace step (the rule that refused).
 */
export function rejectionFlags(reason: ReasonCode, e: Pick<TapEvent, 'eventId' | 'cardToken' | 'deviceTime' | 'cardRegion'>, trace: TraceStep[], nowMs: number): RiskFlag[] {
  const info = ReasonCodes[reason] as { risk?: RiskFlag['severity'] };
  if (reason === 'OK' || !info.risk) return [];
  const ruleId = builtinRuleId(reason);
  return [
    {
      flagId: `${e.eventId}:${ruleId}`,
      eventId: e.eventId,
      ruleId,
      ruleVersion: BUILTIN_RULES_VERSION,
      severity: info.risk,
      keyKind: 'card',
      key: e.cardToken,
      detail: trace[trace.length - 1]!.detail,
      deviceTime: e.deviceTime,
      flagTime: nowMs,
      region: e.cardRegion,
    },
  ];
}

/**
 * Evaluates the card-keyed risk rules over a decided event: appends their flags to `flags` and a
 * trace step, and returns the card's new rule windows.
 */
export function applyCardRules(data: ValidatorData, prior: CardValidationState, subject: ReturnType<typeof riskSubjectOf>, trace: TraceStep[], flags: RiskFlag[], nowMs: number): CardValidationState['risk'] {
  const rules = data.riskRules.cardRules;
  if (rules.length === 0 && Object.keys(prior.risk).length === 0) return prior.risk;
  const r = evaluateCardRules(rules, prior.risk, subject, data.settings.memory.riskEvents, nowMs);
  if (rules.length > 0) {
    trace.push({
      rule: 'risk-rules',
      version: data.riskRules.version,
      detail: r.flags.length > 0 ? `flagged ${r.flags.map((f) => `${f.ruleId}@${f.ruleVersion}`).join(', ')}` : `${rules.length} card rules, none over threshold`,
    });
  }
  flags.push(...r.flags);
  return r.windows;
}

/** Rule id of the flag raised when a terminal reuses a seq for another tap. */
export const SEQ_REUSED_RULE = builtinRuleId('SEQ_REUSED');

/** The flag on a terminal that sent `tap` under an event id first used for content `firstDigest`. */
export function seqReusedFlag(tap: Pick<TapEvent, 'eventId' | 'terminalId' | 'deviceTime' | 'terminalRegion' | 'contentDigest'>, firstDigest: string, nowMs: number): RiskFlag {
  return {
    flagId: `${tap.eventId}#${tap.contentDigest ?? ''}:${SEQ_REUSED_RULE}`,
    eventId: tap.eventId,
    ruleId: SEQ_REUSED_RULE,
    ruleVersion: BUILTIN_RULES_VERSION,
    severity: 'WARNING',
    keyKind: 'terminal',
    key: tap.terminalId,
    detail: `seq reused: content ${tap.contentDigest ?? '?'} under ${tap.eventId}, first used for ${firstDigest}; the first tap counts`,
    deviceTime: tap.deviceTime,
    flagTime: nowMs,
    region: tap.terminalRegion,
  };
}

/**
 * The decision: the tap's fields plus the verdict. Fields are copied one by one on purpose: an
 * object spread followed by more properties ({...tap, verdict}) falls off V8's fast path and
 * cost ~20 µs per tap on Node 20, more than the MAC check itself.
 */
function decisionOf(tap: TapEvent, m: Pick<Decision, 'decisionTime' | 'verdict' | 'reason' | 'trace' | 'riskRules'>): Decision {
  return {
    eventId: tap.eventId,
    terminalId: tap.terminalId,
    seq: tap.seq,
    terminalRegion: tap.terminalRegion,
    operatorId: tap.operatorId,
    deviceTime: tap.deviceTime,
    ingestTime: tap.ingestTime,
    scene: tap.scene,
    venueId: tap.venueId,
    direction: tap.direction,
    cardToken: tap.cardToken,
    previousCardTokens: tap.previousCardTokens,
    cardRegion: tap.cardRegion,
    form: tap.form,
    amountFen: tap.amountFen,
    riderCategory: tap.riderCategory,
    offline: tap.offline,
    partition: tap.partition,
    decisionTime: m.decisionTime,
    verdict: m.verdict,
    reason: m.reason,
    trace: m.trace,
    riskRules: m.riskRules,
  };
}

/**
 * What a card presented, as the card checks need it: a tap, or a medical claim (whose venue is
 * the institution, scene MEDICAL and amount the bill's total, as its chip MAC covers them).
 */
export interface CardPresentation {
  eventId: string;
  terminalId: string;
  deviceTime: number;
  amountFen: number;
  venueId: string;
  scene: TapEvent['scene'];
  form: TapEvent['form'];
  cardToken: string;
  /** Rotation overlap: the card's tokens under previous key versions (a hotlist entry may name one). */
  previousCardTokens?: string[];
}

/** What passed the card checks: the project list item that decided, and what to remember. */
export interface CardChecked {
  item: ProjectItem;
}

/**
 * Steps 1–5 of the module comment — credentials, authenticity, hotlist, project list, single
 * use — for a tap or a claim. `onItem` may refuse the deciding item (claims: its region and
 * level) before the card's counter or nonce is spent. Records in `record` what the state must
 * remember; appends to `trace`.
 */
export function checkPresentation(
  data: ValidatorData,
  prior: CardValidationState,
  tap: CardPresentation,
  creds: CardCredentials | undefined,
  trace: TraceStep[],
  record: { chip: ChipMemo | undefined; nonce: NonceMemo | undefined },
  onItem?: (item: ProjectItem) => { reason: ReasonCode; detail: string } | undefined,
): Rejection | CardChecked {
  const { trust, settings } = data;
  const reject = (rule: string, version: string, reason: ReasonCode, detail: string): Rejection => {
    trace.push({ rule, version, detail });
    return { reason };
  };

  // 1–2. Credentials and authenticity.
  if (!creds) return reject('credentials', trust.version, 'CREDENTIALS_UNREADABLE', 'sealed credentials could not be opened');
  const expectedKind = tap.form === 'CHIP' ? 'chip' : 'qr';
  if (creds.kind !== expectedKind) return reject('credentials', trust.version, 'CREDENTIALS_UNREADABLE', `${creds.kind} credentials on a ${tap.form} tap`);

  let qrLevel = 2;
  let qrNonce: NonceMemo | undefined;
  if (creds.kind === 'chip') {
    const issuer = regionOfCardNumber(creds.cardNumber);
    const master = issuer && trust.chipMasterKeys[issuer];
    if (!master) return reject('chip-issuer', trust.version, 'CHIP_UNKNOWN_ISSUER', issuer ? `no chip master key for ${issuer}` : 'card number of no known issuer');
    const fields = {
      cardNumber: creds.cardNumber,
      counter: creds.counter,
      terminalId: tap.terminalId,
      deviceTime: tap.deviceTime,
      amountFen: tap.amountFen,
      venueId: tap.venueId,
    };
    if (!verifyChipMac(trust.mac, master, fields, creds.mac)) {
      return reject('chip-mac', trust.version, 'CHIP_MAC_INVALID', `${trust.mac.id} MAC does not verify with the ${issuer}-derived card key`);
    }
    trace.push({ rule: 'chip-mac', version: trust.version, detail: `${issuer} ${trust.mac.id} MAC ok, counter ${creds.counter}` });
  } else {
    const v = verifyQr(trust, creds.payload);
    if (!v.ok) {
      const rule = v.reason === 'QR_MALFORMED' ? 'qr-parse' : v.reason === 'QR_UNKNOWN_ISSUER' ? 'qr-issuer' : 'qr-signature';
      return reject(rule, trust.version, v.reason, v.detail);
    }
    trace.push({ rule: 'qr-signature', version: trust.version, detail: `${v.issuer} ${trust.qrSigner.id} signature ok, level ${v.qr.body.level}` });
    const { issuedAt, expiresAt } = v.qr.body;
    const validity = expiresAt - issuedAt;
    const skew = settings.qrSkewMs;
    if (validity <= 0 || validity > settings.qrMaxValidityMs) {
      return reject('qr-validity', settings.version, 'QR_MALFORMED', `validity ${validity} ms outside (0, ${settings.qrMaxValidityMs}] ms`);
    }
    if (tap.deviceTime < issuedAt - skew) {
      return reject('qr-validity', settings.version, 'QR_NOT_YET_VALID', `issued ${issuedAt - tap.deviceTime} ms after the tap; skew allowance ${skew} ms`);
    }
    if (tap.deviceTime > expiresAt + skew) {
      return reject('qr-validity', settings.version, 'QR_EXPIRED', `expired ${tap.deviceTime - expiresAt} ms before the tap; skew allowance ${skew} ms`);
    }
    trace.push({ rule: 'qr-validity', version: settings.version, detail: `within validity, ${expiresAt - tap.deviceTime} ms left before skew` });
    qrLevel = v.qr.body.level;
    qrNonce = { n: v.qr.body.nonce, until: expiresAt + skew };
  }

  // 3. Hotlist.
  let hot = data.hotlist.lookup(tap.cardToken, tap.form, tap.deviceTime);
  // During a token key rotation overlap, an entry made under a previous key version still counts.
  if (!hot && tap.previousCardTokens) for (const t of tap.previousCardTokens) hot ??= data.hotlist.lookup(t, tap.form, tap.deviceTime);
  if (hot) return reject('hotlist', data.hotlist.version, HOTLIST_REASON_CODES[hot.reason], `${hot.reason} since ${formatInstant(hot.since)}`);
  trace.push({ rule: 'hotlist', version: data.hotlist.version, detail: 'not listed' });

  // 4. Application project list.
  const p = lookupProject(data.projectList, tap.venueId, tap.scene, tap.form, tap.deviceTime);
  if (!p.ok) return reject('project-list', data.projectList.version, p.reason, p.detail);
  const refused = onItem?.(p.item);
  if (refused) return reject('project-list', data.projectList.version, refused.reason, refused.detail);
  trace.push({ rule: 'project-list', version: data.projectList.version, detail: `item ${p.item.venue} ${p.item.scene} accepts ${p.item.forms.join(',')}` });

  // 5. Single use.
  if (creds.kind === 'chip') {
    const c = creds.counter;
    for (const m of prior.chip) {
      if (m.n === c) return reject('chip-counter', settings.version, 'CHIP_COUNTER_REPLAY', `counter ${c} already used (device time ${formatInstant(m.t)})`);
    }
    for (const m of prior.chip) {
      if ((m.t < tap.deviceTime && m.n > c) || (m.t > tap.deviceTime && m.n < c)) {
        const side = m.t < tap.deviceTime ? 'earlier' : 'later';
        return reject('chip-counter', settings.version, 'CHIP_COUNTER_BACKWARDS', `counter ${c} against counter ${m.n} at an ${side} device time (${formatInstant(m.t)})`);
      }
    }
    record.chip = { n: c, t: tap.deviceTime };
    trace.push({ rule: 'chip-counter', version: settings.version, detail: `counter ${c} new and in device-time order` });
  } else if (qrNonce) {
    for (const m of prior.nonces) {
      if (m.n === qrNonce.n) return reject('qr-nonce', settings.version, 'QR_REPLAYED', 'nonce already used');
    }
    record.nonce = qrNonce;
    if (qrLevel < 2 && !settings.qrLevel1Scenes.includes(tap.scene)) {
      return reject('qr-level', settings.version, 'QR_LEVEL_TOO_LOW', `level ${qrLevel} code for ${tap.scene}; level 1 is accepted for ${settings.qrLevel1Scenes.join(',') || 'no scene'}`);
    }
    trace.push({ rule: 'qr-nonce', version: settings.version, detail: `nonce first use, level ${qrLevel}` });
  }
  return { item: p.item };
}

function runChecks(
  data: ValidatorData,
  prior: CardValidationState,
  tap: TapEvent,
  creds: CardCredentials | undefined,
  trace: TraceStep[],
  record: { chip: ChipMemo | undefined; nonce: NonceMemo | undefined },
): Rejection | undefined {
  const { settings } = data;
  const reject = (rule: string, version: string, reason: ReasonCode, detail: string): Rejection => {
    trace.push({ rule, version, detail });
    return { reason };
  };
  const checked = checkPresentation(data, prior, tap, creds, trace, record);
  if ('reason' in checked) return checked;

  // 6. Behaviour, against the accepted taps on both sides of this tap's device time.
  const t = tap.deviceTime;
  const taps = prior.taps;
  for (const m of taps) {
    const apart = Math.abs(t - m.t);
    if (m.v === tap.venueId && m.d === tap.direction && apart <= settings.duplicateWindowMs) {
      return reject('duplicate', settings.version, 'DUPLICATE_TAP', `same venue and direction as ${m.e}, ${apart} ms apart (window ${settings.duplicateWindowMs} ms)`);
    }
  }
  const passbackMs = settings.passbackMs[tap.scene] ?? 0;
  if (passbackMs > 0 && tap.direction !== 'EXIT') {
    for (const m of taps) {
      if (m.v !== tap.venueId || m.s !== tap.scene || m.d !== tap.direction) continue;
      const apart = Math.abs(t - m.t);
      if (apart > passbackMs) continue;
      const lo = Math.min(t, m.t);
      const hi = Math.max(t, m.t);
      if (taps.some((x) => x.d === 'EXIT' && x.t > lo && x.t < hi)) continue;
      return reject('passback', settings.version, 'PASSBACK', `${tap.direction} at the same venue as ${m.e}, ${apart} ms apart, no exit between (passback ${passbackMs} ms for ${tap.scene})`);
    }
  }
  const here = data.venues.get(tap.venueId);
  if (here && here.lat !== undefined && here.lon !== undefined) {
    const i = insertionIndex(taps, t);
    const neighbours: TapMemo[] = [];
    for (let j = i - 1; j >= 0; j--) {
      if (hasCoordinates(data.venues, taps[j]!.v)) {
        neighbours.push(taps[j]!);
        break;
      }
    }
    for (let j = i; j < taps.length; j++) {
      if (hasCoordinates(data.venues, taps[j]!.v)) {
        neighbours.push(taps[j]!);
        break;
      }
    }
    for (const m of neighbours) {
      const there = data.venues.get(m.v)!;
      const km = greatCircleKm({ lat: here.lat, lon: here.lon }, { lat: there.lat!, lon: there.lon! });
      const apart = Math.abs(t - m.t);
      if (isImpossibleTravel(km, apart, settings.maxSpeedKmh, settings.travelToleranceKm)) {
        return reject(
          'travel',
          `${settings.version}/${data.venues.version}`,
          'IMPOSSIBLE_TRAVEL',
          `${km.toFixed(1)} km ${m.t <= t ? 'from' : 'to'} ${m.v} (${m.e}) in ${apart} ms exceeds ${settings.maxSpeedKmh} km/h`,
        );
      }
    }
  }
  trace.push({ rule: 'behaviour', version: `${settings.version}/${data.venues.version}`, detail: 'no duplicate, passback or impossible travel' });
  return undefined;
}

function hasCoordinates(venues: VenueDirectory, id: string): boolean {
  const v = venues.get(id);
  return v !== undefined && v.lat !== undefined && v.lon !== undefined;
}

/** The card's state after a decided event; `accepted` taps join the behaviour memory. */
export function nextState(
  settings: ValidatorSettings,
  prior: CardValidationState,
  tap: Pick<TapEvent, 'eventId' | 'deviceTime' | 'venueId' | 'direction' | 'scene'>,
  accepted: boolean,
  chip: ChipMemo | undefined,
  nonce: NonceMemo | undefined,
  memo: DecidedMemo,
  risk: CardValidationState['risk'],
): CardValidationState {
  const { memory, stateHorizonMs } = settings;
  const hiT = Math.max(prior.hiT, tap.deviceTime);
  const oldest = hiT - stateHorizonMs;

  let taps = prior.taps;
  if (accepted) {
    taps = taps.slice();
    taps.splice(insertionIndex(taps, tap.deviceTime), 0, { e: tap.eventId, t: tap.deviceTime, v: tap.venueId, d: tap.direction, s: tap.scene });
  }
  taps = trimSorted(taps, (m) => m.t < oldest, memory.taps);

  let chips = prior.chip;
  if (chip) {
    chips = chips.slice();
    chips.splice(insertionIndex(chips, chip.t), 0, chip);
    // Counters rise with device time, so the kept newest entries hold the high-water mark.
    if (chips.length > memory.chipCounters) chips = chips.slice(chips.length - memory.chipCounters);
  }

  let nonces = prior.nonces;
  if (nonce) {
    nonces = nonces.slice();
    let i = nonces.length;
    while (i > 0 && nonces[i - 1]!.until > nonce.until) i--;
    nonces.splice(i, 0, nonce);
  }
  // A nonce is kept past its expiry + skew for stateHorizonMs of device time, so an offline
  // batch uploaded late can still be caught replaying it.
  nonces = trimSorted(nonces, (m) => m.until < oldest, memory.nonces);

  // Applied events: within stateHorizonMs of device time, at most memory.decided of them.
  const decided = trimOldest([...prior.decided, memo], (m) => m.t < oldest, memory.decided);
  return { v: 1, hiT, taps, chip: chips, nonces, decided, risk };
}

/** Drops entries that are too old, then keeps at most `max` of the newest (list in arrival order). */
function trimOldest<T>(list: T[], tooOld: (m: T) => boolean, max: number): T[] {
  const kept = list.some(tooOld) ? list.filter((m) => !tooOld(m)) : list;
  return kept.length > max ? kept.slice(kept.length - max) : kept;
}

/** Drops leading entries that are too old, then keeps at most `max` of the newest. */
function trimSorted<T>(list: T[], tooOld: (m: T) => boolean, max: number): T[] {
  let drop = 0;
  while (drop < list.length && tooOld(list[drop]!)) drop++;
  drop = Math.max(drop, list.length - max);
  return drop > 0 ? list.slice(drop) : list;
}
