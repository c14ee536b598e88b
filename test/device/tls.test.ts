import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/support/free-port.ts';
import { createMqttLink } from '../../device/platform/connection.ts';
import { iotCredentialsProvider } from '../../device/platform/iot-credentials.ts';
import { Journal } from '../../device/sources/live/journal.ts';
import { ReceivedQueue } from '../../device/sources/live/received.ts';
import { type MqttRecord, MqttSource } from '../../device/sources/mqtt/mqtt-source.ts';
import { validateMqttSettings } from '../../device/sources/mqtt/settings.ts';
import { topicFor } from '../../shared/topology.ts';
import { peerAvailable } from '../support/peers.ts';
import { removeTempDirs, tempDir, until } from './helpers.ts';
import { recordingSink } from './recording-sink.ts';

const OPENSSL = '/usr/bin/openssl';
const MOSQUITTO = '/usr/sbin/mosquitto';
const hasOpenssl = peerAvailable(
  'mTLS',
  existsSync(OPENSSL) ? undefined : `${OPENSSL} is not installed`,
  'apt-get install openssl',
);
const hasMosquitto = peerAvailable(
  'mTLS against Mosquitto',
  existsSync(MOSQUITTO) ? undefined : `${MOSQUITTO} is not installed`,
  'apt-get install mosquitto',
);

/** A CA, a server certificate for localhost and a client (thing) certificate, all signed by the CA. */
function makeCertificates(dir: string) {
  const run = (command: string) =>
    execFileSync(OPENSSL, command.split(' '), { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const newKey = '-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes';
  run(`req -x509 ${newKey} -keyout ca.key -out ca.pem -days 1 -subj /CN=edgeloop-test-CA`);
  for (const [name, subject, ext] of [
    ['server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    ['thing', '/CN=gw-tls', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    run(`req ${newKey} -keyout ${name}.key -out ${name}.csr -subj ${subject}`);
    run(
      `x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${name}.pem -days 1 -extfile ${name}.ext`,
    );
  }
  // Mosquitto started as root drops to its own user, which must read these throwaway files.
  chmodSync(dir, 0o755);
  for (const file of ['ca.pem', 'server.pem', 'server.key']) chmodSync(join(dir, file), 0o644);
  return {
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    thingCert: join(dir, 'thing.pem'),
    thingKey: join(dir, 'thing.key'),
  };
}

describe.runIf(hasOpenssl)('AWS mode: mutual TLS with the thing certificate', () => {
  let dir: string;
  let certs: ReturnType<typeof makeCertificates>;

  beforeAll(async () => {
    dir = await tempDir();
    certs = makeCertificates(dir);
  });

  afterAll(removeTempDirs);

  it('gets S3 credentials from the IoT credentials provider with the thing certificate', async () => {
    // Prepare
    const seen: { path?: string; thing?: string; authorized?: boolean }[] = [];
    const server: Server = createHttpsServer(
      {
        cert: readFileSync(certs.serverCert),
        key: readFileSync(certs.serverKey),
        ca: readFileSync(certs.ca),
        requestCert: true,
      },
      (req, res) => {
        seen.push({
          path: req.url,
          thing: req.headers['x-amzn-iot-thingname'] as string,
          authorized: (req.socket as import('node:tls').TLSSocket).authorized,
        });
        res.end(
          JSON.stringify({
            credentials: {
              accessKeyId: 'AKID',
              secretAccessKey: 'SECRET',
              sessionToken: 'TOKEN',
              expiration: new Date(Date.now() + 3_600_000).toISOString(),
            },
          }),
        );
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const provider = iotCredentialsProvider({
      endpoint: `localhost:${(server.address() as AddressInfo).port}`,
      roleAlias: 'models-read',
      thing: 'gw-tls',
      tls: { certFile: certs.thingCert, keyFile: certs.thingKey, caFile: certs.ca },
    });

    // Act
    const first = await provider();
    const cached = await provider();
    server.close();

    // Assess
    expect(first).toMatchObject({ accessKeyId: 'AKID', secretAccessKey: 'SECRET', sessionToken: 'TOKEN' });
    expect(cached).toBe(first);
    expect(seen).toEqual([
      { path: '/role-aliases/models-read/credentials', thing: 'gw-tls', authorized: true },
    ]);
  });

  describe.runIf(hasMosquitto)('against Mosquitto with require_certificate', () => {
    let mosquitto: ChildProcess;
    let port: number;

    beforeAll(async () => {
      port = await freePort();
      const conf = join(dir, 'mosquitto-tls.conf');
      await writeFile(
        conf,
        [
          `listener ${port} 127.0.0.1`,
          `cafile ${certs.ca}`,
          `certfile ${certs.serverCert}`,
          `keyfile ${certs.serverKey}`,
          'require_certificate true',
          'allow_anonymous true',
          'persistence false',
          '',
        ].join('\n'),
      );
      mosquitto = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    });

    afterAll(() => {
      mosquitto?.kill('SIGTERM');
    });

    it('connects over mTLS and gets PUBACKs', async () => {
      // Prepare
      const received: string[] = [];
      const link = createMqttLink({
        clientId: 'gw-tls',
        endpoint: `mqtts://127.0.0.1:${port}`,
        tls: { certFile: certs.thingCert, keyFile: certs.thingKey, caFile: certs.ca },
      });
      const topic = topicFor('status', { thing: 'gw-tls' });

      // Act
      await link.connect();
      await link.subscribe(topic, (_topic, payload) => received.push(payload.toString()));
      await link.publish(topic, '{"hello":"tls"}');
      await until(() => received.length > 0, 10_000, 'the echo over TLS');
      await link.disconnect();

      // Assess
      expect(received).toEqual(['{"hello":"tls"}']);
    });

    it('reads a sensor over mTLS with the MQTT input (mqtts://, caFile, certFile, keyFile)', async () => {
      // Prepare
      const queue = new ReceivedQueue(100, 'hold');
      const { journal, pending } = Journal.open<MqttRecord>(join(dir, 'received'), () => 0);
      const settings = validateMqttSettings(
        {
          kind: 'mqtt',
          url: `mqtts://127.0.0.1:${port}`,
          topicTemplate: 'plant/{series}/pump',
          caFile: certs.ca,
          certFile: certs.thingCert,
          keyFile: certs.thingKey,
        },
        'the test source',
      );
      const source = new MqttSource(settings, {
        thing: 'gw-tls',
        queue,
        journal,
        pending,
        gate: () => Promise.resolve(),
        stopped: () => false,
        onReceived: () => undefined,
        onDuplicate: () => undefined,
      });
      const sink = recordingSink();
      const sensor = createMqttLink({
        clientId: 'sensor-tls',
        endpoint: `mqtts://127.0.0.1:${port}`,
        tls: { certFile: certs.thingCert, keyFile: certs.thingKey, caFile: certs.ca },
      });

      // Act
      await source.start(sink);
      await until(() => sink.states.includes('connected'), 10_000, 'the source subscribed over TLS');
      await sensor.connect();
      await sensor.publish('plant/pump-1/pump', '{"time": 1700000000000, "temp": 61.5}');
      await until(() => queue.size > 0, 10_000, 'the reading over TLS');
      await sensor.disconnect();
      await source.stop();
      journal.close();

      // Assess
      expect(queue.take(10).flatMap((entry) => entry.readings)).toEqual([
        { time: 1_700_000_000_000, series: 'pump-1', values: { temp: 61.5 } },
      ]);
    });
  });
});
