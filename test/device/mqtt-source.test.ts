import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, startDevice } from '../../device/service.ts';
import { ChannelMerger, PayloadDecoder } from '../../device/sources/mqtt/decode.ts';
import { parseSourceSpec } from '../../device/sources/sources.ts';
import { formatSources } from '../../infra/cli/commands/fleet.ts';
import type { ResultBatch } from '../../shared/schemas.ts';
import { type Mosquitto, mosquittoAvailable, startMosquitto } from '../support/mosquitto.ts';
import { MODEL, type Peers, sensorRows, startPeers, type TestBroker, until } from './helpers.ts';

const bin = join(import.meta.dirname, '..', '..', 'infra', 'cli', 'bin.js');
const SERIES = ['pump-1', 'pump-2', 'pump-3'];

describe('MQTT payloads into readings', () => {
  const json = new PayloadDecoder({
    format: 'json',
    timeField: 'time',
    timeUnit: 'ms',
    topicTemplate: 'plant/{series}/pump',
  });

  it('reads a JSON reading, its own time and the series from the topic', () => {
    expect(
      json.decode('plant/p-7/pump', Buffer.from('{"time": 1700000000000, " a": 1.5, "b": null}')),
    ).toEqual([{ time: 1_700_000_000_000, series: 'p-7', values: { a: 1.5, b: null } }]);
  });

  it('reads an array of readings, ISO times and a series field over the topic', () => {
    const decoder = new PayloadDecoder({
      format: 'json',
      timeField: 'ts',
      timeUnit: 's',
      seriesField: 'machine',
    });
    expect(
      decoder.decode(
        'x',
        Buffer.from('[{"ts": 1700000000, "machine": "m1", "a": 1}, {"ts": "2026-12-07T14:00:00Z", "a": 2}]'),
      ),
    ).toEqual([
      { time: 1_700_000_000_000, series: 'm1', values: { a: 1 } },
      { time: Date.parse('2026-12-07T14:00:00Z'), values: { a: 2 } },
    ]);
  });

  it('reads CSV lines under a declared header, with the dataset rules (NA is missing)', () => {
    const decoder = new PayloadDecoder({
      format: 'csv',
      csvHeader: ['time', 'a', 'b'],
      csvDelimiter: ';',
      timeField: 'time',
      timeUnit: 'ms',
    });
    expect(decoder.decode('x', Buffer.from('5;1.25;NA\n6;2;3'))).toEqual([
      { time: 5, values: { a: 1.25, b: 'NA' } },
      { time: 6, values: { a: 2, b: 3 } },
    ]);
  });

  it('says what is wrong with a payload it cannot read', () => {
    expect(() => json.decode('plant/p/pump', Buffer.from('{"a": 1'))).toThrow(
      /payload on plant\/p\/pump is not JSON/,
    );
    expect(() => json.decode('plant/p/pump', Buffer.from('{"time": "soon", "a": 1}'))).toThrow(
      /field 'time' must be a time/,
    );
    expect(() => json.decode('plant/p/pump', Buffer.from('{"time": 5}'))).toThrow(/no channels/);
    expect(() => json.decode('plant/p/pump', Buffer.from('[{"a": 1}, {"a": {"x": 1}}]'))).toThrow(
      /reading 2 on plant\/p\/pump: field 'a'/,
    );
    expect(() => new PayloadDecoder({ format: 'value', timeField: 'time', timeUnit: 'ms' })).toThrow(
      /\{channel\} level/,
    );
  });

  it('merges one channel per message into whole readings per series', () => {
    const value = new PayloadDecoder({
      format: 'value',
      topicTemplate: 'plant/{series}/pump/{channel}',
      timeField: 'time',
      timeUnit: 'ms',
    });
    const listed = new ChannelMerger(['a', 'b']);
    const take = (merger: ChannelMerger, topic: string, payload: string) =>
      value.decode(topic, Buffer.from(payload)).flatMap((reading) => merger.add(reading));
    expect(take(listed, 'plant/p1/pump/a', '1')).toEqual([]);
    expect(take(listed, 'plant/p2/pump/a', '5')).toEqual([]);
    expect(take(listed, 'plant/p1/pump/b', '2')).toEqual([{ series: 'p1', values: { a: 1, b: 2 } }]);
    // Without the list, a reading ends when one of its channels comes again.
    const unlisted = new ChannelMerger();
    take(unlisted, 'plant/p1/pump/a', '1');
    take(unlisted, 'plant/p1/pump/b', '2');
    expect(take(unlisted, 'plant/p1/pump/a', '3')).toEqual([{ series: 'p1', values: { a: 1, b: 2 } }]);
    expect(() => value.decode('plant/p1/pump/a', Buffer.from('hot'))).toThrow(/must be a number/);
  });

  it('validates a source URL and a settings block with what to fix', () => {
    expect(parseSourceSpec('mqtt://u:p@127.0.0.1:1883?topic=plant/%2B/pump&series=machine')).toMatchObject({
      kind: 'mqtt',
      settings: {
        url: 'mqtt://127.0.0.1:1883',
        topics: ['plant/+/pump'],
        seriesField: 'machine',
        username: 'u',
        password: 'p',
      },
    });
    expect(() => parseSourceSpec('mqtt://127.0.0.1:1883')).toThrow(/give topics .* or a topicTemplate/);
    expect(() => parseSourceSpec({ kind: 'mqtt', url: 'http://x', topics: ['a'] })).toThrow(
      /url: must be mqtt:\/\/host:port/,
    );
    expect(() => parseSourceSpec({ kind: 'mqtt', url: 'mqtt://x:1', topics: ['a'], qos: 0 })).toThrow(/qos/);
    expect(() => parseSourceSpec({ kind: 'kafka' })).toThrow(/kind must be "mqtt", "modbus" or "opcua"/);
    expect(() =>
      parseSourceSpec({ kind: 'mqtt', url: 'mqtts://x:8883', topics: ['a'], caFile: '/nonexistent/ca.pem' }),
    ).toThrow(/caFile \/nonexistent\/ca.pem does not exist/);
    expect(() =>
      parseSourceSpec({ kind: 'mqtt', url: 'mqtts://x:8883', topics: ['a'], certFile: '/etc/hostname' }),
    ).toThrow(/certFile and keyFile go together/);
  });
});

describe('edgeloop fleet', () => {
  it('shows each live input: state, rate, last reading, and what went wrong', () => {
    const base = { kind: 'mqtt' as const, readings: 10, dropped: 0, malformed: 0, reconnects: 0 };
    expect(
      formatSources([
        {
          ...base,
          name: 'mqtt',
          state: 'connected',
          readingsPerSec: 48.5,
          lastReadingAgeMs: 200,
          reconnects: 1,
          malformed: 2,
          duplicates: 3,
        },
        {
          ...base,
          name: 'modbus',
          kind: 'modbus',
          state: 'reconnecting',
          readingsPerSec: 0,
          lastReadingAgeMs: null,
          dropped: 7,
        },
      ]),
    ).toBe(
      'mqtt connected 48.5/s last 0.2s ago, 1 reconnects, 2 malformed, 3 duplicates; modbus reconnecting 0/s no reading yet, 7 dropped',
    );
  });
});

/** Publishes `n` readings round-robin over three series at `rate` per second (QoS 1). */
async function publishReadings(url: string, n: number, rate: number, first = 0): Promise<void> {
  const client = await mqtt.connectAsync(url, {
    clientId: `sensor-${Date.now()}`,
    clean: false,
    reconnectPeriod: 200,
  });
  const rows = sensorRows(first + n, 3);
  const start = Date.now();
  const sends: Promise<unknown>[] = [];
  for (let i = first; i < first + n; i++) {
    const row = rows[i] as Record<string, string>;
    const series = SERIES[i % SERIES.length] as string;
    const reading = {
      time: 1_700_000_000_000 + i * 10,
      a: Number(row.a),
      b: Number(row.b),
      state: row.state,
    };
    sends.push(client.publishAsync(`plant/${series}/pump`, JSON.stringify(reading), { qos: 1 }));
    const due = start + ((i - first + 1) / rate) * 1000 - Date.now();
    if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
  }
  await Promise.all(sends);
  await client.endAsync();
}

function countedResults(broker: TestBroker, thing: string): { ids: Set<string>; results: number } {
  // As the aggregator counts: each batch id once.
  const seen = new Map<string, ResultBatch>();
  for (const batch of broker.batches)
    if (batch.results[0]?.id.startsWith(`${thing}:`)) seen.set(batch.batchId, batch);
  const all = [...seen.values()].flatMap((batch) => batch.results);
  return { ids: new Set(all.map((result) => result.id)), results: all.length };
}

const expected = (thing: string, n: number) =>
  new Set(Array.from({ length: n }, (_, i) => `${thing}:mqtt:${i}`));

describe.runIf(mosquittoAvailable())('the device reading a real Mosquitto', () => {
  let peers: Peers;
  let mosquitto: Mosquitto;
  const source = () => `${mosquitto.url}?template=plant/{series}/pump`;

  beforeAll(async () => {
    peers = await startPeers();
    await peers.release({ version: 1 });
    mosquitto = await startMosquitto(join(peers.dir, 'mosquitto'));
  });

  afterAll(async () => {
    await mosquitto?.stop();
    await peers?.close();
  });

  const connected = (device: Device) => () => device.status().sources?.[0]?.state === 'connected';

  it('answers exactly N readings of 3 series published at a fixed rate, with their own times', async () => {
    // Prepare
    const thing = 'gw-mqtt';
    const device = await startDevice(
      peers.deviceOptions(thing, { source: parseSourceSpec(source()), batch: { maxAgeMs: 50 } }),
    );
    await until(connected(device), 20_000, 'the MQTT source subscribed');

    // Act
    await publishReadings(mosquitto.url, 600, 300);
    await until(() => countedResults(peers.broker, thing).ids.size >= 600, 20_000, '600 results');
    await device.stop();

    // Assess
    const counted = countedResults(peers.broker, thing);
    expect(counted.ids).toEqual(expected(thing, 600));
    expect(counted.results).toBe(600);
    const first = peers.broker.batches
      .flatMap((batch) => batch.results)
      .find((r) => r.id === `${thing}:mqtt:0`);
    expect(first).toMatchObject({ time: 1_700_000_000_000, timeFrom: 'reading', truth: expect.any(String) });
    expect(device.status().sources?.[0]).toMatchObject({
      name: 'mqtt',
      kind: 'mqtt',
      readings: 600,
      malformed: 0,
      dropped: 0,
    });
  });

  it('counts a malformed payload, sets it aside with its reason and goes on', async () => {
    // Prepare
    const thing = 'gw-mqtt-bad';
    const device = await startDevice(peers.deviceOptions(thing, { source: parseSourceSpec(source()) }));
    await until(connected(device), 20_000, 'the MQTT source subscribed');

    // Act
    const client = await mqtt.connectAsync(mosquitto.url);
    await client.publishAsync('plant/pump-1/pump', '{"a": 1, "b":', { qos: 1 });
    await client.publishAsync('plant/pump-1/pump', '{"a": 0.5, "b": 0.25}', { qos: 1 });
    await client.endAsync();
    await until(() => countedResults(peers.broker, thing).results >= 1, 10_000, 'the good reading answered');
    await device.stop();

    // Assess
    expect(device.status()).toMatchObject({
      refused: { unreadable: 1 },
      sources: [{ malformed: 1, readings: 1 }],
    });
    const errors = readFileSync(join(peers.dir, thing, 'errors.jsonl'), 'utf8');
    expect(errors).toMatch(/mqtt: the payload on plant\/pump-1\/pump is not JSON/);
    expect(countedResults(peers.broker, thing).ids).toEqual(new Set([`${thing}:mqtt:0`]));
  });

  it('still answers exactly N when Mosquitto restarts mid-stream', async () => {
    // Prepare
    const thing = 'gw-mqtt-restart';
    const device = await startDevice(
      peers.deviceOptions(thing, { source: parseSourceSpec(source()), batch: { maxAgeMs: 50 } }),
    );
    await until(connected(device), 20_000, 'the MQTT source subscribed');

    // Act: the broker goes down for a second while readings flow.
    const publishing = publishReadings(mosquitto.url, 900, 300);
    await until(() => countedResults(peers.broker, thing).ids.size >= 200, 20_000, '200 results');
    await mosquitto.stop();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await mosquitto.start();
    await publishing;
    await until(() => countedResults(peers.broker, thing).ids.size >= 900, 40_000, '900 results');
    await device.stop();

    // Assess
    const counted = countedResults(peers.broker, thing);
    expect(counted.ids).toEqual(expected(thing, 900));
    expect(counted.results).toBe(900);
    expect(device.status().sources?.[0]?.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('still answers exactly N when the device is SIGKILLed mid-stream and restarted (persistent session)', async () => {
    // Prepare
    const thing = 'gw-mqtt-kill';
    const run = () => runCli(thing, source());
    let device = run();
    await until(() => subscribed(peers.broker, thing), 30_000, 'the gateway subscribed');

    // Act: kill it while readings flow; they queue at the broker until it is back.
    const publishing = publishReadings(mosquitto.url, 1_200, 300);
    await until(() => countedResults(peers.broker, thing).ids.size >= 300, 30_000, '300 results');
    device.child.kill('SIGKILL');
    await device.exit;
    await new Promise((resolve) => setTimeout(resolve, 500));
    device = run();
    await publishing;
    await until(() => countedResults(peers.broker, thing).ids.size >= 1_200, 60_000, '1,200 results');
    device.child.kill('SIGTERM');
    const exit = await device.exit;

    // Assess
    expect(exit.code, exit.out).toBe(0);
    const counted = countedResults(peers.broker, thing);
    expect(counted.ids).toEqual(expected(thing, 1_200));
    expect(counted.results).toBe(1_200);
  });

  it('logs in with a username and password, and a wrong password keeps it reconnecting, not crashing', async () => {
    // Prepare: a broker that admits one user.
    const secured = await startMosquitto(join(peers.dir, 'mosquitto-users'), {
      users: { edgeloop: 's3cret' },
    });
    const url = (password: string) =>
      `mqtt://edgeloop:${password}@127.0.0.1:${secured.port}?template=plant/{series}/pump`;
    const good = await startDevice(
      peers.deviceOptions('gw-mqtt-user', { source: parseSourceSpec(url('s3cret')) }),
    );
    const lines: string[] = [];
    const bad = await startDevice(
      peers.deviceOptions('gw-mqtt-denied', {
        source: parseSourceSpec(url('wrong')),
        log: (line) => lines.push(line),
      }),
    );
    try {
      // Act
      await until(connected(good), 20_000, 'the source with the right password subscribed');
      const sensor = await mqtt.connectAsync(secured.url, { username: 'edgeloop', password: 's3cret' });
      await sensor.publishAsync('plant/pump-1/pump', '{"time": 1700000000000, "a": 1, "b": 1}', { qos: 1 });
      await sensor.endAsync();
      await until(() => countedResults(peers.broker, 'gw-mqtt-user').results >= 1, 10_000, 'its result');
      await until(() => lines.some((line) => /Not authorized/i.test(line)), 10_000, 'the refusal in the log');

      // Assess
      expect(good.status().sources?.[0]).toMatchObject({ state: 'connected', readings: 1 });
      expect(bad.status().sources?.[0]?.state).not.toBe('connected');
      expect(bad.status().state).toBe('serving');
    } finally {
      await good.stop();
      await bad.stop();
      await secured.stop();
    }
  });

  function runCli(
    thing: string,
    spec: string,
  ): { child: ChildProcess; exit: Promise<{ code: number | null; out: string }> } {
    const child = spawn(
      process.execPath,
      [bin, 'device', '--thing', thing, '--model', MODEL, '--data-dir', peers.dir, '--source', spec, '-q'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, EDGELOOP_DEVICE_STATUS_INTERVAL_MS: '200' },
      },
    );
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    return { child, exit: new Promise((resolve) => child.on('exit', (code) => resolve({ code, out }))) };
  }
});

/** The gateway's status says its MQTT source is subscribed. */
function subscribed(broker: TestBroker, thing: string): boolean {
  return broker.statuses.some((s) => s.thing === thing && s.status.sources?.[0]?.state === 'connected');
}
