/**
 * Test hook for the fault suite (test/faults, "store unavailable for 30 s"): with
 * TAPFLOW_TEST_STORE_DOWN_FILE=<path> in its environment, every call of this process on the
 * embedded engine fails with TF_STORE_FAILED, as on a store that cannot be reached, while <path>
 * exists. The suite creates the file, waits, and removes it. The embedded engine lives in the
 * sink's process and has no connection to cut; this is how a test makes it unreachable. Not a
 * setting: unset, it costs one comparison per call.
 */
import { existsSync } from 'node:fs';
import { TapflowError } from '../domain/reasons.js';

const downFile = process.env.TAPFLOW_TEST_STORE_DOWN_FILE || undefined;

/** Throws TF_STORE_FAILED while the test's outage file exists. */
export function testStoreOutage(what: string): void {
  if (downFile !== undefined && existsSync(downFile)) {
    throw new TapflowError('TF_STORE_FAILED', `${what}: store unavailable (test outage: TAPFLOW_TEST_STORE_DOWN_FILE ${downFile} exists)`);
  }
}
