/**
 * The OPC UA source against a real node-opcua server started here: three variables change
 * together at 50 Hz with a source timestamp; their changes arrive merged into one reading per
 * timestamp; a bad status and a non-numeric value are counted as malformed; and the source
 * comes back after the server is replaced by a new process-like instance on the same port
 * (no session or subscription survives it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPCUACertificateManager } from 'node-opcua-certificate-manager';
import { DataType, StatusCodes, Variant } from 'node-opcua-client';
import { OPCUAServer } from 'node-opcua-server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { OpcuaSource } from '../../device/sources/opcua/opcua-source.ts';
import { parseOpcuaSettings, parseOpcuaUrl } from '../../device/sources/opcua/settings.ts';
import { freePort, recordingSink } from './recording-sink.ts';

const TICK_MS = 20; // 50 Hz

interface TestServer {
  startedInMs: number;
  stop(): Promise<void>;
}

/**
 * Pump-1's Temperature, Speed and Pressure are set together every tick to k, 2k and 3k with
 * one source timestamp; pump-2's Broken has a bad status and its Label is a string.
 */
async function startServer(port: number, pkiDir: string): Promise<TestServer> {
  const began = Date.now();
  const server = new OPCUAServer({
    port,
    resourcePath: '/UA/Test',
    // Advertising 0 makes exception-based items deliver every change, not one per 50 ms window.
    serverCapabilities: { minSupportedSampleRate: 0 },
    serverCertificateManager: new OPCUACertificateManager({
      rootFolder: pkiDir,
      automaticallyAcceptUnknownCertificate: true,
    }),
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  if (!addressSpace) throw new Error('the test server has no address space');
  const namespace = addressSpace.getOwnNamespace();
  const variable = (name: string, dataType: 'Double' | 'String') =>
    namespace.addVariable({
      organizedBy: addressSpace.rootFolder.objects,
      nodeId: `s=${name}`,
      browseName: name,
      dataType,
      minimumSamplingInterval: 0,
    });
  const pump = ['Temperature', 'Speed', 'Pressure'].map((name) => variable(name, 'Double'));
  const broken = variable('Broken', 'Double');
  const label = variable('Label', 'String');
  let tick = 0;
  const timer = setInterval(() => {
    tick++;
    const time = new Date();
    for (const [i, node] of pump.entries())
      node.setValueFromSource(
        new Variant({ dataType: DataType.Double, value: tick * (i + 1) }),
        StatusCodes.Good,
        time,
      );
    if (tick % 25 === 0) {
      broken.setValueFromSource(
        new Variant({ dataType: DataType.Double, value: tick }),
        StatusCodes.BadSensorFailure,
        time,
      );
      label.setValueFromSource(
        new Variant({ dataType: DataType.String, value: `batch ${tick}` }),
        StatusCodes.Good,
        time,
      );
    }
  }, TICK_MS);
  await server.start();
  return {
    startedInMs: Date.now() - began,
    stop: async () => {
      clearInterval(timer);
      await server.shutdown(0);
    },
  };
}

let dir: string;
let port: number;
let server: TestServer | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeloop-opcua-'));
  port = await freePort();
  server = await startServer(port, join(dir, 'server-pki'));
  console.log(`node-opcua server started in ${server.startedInMs} ms`);
});

afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

function settings() {
  return parseOpcuaSettings({
    kind: 'opcua',
    endpoint: `opc.tcp://127.0.0.1:${port}/UA/Test`,
    securityMode: 'None',
    securityPolicy: 'None',
    pkiDir: join(dir, 'client-pki'),
    samplingIntervalMs: 0,
    publishingIntervalMs: 100,
    series: 'pump-1',
    nodes: [
      { nodeId: 'ns=1;s=Temperature', channel: 'temp' },
      { nodeId: 'ns=1;s=Speed', channel: 'speed' },
      { nodeId: 'ns=1;s=Pressure', channel: 'pressure' },
      { nodeId: 'ns=1;s=Broken', channel: 'broken', series: 'pump-2' },
      { nodeId: 'ns=1;s=Label', channel: 'label', series: 'pump-2' },
      { nodeId: 'ns=1;s=Nowhere', channel: 'nowhere', series: 'pump-2' },
    ],
  });
}

const MULTIPLIER: Record<string, number> = { temp: 1, speed: 2, pressure: 3 };

/** Pump-1's readings with all three channels, each true to its tick (the merge kept them together). */
function wholeReadings(sink: ReturnType<typeof recordingSink>) {
  return sink.readings.filter((reading) => {
    const { temp, speed, pressure } = reading.values as Record<string, number>;
    return reading.series === 'pump-1' && temp !== undefined && speed === 2 * temp && pressure === 3 * temp;
  });
}

describe('OPC UA source', () => {
  it('merges three 50 Hz variables into readings at their source time, counts bad ones, and survives a server restart', async () => {
    const source = new OpcuaSource(settings(), { reconnect: { minMs: 200, maxMs: 1_000 } });
    const sink = recordingSink();
    const started = Date.now();
    await source.start(sink);
    try {
      await vi.waitFor(() => expect(wholeReadings(sink).length).toBeGreaterThan(50), {
        timeout: 20_000,
        interval: 50,
      });
      console.log(`50 whole readings ${Date.now() - started} ms after start`);
      expect(sink.states).toEqual(['connecting', 'connected']);
      // Every reading holds one tick's values (the merge never mixes timestamps), and nearly all
      // hold the three: a tick's changes share one source timestamp.
      const pump1 = sink.readings.filter((reading) => reading.series === 'pump-1');
      for (const { values } of pump1) {
        const ticks = Object.entries(values).map(
          ([channel, value]) => (value as number) / (MULTIPLIER[channel] ?? Number.NaN),
        );
        expect(new Set(ticks).size).toBe(1);
      }
      expect(wholeReadings(sink).length).toBeGreaterThan(pump1.length * 0.9);
      const times = pump1.map((reading) => reading.time ?? 0);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(new Set(times).size).toBe(times.length);
      expect(times[0]).toBeGreaterThan(started - 1_000);
      expect(sink.readings.some((reading) => reading.series === 'pump-2')).toBe(false);
      await vi.waitFor(
        () => {
          expect(
            sink.malformedReasons.some((reason) => /ns=1;s=Broken .*BadSensorFailure/.test(reason)),
          ).toBe(true);
          expect(sink.malformedReasons.some((reason) => /ns=1;s=Label .*is not a number/.test(reason))).toBe(
            true,
          );
        },
        { timeout: 5_000 },
      );

      // A new server on the same port knows nothing of the old session or subscription.
      await server?.stop();
      server = undefined;
      await vi.waitFor(() => expect(sink.states.at(-1)).toBe('reconnecting'), { timeout: 10_000 });
      const stoppedAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 500));
      server = await startServer(port, join(dir, 'server-pki'));
      const restartedAt = Date.now();
      await vi.waitFor(
        () => {
          expect(sink.states.at(-1)).toBe('connected');
          expect(
            wholeReadings(sink).filter((reading) => (reading.time ?? 0) > restartedAt).length,
          ).toBeGreaterThan(20);
        },
        { timeout: 30_000, interval: 100 },
      );
      console.log(`readings resumed ${Date.now() - restartedAt} ms after the new server started`);
      expect(sink.states).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
      expect(
        sink.readings.filter((r) => (r.time ?? 0) > stoppedAt && (r.time ?? 0) < restartedAt - 1_000),
      ).toEqual([]);
    } finally {
      await source.stop();
    }
    expect(sink.states.at(-1)).toBe('stopped');
  });
});

describe('OPC UA settings', () => {
  it('turns a --source URL into settings', () => {
    expect(
      parseOpcuaUrl(
        'opc.tcp://127.0.0.1:4840/UA/Server?security=None&nodes=ns=1;s=Temp:temp,ns=1;s=Line1:Speed:speed@pump-2&series=pump-1&publishing=500',
      ),
    ).toEqual({
      kind: 'opcua',
      name: 'opcua',
      endpoint: 'opc.tcp://127.0.0.1:4840/UA/Server',
      securityMode: 'None',
      securityPolicy: 'None',
      samplingIntervalMs: 100,
      publishingIntervalMs: 500,
      queueSize: 10,
      series: 'pump-1',
      nodes: [
        { nodeId: 'ns=1;s=Temp', channel: 'temp' },
        { nodeId: 'ns=1;s=Line1:Speed', channel: 'speed', series: 'pump-2' },
      ],
    });
    expect(
      parseOpcuaUrl(
        'opc.tcp://op:s3cret@plc:4840?security=SignAndEncrypt:Basic256Sha256&nodes=ns=2;i=1001:rpm',
      ),
    ).toMatchObject({
      endpoint: 'opc.tcp://plc:4840',
      securityMode: 'SignAndEncrypt',
      securityPolicy: 'Basic256Sha256',
      username: 'op',
      password: 's3cret',
    });
  });

  it('refuses a missing security setting, saying None must be explicit, and other bad fields', () => {
    const base = {
      kind: 'opcua',
      endpoint: 'opc.tcp://plc:4840',
      securityMode: 'None',
      securityPolicy: 'None',
      nodes: [{ nodeId: 'ns=1;s=Temp', channel: 'temp' }],
    };
    const { securityMode: _, ...noMode } = base;
    expect(() => parseOpcuaSettings(noMode)).toThrow(
      /securityMode: required, with no default: .*"securityMode": "None".*for example \{"kind":"opcua"/,
    );
    expect(() => parseOpcuaSettings({ ...base, securityPolicy: 'Basic128Rsa15' })).toThrow(
      /securityPolicy: must be one of None, Basic256Sha256/,
    );
    expect(() => parseOpcuaSettings({ ...base, securityMode: 'Sign' })).toThrow(
      /securityPolicy: securityMode Sign needs securityPolicy other than None/,
    );
    expect(() => parseOpcuaSettings({ ...base, nodes: [{ nodeId: 'Temp', channel: 't' }] })).toThrow(
      /nodes\.0\.nodeId: not an OPC UA node id/,
    );
    expect(() => parseOpcuaSettings({ ...base, endpoint: 'http://plc' })).toThrow(
      /endpoint: must be opc\.tcp/,
    );
    expect(() => parseOpcuaSettings({ ...base, username: 'op' })).toThrow(/password: username and password/);
    expect(() => parseOpcuaSettings({ ...base, samplingIntervalMs: 10, publishingIntervalMs: 1000 })).toThrow(
      /queueSize: 10 samples of 10 ms do not last one publishing interval/,
    );
    expect(() => parseOpcuaUrl('opc.tcp://plc:4840?nodes=ns=1;s=T:t')).toThrow(
      /needs security=None \(said explicitly\)/,
    );
    expect(() => parseOpcuaUrl('opc.tcp://op:pw@plc:4840?security=None&nodes=ns=1;s=T:t&x=1')).toThrow(
      /unknown parameter 'x'/,
    );
  });
});
