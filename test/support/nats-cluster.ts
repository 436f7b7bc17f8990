/**
 * A throw-away three-node JetStream cluster on loopback ports, for tests that kill a node: each
 * node its own client port, route port, store directory and server name (kept across its
 * restarts, so it rejoins as the same JetStream peer). Roles connect with `url`, every node's
 * client URL comma-separated (NATS_URL).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { fileStoreNeeded } from '../../src/bus/topology.js';
import { ensureNatsServer, freePort, startNatsServer, type NatsServerHandle } from '../../src/runtime/nats-server.js';
import { TEST_NATS_BIN_ENV } from './global-setup.js';

export interface TestNatsCluster {
  /** Every node's client URL, comma-separated. */
  readonly url: string;
  readonly nodes: NatsServerHandle[];
  /** Stops every node and removes the store directories. */
  stop(): Promise<void>;
}

/** Resolves once the cluster has a JetStream meta leader (JetStream API calls answer). */
export async function waitForJetStream(url: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    const nc = await connect({ servers: url.split(','), timeout: 2000 }).catch((err: unknown) => ((last = err), undefined));
    if (nc) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2000 });
        await jsm.getAccountInfo();
        return;
      } catch (err) {
        last = err;
      } finally {
        await nc.close();
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`JetStream at ${url} not ready within ${timeoutMs} ms: ${(last as Error | undefined)?.message ?? 'no answer'}`);
}

/** Starts `size` (default 3) nats-server nodes routed to each other, JetStream on each. */
export async function startTestNatsCluster(size = 3): Promise<TestNatsCluster> {
  const bin = process.env[TEST_NATS_BIN_ENV] || (await ensureNatsServer({ install: false, log: { info: () => {}, warn: () => {} } }));
  const name = `tapflow-test-${process.pid}`;
  const routePorts: number[] = [];
  const clientPorts: number[] = [];
  const dirs: string[] = [];
  for (let i = 0; i < size; i++) {
    routePorts.push(await freePort());
    clientPorts.push(await freePort());
    dirs.push(await mkdtemp(join(tmpdir(), `tapflow-nats-n${i}-`)));
  }
  const nodes: NatsServerHandle[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  };
  try {
    // Started together: a node waits for its peers' routes before JetStream elects a leader.
    nodes.push(
      ...(await Promise.all(
        dirs.map((storeDir, i) =>
          startNatsServer({
            bin,
            port: clientPorts[i],
            storeDir,
            jetstream: true,
            maxFileStore: fileStoreNeeded(),
            serverName: `${name}-n${i}`,
            cluster: { name, port: routePorts[i]!, routes: routePorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`) },
          }),
        ),
      )),
    );
    const url = nodes.map((n) => n.url).join(',');
    await waitForJetStream(url);
    return { url, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
