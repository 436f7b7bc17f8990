/**
 * JetStream layout: streams, subjects, consumers and KV buckets. Card-keyed subjects end in a
 * partition number P = fnv1a32(card token) % partitions, so one owner sees a card's events in
 * order (see src/bus/partitions.ts).
 */
export const Streams = {
  TAPS: { name: 'TAPS', subjects: ['tapflow.taps.>'] },
  DECISIONS: { name: 'DECISIONS', subjects: ['tapflow.decisions.>'] },
  /**
   * Medical claims and their decisions: low volume, latency-sensitive, kept apart from the tap
   * streams so that the sink's consumers see every subject of the streams they read (their
   * in-order check treats a missing sequence as a gap).
   */
  CLAIMS: { name: 'CLAIMS', subjects: ['tapflow.claims.>', 'tapflow.claimdecisions.>'] },
  SETTLEMENTS: { name: 'SETTLEMENTS', subjects: ['tapflow.settlements.>'] },
  RISK: { name: 'RISK', subjects: ['tapflow.risk.>'] },
  /**
   * Partition owners' state changelogs (src/bus/partition-state.ts). Limits retention, discarding
   * the oldest: what a checkpoint has made durable in the KV buckets is no longer needed.
   */
  STATE: { name: 'STATE', subjects: ['tapflow.state.>'] },
  DLQ: { name: 'DLQ', subjects: ['tapflow.dlq.>'] },
} as const;

export type StreamName = keyof typeof Streams;

export const subjects = {
  tap: (p: number) => `tapflow.taps.${p}`,
  claim: (p: number) => `tapflow.claims.${p}`,
  decision: (p: number) => `tapflow.decisions.${p}`,
  /** A claim's decision, for the settler of the person's partition p. */
  claimDecision: (p: number) => `tapflow.claimdecisions.${p}`,
  settlement: (p: number) => `tapflow.settlements.${p}`,
  risk: (p: number) => `tapflow.risk.${p}`,
  deadLetter: (role: string) => `tapflow.dlq.${role}`,
  /** The state changelog of a role's partition. */
  state: (role: string, p: number) => `tapflow.state.${role}.${p}`,
  /** Core NATS (not stored): a claim's result, for the ingest waiting on it. */
  claimResult: (claimKey: string) => `tapflow.claimresult.${claimKey}`,
};

/** KV buckets. */
export const Buckets = {
  HOTLIST: 'tapflow_hotlist',
  PROJECTS: 'tapflow_projects',
  RISK_RULES: 'tapflow_risk_rules',
  LEASES: 'tapflow_leases',
  VALIDATOR_STATE: 'tapflow_validator_state',
  SETTLER_STATE: 'tapflow_settler_state',
  WINDOW_STATE: 'tapflow_window_state',
  CLAIMS: 'tapflow_claims',
} as const;

/** Keys of per-key state in the state buckets. Card state is keyed by the card token itself. */
export const stateKeys = {
  /** A person's medical accumulations, in tapflow_settler_state next to card state. */
  person: (personToken: string) => `person.${personToken}`,
};
