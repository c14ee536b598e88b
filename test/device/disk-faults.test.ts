/**
 * Storage faults on a real tmpfs (bench/support/tmpfs.ts; needs root, skipped elsewhere) and
 * the crash path of the device process: a write that meets a full disk is held, never
 * half-written; a model update without room is refused with that reason while the old
 * model serves; a read-only state dir is refused at start with what to do; an error nothing
 * caught ends the process with one line and exit 70, and the restart loses nothing.
 */
import { spawn } from 'node:child_process';
import { open, readdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBin } from '../../bench/support/cli.ts';
import { mountTmpfs, type Tmpfs, tmpfsUnavailable } from '../../bench/support/tmpfs.ts';
import { CRASH_EXIT_CODE } from '../../device/platform/crash.ts';
import { Outbox } from '../../device/results/outbox.ts';
import { type Device, startDevice } from '../../device/service.ts';
import { peerAvailable } from '../support/peers.ts';
import { MODEL, type Peers, postInfer, startPeers, type TestBroker, until } from './helpers.ts';

const canMount = peerAvailable('device disk fault', tmpfsUnavailable, 'run as root on Linux');

const STACK_DUMP = /\n\s+at |function\(|var [a-zA-Z_$]+=|\.wasm/;

/** Fills `dir`'s filesystem with a ballast file until only `leave` bytes are free (0: until ENOSPC). */
async function fillDisk(dir: string, leave = 0): Promise<string> {
  const path = join(dir, 'ballast');
  const handle = await open(path, 'w');
  try {
    const chunk = Buffer.alloc(4096, 1);
    for (;;) {
      const s = await statfs(dir);
      if (s.bavail * s.bsize <= leave + chunk.length) break;
      await handle.write(chunk);
    }
    if (leave === 0) await handle.write(Buffer.alloc(64 * 1024)).catch(() => undefined);
  } finally {
    await handle.close();
  }
  return path;
}

/**
 * Distinct CSV result ids (`thing:position`) of `thing` at the broker, and those results
 * counted once per batch id (as the aggregator counts them).
 */
function delivered(broker: TestBroker, thing: string): { ids: number; counted: number } {
  const ids = new Set<string>();
  const batches = new Map<string, number>();
  const csvId = new RegExp(`^${thing}:\\d+$`);
  for (const batch of broker.batches) {
    const mine = batch.results.filter((result) => csvId.test(result.id));
    if (mine.length === 0) continue;
    batches.set(batch.batchId, mine.length);
    for (const result of mine) ids.add(result.id);
  }
  return { ids: ids.size, counted: [...batches.values()].reduce((a, b) => a + b, 0) };
}

describe.runIf(canMount)('storage faults on a real tmpfs', () => {
  let peers: Peers;
  const disks: Tmpfs[] = [];
  const devices: Device[] = [];

  beforeAll(async () => {
    peers = await startPeers(64);
    await peers.release({ version: 1 });
  });

  afterAll(async () => {
    await Promise.all(devices.map((device) => device.stop()));
    for (const disk of disks) await disk.unmount();
    await peers?.close();
  });

  async function disk(size: string, mode: 'ro' | 'rw' = 'rw') {
    const mounted = await mountTmpfs(size, mode);
    disks.push(mounted);
    return mounted;
  }

  it('holds a batch the full disk refused, leaves no temp file and stores it once there is room', async () => {
    // Prepare
    const fs = await disk('256k');
    const outbox = await Outbox.open(join(fs.dir, 'outbox'));
    const ballast = await fillDisk(fs.dir);
    let settled = false;

    // Act
    const appended = outbox
      .append({
        model: MODEL,
        version: 1,
        results: [{ id: 'r-1', ts: 1, label: 'hi', confidence: 0.9, latencyMs: 1 }],
      })
      .finally(() => {
        settled = true;
      });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const whileFull = { settled, files: await readdir(join(fs.dir, 'outbox')) };
    await rm(ballast);
    const accepted = await appended;
    const reopened = await Outbox.open(join(fs.dir, 'outbox'));

    // Assess
    expect(whileFull).toEqual({ settled: false, files: [] });
    expect(accepted).toBe(true);
    expect(reopened.depthResults).toBe(1);
  });

  it('refuses a model update the disk has no room for, keeps serving the old one, and installs it once there is room', async () => {
    // Prepare: the replay is done and published, so nothing but the update writes while the
    // disk is full and its free space is exactly what the fill left.
    const fs = await disk('1m');
    const thing = 'gw-update-full';
    const limit = 3_000;
    const reserve = 64 * 1024;
    const device = await startDevice(
      peers.deviceOptions(thing, {
        stateDir: fs.dir,
        httpPort: 0,
        statusIntervalMs: 500,
        diskReserveBytes: reserve,
        source: { kind: 'csv', file: peers.csv, rate: 1_000, limit },
      }),
    );
    devices.push(device);
    await device.waitFor((s) => s.version === 1 && s.finished, 30_000);
    // 8 KiB above the reserve: less than any model takes (each of its 3 files costs a block more).
    const ballast = await fillDisk(fs.dir, reserve + 8 * 1024);
    await device.waitFor((s) => s.disk?.state === 'full' && s.disk.sourcePaused, 20_000);

    // Act: version 2 is released while the disk is full.
    await peers.release({ version: 2 });
    const refused = await device.waitFor((s) => s.lastError !== null, 20_000);
    const answer = await postInfer(device.httpPort ?? 0, { a: 1, b: 1 });
    await rm(ballast);
    const updated = await device.waitFor((s) => s.version === 2, 20_000);
    await device.finished;

    // Assess
    expect(refused).toMatchObject({ version: 1, disk: { state: 'full', sourcePaused: true } });
    expect(refused.lastError).toMatchObject({ step: 'stage', version: 2 });
    expect(refused.lastError?.reason).toMatch(/not enough disk space.*v2 is not staged and v1 keeps serving/);
    expect(answer).toMatchObject({ status: 200, body: { version: 1 } });
    expect(updated.lastError).toBeNull();
    expect(delivered(peers.broker, thing)).toEqual({ ids: limit, counted: limit });
    expect(peers.broker.statuses.some((s) => s.thing === thing && s.status.disk?.state === 'full')).toBe(
      true,
    );
  });

  it('pauses when another writer fills the disk under a running device, and loses nothing once it is freed', async () => {
    // Prepare
    const fs = await disk('1m');
    const thing = 'gw-filled';
    const limit = 3_000;
    const device = await startDevice(
      peers.deviceOptions(thing, {
        stateDir: fs.dir,
        statusIntervalMs: 500,
        source: { kind: 'csv', file: peers.csv, rate: 1_000, limit },
      }),
    );
    devices.push(device);
    await device.waitFor((s) => s.published >= 500, 20_000);

    // Act: the disk fills to the last byte (ENOSPC for every write), then is freed.
    const ballast = await fillDisk(fs.dir);
    const full = await device.waitFor((s) => s.disk?.sourcePaused === true, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const stillPaused = device.status();
    await rm(ballast);
    await device.finished;

    // Assess
    expect(full.disk?.state).toBe('full');
    expect(stillPaused).toMatchObject({ disk: { sourcePaused: true }, dropped: 0 });
    expect(stillPaused.position).toBeLessThan(limit);
    expect(device.status()).toMatchObject({ dropped: 0, disk: { sourcePaused: false } });
    expect(delivered(peers.broker, thing)).toEqual({ ids: limit, counted: limit });
  });

  it('applies the overflow policy at the disk reserve for a source that cannot pause, and reports the dropped count', async () => {
    // Prepare: the broker goes away once v1 serves, so nothing leaves the outbox; POST /infer cannot be paused.
    const fs = await disk('512k');
    const reserve = 128 * 1024;
    const device = await startDevice(
      peers.deviceOptions('gw-reserve', {
        stateDir: fs.dir,
        httpPort: 0,
        diskReserveBytes: reserve,
        batch: { maxResults: 20, maxAgeMs: 20 },
        outbox: { overflow: 'drop-oldest' },
      }),
    );
    devices.push(device);
    await device.waitFor((s) => s.version !== null, 20_000);
    await peers.broker.stop();
    let lowest = Number.POSITIVE_INFINITY;
    let status: ReturnType<typeof device.status>;

    // Act
    try {
      for (let round = 0; round < 400 && device.status().dropped === 0; round++) {
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            postInfer(device.httpPort ?? 0, { a: i / 10, b: round / 100 }),
          ),
        );
        const s = await statfs(fs.dir);
        lowest = Math.min(lowest, s.bavail * s.bsize);
      }
      // The disk watch samples on its own clock: wait for the state it reports, not for a time
      // (nothing drains while the broker is away, so the state holds once reached).
      status = await device.waitFor((s) => s.dropped > 0 && s.disk?.state === 'full', 20_000);
    } finally {
      await peers.broker.start();
    }

    // Assess
    expect(status.dropped).toBeGreaterThan(0);
    expect(status.disk).toMatchObject({ state: 'full', reserveBytes: reserve });
    expect(lowest).toBeGreaterThan(reserve / 2);
  });

  it('refuses a read-only state dir at start with what, where and how to fix it', async () => {
    // Prepare
    const fs = await disk('64k', 'ro');

    // Act
    const run = await runBin([
      'device',
      '--thing',
      'gw-read-only',
      '--model',
      MODEL,
      '--data-dir',
      peers.dir,
      '--state-dir',
      fs.dir,
      '--source',
      `csv:${peers.csv}`,
      '--limit',
      '10',
    ]);

    // Assess
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^edgeloop device: the state dir ${fs.dir} is not writable \\(EROFS\\).*remount it read-write.*--state-dir`,
        ),
      ),
    ]);
  });
});

describe('an error nothing caught in the device process', () => {
  let peers: Peers;

  beforeAll(async () => {
    peers = await startPeers(64);
    await peers.release({ version: 1 });
  });

  afterAll(() => peers?.close());

  it('ends it with one line naming the error and the step, exit 70, and the restart loses nothing', async () => {
    // Prepare
    const thing = 'gw-bug';
    const limit = 6_000;
    const args = ['--thing', thing, '--model', MODEL, '--data-dir', peers.dir];
    const source = ['--source', `csv:${peers.csv}`, '--rate', '1000', '--limit', String(limit), '-q'];
    const fixture = join(import.meta.dirname, 'fixtures', 'bug-while-serving.ts');

    // Act
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, '3000', ...args, ...source], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const restart = await runBin(['device', ...args, ...source]);
    await until(() => delivered(peers.broker, thing).ids >= limit, 20_000, 'every result after the restart');

    // Assess
    expect(code, output).toBe(CRASH_EXIT_CODE);
    expect(output.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^edgeloop device: unexpected rejection during step 'serve': Error: simulated bug in a timer .*exiting 70/,
      ),
    ]);
    expect(output).not.toMatch(STACK_DUMP);
    expect(restart.code, restart.stderr).toBe(0);
    expect(delivered(peers.broker, thing)).toEqual({ ids: limit, counted: limit });
  });
});
