/**
 * One vocabulary for why a tap was rejected (reason codes, carried in decisions) and for why a
 * message could not be processed (failure codes, which decide what happens to the JetStream
 * message and which gRPC status a terminal sees). Documented in README "Reason codes".
 */

export interface ReasonInfo {
  /** What it means, for the README table and for operators. */
  meaning: string;
  /** Built-in risk severity raised alongside the rejection, if any. */
  risk?: 'INFO' | 'WARNING' | 'CRITICAL';
}

/** Reason codes of decisions. 'OK' is the reason of every accepted tap. */
export const ReasonCodes = {
  OK: { meaning: 'Accepted.' },
  // card status
  HOTLIST_LOST: { meaning: 'Card reported lost (hotlist).', risk: 'WARNING' },
  HOTLIST_FROZEN: { meaning: 'Card frozen (hotlist).', risk: 'WARNING' },
  HOTLIST_CANCELLED: { meaning: 'Card cancelled (hotlist); a cancelled physical card also stops its QR code.', risk: 'WARNING' },
  // application project list
  VENUE_NOT_LISTED: { meaning: 'Venue is not on the application project list.' },
  SCENE_NOT_LISTED: { meaning: 'Venue is listed, but not for this scene.' },
  FORM_NOT_ACCEPTED: { meaning: 'Venue does not accept this card form (CHIP or QR).' },
  ITEM_NOT_YET_VALID: { meaning: 'Project list item is not valid yet at the device time.' },
  ITEM_EXPIRED: { meaning: 'Project list item has expired at the device time.' },
  // chip card
  CHIP_UNKNOWN_ISSUER: { meaning: 'Chip card of an issuer whose master key is not configured.' },
  CHIP_MAC_INVALID: { meaning: 'Chip MAC does not verify with the key derived for this card.', risk: 'CRITICAL' },
  CHIP_COUNTER_REPLAY: { meaning: 'Chip transaction counter repeated: replayed transaction.', risk: 'CRITICAL' },
  CHIP_COUNTER_BACKWARDS: { meaning: 'Chip transaction counter went backwards: cloned card.', risk: 'CRITICAL' },
  // electronic card (QR)
  QR_MALFORMED: { meaning: 'QR payload cannot be parsed.' },
  QR_UNKNOWN_ISSUER: { meaning: 'QR code signed by an issuer whose platform key is not trusted.', risk: 'WARNING' },
  QR_BAD_SIGNATURE: { meaning: 'QR signature does not verify: forged or altered code.', risk: 'CRITICAL' },
  QR_EXPIRED: { meaning: 'QR code expired (beyond the clock-skew allowance).' },
  QR_NOT_YET_VALID: { meaning: 'QR code issued in the future (beyond the clock-skew allowance).', risk: 'WARNING' },
  QR_REPLAYED: { meaning: 'QR code already used: each code is single-use.', risk: 'CRITICAL' },
  QR_LEVEL_TOO_LOW: { meaning: 'Level-1 electronic card used to pay; only level 2 may pay.' },
  // behaviour
  DUPLICATE_TAP: { meaning: 'Same card, same venue and direction again within the duplicate window.' },
  PASSBACK: { meaning: 'Same card re-entered the same venue within the passback time of the scene.', risk: 'INFO' },
  IMPOSSIBLE_TRAVEL: { meaning: 'The card could not have travelled from its previous tap in time.', risk: 'CRITICAL' },
  // credentials
  CREDENTIALS_UNREADABLE: { meaning: 'Sealed card credentials could not be opened (wrong seal key).' },
  // medical claims (besides the card and project list reasons above)
  INSTITUTION_NOT_IN_REGION: { meaning: 'Claim for an institution listed in another region than the submitting terminal\'s.', risk: 'WARNING' },
  INSTITUTION_LEVEL_UNKNOWN: { meaning: 'Claim for an institution whose project list item gives no level: it cannot be settled.' },
  // terminals
  SEQ_REUSED: { meaning: 'A terminal sent other content under a (terminal_id, seq) it used before; the first tap counts.', risk: 'WARNING' },
} as const satisfies Record<string, ReasonInfo>;

export type ReasonCode = keyof typeof ReasonCodes;

export function isReasonCode(s: string): s is ReasonCode {
  return Object.prototype.hasOwnProperty.call(ReasonCodes, s);
}

/** What a consumer does with a JetStream message after a failure. */
export type BusAction = 'ack' | 'nak-delay' | 'term-dead-letter';

/** gRPC status names (the adapter maps them to @grpc/grpc-js codes). */
export type GrpcStatusName =
  | 'OK'
  | 'INVALID_ARGUMENT'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'INTERNAL';

export interface FailureInfo {
  meaning: string;
  bus: BusAction;
  grpc: GrpcStatusName;
  retryable: boolean;
}

/**
 * Failure codes: one table from failure to JetStream action and gRPC status. The partition
 * worker (src/bus/partitions.ts) applies the action:
 * - `term-dead-letter`: the message goes to the dead-letter stream with the code and reason and
 *   is acknowledged; the partition goes on with the next message.
 * - `nak-delay`: the batch is redelivered after a backoff (250 ms doubling to 30 s); a message
 *   delivered TAPFLOW_MAX_DELIVER times is dead-lettered as TF_RETRIES_EXHAUSTED (alerted).
 * - `ack`: nothing to redo.
 */
export const FailureCodes = {
  TF_INGEST_INVALID: { meaning: 'Malformed tap or claim: a field is missing or out of range.', bus: 'term-dead-letter', grpc: 'INVALID_ARGUMENT', retryable: false },
  TF_INGEST_UNAUTHENTICATED: { meaning: 'Terminal credential missing or wrong.', bus: 'term-dead-letter', grpc: 'UNAUTHENTICATED', retryable: false },
  TF_INGEST_PERMISSION_DENIED: { meaning: 'Terminal not allowed to send this: another terminal id, a disabled terminal, a venue it does not serve or one of another region (a tap: INVALID with reason PERMISSION_DENIED).', bus: 'term-dead-letter', grpc: 'PERMISSION_DENIED', retryable: false },
  TF_INGEST_OVERLOADED: { meaning: 'Too many taps in flight; retry after a pause with the same seq.', bus: 'nak-delay', grpc: 'RESOURCE_EXHAUSTED', retryable: true },
  TF_BUS_UNAVAILABLE: { meaning: 'JetStream not reachable or did not acknowledge in time.', bus: 'nak-delay', grpc: 'UNAVAILABLE', retryable: true },
  TF_BUS_STREAM_FULL: { meaning: 'A stream reached its limits (discard new): back pressure.', bus: 'nak-delay', grpc: 'RESOURCE_EXHAUSTED', retryable: true },
  TF_DRAINING: { meaning: 'The process is shutting down; reconnect to another replica.', bus: 'nak-delay', grpc: 'UNAVAILABLE', retryable: true },
  TF_DECODE_FAILED: { meaning: 'A bus message could not be decoded.', bus: 'term-dead-letter', grpc: 'INTERNAL', retryable: false },
  TF_EVENT_INVALID: { meaning: 'A bus message holds a value out of range or one the pure core cannot process (a data error); retrying cannot help.', bus: 'term-dead-letter', grpc: 'INTERNAL', retryable: false },
  TF_RETRIES_EXHAUSTED: { meaning: 'A transient failure lasted through TAPFLOW_MAX_DELIVER deliveries of a message.', bus: 'term-dead-letter', grpc: 'INTERNAL', retryable: false },
  TF_INTERNAL: { meaning: 'An unexpected error while processing a batch; retried like a transient failure, within the same bound.', bus: 'nak-delay', grpc: 'INTERNAL', retryable: true },
  TF_STATE_CONFLICT: { meaning: 'Per-card state changed under us (another owner); retried.', bus: 'nak-delay', grpc: 'UNAVAILABLE', retryable: true },
  TF_STORE_FAILED: { meaning: 'ClickHouse insert failed; retried.', bus: 'nak-delay', grpc: 'UNAVAILABLE', retryable: true },
  TF_TOPOLOGY_MISMATCH: { meaning: 'A process is configured for another partition count than the deployment on its NATS server: it refuses to start.', bus: 'ack', grpc: 'INTERNAL', retryable: false },
  TF_TOPOLOGY_MISSING: { meaning: 'A stream, durable consumer or KV bucket a role binds to does not exist: the roles may not create them; run the admin step `tapflow bus setup` first.', bus: 'ack', grpc: 'INTERNAL', retryable: false },
  TF_STORE_SETUP_MISSING: { meaning: 'The ClickHouse schema or retention is not what this sink needs: on a server the sink runs no DDL; run the admin step `tapflow store setup` first.', bus: 'ack', grpc: 'INTERNAL', retryable: false },
  TF_CLAIM_NOT_FOUND: { meaning: 'No claim with that id sent durably by this terminal.', bus: 'ack', grpc: 'NOT_FOUND', retryable: false },
  TF_CLAIM_ID_TAKEN: { meaning: 'The claim id was first sent by another terminal; claim ids belong to the terminal that first sent them.', bus: 'ack', grpc: 'ALREADY_EXISTS', retryable: false },
} as const satisfies Record<string, FailureInfo>;

export type FailureCode = keyof typeof FailureCodes;

/**
 * The codes a partition worker dead-letters a message with (src/bus/failures.ts): what a dead
 * letter in the DLQ stream carries. The ingest codes refuse a call; they are never on the bus.
 */
export const DEAD_LETTER_CODES = ['TF_DECODE_FAILED', 'TF_EVENT_INVALID', 'TF_RETRIES_EXHAUSTED'] as const satisfies readonly FailureCode[];

/** An error carrying a failure code; unknown throws are normalised with {@link toTapflowError}. */
export class TapflowError extends Error {
  override readonly name = 'TapflowError';
  constructor(
    readonly code: FailureCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  get retryable(): boolean {
    return FailureCodes[this.code].retryable;
  }
  get busAction(): BusAction {
    return FailureCodes[this.code].bus;
  }
  get grpcStatus(): GrpcStatusName {
    return FailureCodes[this.code].grpc;
  }
}

export function toTapflowError(err: unknown, fallback: FailureCode): TapflowError {
  if (err instanceof TapflowError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new TapflowError(fallback, message, { cause: err });
}

/** The README's table of reason codes. */
export function reasonsMarkdown(): string {
  const rows = Object.entries(ReasonCodes).map(([code, info]) => `| \`${code}\` | ${info.meaning} | ${'risk' in info ? info.risk : ''} |`);
  return ['| reason code | meaning | risk flag |', '| --- | --- | --- |', ...rows].join('\n');
}

/** The README's table of failure codes. */
export function failuresMarkdown(): string {
  const rows = Object.entries(FailureCodes).map(([code, f]) => `| \`${code}\` | ${f.meaning} | ${f.grpc} | ${f.bus} | ${f.retryable ? 'yes' : 'no'} |`);
  return ['| failure code | meaning | gRPC status | JetStream action | retry |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
