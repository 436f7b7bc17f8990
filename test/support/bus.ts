/**
 * The admin step for tests: roles (in-process or spawned with spawnRole) only bind to tapflow's
 * JetStream topology, so create it once per nats-server before any role starts:
 *
 *   const nats = await startTestNats();
 *   await setupBus(nats.url, env);      // env: the same settings the roles get (partitions, ack wait…)
 *   spawnRole('validator', { env });
 *
 * Idempotent (run again after a nats-server whose store was wiped). With credentials in
 * `settings` (TAPFLOW_NATS_CREDS_DIR / NATS_USER) it connects as the admin user.
 */
import { loadConfig, type ConfigKey } from '../../src/config/config.js';
import { createLogger } from '../../src/observe/log.js';
import { setupBus as setupBusAsAdmin } from '../../src/runtime/bus-setup.js';
import { REPO_ROOT } from './processes.js';
import { join } from 'node:path';

export async function setupBus(natsUrl: string, settings: Partial<Record<ConfigKey, string>> = {}): Promise<void> {
  const cfg = loadConfig({}, { TAPFLOW_TARIFF_DIR: join(REPO_ROOT, 'data'), TAPFLOW_DATA_DIR: join(REPO_ROOT, 'data'), ...settings, NATS_URL: natsUrl });
  await setupBusAsAdmin(cfg, createLogger('warn', { test: 'setup-bus' }));
}
