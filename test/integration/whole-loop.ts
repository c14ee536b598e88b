/**
 * Vitest's cap for a test that runs the whole loop (train, release, gateways, aggregates). The
 * demo waits for each state it needs, each wait for up to its own timeout, so the test must not
 * be cut off at vitest's default (120 s) on a loaded machine: these took 25-31 s in CI and were
 * cut off at load 3-5 on two cores.
 */
export const WHOLE_LOOP_TEST_MS = 240_000;

/** How long the demo may wait for one state within such a test. */
export const WHOLE_LOOP_WAIT_MS = 200_000;
