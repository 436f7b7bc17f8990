/**
 * A data file (network, tariff, medical policy, venue list) is missing or malformed. Raised at
 * start-up while loading; never on the hot path. Not retryable: fix the file and restart.
 */
export class DataFileError extends Error {
  override readonly name = 'DataFileError';
  readonly nonRetryable = true;
  constructor(
    /** The file, relative to the data directory when possible. */
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
  }
}
