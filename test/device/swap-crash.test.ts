import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwapPoint } from '../../device/model/updater.ts';
import { startDevice } from '../../device/service.ts';
import { localStackFiles } from '../../shared/topology.ts';
import { type Peers, startPeers } from './helpers.ts';

const fixture = join(import.meta.dirname, 'fixtures', 'crash-at-swap-point.ts');
const points: SwapPoint[] = ['staged', 'verified', 'switched'];
/** After a crash at this point, the model that must load on restart. */
const expectedVersion: Record<SwapPoint, number> = { staged: 1, verified: 1, switched: 2 };

describe('a crash at each swap step leaves a loadable model', () => {
  let peers: Peers;

  beforeAll(async () => {
    peers = await startPeers();
  });

  afterAll(() => peers?.close());

  /** Restarts on the state dir without a broker: whatever serves came from disk. */
  async function versionOnRestart(stateDir: string) {
    // Nothing listens on port 9: whatever serves came from disk.
    const device = await startDevice(
      peers.deviceOptions('gw-restart', { stateDir, mqttEndpoint: 'mqtt://127.0.0.1:9', httpPort: 0 }),
    );
    const answer = await fetch(`http://127.0.0.1:${device.httpPort}/infer`, {
      method: 'POST',
      body: JSON.stringify({ a: 1, b: 1 }),
      headers: { 'content-type': 'application/json' },
    });
    const version = device.status().version;
    await device.stop();
    return { version, status: answer.status };
  }

  it.each(points)('survives an in-process crash right after %s (test hook)', async (point) => {
    // Prepare
    const stateDir = join(peers.dir, `hook-${point}`);
    await peers.release({ version: 1 });
    const device = await startDevice(
      peers.deviceOptions('gw-hook', {
        stateDir,
        onSwapPoint: (reached, version) => {
          if (reached === point && version === 2) throw new Error(`simulated crash after ${point}`);
        },
      }),
    );
    await device.waitFor((s) => s.version === 1, 20_000);

    // Act
    await peers.release({ version: 2 });
    await device.waitFor((s) => s.lastError !== null || s.version === 2, 20_000);
    await device.stop();
    const restarted = await versionOnRestart(stateDir);

    // Assess
    expect(restarted).toEqual({ version: expectedVersion[point], status: 200 });
  });

  it.each(points)('survives SIGKILL of the device process right after %s', async (point) => {
    // Prepare
    const stateDir = join(peers.dir, `kill-${point}`);
    await peers.release({ version: 1 });
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        fixture,
        stateDir,
        peers.broker.url,
        peers.s3.endpoint,
        join(peers.dir, localStackFiles.signingPublicKey),
        point,
        '2',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('serving 1') && resolve());
      child.on('exit', () => reject(new Error('the device child exited before serving v1')));
    });

    // Act
    await peers.release({ version: 2 });
    const signal = await exited;
    const restarted = await versionOnRestart(stateDir);

    // Assess
    expect(signal).toBe('SIGKILL');
    expect(restarted).toEqual({ version: expectedVersion[point], status: 200 });
  });
});
