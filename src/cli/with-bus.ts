/** Runs a command against the JetStream of a tapflow deployment (starting a local NATS if allowed). */
import type { Config } from '../config/config.js';
import { connectBus, type Bus } from '../bus/connection.js';
import { ensureTopology, openBuckets, topologyOptions, type BucketSet } from '../bus/topology.js';
import { createLogger } from '../observe/log.js';
import { ensureNats } from '../runtime/app.js';

export async function withBus<T>(cfg: Config, fn: (bus: Bus, buckets: BucketSet) => Promise<T>): Promise<T> {
  const log = createLogger(cfg.TAPFLOW_LOG_LEVEL === 'info' ? 'warn' : cfg.TAPFLOW_LOG_LEVEL, { app: 'tapflow-cli' });
  const server = await ensureNats(cfg, log);
  const bus = await connectBus(cfg.NATS_URL, 'tapflow-cli', log);
  try {
    await ensureTopology(bus, topologyOptions(cfg));
    return await fn(bus, await openBuckets(bus, cfg.TAPFLOW_LEASE_TTL_MS, bus, cfg.TAPFLOW_STREAM_REPLICAS));
  } finally {
    await bus.close();
    await server?.stop();
  }
}
