import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real local servers; two cores cannot run many at once.
    maxWorkers: 2,
    pool: 'forks',
    // s3rver (the local S3) pages listings past 1,000 keys with DES tokens, which OpenSSL 3
    // refuses without the legacy provider: a long rollout run's feedback listing needs them.
    execArgv: ['--openssl-legacy-provider'],
    env: {
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Handlers' Powertools INFO lines would drown the test output; warnings still show.
      POWERTOOLS_LOG_LEVEL: 'WARN',
    },
  },
});
