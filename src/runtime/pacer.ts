/**
 * Long synchronous work (a batch of bundles: decoding, deciding, mapping rows) gives the event
 * loop a turn every few milliseconds, so that what shares the thread — ingest's answers, lease
 * renewals, acknowledgements — never waits behind a whole batch.
 *
 *   const pace = pacer();
 *   for (const m of msgs) { await pace(); work(m); }
 *
 * `pace()` costs a clock read; it yields (setImmediate: I/O callbacks run first) only when
 * `sliceMs` passed since the last turn.
 */
import { performance } from 'node:perf_hooks';

/** Default slice of synchronous work between two turns of the event loop (ms). */
export const SLICE_MS = 4;

export function pacer(sliceMs = SLICE_MS): () => Promise<void> | undefined {
  let since = performance.now();
  return () => {
    const now = performance.now();
    if (now - since < sliceMs) return undefined;
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        since = performance.now();
        resolve();
      }),
    );
  };
}
