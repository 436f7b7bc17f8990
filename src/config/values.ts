/**
 * Value sets and bounds shared by the configuration schema (config.ts) and the command line's
 * flags (src/cli), kept apart so the CLI can check a flag without loading the schema.
 */

/** pino's levels (TAPFLOW_LOG_LEVEL, --log-level). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Most card partitions (TAPFLOW_PARTITIONS, --partitions). */
export const MAX_PARTITIONS = 1024;

/** Longest retention of stored rows, in days (TAPFLOW_STORE_RETENTION_DAYS): 100 years. 0 keeps them forever. */
export const MAX_RETENTION_DAYS = 36_500;

/** Widest bound of a live tap's device time around ingest time (TAPFLOW_LIVE_TIME_BOUND_MS): 30 days. */
export const MAX_LIVE_TIME_BOUND_MS = 30 * 86_400_000;

/** Oldest a stored tap may be allowed to be (TAPFLOW_UPLOAD_MAX_AGE_MS): 366 days. */
export const MAX_UPLOAD_AGE_MS = 366 * 86_400_000;
