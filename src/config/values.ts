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
