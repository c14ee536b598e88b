/**
 * The Modbus TCP source against a real Modbus server (modbus-serial's ServerTCP) started here:
 * the declared types, word orders and scaling, contiguous registers read in one request, a
 * NaN float and an exception response counted as malformed, and a server restart survived.
 */
import { ServerTCP } from 'modbus-serial';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backoff } from '../../device/sources/live/live-source.ts';
import { ModbusSource, planReads } from '../../device/sources/modbus/modbus-source.ts';
import { parseModbusSettings, parseModbusUrl } from '../../device/sources/modbus/settings.ts';
import { EdgeloopError } from '../../shared/errors.ts';
import { freePort, recordingSink } from './recording-sink.ts';

/** Big-endian 32-bit value → its two registers, high word first. */
function words32(write: (buffer: Buffer) => void): [number, number] {
  const buffer = Buffer.alloc(4);
  write(buffer);
  return [buffer.readUInt16BE(0), buffer.readUInt16BE(2)];
}

const swap = ([high, low]: [number, number]): [number, number] => [low, high];

const HOLDING: number[] = new Array(30).fill(0);
HOLDING[0] = -1234 & 0xffff; // int16
HOLDING[1] = 50000; // uint16 (would be negative as int16)
[HOLDING[2], HOLDING[3]] = words32((b) => b.writeInt32BE(-100_000));
[HOLDING[4], HOLDING[5]] = words32((b) => b.writeFloatBE(21.5));
[HOLDING[6], HOLDING[7]] = swap(words32((b) => b.writeFloatBE(-3.25)));
[HOLDING[8], HOLDING[9]] = swap(words32((b) => b.writeUInt32BE(3_000_000_000)));
[HOLDING[20], HOLDING[21]] = words32((b) => b.writeFloatBE(Number.NaN));

const INPUT: number[] = new Array(10).fill(0);
INPUT[0] = 1500;
[INPUT[1], INPUT[2]] = swap(words32((b) => b.writeInt32BE(70_000)));

/** Addresses past the vectors are refused with exception 2 (illegal data address), as a device does. */
function registerAt(table: number[], address: number): number {
  const value = table[address];
  if (value === undefined) throw { modbusErrorCode: 0x02, msg: 'Illegal data address' };
  return value;
}

interface TestServer {
  requests: number;
  close(): Promise<void>;
}

/** `delayMs`: how long each answer takes, as a slow device's. */
async function startServer(port: number, delayMs = 0): Promise<TestServer> {
  const server: TestServer = { requests: 0, close: () => Promise.resolve() };
  const later = <T>(value: T) =>
    delayMs ? new Promise<T>((resolve) => setTimeout(() => resolve(value), delayMs)) : value;
  const range = (table: number[], address: number, length: number) => {
    server.requests++;
    return Array.from({ length }, (_, i) => later(registerAt(table, address + i)));
  };
  const tcp = new ServerTCP(
    {
      getMultipleHoldingRegisters: (address: number, length: number) => range(HOLDING, address, length),
      getMultipleInputRegisters: (address: number, length: number) => range(INPUT, address, length),
      getHoldingRegister: (address: number) => range(HOLDING, address, 1)[0] as number | Promise<number>,
      getInputRegister: (address: number) => range(INPUT, address, 1)[0] as number | Promise<number>,
    },
    { host: '127.0.0.1', port, unitID: 1 },
  );
  await new Promise<void>((resolve, reject) => {
    tcp.once('initialized', () => resolve());
    tcp.once('serverError', reject);
  });
  server.close = () => new Promise((resolve) => tcp.close(() => resolve()));
  return server;
}

const REGISTERS = [
  { channel: 'neg', address: 0, function: 'holding', type: 'int16' },
  { channel: 'flow', address: 1, function: 'holding', type: 'uint16', scale: 0.01, offset: -100 },
  { channel: 'pos', address: 2, function: 'holding', type: 'int32' },
  { channel: 'temp', address: 4, function: 'holding', type: 'float32', wordOrder: 'big', scale: 2 },
  { channel: 'tempLittle', address: 6, function: 'holding', type: 'float32', wordOrder: 'little' },
  { channel: 'count', address: 8, function: 'holding', type: 'uint32', wordOrder: 'little' },
  { channel: 'broken', address: 20, function: 'holding', type: 'float32' },
  { channel: 'rpm', address: 0, function: 'input', type: 'uint16' },
  { channel: 'energy', address: 1, function: 'input', type: 'int32', wordOrder: 'little', scale: 0.001 },
  { channel: 'missing', address: 50, function: 'input', type: 'uint16' },
];

const EXPECTED = {
  neg: -1234,
  flow: 400,
  pos: -100_000,
  temp: 43,
  tempLittle: -3.25,
  count: 3_000_000_000,
  rpm: 1500,
  energy: 70,
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function started(port: number, intervalMs = 50) {
  const settings = parseModbusSettings({
    kind: 'modbus',
    host: '127.0.0.1',
    port,
    intervalMs,
    timeoutMs: 500,
    series: 'press-1',
    registers: REGISTERS,
  });
  const source = new ModbusSource(settings, { backoff: new Backoff(100, 400) });
  const sink = recordingSink();
  await source.start(sink);
  cleanups.push(() => source.stop());
  return { source, sink };
}

describe('Modbus TCP source', () => {
  it('reads every type and word order with its scale, one request per contiguous block', async () => {
    const port = await freePort();
    const server = await startServer(port);
    cleanups.push(() => server.close());
    const { sink } = await started(port, 200);

    await vi.waitFor(() => expect(sink.readings.length).toBeGreaterThan(0), { timeout: 5_000 });
    const [reading] = sink.readings;
    expect(reading?.series).toBe('press-1');
    expect(reading?.time).toBeUndefined(); // Modbus has no timestamps: the pipeline takes the arrival time
    expect(reading?.values).toEqual(EXPECTED);
    expect(sink.states[0]).toBe('connecting');
    expect(sink.states).toContain('connected');
    // Holding 0..9, holding 20..21, input 0..2 and input 50: four requests for ten channels.
    expect(server.requests).toBe(4 * sink.readings.length);
    expect(sink.malformedReasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/unit 1 holding 20 \(channel broken, float32\) is NaN/),
        expect.stringMatching(/unit 1 input 50\.\.50: .*xception/i),
      ]),
    );
  });

  it('survives a server restart on the same port: reconnecting, then connected, and readings resume', async () => {
    const port = await freePort();
    const first = await startServer(port);
    const { sink } = await started(port);
    await vi.waitFor(() => expect(sink.readings.length).toBeGreaterThan(2), { timeout: 5_000 });

    await first.close();
    await vi.waitFor(() => expect(sink.states.at(-1)).toBe('reconnecting'), { timeout: 5_000 });
    const before = sink.readings.length;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(sink.readings.length).toBe(before);

    const second = await startServer(port);
    cleanups.push(() => second.close());
    await vi.waitFor(() => expect(sink.readings.length).toBeGreaterThan(before + 2), { timeout: 5_000 });
    expect(sink.states).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
    expect(sink.readings.at(-1)?.values).toEqual(EXPECTED);
  });

  it('keeps trying while nothing listens, and connects once the server appears', async () => {
    const port = await freePort();
    const { sink } = await started(port);
    await vi.waitFor(() => expect(sink.logs.length).toBeGreaterThan(1), { timeout: 5_000 });
    expect(sink.logs[0]).toMatch(/ECONNREFUSED|refused/);
    expect(sink.states).toEqual(['connecting']);
    const server = await startServer(port);
    cleanups.push(() => server.close());
    await vi.waitFor(() => expect(sink.readings.length).toBeGreaterThan(0), { timeout: 5_000 });
    expect(sink.states).toEqual(['connecting', 'connected']);
  });

  it('skips a poll that would overlap the one still running, and says so once', async () => {
    const port = await freePort();
    const server = await startServer(port, 60);
    cleanups.push(() => server.close());
    // Four requests of 60 ms each make a poll of about 240 ms, polled every 50 ms.
    const { sink } = await started(port, 50);
    await vi.waitFor(() => expect(sink.readings.length).toBeGreaterThan(2), { timeout: 5_000 });
    const skips = sink.logs.filter((line) => line.includes('skipped'));
    expect(skips).toHaveLength(1);
    expect(skips[0]).toMatch(/skipped 1 poll\(s\): a poll takes longer than intervalMs \(50 ms\)/);
    expect(sink.readings.at(-1)?.values).toEqual(EXPECTED);
    expect(sink.states).toEqual(['connecting', 'connected']);
  });

  it('stops cleanly: state stopped and no further polls', async () => {
    const port = await freePort();
    const server = await startServer(port);
    cleanups.push(() => server.close());
    const { source, sink } = await started(port);
    await vi.waitFor(() => expect(sink.readings.length).toBeGreaterThan(0), { timeout: 5_000 });
    await source.stop();
    // A request written just before stop may still reach the server; none may follow it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const requests = server.requests;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(server.requests).toBe(requests);
    expect(sink.states.at(-1)).toBe('stopped');
  });
});

describe('Modbus settings', () => {
  it('turns a --source URL into settings', () => {
    const settings = parseModbusUrl(
      'modbus://127.0.0.1:5020?interval=250&unit=3&series=press-1&map=temp:holding:0:float32:little:0.1:-40,rpm:input:4:uint16',
    );
    expect(settings).toMatchObject({
      kind: 'modbus',
      name: 'modbus',
      host: '127.0.0.1',
      port: 5020,
      intervalMs: 250,
      series: 'press-1',
      registers: [
        {
          channel: 'temp',
          unitId: 3,
          function: 'holding',
          address: 0,
          type: 'float32',
          wordOrder: 'little',
          scale: 0.1,
          offset: -40,
        },
        { channel: 'rpm', unitId: 3, function: 'input', address: 4, type: 'uint16', scale: 1, offset: 0 },
      ],
    });
    expect(parseModbusUrl('modbus://plc.local?map=a:input:0:int16')).toMatchObject({
      host: 'plc.local',
      port: 502,
      intervalMs: 1000,
    });
  });

  it('says which field is wrong, and gives an example', () => {
    const bad = (input: unknown) => () => parseModbusSettings(input);
    expect(bad({ kind: 'modbus', host: 'h', registers: [] })).toThrow(
      /registers: .*for example \{"kind":"modbus"/,
    );
    expect(
      bad({
        kind: 'modbus',
        host: 'h',
        registers: [{ channel: 'a', address: 0, function: 'coil', type: 'int16' }],
      }),
    ).toThrow(/registers\.0\.function/);
    expect(
      bad({
        kind: 'modbus',
        host: 'h',
        registers: [{ channel: 'a', address: 0, function: 'input', type: 'int16', wordOrder: 'big' }],
      }),
    ).toThrow(/registers\.0\.wordOrder: only 32-bit types/);
    expect(bad({ kind: 'modbus', host: 'h', rate: 5, registers: [] })).toThrow(EdgeloopError);
    expect(() => parseModbusUrl('modbus://h?map=temp:holding')).toThrow(
      /needs channel:function:address:type/,
    );
    expect(() => parseModbusUrl('modbus://h?map=a:input:0:int16&rate=5')).toThrow(/unknown parameter 'rate'/);
    expect(() => parseModbusUrl('mqtt://h?map=a:input:0:int16')).toThrow(/scheme must be modbus/);
    expect(() => parseModbusUrl('modbus://h?map=a:input:0:int16,a:input:1:int16')).toThrow(/mapped twice/);
  });

  it('plans one request per contiguous run of one unit and function, up to 125 registers', () => {
    const settings = parseModbusUrl(
      'modbus://h?map=a:holding:0:int16,b:holding:1:float32,c:holding:3:int16,d:holding:10:int16,e:input:1:int16',
    );
    expect(planReads(settings.registers).map(({ function: fn, start, count }) => [fn, start, count])).toEqual(
      [
        ['holding', 0, 4],
        ['holding', 10, 1],
        ['input', 1, 1],
      ],
    );
    const long = Array.from({ length: 130 }, (_, i) => `r${i}:input:${i}:uint16`).join(',');
    expect(planReads(parseModbusUrl(`modbus://h?map=${long}`).registers).map((block) => block.count)).toEqual(
      [125, 5],
    );
  });
});
