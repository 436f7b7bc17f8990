/**
 * The validator's pure core: deciding taps (decideTap) and watching non-card risk windows
 * (observeDecision), with the data they read — application project list, hotlist, risk rules,
 * settings — and the per-card state they keep. No NATS, ClickHouse or gRPC here: the validator
 * role loads the data from KV, keeps card states in KV and publishes what these functions return.
 */
export { decideTap, builtinRuleId, seqReusedFlag, BUILTIN_RULES_VERSION, SEQ_REUSED_RULE } from './decide.js';
export type { ValidatorData, TapDecision, CardPresentation } from './decide.js';
export { decideClaim, claimEventId, claimRiskSubject, claimTotalFen } from './decide-claim.js';
export type { ClaimVerdict } from './decide-claim.js';

export { emptyCardState, cardStateFromData } from './card-state.js';
export type { CardValidationState, TapMemo, ChipMemo, NonceMemo, DecidedMemo } from './card-state.js';

export { DEFAULT_VALIDATOR_SETTINGS, resolveValidatorSettings } from './settings.js';
export type { ValidatorSettings, StateMemoryLimits } from './settings.js';

export { ProjectList, InstitutionLevels, parseProjectList, projectListFromData, lookupProject, diffProjectLists, projectListCoverage } from './project-list.js';
export type { ProjectItem, ProjectLookup, ProjectRejection, ProjectListDiff } from './project-list.js';

export { Hotlist, HotlistReasons, HOTLIST_REASON_CODES, hotlistEntryFromData } from './hotlist.js';
export type { HotlistEntry, HotlistReason } from './hotlist.js';

export {
  RiskMetrics,
  RiskKeyKinds,
  Severities,
  DEFAULT_MIN_SAMPLE,
  EMPTY_RISK_RULES,
  makeRiskRuleSet,
  parseRiskRules,
  riskRulesFromData,
  riskRuleFromData,
  matchesFilter,
  riskKeyOf,
} from './risk-rules.js';
export type { RiskRule, RiskRuleSet, RiskRuleFilter, RiskMetric, RiskSubject } from './risk-rules.js';

export { observeDecision, observeSeries, emptyWindowState, windowKeysFor, pruneWindowState, evaluateCardRules } from './risk-windows.js';
export type { WindowState, WindowSeries, CardRiskWindow } from './risk-windows.js';

export { greatCircleKm, isImpossibleTravel, minimumTravelMs } from './travel.js';
export { DataFormatError, parseDuration, parseInstant, formatInstant } from './data-format.js';
