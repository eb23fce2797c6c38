import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    benchmark: { include: ['test/**/*.bench.ts'] },
    // Kernel tests create namespaces; keep files serial-ish on 2-core machines.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ['test/host-invariance.setup.ts'],
    setupFiles: ['test/helpers/fast-check-seed.ts'],
  },
});
