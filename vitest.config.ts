import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.{ts,tsx}'],
    // @oclif/test captures command output through console.log; vitest must not swallow it.
    disableConsoleIntercept: true,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: keep integration tests from starving each other.
    maxWorkers: 2,
    coverage: { provider: 'v8', include: ['services/**', 'cli/**', 'simulator/**'] },
  },
});
