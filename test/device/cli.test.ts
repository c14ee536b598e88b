import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDevice } from '../../device/service.ts';
import { main } from '../../infra/cli/main.ts';
import { localStackFiles } from '../../shared/topology.ts';
import { MODEL, type Peers, startPeers } from './helpers.ts';

describe('edgeloop device / fleet-sim and the stdin source', () => {
  let peers: Peers;
  let broker: Peers['broker'];
  let dir: string;
  let csv: string;

  beforeAll(async () => {
    peers = await startPeers();
    ({ broker, dir, csv } = peers);
    await peers.release({ version: 1 });
  });

  afterAll(() => peers?.close());

  it('fleet-sim runs N gateways in one process and exits 0 once all results are acknowledged', async () => {
    // Prepare
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

    // Act
    const code = await main([
      'fleet-sim',
      '--devices',
      '3',
      '--model',
      MODEL,
      '--data-dir',
      dir,
      '--source',
      `csv:${csv}`,
      '--limit',
      '300',
      '--json',
    ]);
    const printed = out.mock.calls.map((call) => String(call[0])).join('');
    out.mockRestore();
    err.mockRestore();

    // Assess
    expect(code).toBe(0);
    const summary = JSON.parse(printed.trim().split('\n').at(-1) ?? '{}') as {
      devices: { thing: string; modelVersion: number; published: number }[];
    };
    expect(summary.devices.map((d) => [d.thing, d.modelVersion, d.published])).toEqual([
      ['sim-1', 1, 300],
      ['sim-2', 1, 300],
      ['sim-3', 1, 300],
    ]);
    for (const thing of ['sim-1', 'sim-2', 'sim-3'])
      expect([...broker.resultIds()].filter((id) => id.startsWith(`${thing}:`))).toHaveLength(300);
  });

  it('runs from a --config file alone (AWS-style: explicit endpoints, no local stack)', async () => {
    // Prepare
    const file = join(dir, 'device.json');
    await writeFile(
      file,
      JSON.stringify({
        thing: 'gw-config',
        model: MODEL,
        stateDir: join(dir, 'gw-config'),
        mqttEndpoint: broker.url,
        s3Endpoint: peers.s3.endpoint,
        publicKeyFile: join(dir, localStackFiles.signingPublicKey),
        source: `csv:${csv}`,
        limit: 50,
      }),
    );
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);

    // Act
    const code = await main([
      'device',
      '--config',
      file,
      '--data-dir',
      join(dir, 'no-stack-here'),
      '--json',
      '-q',
    ]);
    const printed = out.mock.calls.map((call) => String(call[0])).join('');
    out.mockRestore();

    // Assess
    expect(code).toBe(0);
    expect(JSON.parse(printed.trim().split('\n').at(-1) ?? '{}')).toMatchObject({
      thing: 'gw-config',
      published: 50,
    });
  });

  it('exits 2 with a one-line reason for bad usage', async () => {
    // Prepare
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

    // Act
    const codes = [
      await main(['device', '--thing', 'gw', '--data-dir', dir]),
      await main(['device', '--thing', 'gw', '--model', MODEL, '--limit', 'many', '--data-dir', dir]),
      await main(['fleet-sim', '--devices', '0', '--model', MODEL, '--data-dir', dir]),
    ];
    const messages = err.mock.calls.map((call) => String(call[0]).trim());
    err.mockRestore();

    // Assess
    expect(codes).toEqual([2, 2, 2]);
    expect(messages).toEqual([
      'edgeloop device: --model is required',
      "edgeloop device: --limit must be an integer >= 1, got 'many'",
      "edgeloop fleet-sim: --devices must be an integer >= 1, got '0'",
    ]);
  });

  it('answers JSON lines on stdin with one result line each and publishes them', async () => {
    // Prepare
    const lines: string[] = [];
    const input = Readable.from(['{"a": 1, "b": 1, "state": "hi"}\n', 'not json\n', '{"a": -2, "b": -1}\n']);

    // Act
    const device = await startDevice(
      peers.deviceOptions('gw-stdin', {
        source: { kind: 'stdin' },
        stdin: input,
        stdout: (line) => lines.push(line),
      }),
    );
    await device.finished;
    await device.stop();

    // Assess
    const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(parsed).toEqual([
      expect.objectContaining({ label: 'hi', truth: 'hi', version: 1 }),
      { error: expect.stringMatching(/^line 2: /), reason: 'unreadable' },
      expect.objectContaining({ label: 'lo', version: 1 }),
    ]);
    expect([...broker.resultIds()].filter((id) => id.startsWith('gw-stdin:'))).toHaveLength(2);
  });
});
