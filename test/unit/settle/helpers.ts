/** Shared fixtures for the settlement unit tests: the shipped data and decision builders. */
import { fileURLToPath } from 'node:url';
import { loadSettlerData, shanghaiTime, type SettlerData } from '../../../src/domain/settle/index.js';
import type { Decision, Direction, MedicalClaimEvent, Region, RiderCategory, Scene } from '../../../src/domain/types.js';

export const DATA_DIR = fileURLToPath(new URL('../../../data', import.meta.url));

let cached: SettlerData | undefined;
/** The shipped data, loaded once per test file. */
export function data(): SettlerData {
  cached ??= loadSettlerData(DATA_DIR);
  return cached;
}

export const at = shanghaiTime;

export interface TapSpec {
  id: string;
  venue: string;
  dir?: Direction;
  time: number | string;
  card?: string;
  cardRegion?: Region;
  category?: RiderCategory;
  amountFen?: number;
  offline?: boolean;
}

const SCENE_OF: Record<string, Scene> = { RAIL: 'RAIL', BUS: 'BUS', MEDICAL: 'MEDICAL', CULTURE: 'CULTURE', SERVICE: 'SERVICE' };

/** An ACCEPTED decision for a tap at a venue of the shipped directory. */
export function decision(s: TapSpec): Decision {
  const v = data().venues.info(s.venue);
  if (!v) throw new Error(`test venue ${s.venue} not in the directory`);
  const t = typeof s.time === 'number' ? s.time : at(s.time);
  return {
    eventId: s.id,
    terminalId: `term-${s.venue}`,
    seq: 1,
    terminalRegion: v.region,
    operatorId: v.operatorId,
    deviceTime: t,
    ingestTime: t + 1000,
    scene: SCENE_OF[v.scene] ?? 'SERVICE',
    venueId: s.venue,
    direction: s.dir ?? 'SINGLE',
    cardToken: s.card ?? 'card-token-1',
    cardRegion: s.cardRegion ?? 'BJ',
    form: 'CHIP',
    amountFen: s.amountFen ?? 0,
    riderCategory: s.category ?? 'ADULT',
    offline: s.offline ?? false,
    partition: 3,
    decisionTime: t + 2000,
    verdict: 'ACCEPTED',
    reason: 'OK',
    trace: [],
    riskRules: [],
  };
}

/** A medical claim at a venue of the shipped directory. */
export function claim(p: Partial<MedicalClaimEvent> & { claimId: string; items: MedicalClaimEvent['items'] }): MedicalClaimEvent {
  const institutionId = p.institutionId ?? 'hospital:BJ:pumch';
  const v = data().venues.info(institutionId);
  return {
    terminalId: 'clinic-term-1',
    institutionId,
    institutionLevel: v?.institutionLevel ?? 'TERTIARY',
    treatment: 'OUTPATIENT',
    cardToken: 'card-token-1',
    personToken: 'person-token-1',
    insuredRegion: 'BJ',
    treatmentRegion: v?.region ?? 'BJ',
    deviceTime: at('2026-03-02T10:00'),
    ingestTime: at('2026-03-02T10:00') + 500,
    reversesClaimId: '',
    personalAccountBalanceFen: 0,
    partition: 1,
    ...p,
  };
}
