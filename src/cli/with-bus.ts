/**
 * Runs an operator command against the JetStream of a tapflow deployment (starting a local NATS
 * if allowed), as the admin NATS user: it makes sure the topology exists (the admin step).
 */
import type { Config } from '../config/config.js';
import type { Bus } from '../bus/connection.js';
import { openBuckets, type BucketSet } from '../bus/topology.js';
import { createLogger } from '../observe/log.js';
import { ensureNats } from '../runtime/app.js';
import { connectAdminBus, setupTopology } from '../runtime/bus-setup.js';

export async function withBus<T>(cfg: Config, fn: (bus: Bus, buckets: BucketSet) => Promise<T>): Promise<T> {
  const log = createLogger(cfg.TAPFLOW_LOG_LEVEL === 'info' ? 'warn' : cfg.TAPFLOW_LOG_LEVEL, { app: 'tapflow-cli' });
  const server = await ensureNats(cfg, log);
  const bus = await connectAdminBus(cfg, log, 'tapflow-cli');
  try {
    await setupTopology(bus, cfg, log);
    return await fn(bus, await openBuckets(bus, cfg.TAPFLOW_LEASE_TTL_MS, bus, false));
  } finally {
    await bus.close();
    await server?.stop();
  }
}
