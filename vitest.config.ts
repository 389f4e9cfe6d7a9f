import { defineConfig } from 'vitest/config';

// Three projects: `broker` (unit + integration against a real listening server, plus the
// skill scripts driven against a live broker), `console` (the web console in a real Chromium
// against a real broker) and `e2e` (real images in Docker).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'broker',
          include: ['broker/test/**/*.test.ts', 'skill/test/**/*.test.ts'],
          exclude: ['broker/test/console/**'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'console',
          include: ['broker/test/console/**/*.test.ts'],
          // Chromium starts slowly on a busy machine; one browser per file, files one at a time.
          testTimeout: 180_000,
          hookTimeout: 120_000,
          expect: { poll: { timeout: 20_000, interval: 100 } },
          fileParallelism: false,
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
