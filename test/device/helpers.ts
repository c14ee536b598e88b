/**
 * Real peers for the device tests: an aedes broker that enforces the thing policy, an
 * the local S3 (infra/local/s3) with the models bucket, and a TINY real tfjs model trained here and published
 * (signed artifacts + manifest + retained release notice) exactly as the trainer does.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Aedes } from 'aedes';
import type { DeviceOptions } from '../../device/service.ts';
import { LocalS3 } from '../../infra/local/s3/server.ts';
import {
  canonicalJson,
  generateSigningKeyPair,
  pemSigner,
  sha256Hex,
  signManifest,
} from '../../shared/manifest.ts';
import { signNotice } from '../../shared/notice.ts';
import { transformRows } from '../../shared/preprocess.ts';
import {
  type DeviceStatus,
  DeviceStatusSchema,
  type Manifest,
  type Preprocessing,
  type ReleaseNotice,
  type ResultBatch,
  ResultBatchSchema,
} from '../../shared/schemas.ts';
import { initTf, tf } from '../../shared/tf.ts';
import {
  buckets,
  localStackFiles,
  modelFiles,
  modelKeys,
  policyAllows,
  topicFilter,
  topicFor,
} from '../../shared/topology.ts';

export const MODEL = 'tiny';
export const BUCKET = buckets.models.localName;

const created: string[] = [];

export async function tempDir(prefix = 'edgeloop-device-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Removes every temp dir this test file made (call in afterAll). */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(created.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

// ---------------------------------------------------------------------------------------
// aedes with the thing policy, restartable on the same port
// ---------------------------------------------------------------------------------------

export interface TestBroker {
  port: number;
  url: string;
  /** Every result batch that reached the broker, parsed with ResultBatchSchema. */
  batches: ResultBatch[];
  /** Status messages with the thing taken from the topic. */
  statuses: { thing: string; status: DeviceStatus }[];
  resultIds(): Set<string>;
  /** Clients connected right now. */
  clients(): number;
  publishRetained(topic: string, payload: unknown): Promise<void>;
  /** Closes the listener and every client connection (an outage); `start()` reopens. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startBroker(port = 0): Promise<TestBroker> {
  const batches: ResultBatch[] = [];
  const statuses: { thing: string; status: DeviceStatus }[] = [];
  const retained = new Map<string, Buffer>();
  let broker: Aedes | undefined;
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let boundPort = port;

  async function start() {
    const instance = await Aedes.createBroker({
      preConnect: (_client, packet, done) =>
        done(null, policyAllows('iot:Connect', packet.clientId, packet.clientId)),
      authorizePublish: (client, packet, done) => {
        if (client && !policyAllows('iot:Publish', client.id, packet.topic))
          return done(new Error(`policy denies publish to ${packet.topic}`));
        done(null);
      },
      authorizeSubscribe: (client, sub, done) => {
        if (!policyAllows('iot:Subscribe', client.id, sub.topic))
          return done(new Error(`policy denies subscribe to ${sub.topic}`));
        done(null, sub);
      },
    });
    instance.subscribe(
      topicFilter('results'),
      (packet, cb) => {
        batches.push(ResultBatchSchema.parse(JSON.parse(packet.payload.toString())) as ResultBatch);
        cb();
      },
      () => undefined,
    );
    instance.subscribe(
      topicFilter('status'),
      (packet, cb) => {
        statuses.push({
          thing: packet.topic.split('/')[2] ?? '',
          status: DeviceStatusSchema.parse(JSON.parse(packet.payload.toString())),
        });
        cb();
      },
      () => undefined,
    );
    // Retained notices survive a broker restart here, as the local stack re-publishes them.
    for (const [topic, payload] of retained) await publishOn(instance, topic, payload);
    broker = instance;
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      instance.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(boundPort, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address && typeof address === 'object') boundPort = address.port;
  }

  async function stop() {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
    server = undefined;
    broker = undefined;
  }

  await start();
  return {
    get port() {
      return boundPort;
    },
    get url() {
      return `mqtt://127.0.0.1:${boundPort}`;
    },
    batches,
    statuses,
    clients: () => broker?.connectedClients ?? 0,
    resultIds() {
      const ids = new Set<string>();
      for (const batch of batches) for (const result of batch.results) ids.add(result.id);
      return ids;
    },
    async publishRetained(topic, payload) {
      const bytes = Buffer.from(JSON.stringify(payload));
      retained.set(topic, bytes);
      if (broker) await publishOn(broker, topic, bytes);
    },
    stop,
    start,
    close: stop,
  };
}

function publishOn(broker: Aedes, topic: string, payload: Buffer) {
  return new Promise<void>((resolve, reject) =>
    broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: true, dup: false }, (error) =>
      error ? reject(error) : resolve(),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// The local S3 (infra/local/s3), unguarded: the device's own S3 client is the only caller.
// ---------------------------------------------------------------------------------------

export interface TestS3 {
  endpoint: string;
  client: S3Client;
  put(key: string, body: Uint8Array | string): Promise<void>;
  close(): Promise<void>;
}

export async function startS3(): Promise<TestS3> {
  const directory = await tempDir('edgeloop-s3-');
  const s3 = await LocalS3.open({ directory, buckets: [BUCKET], region: 'us-east-1' });
  const server = createHttpServer(s3.handle);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'LOCAL', secretAccessKey: 'LOCAL' },
  });
  return {
    endpoint,
    client,
    async put(key, body) {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    },
    async close() {
      client.destroy();
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
      await rm(directory, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------
// A tiny real model: two numeric features, two classes (a + b > 0 -> "hi").
// ---------------------------------------------------------------------------------------

export const PREPROCESSING: Preprocessing = {
  label: 'state',
  labels: ['hi', 'lo'],
  features: [
    { kind: 'numeric', column: 'a', mean: 0, std: 1, fill: 0 },
    { kind: 'numeric', column: 'b', mean: 0, std: 1, fill: 0 },
  ],
  inputWidth: 2,
};

export interface Artifacts {
  modelJson: Buffer;
  weights: Buffer;
  golden: { rows: Record<string, string>[]; outputs: number[][] };
}

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function sensorRows(n: number, seed = 7): Record<string, string>[] {
  const random = lcg(seed);
  return Array.from({ length: n }, () => {
    const a = random() * 4 - 2;
    const b = random() * 4 - 2;
    return { a: a.toFixed(3), b: b.toFixed(3), state: a + b > 0 ? 'hi' : 'lo' };
  });
}

export function sensorCsv(n: number, seed = 7): string {
  return ['a,b,state', ...sensorRows(n, seed).map((row) => `${row.a},${row.b},${row.state}`)].join('\n');
}

/** model.json + weights.bin bytes, as tf.io.withSaveHandler gives them to the trainer. */
export async function saveArtifacts(model: tf.LayersModel): Promise<{ modelJson: Buffer; weights: Buffer }> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved?.weightData || !saved.weightSpecs) throw new Error('tfjs save produced no weights');
  const modelJson = Buffer.from(
    JSON.stringify({
      format: 'layers-model',
      modelTopology: saved.modelTopology,
      weightsManifest: [{ paths: [modelFiles.weights], weights: saved.weightSpecs }],
    }),
  );
  return { modelJson, weights: Buffer.from(saved.weightData as ArrayBuffer) };
}

export async function trainTinyModel(hidden = 8): Promise<Artifacts> {
  await initTf();
  const rows = sensorRows(200);
  const x = tf.tensor2d(transformRows(PREPROCESSING, rows), [rows.length, 2]);
  const y = tf.oneHot(
    tf.tensor1d(
      rows.map((row) => PREPROCESSING.labels.indexOf(row.state ?? '')),
      'int32',
    ),
    2,
  );
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [2], units: hidden, activation: 'relu' }),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy' });
  await model.fit(x, y, { epochs: 5, batchSize: 32, verbose: 0 });
  const { modelJson, weights } = await saveArtifacts(model);
  const goldenRows = sensorRows(6, 99);
  const outputs = tf.tidy(() =>
    (model.predict(tf.tensor2d(transformRows(PREPROCESSING, goldenRows), [6, 2])) as tf.Tensor).arraySync(),
  ) as number[][];
  tf.dispose([x, y]);
  model.dispose();
  return { modelJson, weights, golden: { rows: goldenRows, outputs } };
}

export interface Release {
  notice: ReleaseNotice;
  manifest: Manifest;
}

export interface PublishOptions {
  version: number;
  kind?: 'release' | 'rollback';
  /** Overrides what is uploaded as weights.bin (the manifest keeps the honest digest). */
  uploadWeights?: Buffer;
  /** Weights the manifest is built from (e.g. NaN weights), signed honestly. */
  weights?: Buffer;
  /** Signs with a different key than the device trusts. */
  signWith?: string;
  /** Signs the notice with this key (default: the stack's). */
  noticeSignWith?: string;
  /** Skip the retained notice (to publish it later). */
  noNotice?: boolean;
  /**
   * A notice the device must refuse: without a signature, signed by another key, or signed
   * by the right key but already expired. Default: signed by the trusted key, current.
   */
  badNotice?: 'unsigned' | 'forged' | 'expired';
}

export async function publishRelease(
  s3: TestS3,
  broker: Pick<TestBroker, 'publishRetained'>,
  artifacts: Artifacts,
  privateKeyPem: string,
  options: PublishOptions,
): Promise<Release> {
  const v = options.version;
  const weights = options.weights ?? artifacts.weights;
  const unsigned: Manifest = {
    schemaVersion: 1,
    model: MODEL,
    version: v,
    createdAt: new Date().toISOString(),
    files: [
      { name: modelFiles.topology, sha256: sha256Hex(artifacts.modelJson), size: artifacts.modelJson.length },
      { name: modelFiles.weights, sha256: sha256Hex(weights), size: weights.length },
    ],
    preprocessing: PREPROCESSING,
    metrics: { accuracy: 0.9 },
    classDistribution: { hi: 0.5, lo: 0.5 },
    golden: { ...artifacts.golden, tolerance: 1e-3 },
    lowConfidence: 0.6,
    lineage: {
      datasetKey: `datasets/${MODEL}/d.csv`,
      datasetSha256: sha256Hex('d'),
      rows: 200,
      backend: 'wasm',
      seed: 1,
    },
  };
  const manifest = await signManifest(unsigned, pemSigner(options.signWith ?? privateKeyPem));
  const manifestBytes = Buffer.from(canonicalJson(manifest));
  await s3.put(modelKeys.file(MODEL, v, modelFiles.topology), artifacts.modelJson);
  await s3.put(modelKeys.file(MODEL, v, modelFiles.weights), options.uploadWeights ?? weights);
  await s3.put(modelKeys.manifest(MODEL, v), manifestBytes);
  const unsignedNotice: ReleaseNotice = {
    model: MODEL,
    version: v,
    bucket: BUCKET,
    manifestKey: modelKeys.manifest(MODEL, v),
    manifestSha256: sha256Hex(manifestBytes),
    releasedAt: new Date().toISOString(),
    kind: options.kind ?? 'release',
  };
  const bad = options.badNotice;
  const notice =
    bad === 'unsigned'
      ? unsignedNotice
      : await signNotice(
          bad === 'expired'
            ? { ...unsignedNotice, expiresAt: new Date(Date.now() - 1000).toISOString() }
            : unsignedNotice,
          pemSigner(
            bad === 'forged'
              ? generateSigningKeyPair().privateKeyPem
              : (options.noticeSignWith ?? privateKeyPem),
          ),
        );
  if (!options.noNotice) await broker.publishRetained(topicFor('release', { model: MODEL }), notice);
  return { notice, manifest };
}

export function signingKeys() {
  return generateSigningKeyPair();
}

/** Weights of the same size whose every float is NaN. */
export function nanWeights(weights: Buffer): Buffer {
  const floats = new Float32Array(weights.length / 4).fill(Number.NaN);
  return Buffer.from(floats.buffer);
}

export async function postInfer(port: number, reading: Record<string, unknown>) {
  const response = await fetch(`http://127.0.0.1:${port}/infer`, {
    method: 'POST',
    body: JSON.stringify(reading),
    headers: { 'content-type': 'application/json' },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Polls until `check` returns true (for facts that arrive over the network). */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// ---------------------------------------------------------------------------------------
// The usual fixture: broker + s3 + a trained tiny model + a local-stack-like data dir.
// ---------------------------------------------------------------------------------------

export interface Peers {
  broker: TestBroker;
  s3: TestS3;
  artifacts: Artifacts;
  keys: { privateKeyPem: string; publicKeyPem: string };
  /** Holds the endpoints and the public key (localStackFiles), as `edgeloop up` writes them. */
  dir: string;
  csv: string;
  release(options: PublishOptions): Promise<Release>;
  /** startDevice options for a thing against these peers (state in dir/thing). */
  deviceOptions(thing: string, extra?: Partial<DeviceOptions>): DeviceOptions;
  close(): Promise<void>;
}

export async function startPeers(csvRows = 64): Promise<Peers> {
  const [broker, s3, artifacts, dir] = await Promise.all([
    startBroker(),
    startS3(),
    trainTinyModel(),
    tempDir(),
  ]);
  const keys = generateSigningKeyPair();
  const csv = join(dir, 'readings.csv');
  await writeFile(csv, sensorCsv(csvRows));
  await mkdir(dirname(join(dir, localStackFiles.signingPublicKey)), { recursive: true });
  await writeFile(join(dir, localStackFiles.signingPublicKey), keys.publicKeyPem);
  await writeFile(
    join(dir, localStackFiles.endpoints),
    JSON.stringify({ s3: s3.endpoint, mqtt: broker.url }),
  );
  return {
    broker,
    s3,
    artifacts,
    keys,
    dir,
    csv,
    release: (options) => publishRelease(s3, broker, artifacts, keys.privateKeyPem, options),
    deviceOptions: (thing, extra = {}) => ({
      thing,
      model: MODEL,
      stateDir: join(dir, thing),
      mqttEndpoint: broker.url,
      s3Endpoint: s3.endpoint,
      publicKeyPem: keys.publicKeyPem,
      ...extra,
    }),
    async close() {
      await broker.close();
      await s3.close();
      await removeTempDirs();
    },
  };
}
