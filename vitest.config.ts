import { defineConfig } from 'vitest/config';

/**
 * Tests that run a whole fleet (20-30 device services, the aggregators and the rollout
 * controller in one process) for minutes. Their load is set by the clock, not by the test's
 * progress, so sharing two cores with other test files starves the local stack until its
 * queues grow without bound: they run after the rest, on their own.
 */
const FLEET_TESTS = ['test/rollout/rollout.test.ts'];

export default defineConfig({
  test: {
    // A cap, not a wait: a training test that takes 19 s alone took 51-60 s beside another
    // worker's heavy test on a slower 2-core machine of the same kind.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests start real local servers; two cores cannot run many at once.
    maxWorkers: 2,
    pool: 'forks',
    env: {
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Handlers' Powertools INFO lines would drown the test output; warnings still show.
      POWERTOOLS_LOG_LEVEL: 'WARN',
    },
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: FLEET_TESTS,
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'fleet', include: FLEET_TESTS, sequence: { groupOrder: 1 } } },
    ],
  },
});
