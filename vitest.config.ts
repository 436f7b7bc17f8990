import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // chdb allows one data directory per process: keep each test file in its own fork.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
