/**
 * Runs once in vitest's main process before any test file. Makes sure the tools the tests need
 * besides npm packages are there, and hands their paths to the test workers through the
 * environment (workers are forked after this runs and inherit it):
 * - nats-server (TAPFLOW_TEST_NATS_BIN) for the integration and end-to-end tests;
 * - promtool (TAPFLOW_TEST_PROMTOOL_BIN) for the alert rule tests;
 * - the Prometheus server (TAPFLOW_TEST_PROMETHEUS_BIN) for the test that evaluates every
 *   dashboard and alert expression against a running tapflow (same Debian package as promtool).
 *
 * A missing tool is installed with apt-get when CI=true, or when running as root on
 * Debian/Ubuntu — the way `tapflow start` installs nats-server (src/runtime/apt.ts), saying what
 * it installs and why. Otherwise it is reported here once, with the ways to install it, and the
 * tests that need it fail with the same advice; unit tests still run.
 */
import { readFile } from 'node:fs/promises';
import { isDebianLike, parseOsRelease, type InstallLog } from '../../src/runtime/apt.js';
import { ensureNatsServer, NatsServerError } from '../../src/runtime/nats-server.js';
import { ensurePrometheus, ensurePromtool, PromtoolMissingError, TEST_PROMETHEUS_BIN_ENV, TEST_PROMTOOL_BIN_ENV } from './promtool.js';

/** The environment variable carrying the nats-server path to the test workers. */
export const TEST_NATS_BIN_ENV = 'TAPFLOW_TEST_NATS_BIN';

const log: InstallLog = {
  info: (msg) => console.log(`[global-setup] ${msg}`),
  warn: (msg) => console.warn(`[global-setup] ${msg}`),
};

async function mayInstall(): Promise<boolean> {
  if (process.env.CI === 'true' || process.env.CI === '1') return true;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  return isDebianLike(parseOsRelease(await readFile('/etc/os-release', 'utf8').catch(() => '')));
}

export default async function setup(): Promise<void> {
  const install = await mayInstall();
  try {
    process.env[TEST_NATS_BIN_ENV] = await ensureNatsServer({ install, log });
  } catch (err) {
    if (!(err instanceof NatsServerError)) throw err;
    delete process.env[TEST_NATS_BIN_ENV];
    console.warn(`[global-setup] integration tests that need nats-server will fail:\n${err.message}`);
  }
  try {
    process.env[TEST_PROMTOOL_BIN_ENV] = await ensurePromtool({ install, log });
  } catch (err) {
    if (!(err instanceof PromtoolMissingError)) throw err;
    delete process.env[TEST_PROMTOOL_BIN_ENV];
    console.warn(`[global-setup] the alert rule tests (test/integration/ops/promtool.test.ts) will fail:\n${err.message}`);
  }
  try {
    process.env[TEST_PROMETHEUS_BIN_ENV] = await ensurePrometheus({ install, log });
  } catch (err) {
    if (!(err instanceof PromtoolMissingError)) throw err;
    delete process.env[TEST_PROMETHEUS_BIN_ENV];
    console.warn(`[global-setup] the Prometheus-backed test (test/integration/ops/prometheus-real.test.ts) will fail:\n${err.message}`);
  }
}
