/**
 * Builders for validator unit tests: seeded keys, a small hand-made venue directory and project
 * list, taps with genuine chip MACs or signed QR codes.
 */
import { computeChipMac } from '../../../src/domain/card/chip.js';
import { generateTestKeys, loadTrustStore, type KeysFile } from '../../../src/domain/card/keys.js';
import { makeQrBody, signQr } from '../../../src/domain/card/qr-sign.js';
import type { QrBody } from '../../../src/domain/card/qr.js';
import { regionOfCardNumber, tokenize } from '../../../src/domain/card/token.js';
import type { CardCredentials, CardForm, Direction, Region, Scene, TapEvent, Venue, VenueDirectory } from '../../../src/domain/types.js';
import {
  DEFAULT_VALIDATOR_SETTINGS,
  EMPTY_RISK_RULES,
  Hotlist,
  decideClaim,
  decideTap,
  type ClaimVerdict,
  type TapDecision,
  parseProjectList,
  resolveValidatorSettings,
  type RiskRuleSet,
  type ValidatorData,
} from '../../../src/domain/validate/index.js';

export const KEYS: KeysFile = generateTestKeys({ seed: 'unit-tests', version: 'keys-test-1' });
export const TRUST = loadTrustStore([KEYS]);
export const TOKEN_KEY = Buffer.from('token-key-for-unit-tests-32bytes');

export const CARD_BJ = '110000000001';
export const CARD_TJ = '120000000002';
export const CARD_HE = '130000000003';

/** 2026-03-02 09:00:00 +08:00 */
export const T0 = Date.parse('2026-03-02T09:00:00+08:00');

export function venueDirectory(venues: Venue[], version = 'venues-test-1'): VenueDirectory {
  const m = new Map(venues.map((v) => [v.id, v]));
  return { version, get: (id) => m.get(id), all: () => m.values() };
}

export const VENUES = venueDirectory([
  { id: 'bj-subway:西直门', region: 'BJ', scene: 'RAIL', operatorId: 'bj-subway', name: '西直门', network: 'bj-subway', lat: 39.9407, lon: 116.3553 },
  { id: 'bj-subway:国贸', region: 'BJ', scene: 'RAIL', operatorId: 'bj-subway', name: '国贸', network: 'bj-subway', lat: 39.9087, lon: 116.4611 },
  { id: 'bj-subway:无坐标', region: 'BJ', scene: 'RAIL', operatorId: 'bj-subway', name: '无坐标', network: 'bj-subway' },
  { id: 'sjz-metro:北国商城', region: 'HE', scene: 'RAIL', operatorId: 'sjz-metro', name: '北国商城', network: 'sjz-metro', lat: 38.044, lon: 114.51 },
  { id: 'museum:BJ:capital-museum', region: 'BJ', scene: 'CULTURE', operatorId: 'museum:BJ:capital-museum', name: '首都博物馆', lat: 39.9066, lon: 116.342 },
  { id: 'pharmacy:BJ:p1', region: 'BJ', scene: 'MEDICAL', operatorId: 'pharmacy:BJ:p1', name: 'pharmacy 1', lat: 39.914, lon: 116.411 },
  { id: 'pharmacy:BJ:p2', region: 'BJ', scene: 'MEDICAL', operatorId: 'pharmacy:BJ:p2', name: 'pharmacy 2', lat: 39.915, lon: 116.412 },
  { id: 'service:BJ:s1', region: 'BJ', scene: 'SERVICE', operatorId: 'service:BJ:s1', name: 'service counter', lat: 39.928, lon: 116.416 },
]);

export const PROJECTS_YAML = `
version: projects-test-1
items:
  - { venue: "bj-subway:*", scene: RAIL, forms: [CHIP, QR], operator: bj-subway, region: BJ, validFrom: "2024-01-01" }
  - { venue: "sjz-metro:*", scene: RAIL, forms: [CHIP, QR], operator: sjz-metro, region: HE, validFrom: "2024-01-01" }
  - { venue: "museum:BJ:capital-museum", scene: CULTURE, forms: [CHIP, QR], operator: capital-museum, region: BJ, validFrom: "2024-01-01" }
  - { venue: "pharmacy:BJ:*", scene: MEDICAL, forms: [CHIP, QR], operator: pharmacies, region: BJ, validFrom: "2024-01-01" }
  - { venue: "service:BJ:s1", scene: SERVICE, forms: [CHIP, QR], operator: hr, region: BJ, validFrom: "2024-01-01" }
`;
export const PROJECTS = parseProjectList(PROJECTS_YAML, 'yaml');

export function validatorData(overrides: Partial<ValidatorData> & { settingsInput?: Record<string, unknown> } = {}): ValidatorData {
  const { settingsInput, ...rest } = overrides;
  return {
    projectList: PROJECTS,
    hotlist: new Hotlist([], 'hotlist-empty'),
    trust: TRUST,
    venues: VENUES,
    riskRules: EMPTY_RISK_RULES as RiskRuleSet,
    settings: settingsInput ? resolveValidatorSettings(settingsInput) : { ...DEFAULT_VALIDATOR_SETTINGS, memory: { ...DEFAULT_VALIDATOR_SETTINGS.memory } },
    ...rest,
  };
}

export function tokenOf(cardNumber: string): string {
  return tokenize(TOKEN_KEY, 'card', cardNumber);
}

export interface TapSpec {
  card?: string;
  venue?: string;
  scene?: Scene;
  direction?: Direction;
  t?: number;
  form?: CardForm;
  amountFen?: number;
  terminalId?: string;
  seq?: number;
  terminalRegion?: Region;
  operatorId?: string;
  offline?: boolean;
}

let nextSeq = 1;

/** A tokenised tap as ingest would publish it. */
export function tap(spec: TapSpec = {}): TapEvent {
  const card = spec.card ?? CARD_BJ;
  const venueId = spec.venue ?? 'bj-subway:西直门';
  const venue = VENUES.get(venueId);
  const terminalId = spec.terminalId ?? 'T-1';
  const seq = spec.seq ?? nextSeq++;
  const t = spec.t ?? T0;
  return {
    eventId: `${terminalId}:${seq}`,
    terminalId,
    seq,
    terminalRegion: spec.terminalRegion ?? venue?.region ?? 'BJ',
    operatorId: spec.operatorId ?? venue?.operatorId ?? 'bj-subway',
    deviceTime: t,
    ingestTime: t + 50,
    scene: spec.scene ?? venue?.scene ?? 'RAIL',
    venueId,
    direction: spec.direction ?? 'ENTRY',
    cardToken: tokenOf(card),
    cardRegion: regionOfCardNumber(card) ?? 'BJ',
    form: spec.form ?? 'CHIP',
    amountFen: spec.amountFen ?? 0,
    riderCategory: 'ADULT',
    offline: spec.offline ?? false,
    partition: 0,
  };
}

/** Chip credentials with a genuine MAC for this tap (issuer master key from KEYS). */
export function chipCreds(t: TapEvent, cardNumber: string, counter: number): CardCredentials {
  const region = regionOfCardNumber(cardNumber)!;
  const master = KEYS.regions[region]!.chipMasterKey!;
  const mac = computeChipMac(TRUST.mac, master, {
    cardNumber,
    counter,
    terminalId: t.terminalId,
    deviceTime: t.deviceTime,
    amountFen: t.amountFen,
    venueId: t.venueId,
  });
  return { kind: 'chip', cardNumber, counter, mac };
}

/** A QR payload signed by the card's issuing region. */
export function qrPayload(cardNumber: string, issuedAt: number, opts: { level?: 1 | 2; nonce?: string; validityMs?: number; signer?: Region; body?: Partial<QrBody> } = {}): string {
  const body = { ...makeQrBody({ cardNumber, issuedAt, level: opts.level ?? 2, nonce: opts.nonce, validityMs: opts.validityMs }), ...opts.body };
  const signer = opts.signer ?? regionOfCardNumber(cardNumber)!;
  return signQr(TRUST.qrSigner, KEYS.regions[signer]!.qrPrivateKey!, body);
}

export function qrCreds(payload: string): CardCredentials {
  return { kind: 'qr', payload };
}

/** A chip tap with its genuine credentials. */
export function chipTap(spec: TapSpec & { counter: number }): { tap: TapEvent; creds: CardCredentials } {
  const t = tap({ ...spec, form: 'CHIP' });
  return { tap: t, creds: chipCreds(t, spec.card ?? CARD_BJ, spec.counter) };
}

/** A QR tap with a code issued `age` ms before the tap (default 5 s). */
export function qrTap(spec: TapSpec & { age?: number; level?: 1 | 2; nonce?: string; validityMs?: number }): { tap: TapEvent; creds: CardCredentials } {
  const t = tap({ ...spec, form: 'QR' });
  const payload = qrPayload(spec.card ?? CARD_BJ, t.deviceTime - (spec.age ?? 5_000), { level: spec.level, nonce: spec.nonce, validityMs: spec.validityMs });
  return { tap: t, creds: qrCreds(payload) };
}

/** decideTap for a tap not decided before: its new decision (throws when it was applied before). */
export function decideNew(...args: Parameters<typeof decideTap>): Extract<TapDecision, { already: false }> {
  const r = decideTap(...args);
  if (r.already) throw new Error(`tap ${args[2].eventId} was decided before`);
  return r;
}

/** decideClaim for a claim not decided before: its new decision (throws when it was before). */
export function decideClaimNew(...args: Parameters<typeof decideClaim>): Extract<ClaimVerdict, { already: false }> {
  const r = decideClaim(...args);
  if (r.already) throw new Error(`claim ${args[2].claimId} was decided before`);
  return r;
}
