/**
 * The whole gateway on the industrial inputs: `startDevice` with a Modbus TCP or OPC UA
 * source against a real server started here, answering with the released model and
 * publishing results. The tiny model says `hi` when a + b > 0, so the labels show that the
 * declared registers, types and scaling reached the model.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerTCP } from 'modbus-serial';
import { OPCUACertificateManager } from 'node-opcua-certificate-manager';
import { DataType, StatusCodes, Variant } from 'node-opcua-client';
import { OPCUAServer } from 'node-opcua-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/support/free-port.ts';
import { type Device, startDevice } from '../../device/service.ts';
import { parseSourceSpec } from '../../device/sources/sources.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { type Peers, startPeers, until } from './helpers.ts';

let peers: Peers;
beforeAll(async () => {
  peers = await startPeers();
  await peers.release({ version: 1 });
});
afterAll(() => peers?.close());

const resultsOf = (thing: string): InferenceResult[] =>
  peers.broker.batches
    .flatMap((batch) => batch.results)
    .filter((result) => result.id.startsWith(`${thing}:`));

/** The device on `source`, its results batched every 50 ms. */
const deviceReading = (thing: string, source: string) =>
  startDevice(peers.deviceOptions(thing, { source: parseSourceSpec(source), batch: { maxAgeMs: 50 } }));

async function stopAll(device: Device | undefined, close: () => Promise<void>) {
  await device?.stop();
  await close();
}

describe('the device polling a real Modbus TCP server', () => {
  it('answers polled registers with their declared types and scaling, and reports the source', async () => {
    // Prepare: a = int16 150 × 0.01 = 1.5; b = float32 -0.25, low word first.
    const holding = new Array(8).fill(0);
    const setB = (value: number) => {
      const bytes = Buffer.alloc(4);
      bytes.writeFloatBE(value);
      [holding[3], holding[2]] = [bytes.readUInt16BE(0), bytes.readUInt16BE(2)];
    };
    holding[0] = 150;
    setB(-0.25);
    const port = await freePort();
    const server = new ServerTCP(
      {
        getMultipleHoldingRegisters: (address: number, length: number) =>
          holding.slice(address, address + length),
        getHoldingRegister: (address: number) => holding[address] as number,
      },
      { host: '127.0.0.1', port, unitID: 1 },
    );
    await new Promise<void>((resolve) => server.once('initialized', () => resolve()));
    const thing = 'gw-modbus';
    let device: Device | undefined;
    try {
      // Act
      device = await deviceReading(
        thing,
        `modbus://127.0.0.1:${port}?interval=50&series=press-4&map=a:holding:0:int16:0.01,b:holding:2:float32:little`,
      );
      await until(() => resultsOf(thing).length >= 5, 20_000, 'results of polled registers');
      holding[0] = -150 & 0xffff; // a = -1.5: the model says lo
      const before = resultsOf(thing).length;
      await until(
        () =>
          resultsOf(thing)
            .slice(before)
            .some((r) => r.label === 'lo'),
        20_000,
        'a result after the change',
      );

      // Assess
      const results = resultsOf(thing);
      expect(results.slice(0, 5).every((r) => r.label === 'hi' && r.timeFrom === 'arrival')).toBe(true);
      expect(device.status().sources?.[0]).toMatchObject({
        name: 'modbus',
        kind: 'modbus',
        state: 'connected',
        malformed: 0,
      });
    } finally {
      await stopAll(device, () => new Promise<void>((resolve) => server.close(() => resolve())));
    }
  });
});

describe('the device subscribed to a real OPC UA server', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeloop-opcua-device-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each([
    ['None', 'no security (said explicitly)'],
    ['SignAndEncrypt:Basic256Sha256', 'signed and encrypted, each side with its own certificate'],
  ])(
    'answers readings merged from two variables at their source time, security %s (%s)',
    async (security) => {
      // Prepare: A changes at 50 Hz (every sample differs: OPC UA reports changes only) and B
      // holds 0.5, both written with one source timestamp; a + b > 0.
      const port = await freePort();
      const server = new OPCUAServer({
        port,
        resourcePath: '/UA/Press',
        serverCapabilities: { minSupportedSampleRate: 0 },
        serverCertificateManager: new OPCUACertificateManager({
          rootFolder: join(dir, 'server-pki'),
          automaticallyAcceptUnknownCertificate: true,
        }),
      });
      await server.initialize();
      const space = server.engine.addressSpace;
      if (!space) throw new Error('no address space');
      const variable = (name: string) =>
        space.getOwnNamespace().addVariable({
          organizedBy: space.rootFolder.objects,
          nodeId: `s=${name}`,
          browseName: name,
          dataType: 'Double',
          minimumSamplingInterval: 0,
        });
      const [a, b] = [variable('A'), variable('B')];
      let tick = 0;
      const timer = setInterval(() => {
        const time = new Date();
        tick++;
        a?.setValueFromSource(
          new Variant({ dataType: DataType.Double, value: 1 + tick / 1000 }),
          StatusCodes.Good,
          time,
        );
        b?.setValueFromSource(new Variant({ dataType: DataType.Double, value: 0.5 }), StatusCodes.Good, time);
      }, 20);
      await server.start();
      const thing = `gw-opcua-${security === 'None' ? 'open' : 'secure'}`;
      let device: Device | undefined;
      try {
        // Act
        device = await deviceReading(
          thing,
          `opc.tcp://127.0.0.1:${port}/UA/Press?security=${security}&series=press-7&nodes=ns=1;s=A:a,ns=1;s=B:b`,
        );
        await until(() => resultsOf(thing).length >= 20, 30_000, 'results of OPC UA readings');

        // Assess
        const results = resultsOf(thing);
        expect(results.every((r) => r.label === 'hi' && r.timeFrom === 'reading')).toBe(true);
        const times = results.map((r) => r.time as number);
        expect(times.every((t, i) => i === 0 || t > (times[i - 1] as number))).toBe(true);
        expect(device.status().sources?.[0]).toMatchObject({
          name: 'opcua',
          kind: 'opcua',
          state: 'connected',
          malformed: 0,
        });
      } finally {
        clearInterval(timer);
        await stopAll(device, () => server.shutdown(0));
      }
    },
  );
});
