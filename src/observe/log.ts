/** Structured logs (pino, JSON lines on stderr). Never log card or ID numbers: only tokens. */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * A logger writing JSON lines to `destination`: stderr unless another stream is given (a test
 * that reads what the pipeline logged gives one of its own; the lines are the same).
 */
export function createLogger(level: string, base: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  return pino({ level, base: { pid: process.pid, ...base }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination({ fd: 2, sync: false }));
}
