import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run faults`, test/faults): roles killed, nats-server restarted, the
 * store unavailable, replicas added and removed, a JetStream cluster losing a node. Kept out of
 * `npm test` (vitest.config.ts excludes test/faults); CI runs it after npm test.
 */
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
