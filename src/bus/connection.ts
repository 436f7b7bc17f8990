/** Connecting to NATS: reconnect forever, no async stack traces on the hot path. */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../observe/log.js';
import { TapflowError } from '../domain/reasons.js';
import type { BusAuth } from './credentials.js';

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** True while the connection is up (between disconnect and reconnect it is false). */
  connected(): boolean;
  close(): Promise<void>;
}

/**
 * Connects to NATS; with `auth`, as that user (the password is never logged). A subject the
 * server refuses this user (a permission violation) is logged as an error naming it.
 */
export async function connectBus(url: string, name: string, log: Logger, timeoutMs = 5000, auth?: BusAuth): Promise<Bus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: url.split(','),
      name,
      // The client otherwise builds an Error with a stack trace for every request, which
      // halves publish throughput (DESIGN.md, practical notes).
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: timeoutMs,
      pingInterval: 10_000,
      ...(auth ? { user: auth.user, pass: auth.pass } : {}),
    });
  } catch (err) {
    const as = auth ? ` as user ${auth.user}` : '';
    throw new TapflowError('TF_BUS_UNAVAILABLE', `cannot connect to NATS at ${url}${as}: ${(err as Error).message}`, { cause: err });
  }
  let up = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        up = false;
        log.warn({ server: s.server }, 'NATS disconnected');
      } else if (s.type === 'reconnect') {
        up = true;
        log.info({ server: s.server }, 'NATS reconnected');
      } else if (s.type === 'error' && s.error.name === 'PermissionViolationError') {
        const pe = s.error as Error & { operation?: string; subject?: string };
        log.error({ user: auth?.user, operation: pe.operation, subject: pe.subject }, 'NATS refused an operation outside this user\'s permissions');
      }
    }
  })();
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
  const js = jetstream(nc, { timeout: timeoutMs });
  return {
    nc,
    js,
    jsm,
    connected: () => up && !nc.isClosed(),
    close: async () => {
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
}
