/**
 * Errors of the storage layer. Failures of an operation against ClickHouse (an insert, a query,
 * the engine going away) are {@link TapflowError}s with code `TF_STORE_FAILED` — retryable, and
 * mapped once in src/domain/reasons.ts to "nak with delay" — so the sink treats them like every
 * other failure. Mistakes that no retry fixes (a second chdb data directory in one process, an
 * applied migration edited afterwards, a malformed identifier) are {@link StoreConfigError}s.
 */
import { TapflowError, toTapflowError } from '../domain/reasons.js';

export type StoreConfigErrorCode =
  /** chdb binds one data directory per process and another one is open. */
  | 'TF_STORE_CHDB_DIR_IN_USE'
  /** A migration file is malformed, or an applied one was changed afterwards. */
  | 'TF_STORE_MIGRATION'
  /** A table or column name that is not a plain identifier. */
  | 'TF_STORE_IDENTIFIER'
  /** A configuration value is missing or malformed. */
  | 'TF_STORE_CONFIG';

/** A storage mistake that retrying does not fix: stop and tell the operator. */
export class StoreConfigError extends Error {
  override readonly name = 'StoreConfigError';
  readonly retryable = false;
  constructor(
    readonly code: StoreConfigErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Normalises an engine error (chdb or @clickhouse/client) into a retryable TF_STORE_FAILED. */
export function storeFailure(err: unknown, what: string): TapflowError | StoreConfigError {
  if (err instanceof TapflowError || err instanceof StoreConfigError) return err;
  const inner = toTapflowError(err, 'TF_STORE_FAILED');
  return new TapflowError('TF_STORE_FAILED', `${what}: ${inner.message}`, { cause: err });
}
