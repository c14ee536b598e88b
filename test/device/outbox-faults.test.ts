import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevice } from '../../device/service.ts';
import { MODEL, type Peers, startPeers, type TestBroker, until } from './helpers.ts';

const bin = join(import.meta.dirname, '..', '..', 'infra', 'cli', 'bin.js');
const N = 10_000;

function idsOf(broker: TestBroker, thing: string): Set<string> {
  return new Set([...broker.resultIds()].filter((id) => id.startsWith(`${thing}:`)));
}

function expectedIds(thing: string): Set<string> {
  return new Set(Array.from({ length: N }, (_, i) => `${thing}:${i}`));
}

describe('no result is lost through SIGKILLs and broker outages', () => {
  let peers: Peers;
  let broker: TestBroker;
  let dir: string;
  let csv: string;

  beforeAll(async () => {
    peers = await startPeers(333);
    ({ broker, dir, csv } = peers);
    await peers.release({ version: 1 });
  });

  afterAll(() => peers?.close());

  function runCli(
    thing: string,
    limit = N,
  ): {
    child: ChildProcess;
    exit: Promise<{ code: number | null; out: string }>;
  } {
    const child = spawn(
      process.execPath,
      [
        bin,
        'device',
        '--thing',
        thing,
        '--model',
        MODEL,
        '--data-dir',
        dir,
        '--source',
        `csv:${csv}`,
        '--rate',
        '3000',
        '--limit',
        String(limit),
        '--json',
        '-q',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exit = new Promise<{ code: number | null; out: string }>((resolve) =>
      child.on('exit', (code) => resolve({ code, out })),
    );
    return { child, exit };
  }

  it('yields exactly N distinct result ids from `edgeloop device --limit N` across 3 SIGKILLs', async () => {
    // Prepare
    const thing = 'gw-kill';

    // Act: kill the gateway three times mid-stream, then let it finish.
    for (const threshold of [1_500, 4_000, 6_500]) {
      const { child, exit } = runCli(thing);
      await until(
        () => idsOf(broker, thing).size >= threshold,
        60_000,
        `${threshold} results before the kill`,
      );
      child.kill('SIGKILL');
      await exit;
    }
    const last = await runCli(thing).exit;

    // Assess
    expect(last.code, last.out).toBe(0);
    expect(JSON.parse(last.out.trim().split('\n').at(-1) ?? '{}')).toMatchObject({
      modelVersion: 1,
      outboxDepth: 0,
    });
    expect(idsOf(broker, thing)).toEqual(expectedIds(thing));
  });

  it('stops cleanly on SIGTERM (exit 0, state saved) and the restart continues where it stopped', async () => {
    // Prepare
    const thing = 'gw-term';
    const limit = 3_000;
    const { child, exit } = runCli(thing, limit);
    await until(() => idsOf(broker, thing).size >= 500, 60_000, 'results before SIGTERM');

    // Act
    child.kill('SIGTERM');
    const stopped = await exit;
    const afterStop = idsOf(broker, thing).size;
    const resumed = await runCli(thing, limit).exit;

    // Assess
    expect(stopped.code, stopped.out).toBe(0);
    expect(afterStop).toBeLessThan(limit);
    expect(resumed.code, resumed.out).toBe(0);
    expect(idsOf(broker, thing)).toEqual(new Set(Array.from({ length: limit }, (_, i) => `${thing}:${i}`)));
  });

  it('loses nothing through a 10 s broker outage (aedes stopped and restarted on the same port)', async () => {
    // Prepare
    const thing = 'gw-outage';
    const device = await startDevice(
      peers.deviceOptions(thing, {
        source: { kind: 'csv', file: csv, rate: 1_000, limit: N },
        reconnect: { maxMs: 2_000 },
      }),
    );
    await until(() => idsOf(broker, thing).size >= 1_000, 30_000, 'results before the outage');

    // Act
    await broker.stop();
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const duringOutage = device.status();
    await broker.start();
    await device.finished;
    await device.stop();

    // Assess
    expect(duringOutage.connected).toBe(false);
    expect(duringOutage.outboxDepth).toBeGreaterThan(0);
    expect(idsOf(broker, thing)).toEqual(expectedIds(thing));
  }, 90_000);
});
