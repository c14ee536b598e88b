import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  configFromEnv,
  configFromFile,
  deviceOptionsFrom,
  envName,
  readLocalStack,
  resolveConfig,
} from '../../device/config.ts';
import { backoffMs, parseEndpoint } from '../../device/platform/connection.ts';
import { parseSourceSpec } from '../../device/sources/sources.ts';
import { exactNumber, parseCsvReadings } from '../../shared/dataset/readings.ts';
import { transformRows } from '../../shared/preprocess.ts';
import type { Preprocessing } from '../../shared/schemas.ts';
import { removeTempDirs, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

async function baseConfig() {
  const dir = await tempDir();
  const key = join(dir, 'public.pem');
  await writeFile(key, 'pem');
  return {
    dir,
    base: {
      thing: 'gw-1',
      model: 'tiny',
      stateDir: dir,
      mqttEndpoint: 'mqtt://127.0.0.1:1883',
      publicKeyFile: key,
    },
  };
}

describe('device config', () => {
  it('lets flags override env and env override the file', async () => {
    // Prepare
    const { dir, base } = await baseConfig();
    const file = join(dir, 'device.json');
    await writeFile(file, JSON.stringify({ ...base, rate: 5, limit: 10 }));

    // Act
    const config = resolveConfig(
      configFromFile(file),
      configFromEnv({ EDGELOOP_DEVICE_RATE: '50', EDGELOOP_DEVICE_MQTT_ENDPOINT: 'mqtt://127.0.0.1:2000' }),
      { rate: 500 },
    );

    // Assess
    expect(config).toMatchObject({ rate: 500, limit: 10, mqttEndpoint: 'mqtt://127.0.0.1:2000' });
  });

  it('takes the disk reserve in MB from the env and hands it to the device in bytes', async () => {
    // Prepare
    const { base } = await baseConfig();

    // Act
    const options = deviceOptionsFrom(
      resolveConfig(base, configFromEnv({ [envName('diskReserveMB')]: '1.5' })),
    );
    const refused = (() => {
      try {
        resolveConfig(base, { diskReserveMB: '-1' });
      } catch (error) {
        return (error as Error).message;
      }
    })();

    // Assess
    expect(options.diskReserveBytes).toBe(1.5 * 2 ** 20);
    expect(refused).toMatch(/diskReserveMB/);
  });

  it('names a missing certificate file', async () => {
    // Prepare
    const { base } = await baseConfig();

    // Act
    const act = () =>
      resolveConfig({
        ...base,
        mqttEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
        certFile: '/nope/cert.pem',
        keyFile: '/nope/key.pem',
      });

    // Assess
    expect(act).toThrow(/certFile .*\/nope\/cert.pem does not exist/);
  });

  it('asks for a certificate when the endpoint needs TLS', async () => {
    const { base } = await baseConfig();
    expect(() => resolveConfig({ ...base, mqttEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com' })).toThrow(
      /uses TLS: set certFile and keyFile/,
    );
  });

  it('explains a bad endpoint', async () => {
    const { base } = await baseConfig();
    expect(() => resolveConfig({ ...base, mqttEndpoint: 'http://broker:1883' })).toThrow(
      /bad MQTT endpoint 'http:\/\/broker:1883'.*mqtt:\/\//,
    );
    expect(() => resolveConfig({ ...base, mqttEndpoint: 'mqtt://broker:99999' })).toThrow(
      /bad MQTT endpoint/,
    );
  });

  it('names an unknown option in the config file', async () => {
    // Prepare
    const { dir, base } = await baseConfig();
    const file = join(dir, 'device.json');
    await writeFile(file, JSON.stringify({ ...base, mqttEndpiont: 'x' }));

    // Act / Assess
    expect(() => configFromFile(file)).toThrow(/unknown option 'mqttEndpiont'/);
  });

  it('says how to start the local stack when its endpoints are missing', async () => {
    const { dir } = await baseConfig();
    expect(() => readLocalStack(dir)).toThrow(/edgeloop up --data-dir/);
  });
});

describe('connection helpers', () => {
  it('parses local and AWS endpoints', () => {
    expect(parseEndpoint('mqtt://127.0.0.1:1883')).toEqual({ host: '127.0.0.1', port: 1883, tls: false });
    expect(parseEndpoint('abc-ats.iot.eu-west-1.amazonaws.com')).toEqual({
      host: 'abc-ats.iot.eu-west-1.amazonaws.com',
      port: 8883,
      tls: true,
    });
  });

  it('backs off exponentially with jitter, never below the 1 s floor nor above the cap', () => {
    // Act
    const low = [0, 1, 2, 3, 10].map((attempt) => backoffMs(attempt, 1_000, 30_000, () => 0));
    const high = [0, 1, 2, 3, 10].map((attempt) => backoffMs(attempt, 1_000, 30_000, () => 1));

    // Assess
    expect(low).toEqual([1_000, 1_000, 1_000, 1_000, 1_000]);
    expect(high).toEqual([1_000, 2_000, 4_000, 8_000, 30_000]);
  });
});

describe('sources', () => {
  it('parses quoted CSV fields and CRLF line ends', () => {
    const { header, rows } = parseCsvReadings('a,b,label\r\n1,"x, ""y""",hi\r\n2,,lo\r\n', '');
    expect(header).toEqual(['a', 'b', 'label']);
    expect(rows).toEqual([
      { a: 1, b: 'x, "y"', label: 'hi' },
      { a: 2, b: '', label: 'lo' },
    ]);
  });

  it('turns only exactly printable numbers into numbers, so every transform sees the same value', () => {
    // Prepare
    const texts = ['21.5', '-3', '21.50', ' 7', 'nan', '', '1e3', 'hi'];
    const pre: Preprocessing = {
      label: 'y',
      labels: ['a', 'b'],
      features: [
        { kind: 'numeric', column: 'v', mean: 1, std: 2, fill: 0 },
        { kind: 'categorical', column: 'v', categories: ['21.50', '21.5', '-3'] },
      ],
      inputWidth: 5,
    };

    // Act
    const converted = texts.map(exactNumber);
    const fromText = transformRows(
      pre,
      texts.map((v) => ({ v })),
    );
    const fromConverted = transformRows(
      pre,
      converted.map((v) => ({ v })),
    );

    // Assess
    expect(converted).toEqual([21.5, -3, '21.50', ' 7', 'nan', '', '1e3', 'hi']);
    expect(fromConverted).toEqual(fromText);
  });

  it('rejects an unknown source spec with the accepted forms', () => {
    expect(parseSourceSpec('csv:data.csv', { limit: 5 })).toEqual({
      kind: 'csv',
      file: 'data.csv',
      limit: 5,
    });
    expect(() => parseSourceSpec('kafka:topic')).toThrow(/use csv:FILE, stdin, mqtt:\/\/host:port/);
  });
});
