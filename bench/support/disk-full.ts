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
  /**
   * Distinct results the aggregator counted for the model (each batch id once), once the
   * stack is idle; `{ settled: false }` reads at once (a gateway publishing all the time
   * keeps the stack from ever being idle).
   */
  aggregated(options?: { settled?: boolean }): Promise<number>;
  /**
   * Waits until `target` results are aggregated; fails at once when `gateway` exits non-zero,
   * and a failure says how many were aggregated, how the gateway ended and its log.
   */
  waitAggregated(target: number, gateway: GatewayProcess, timeoutMs?: number): Promise<void>;
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
  const aggregated = async ({ settled = true } = {}) => {
    if (settled) await stack?.idle();
    return (await readModelStats(localStatsSource(), model, since)).inferences;
  };
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
    aggregated,
    async waitAggregated(target, gateway, timeoutMs = 90_000) {
      let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      void gateway.exit.then((exit) => {
        ended = exit;
      });
      const deadline = Date.now() + timeoutMs;
      for (let count = await aggregated(); count < target; count = await aggregated()) {
        // A gateway that failed will not publish the rest: say so now, with its log.
        const failed = ended !== undefined && ended.code !== 0;
        if (failed || Date.now() > deadline)
          throw new Error(
            `${failed ? 'the gateway ended' : `timed out after ${timeoutMs} ms`} waiting for ${target} results aggregated (${count} are; the gateway ${ended ? `exited ${JSON.stringify(ended)}` : 'still runs'}); its log ends:\n${gateway.output().slice(-3000)}`,
          );
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
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
