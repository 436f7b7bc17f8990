/**
 * A throw-away nats-server for one test file: free port, JetStream store in a fresh temporary
 * directory, removed again by stop().
 */
import { fileStoreNeeded } from '../../src/bus/topology.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNatsServer, startNatsServer, type NatsServerHandle, type StartNatsServerOptions } from '../../src/runtime/nats-server.js';
import { TEST_NATS_BIN_ENV } from './global-setup.js';

/** Options passed through to startNatsServer (limits, sync interval…). */
export type TestNatsOptions = Omit<StartNatsServerOptions, 'storeDir' | 'jetstream' | 'bin'>;

/**
 * Starts nats-server for a test. stop() also deletes the store directory; kill() and
 * restart() keep it (that is what restart tests need).
 */
export async function startTestNats(opts: TestNatsOptions = {}): Promise<NatsServerHandle> {
  // Set by test/support/global-setup.ts; looked up here when a file runs without it.
  const bin = process.env[TEST_NATS_BIN_ENV] || (await ensureNatsServer({ install: false, log: { info: () => {}, warn: () => {} } }));
  const storeDir = await mkdtemp(join(tmpdir(), 'tapflow-nats-'));
  let server: NatsServerHandle;
  try {
    // Room for the streams' default size limits whatever the (shared) disk has free: tests
    // write megabytes, but every stream reserves TAPFLOW_STREAM_MAX_BYTES.
    server = await startNatsServer({ maxFileStore: fileStoreNeeded(), ...opts, bin, storeDir, jetstream: true, port: opts.port ?? 0 });
  } catch (err) {
    await rm(storeDir, { recursive: true, force: true });
    throw err;
  }
  const stop = async () => {
    await server.stop();
    await rm(storeDir, { recursive: true, force: true });
  };
  // A wrapper object, not a spread: `pid` is a getter on the server.
  return {
    get url() {
      return server.url;
    },
    get port() {
      return server.port;
    },
    get storeDir() {
      return server.storeDir;
    },
    get configFile() {
      return server.configFile;
    },
    get version() {
      return server.version;
    },
    get pid() {
      return server.pid;
    },
    stop,
    kill: () => server.kill(),
    restart: () => server.restart(),
  };
}
