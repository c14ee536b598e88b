/**
 * No lost results, end to end: a real `edgeloop device` process replays 10,000 readings
 * through the local stack's broker, the results rule and the real aggregator, and is
 * SIGKILLed twice on the way. The aggregator (which counts each batch id once) must end with
 * exactly 10,000 distinct results: none lost by the kills, none counted twice by the replays.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBin } from '../../bench/support/cli.ts';
import { releaseDemoModel, startTestStack, until } from '../../bench/support/local-stack.ts';
import { localStatsSource, readModelStats } from '../../functions/aggregation/queries.ts';
import type { LocalStack } from '../../infra/local/stack.ts';

const MODEL = 'no-loss';
const N = 10_000;
let stack: LocalStack;
let workDir: string;
let csv: string;
const since = Date.now() - 60_000;

beforeAll(async () => {
  stack = await startTestStack();
  workDir = await mkdtemp(join(tmpdir(), 'edgeloop-no-loss-'));
  csv = join(workDir, 'readings.csv');
  await writeFile(csv, await releaseDemoModel(MODEL));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await rm(workDir, { recursive: true, force: true });
});

const aggregated = async () => (await readModelStats(localStatsSource(), MODEL, since)).inferences;

function device(): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    [
      cliBin,
      'device',
      '--thing',
      'gw-no-loss',
      '--model',
      MODEL,
      '--data-dir',
      stack.dataDir,
      '--state-dir',
      join(workDir, 'state'),
      '--source',
      `csv:${csv}`,
      '--rate',
      '4000',
      '--limit',
      String(N),
      '-q',
    ],
    { stdio: 'ignore' },
  );
  return { child, exit: new Promise((resolve) => child.on('exit', resolve)) };
}

describe('results through gateway crashes', () => {
  it('are all aggregated exactly once across two SIGKILLs of the device process', async () => {
    // Act: kill the gateway twice mid-stream, then let a third run finish.
    for (const threshold of [2_000, 6_000]) {
      const { child, exit } = device();
      await until(
        async () => (await aggregated()) >= threshold,
        `${threshold} results aggregated before the kill`,
      );
      child.kill('SIGKILL');
      await exit;
    }
    const code = await device().exit;
    await stack.idle();

    // Assess
    expect(code).toBe(0);
    await until(async () => (await aggregated()) >= N, `all ${N} results aggregated`);
    await stack.idle();
    expect(await aggregated()).toBe(N);
  });
});
