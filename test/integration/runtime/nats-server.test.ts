/**
 * The local nats-server runtime against the real binary: JetStream works, a killed server
 * comes back on the same port with its stream intact, start-up failures say why.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isNatsReachable, natsServerInfo, NatsServerError, startNatsServer, type NatsServerHandle } from '../../../src/runtime/nats-server.js';
import { TEST_NATS_BIN_ENV } from '../../support/global-setup.js';
import { startTestNats } from '../../support/nats.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function started(): Promise<NatsServerHandle> {
  const server = await startTestNats();
  cleanups.push(() => server.stop());
  return server;
}

async function connected(url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  cleanups.push(() => nc.close());
  return nc;
}

describe('nats-server runtime - global setup', () => {
  it('hands the binary path to test workers through the environment', () => {
    // Set in vitest's main process by test/support/global-setup.ts before this fork started.
    expect(process.env[TEST_NATS_BIN_ENV]).toMatch(/nats-server$/);
  });
});

describe('nats-server runtime - start, JetStream, kill, restart', () => {
  it('serves JetStream, and after SIGKILL and restart on the same port the stream still has its message', async () => {
    const server = await started();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.pid).toBeGreaterThan(0);
    expect(await readFile(server.configFile, 'utf8')).toContain(`store_dir: ${JSON.stringify(server.storeDir)}`);

    const nc = await connected(server.url);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: 'RUNTIME_TEST',
      subjects: ['runtime.test.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New,
      max_bytes: 1024 * 1024,
    });
    const js = jetstream(nc);
    const ack = await js.publish('runtime.test.a', 'hello', { msgID: 't1-1' });
    expect(ack.stream).toBe('RUNTIME_TEST');
    expect(ack.seq).toBe(1);
    expect(ack.duplicate).toBe(false);

    // A request made while the client is still disconnected gets lost (nats.js 3 replays the
    // buffered publish but the reply is not delivered), so wait for the client to reconnect.
    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') return;
    })();
    const pidBefore = server.pid;
    await server.kill();
    expect(server.pid).toBeUndefined();
    expect(await isNatsReachable(server.url, 300)).toBe(false);

    await server.restart();
    expect(server.pid).toBeGreaterThan(0);
    expect(server.pid).not.toBe(pidBefore);
    expect(await isNatsReachable(server.url, 1_000)).toBe(true);

    // The same client reconnects by itself to the same port.
    await reconnected;
    const jsm2 = await jetstreamManager(nc);
    const info = await jsm2.streams.info('RUNTIME_TEST');
    expect(info.state.messages).toBe(1);
    const stored = await jsm2.streams.getMessage('RUNTIME_TEST', { seq: 1 });
    expect(stored?.subject).toBe('runtime.test.a');
    expect(stored?.string()).toBe('hello');
    // The duplicate window survived too: the same msgID is still recognised.
    const again = await jetstream(nc).publish('runtime.test.a', 'hello', { msgID: 't1-1' });
    expect(again.duplicate).toBe(true);
    expect(again.seq).toBe(1);
  });

  it('stop() ends the server and removes the temporary store directory', async () => {
    const server = await startTestNats();
    const dir = server.storeDir;
    expect(dir.startsWith(tmpdir())).toBe(true);
    await server.stop();
    expect(await isNatsReachable(server.url, 300)).toBe(false);
    await expect(readFile(join(dir, 'nats-server.conf'))).rejects.toThrow(/ENOENT/);
  });

  it('writes the JetStream limits and sync interval into the config', async () => {
    const server = await startTestNats({ maxFileStore: 64 * 1024 * 1024, maxMemoryStore: 16 * 1024 * 1024, syncInterval: 'always' });
    cleanups.push(() => server.stop());
    const conf = await readFile(server.configFile, 'utf8');
    expect(conf).toContain('max_file_store: 67108864');
    expect(conf).toContain('max_memory_store: 16777216');
    if (server.version.minor >= 10 || server.version.major > 2) expect(conf).toContain('sync_interval: "always"');
    // The server-wide file store limit is enforced: a stream may not reserve more than it.
    const jsm = await jetstreamManager(await connected(server.url));
    const config = { subjects: ['limits.>'], storage: StorageType.File, discard: DiscardPolicy.New };
    await expect(jsm.streams.add({ ...config, name: 'TOO_BIG', max_bytes: 128 * 1024 * 1024 })).rejects.toThrow(/insufficient storage/i);
    await expect(jsm.streams.add({ ...config, name: 'FITS', max_bytes: 32 * 1024 * 1024 })).resolves.toBeDefined();
  });
});

describe('nats-server runtime - reachability', () => {
  it('recognises a NATS server by its INFO line, and nothing else', async () => {
    const server = await started();
    const info = await natsServerInfo(`nats://localhost:9,${server.url}`, 1_000);
    expect(info?.jetstream).toBe(true);
    expect(await isNatsReachable(server.url.replace('nats://', ''), 1_000)).toBe(true);

    // Something that answers, but not with INFO (e.g. an HTTP server on that port).
    const other: Server = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((ok) => other.listen(0, '127.0.0.1', () => ok()));
    cleanups.push(() => new Promise((ok) => other.close(ok)));
    const port = (other.address() as { port: number }).port;
    expect(await isNatsReachable(`nats://127.0.0.1:${port}`, 1_000)).toBe(false);
  });
});

describe('nats-server runtime - start-up failures', () => {
  it('names the cause and shows the server output when the port is taken', async () => {
    const first = await started();
    const dir = await mkdtemp(join(tmpdir(), 'tapflow-nats-fail-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const attempt = startNatsServer({ bin: process.env[TEST_NATS_BIN_ENV], storeDir: dir, jetstream: true, port: first.port, startTimeoutMs: 10_000 });
    await expect(attempt).rejects.toBeInstanceOf(NatsServerError);
    await expect(attempt).rejects.toThrow(/failed to start[\s\S]*address already in use/);
  });

  it('says how to install nats-server when the binary cannot run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tapflow-nats-fail-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await expect(startNatsServer({ bin: join(dir, 'no-such-nats-server'), storeDir: dir, jetstream: true })).rejects.toThrow(/NATS_SERVER_BIN/);
  });
});
