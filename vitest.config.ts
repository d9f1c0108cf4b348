import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real node processes; two cores leave no room for more parallelism.
    maxWorkers: 2,
    // After-hooks run last registered first: fixtures such as useControlPlane() rely on it.
    sequence: { hooks: 'stack' },
  },
});
