/**
 * The whole loop through the real local servers, driven the way a user drives it:
 * `edgeloop demo --devices 3 --json` in a child process. No mocks on this path: the local S3,
 * dynalite, aedes with the thing policy, the Publish shim, the real train and aggregator
 * handlers, and three device services on the SDK's MQTT client.
 */
import { describe, expect, it } from 'vitest';
import { runBin } from '../../bench/support/cli.ts';
import { WHOLE_LOOP_TEST_MS, WHOLE_LOOP_WAIT_MS } from './whole-loop.ts';

describe('edgeloop demo', { timeout: WHOLE_LOOP_TEST_MS }, () => {
  it('turns the demo dataset into a model that every gateway runs, and counts every result', async () => {
    // Act
    const run = await runBin(['demo', '--devices', '3', '--readings', '300', '--json'], WHOLE_LOOP_WAIT_MS);

    // Assess
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    const summary = JSON.parse(lines[lines.length - 1] ?? '');
    expect(summary.model).toBe('demo-sensors');
    expect(Number.isInteger(summary.version) && summary.version >= 1).toBe(true);
    expect(summary.metrics.accuracy).toBeGreaterThan(0.8);
    expect(summary.metrics.accuracy).toBeLessThanOrEqual(1);
    expect(summary.devices).toHaveLength(3);
    for (const device of summary.devices) expect(device.modelVersion).toBe(summary.version);
    expect(summary.results.published).toBe(3 * 300);
    expect(summary.results.aggregated).toBe(summary.results.published);
    for (const key of ['trainMs', 'rolloutMs', 'totalMs']) expect(summary.timings[key]).toBeGreaterThan(0);
    expect(summary.timings.totalMs).toBeGreaterThanOrEqual(
      summary.timings.trainMs + summary.timings.rolloutMs,
    );
    // Progress goes to stderr, phase by phase.
    for (const phase of ['stack', 'upload', 'train', 'rollout', 'results'])
      expect(run.stderr).toContain(`[${phase}`);
  });
});

describe('bad CLI input', () => {
  it.each([
    [['train', 'no-such-file.csv', '--model', 'm'], /no such file/],
    [['demo', '--bogus'], /Unknown option '--bogus'/],
    [['upload', 'package.json'], /--model is required/],
    [['demo', '--devices', 'many'], /--devices must be an integer/],
    [['nope'], /unknown command 'nope'/],
  ])('%j exits 2 with a one-line reason', async (args, reason) => {
    const run = await runBin(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(reason);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
