/**
 * The full-disk scenario of issue 15, for the fault test and bench/disk-full.ts: a real
 * `edgeloop device` replays a CSV with its state dir on a small tmpfs while the whole local
 * stack is stopped, so its outbox fills the disk; the stack comes back (same data dir, same
 * ports) and every result must be aggregated exactly once.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localStatsSource, readModelStats } from '../../functions/aggregation/queries.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { type GatewayProcess, startGateway } from './gateway-process.ts';
import { releaseDemoModel } from './local-stack.ts';
import { mountTmpfs, type Tmpfs } from './tmpfs.ts';

export interface DiskFullBed {
  dataDir: string;
  csv: string;
  model: string;
  stack(): LocalStack | undefined;
  /** Stops the whole local stack (its handlers finish first), or starts it again on the same data dir. */
  stopStack(): Promise<void>;
  startStack(): Promise<void>;
  /** Distinct results the aggregator counted for the model (each batch id once). */
  aggregated(): Promise<number>;
  /** Mounts a tmpfs for a gateway's state dir (unmounted by close). */
  stateDisk(size: string): Promise<Tmpfs>;
  gateway(
    thing: string,
    stateDir: string,
    o: { limit: number; rate: number; extra?: string[] },
  ): GatewayProcess;
  close(): Promise<void>;
}

export async function startDiskFullBed(model: string): Promise<DiskFullBed> {
  const dataDir = await mkdtemp(join(tmpdir(), 'edgeloop-disk-full-'));
  const since = Date.now() - 60_000;
  let stack: LocalStack | undefined = await startLocalStack({ dataDir });
  const disks: Tmpfs[] = [];
  const csv = join(dataDir, 'readings.csv');
  await writeFile(csv, await releaseDemoModel(model));
  return {
    dataDir,
    csv,
    model,
    stack: () => stack,
    async stopStack() {
      await stack?.stop();
      stack = undefined;
    },
    async startStack() {
      stack ??= await startLocalStack({ dataDir });
    },
    async aggregated() {
      await stack?.idle();
      return (await readModelStats(localStatsSource(), model, since)).inferences;
    },
    async stateDisk(size) {
      const disk = await mountTmpfs(size);
      disks.push(disk);
      return disk;
    },
    gateway(thing, stateDir, o) {
      return startGateway([
        '--thing',
        thing,
        '--model',
        model,
        '--data-dir',
        dataDir,
        '--state-dir',
        stateDir,
        '--source',
        `csv:${csv}`,
        '--rate',
        String(o.rate),
        '--limit',
        String(o.limit),
        '--json',
        ...(o.extra ?? []),
      ]);
    },
    async close() {
      await stack?.stop();
      for (const disk of disks) await disk.unmount();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** What the gateway's log says about a pause for the disk (see device/service.ts). */
export function pauseFigures(log: string): {
  storedWhileFull: number | undefined;
  pausedMs: number | undefined;
  resumeAfterFreeingMs: number | undefined;
} {
  const paused = log.match(/source paused with (\d+) results stored in the outbox/);
  const waited = log.match(/the source waits until the (\d+) results in the outbox drained/);
  const resumed = log.match(
    /source resumed after (\d+) ms paused(?: \((\d+) ms after the disk began to free\))?/,
  );
  const stored = paused?.[1] ?? waited?.[1];
  return {
    storedWhileFull: stored !== undefined ? Number(stored) : undefined,
    pausedMs: resumed?.[1] !== undefined ? Number(resumed[1]) : undefined,
    resumeAfterFreeingMs: resumed?.[2] !== undefined ? Number(resumed[2]) : undefined,
  };
}

/** The `--json` summary line `edgeloop device` prints last. */
export function summaryOf(log: string): { dropped?: number; outboxDepth?: number; published?: number } {
  const line = log
    .trim()
    .split('\n')
    .reverse()
    .find((candidate) => candidate.startsWith('{"thing"'));
  return line ? JSON.parse(line) : {};
}
