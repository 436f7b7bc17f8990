/**
 * Runs once in vitest's main process before any test file. Makes sure a nats-server binary
 * is there for the integration tests and hands its path to the test workers through
 * TAPFLOW_TEST_NATS_BIN (workers are forked after this runs and inherit the environment).
 *
 * Installs nats-server with apt-get when CI=true, or when running as root on Debian/Ubuntu.
 * Otherwise a missing nats-server is reported here once, and again by every test that
 * calls startTestNats(), with the ways to install it; unit tests still run.
 */
import { readFile } from 'node:fs/promises';
import { ensureNatsServer, NatsServerError, parseOsRelease, type NatsServerLog } from '../../src/runtime/nats-server.js';

/** The environment variable carrying the nats-server path to the test workers. */
export const TEST_NATS_BIN_ENV = 'TAPFLOW_TEST_NATS_BIN';

const log: NatsServerLog = {
  info: (msg) => console.log(`[global-setup] ${msg}`),
  warn: (msg) => console.warn(`[global-setup] ${msg}`),
};

async function mayInstall(): Promise<boolean> {
  if (process.env.CI === 'true' || process.env.CI === '1') return true;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  const os = parseOsRelease(await readFile('/etc/os-release', 'utf8').catch(() => ''));
  const like = `${os.ID ?? ''} ${os.ID_LIKE ?? ''}`;
  return /\b(debian|ubuntu)\b/.test(like);
}

export default async function setup(): Promise<void> {
  try {
    const bin = await ensureNatsServer({ install: await mayInstall(), log });
    process.env[TEST_NATS_BIN_ENV] = bin;
  } catch (err) {
    if (!(err instanceof NatsServerError)) throw err;
    delete process.env[TEST_NATS_BIN_ENV];
    console.warn(`[global-setup] integration tests that need nats-server will fail:\n${err.message}`);
  }
}
