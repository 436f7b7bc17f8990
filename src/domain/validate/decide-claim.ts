/**
 * decideClaim: the validator's answer to a medical claim, before any money moves, as a pure
 * function of (data, card state, claim, credentials, clock). A claim is checked like a tap
 * (decide.ts, steps 1–5) with these presentation fields:
 *
 *   venue    the institution id           scene   MEDICAL
 *   amount   the sum of the items (fen)   event   "claim:<claim key>"
 *
 * (the chip MAC of a claim covers exactly these, see proto/tapflow/v1/ingest.proto), and then
 * the institution's project list item must be in the region of the submitting terminal
 * (INSTITUTION_NOT_IN_REGION) and give the institution's level (INSTITUTION_LEVEL_UNKNOWN). The
 * decision carries that level and region: the settler never trusts the claim's own. Behaviour
 * rules of taps (duplicate, passback, travel) do not apply; the card-keyed risk rules do (a
 * claim is a MEDICAL event at the institution with the bill's total as amount).
 *
 * Idempotence and state are as for taps: the card's chip counter or QR nonce is spent once the
 * claim passed the list, and a redelivered claim is answered `already` (its decision exists).
 */
import type { ReasonCode } from '../reasons.js';
import type { ClaimDecision, ClaimSubmission, CardCredentials, InstitutionLevel, Region, RiskFlag, TraceStep, Verdict } from '../types.js';
import { emptyCardState, type CardValidationState, type ChipMemo, type DecidedMemo, type NonceMemo } from './card-state.js';
import { applyCardRules, checkPresentation, nextState, rejectionFlags, type CardPresentation, type ValidatorData } from './decide.js';
import { riskSubjectOf, type RiskSubject } from './risk-rules.js';

/** The answer of decideClaim: a new decision, or the news that the claim was decided before. */
export type ClaimVerdict =
  | { already: false; decision: ClaimDecision; state: CardValidationState; flags: RiskFlag[] }
  /** Decided before (a redelivery): its decision exists; the state is the input state. */
  | { already: true; state: CardValidationState };

/** Event id of a claim in card state, decisions and flags. */
export function claimEventId(claimKey: string): string {
  return `claim:${claimKey}`;
}

/** The sum of a claim's items (fen): what its chip MAC covers as the amount. */
export function claimTotalFen(c: Pick<ClaimSubmission, 'items'>): number {
  let total = 0;
  for (const it of c.items) total += it.amountFen;
  return total;
}

/**
 * A claim as the risk rules see it: a MEDICAL event at the institution (its venue and its
 * operator), of the bill's total, by the submitting terminal in the treatment region. The card
 * rules see it when the claim is decided (decideClaim); the terminal, venue and institution rules
 * when its decision reaches the risk windows (src/validate/role.ts), with the region of the
 * institution's project list item once the claim got that far.
 */
export function claimRiskSubject(claim: ClaimSubmission, verdict: Verdict): RiskSubject {
  return riskSubjectOf(
    {
      eventId: claimEventId(claim.claimKey),
      scene: 'MEDICAL',
      venueId: claim.institutionId,
      form: claim.form,
      direction: 'SINGLE',
      terminalRegion: claim.treatmentRegion,
      cardRegion: claim.cardRegion,
      offline: false,
      deviceTime: claim.deviceTime,
      amountFen: claimTotalFen(claim),
      cardToken: claim.cardToken,
      terminalId: claim.terminalId,
      operatorId: claim.institutionId,
    },
    verdict,
  );
}

/** Decides one claim. `state` undefined: the card has no state yet. Does not modify its inputs. */
export function decideClaim(
  data: ValidatorData,
  state: CardValidationState | undefined,
  claim: ClaimSubmission,
  creds: CardCredentials | undefined,
  nowMs: number,
): ClaimVerdict {
  const prior = state ?? emptyCardState();
  const eventId = claimEventId(claim.claimKey);
  if (prior.decided.some((m) => m.e === eventId)) return { already: true, state: prior };

  const presentation: CardPresentation = {
    eventId,
    terminalId: claim.terminalId,
    deviceTime: claim.deviceTime,
    amountFen: claimTotalFen(claim),
    venueId: claim.institutionId,
    scene: 'MEDICAL',
    form: claim.form,
    cardToken: claim.cardToken,
    previousCardTokens: claim.previousCardTokens,
  };
  const trace: TraceStep[] = [];
  const record = { chip: undefined as ChipMemo | undefined, nonce: undefined as NonceMemo | undefined };
  let listed: { level: InstitutionLevel; region: Region } | undefined;
  const checked = checkPresentation(data, prior, presentation, creds, trace, record, (item) => {
    if (item.region !== claim.treatmentRegion) {
      return { reason: 'INSTITUTION_NOT_IN_REGION', detail: `${claim.institutionId} is listed in ${item.region}; the submitting terminal is in ${claim.treatmentRegion}` };
    }
    if (item.level === undefined) return { reason: 'INSTITUTION_LEVEL_UNKNOWN', detail: `item ${item.venue} MEDICAL gives no level` };
    listed = { level: item.level, region: item.region };
    return undefined;
  });
  const rejection = 'reason' in checked ? checked : undefined;
  if (listed && listed.level !== claim.institutionLevel) {
    trace.push({ rule: 'institution-level', version: data.projectList.version, detail: `claim says ${claim.institutionLevel}; the project list's ${listed.level} applies` });
  }
  const verdict: Verdict = rejection ? 'REJECTED' : 'ACCEPTED';
  const reason: ReasonCode = rejection ? rejection.reason : 'OK';

  const presentedBy = { eventId, cardToken: claim.cardToken, deviceTime: claim.deviceTime, cardRegion: claim.cardRegion };
  const flags = rejectionFlags(reason, presentedBy, trace, nowMs);
  const subject = claimRiskSubject(claim, verdict);
  const risk = applyCardRules(data, prior, subject, trace, flags, nowMs);

  const memo: DecidedMemo = { e: eventId, t: claim.deviceTime };
  const next = nextState(data.settings, prior, { eventId, deviceTime: claim.deviceTime, venueId: claim.institutionId, direction: 'SINGLE', scene: 'MEDICAL' }, false, record.chip, record.nonce, memo, risk);
  const decision: ClaimDecision = {
    ...claim,
    institutionLevel: listed?.level ?? claim.institutionLevel,
    treatmentRegion: listed?.region ?? claim.treatmentRegion,
    decisionTime: nowMs,
    verdict,
    reason,
    trace,
    riskRules: flags.map((f) => f.ruleId),
  };
  return { already: false, decision, state: next, flags };
}
