import { defineConfig } from 'vitest/config';

// Two projects: `broker` (unit + integration against a real listening server, plus the
// skill scripts driven against a live broker) and `e2e` (real images in Docker).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'broker',
          include: ['broker/test/**/*.test.ts', 'skill/test/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['e2e/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
