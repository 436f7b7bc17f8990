/**
 * The admin step (`tapflow bus setup`; `tapflow start` runs it first): as the admin NATS user,
 * creates or updates tapflow's streams, durable consumers and KV buckets (idempotent), and
 * seeds the application project list and risk rules from the data folder when their buckets
 * are empty. The roles run without the right to do any of this (src/bus/permissions.ts); they
 * only bind to what this step made.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { connectBus, type Bus } from '../bus/connection.js';
import { busAuth } from '../bus/credentials.js';
import { ensureTopology, openBuckets, topologyOptions, type BucketSet } from '../bus/topology.js';
import type { Logger } from '../observe/log.js';
import { parseProjectList } from '../domain/validate/index.js';
import { parseDataText } from '../domain/validate/data-format.js';
import { getProjectListDoc, listRiskRules, putProjectList, putRiskRule } from '../validate/data-store.js';

/** A connection as the admin NATS user (TAPFLOW_NATS_CREDS_DIR's tapflow-admin, or NATS_USER). */
export function connectAdminBus(cfg: Config, log: Logger, name = 'tapflow-admin'): Promise<Bus> {
  return connectBus(cfg.NATS_URL, name, log, 5000, busAuth(cfg, 'admin'));
}

/** Seeds the project list and risk rules from the data folder when their buckets are empty. */
async function seedDefaults(cfg: Config, buckets: BucketSet, log: Logger): Promise<void> {
  const dir = cfg.TAPFLOW_TARIFF_DIR;
  if ((await getProjectListDoc(buckets.projects)) === undefined) {
    const path = join(dir, 'projects', 'default.yaml');
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8');
      parseProjectList(text, 'yaml');
      await putProjectList(buckets.projects, parseDataText(text, 'yaml'));
      log.info({ path }, 'no application project list in KV: applied the default one');
    }
  }
  if ((await buckets.riskRules.status()).values === 0 && (await listRiskRules(buckets.riskRules)).length === 0) {
    const path = join(dir, 'risk-rules', 'default.yaml');
    if (existsSync(path)) {
      const doc = parseDataText(readFileSync(path, 'utf8'), 'yaml') as { rules?: unknown[] };
      for (const r of doc.rules ?? []) await putRiskRule(buckets.riskRules, r);
      log.info({ path, rules: doc.rules?.length ?? 0 }, 'no risk rules in KV: applied the default ones');
    }
  }
}

/** The admin step on an open (admin) connection. */
export async function setupTopology(bus: Bus, cfg: Config, log: Logger): Promise<void> {
  await ensureTopology(bus, topologyOptions(cfg));
  await seedDefaults(cfg, await openBuckets(bus, cfg.TAPFLOW_LEASE_TTL_MS, bus, true, cfg.TAPFLOW_STREAM_REPLICAS), log);
}

/** The admin step: connects as the admin user, sets the topology up, disconnects. */
export async function setupBus(cfg: Config, log: Logger): Promise<void> {
  const bus = await connectAdminBus(cfg, log, 'tapflow-setup');
  try {
    await setupTopology(bus, cfg, log);
  } finally {
    await bus.close();
  }
}
