/**
 * Whether the pipeline has caught up: every durable consumer of the topology has had every
 * message of its stream delivered and acknowledged. Consumers acknowledge only after their
 * outputs and state are durable (the sink: after the ClickHouse insert), so an idle pipeline has
 * stored everything published before. For summaries that must match the store, e.g. the end of a
 * demo run.
 */
import type { Bus } from '../bus/connection.js';
import { consumerPlan } from '../bus/topology.js';

/** Messages not yet delivered or not yet acknowledged, over every consumer. */
export async function unfinishedMessages(bus: Bus, partitions: number): Promise<number> {
  const infos = await Promise.all(consumerPlan(partitions).map((c) => bus.jsm.consumers.info(c.stream, c.name)));
  return infos.reduce((n, i) => n + i.num_pending + i.num_ack_pending, 0);
}

/**
 * Resolves true once two looks in a row, `pollMs` apart, find nothing unfinished; false when
 * `timeoutMs` passes first.
 */
export async function waitForPipelineIdle(bus: Bus, partitions: number, o: { timeoutMs: number; pollMs?: number }): Promise<boolean> {
  const pollMs = o.pollMs ?? 200;
  const deadline = Date.now() + o.timeoutMs;
  let quietLooks = 0;
  while (Date.now() < deadline) {
    quietLooks = (await unfinishedMessages(bus, partitions)) === 0 ? quietLooks + 1 : 0;
    if (quietLooks >= 2) return true;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return false;
}
