import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // chdb allows one data directory per process: keep each test file in its own fork.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    // The fault suite has its own run: npm run faults (vitest.faults.config.ts).
    exclude: ['test/faults/**', '**/node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
