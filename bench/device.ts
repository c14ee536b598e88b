/**
 * Device benchmark (issue 4): batched inference throughput through the whole device
 * pipeline (CSV rows -> preprocessing -> micro-batched predict -> results -> disk outbox ->
 * QoS 1 publish to a real local aedes broker, until every result is acknowledged) against
 * a bare tfjs `predict` on the same model and backend in the same run (the pipeline rate is
 * until every result is durable in the outbox; the acknowledged rate until every batch got
 * its PUBACK, which IoT Core's publish limit bounds); single-reading
 * POST /infer p50/p99; and the memory of the process. Prints one JSON object.
 *
 *   npx tsx bench/device.ts [--rows N]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { Engine } from '../device/model/engine.ts';
import { loadModelFromBytes } from '../device/model/model.ts';
import { ModelStore } from '../device/model/model-store.ts';
import { Outbox } from '../device/results/outbox.ts';
import { ResultStream } from '../device/results/result-writer.ts';
import { startDevice } from '../device/service.ts';
import { loadCsvFile, runCsvReplay } from '../device/sources/sources.ts';
import type { ReadingList } from '../shared/dataset/reading-table.ts';
import {
  canonicalJson,
  generateSigningKeyPair,
  pemSigner,
  sha256Hex,
  signManifest,
} from '../shared/manifest.ts';
import { transformRows } from '../shared/preprocess.ts';
import type { Manifest, Preprocessing } from '../shared/schemas.ts';
import { initTf, tf } from '../shared/tf.ts';
import { modelFiles } from '../shared/topology.ts';
import { saveModelArtifacts } from '../shared/training/model.ts';

export const FEATURES = 16;
const ROUND_READINGS = 200_000;
const CLASSES = 4;
export const preprocessing: Preprocessing = {
  label: 'label',
  labels: Array.from({ length: CLASSES }, (_, i) => `c${i}`),
  features: Array.from({ length: FEATURES }, (_, i) => ({
    kind: 'numeric',
    column: `f${i}`,
    mean: 0,
    std: 1,
    fill: 0,
  })),
  inputWidth: FEATURES,
};

export function rows(n: number): Record<string, string>[] {
  let s = 12345;
  const random = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return Array.from({ length: n }, () => {
    const row: Record<string, string> = {};
    for (let f = 0; f < FEATURES; f++) row[`f${f}`] = (random() * 4 - 2).toFixed(3);
    row.label = `c${Math.floor(random() * CLASSES)}`;
    return row;
  });
}

/** The 16-64-32-4 MLP from the design notes, saved the way the trainer saves it. */
export async function buildModel() {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [FEATURES], units: 64, activation: 'relu' }),
      tf.layers.dense({ units: 32, activation: 'relu' }),
      tf.layers.dense({ units: CLASSES, activation: 'softmax' }),
    ],
  });
  const saved = await saveModelArtifacts(model);
  return { model, modelJson: Buffer.from(saved.modelJson), weights: Buffer.from(saved.weights) };
}

/** Bare tfjs: pre-transformed input, predict + dataSync per batch of `batch` rows. */
export function bareRun(
  model: tf.LayersModel,
  x: Float32Array,
  rowsInFile: number,
  total: number,
  batch: number,
) {
  const start = performance.now();
  for (let done = 0; done < total; done += batch) {
    const i = done % (rowsInFile - batch);
    const output = tf.tidy(
      () =>
        model.predict(
          tf.tensor2d(x.subarray(i * FEATURES, (i + batch) * FEATURES), [batch, FEATURES]),
        ) as tf.Tensor,
    );
    output.dataSync();
    output.dispose();
  }
  return (total * 1000) / (performance.now() - start);
}

/**
 * The device's own pipeline without the network: CSV readings -> preprocessing -> one
 * predict per chunk -> results -> batches durable in a real on-disk outbox, exactly as
 * `startDevice` runs it, on one thread: predict, then the result writer encodes the results,
 * cuts batches and commits them (fsynced segment files).
 *
 * Like for like with `bareRun`: the CSV source transforms each row of the file once per
 * serving model (PreparedRows; reading p is row p mod rows on every loop), so both sides
 * predict from transformed vectors; the pipeline pays that transform on its first pass over
 * the 2,048 rows, and on top of bare predict: the arg-max, the result JSON and batches,
 * event-loop turns and the kernel's fsyncs. The rate counts until every result is durable.
 */
async function pipelineRun(engine: Engine, data: ReadingList, total: number, dir: string) {
  const outbox = await Outbox.open(dir);
  const batcher = new ResultStream(outbox, { thing: 'bench-gw', model: 'bench' });
  const start = performance.now();
  await runCsvReplay(data, { limit: total }, 0, {
    thing: 'bench-gw',
    engine,
    batcher,
    labelColumn: () => 'label',
    stopped: () => false,
  });
  await batcher.flush();
  const rate = (total * 1000) / (performance.now() - start);
  await batcher.close();
  return rate;
}

/**
 * The key the benches sign their models with: a gateway verifies a stored model's signature
 * at boot, so a bench's cached model is signed like a released one. Devices get the public key.
 */
export const BENCH_KEYS = generateSigningKeyPair();

/** `manifest` signed with BENCH_KEYS, stored, verified and current in `stateDir` (as an update leaves it). */
export async function storeSignedModel(
  stateDir: string,
  unsigned: Manifest,
  modelJson: Buffer,
  weights: Buffer,
) {
  const manifest = await signManifest(unsigned, pemSigner(BENCH_KEYS.privateKeyPem));
  const store = new ModelStore(stateDir);
  await store.init();
  const staging = await store.stage({
    manifestBytes: Buffer.from(canonicalJson(manifest)),
    manifest,
    files: new Map([
      [modelFiles.topology, modelJson],
      [modelFiles.weights, weights],
    ]),
  });
  await store.promote(staging, manifest.version);
  await store.switchTo(manifest.version);
  return manifest;
}

/** Version 1 of the bench MLP's manifest (no golden rows: the benches skip probation). */
export function benchManifest(modelJson: Buffer, weights: Buffer, backend: string): Manifest {
  return {
    schemaVersion: 1,
    model: 'bench',
    version: 1,
    createdAt: new Date().toISOString(),
    files: [
      { name: modelFiles.topology, sha256: sha256Hex(modelJson), size: modelJson.length },
      { name: modelFiles.weights, sha256: sha256Hex(weights), size: weights.length },
    ],
    preprocessing,
    metrics: { accuracy: 0.5 },
    classDistribution: {},
    golden: { rows: [], outputs: [], tolerance: 1e-3 },
    lowConfidence: 0.6,
    lineage: { datasetKey: 'bench', datasetSha256: sha256Hex('bench'), rows: 0, backend, seed: 1 },
  };
}

/** Version 1 of the bench model stored, verified and current in `stateDir`: a cached model. */
export function storeServingModel(stateDir: string, modelJson: Buffer, weights: Buffer, backend: string) {
  return storeSignedModel(stateDir, benchManifest(modelJson, weights, backend), modelJson, weights);
}

export async function writeCsv(file: string, data: readonly Record<string, string>[]) {
  const header = Object.keys(data[0] ?? {});
  await writeFile(
    file,
    [header.join(','), ...data.map((row) => header.map((h) => row[h]).join(','))].join('\n'),
  );
}

export async function startBroker() {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

/**
 * Peak resident memory of one `edgeloop device` process running a CSV replay to its limit
 * against the bench broker, read from /proc while it runs (Linux).
 */
async function deviceProcessPeakRssMB(
  stateDir: string,
  csv: string,
  mqtt: string,
  keyFile: string,
  limit: number,
) {
  const bin = join(import.meta.dirname, '..', 'infra', 'cli', 'bin.js');
  const child = spawn(
    process.execPath,
    [
      bin,
      'device',
      '--thing',
      'bench-proc',
      '--model',
      'bench',
      '--state-dir',
      stateDir,
      '--mqtt-endpoint',
      mqtt,
      '--public-key',
      keyFile,
      '--source',
      `csv:${csv}`,
      '--rate',
      '5000',
      '--limit',
      String(limit),
      '-q',
    ],
    { stdio: process.env.BENCH_DEBUG ? 'inherit' : 'ignore' },
  );
  let peak = 0;
  const poll = setInterval(() => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (match) peak = Math.max(peak, Number(match[1]) / 1024);
    } catch {
      // not started yet, or gone
    }
  }, 100);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(poll);
  if (code !== 0) throw new Error(`the device process exited with ${code}`);
  return Math.round(peak);
}

function percentile(sorted: number[], q: number) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

export async function main(argv = process.argv.slice(2)) {
  const total = Number(argv[argv.indexOf('--rows') + 1]) || 100_000;
  const debug = (m: string) => process.env.BENCH_DEBUG && console.error(m);
  const backend = await initTf();
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-bench-'));
  const broker = await startBroker();
  const { model, modelJson, weights } = await buildModel();
  const data = rows(2_048);
  try {
    // A stored, verified slot so the device starts serving from disk.
    const stateDir = join(dir, 'state');
    const manifest = await storeServingModel(stateDir, modelJson, weights, backend);
    const csv = join(dir, 'rows.csv');
    await writeCsv(csv, data);

    // Interleaved rounds (bare, pipeline, bare, ...) on the same model and backend, so a
    // busy machine slows both alike; the ratio is the median of the per-round ratios.
    const x = transformRows(preprocessing, data);
    const engine = new Engine();
    engine.setModel(await loadModelFromBytes(modelJson, weights, manifest));
    const readings = loadCsvFile(csv); // what the CSV source replays
    // Rounds of 200,000 readings (about half a second each): throughput is a steady-state
    // figure, and a round's fixed costs (the first transform of the file's rows, the last
    // group commit) would weigh on shorter rounds.
    bareRun(model, x, data.length, 50_000, 512);
    await pipelineRun(engine, readings, 50_000, join(dir, 'warm'));
    const rounds: { bare: number; pipeline: number }[] = [];
    for (let round = 0; round < 5; round++) {
      const bare = bareRun(model, x, data.length, ROUND_READINGS, 512);
      const pipeline = await pipelineRun(engine, readings, ROUND_READINGS, join(dir, `round-${round}`));
      rounds.push({ bare, pipeline });
    }
    engine.dispose();
    const ratios = rounds.map((r) => r.pipeline / r.bare).sort((a, b) => a - b);
    const median = (values: number[]) =>
      [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

    const device = await startDevice({
      thing: 'bench-gw',
      model: 'bench',
      stateDir,
      mqttEndpoint: broker.url,
      publicKeyPem: BENCH_KEYS.publicKeyPem,
      source: { kind: 'csv', file: csv, limit: total },
      httpPort: 0,
    });
    // End to end through startDevice: the outbox drains over MQTT to a real aedes broker.
    const started = performance.now();
    await device.waitFor((snapshot) => snapshot.position >= total, 600_000);
    const produced = (total * 1000) / (performance.now() - started);
    await device.finished;
    const acknowledged = (total * 1000) / (performance.now() - started);

    const latencies: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t0 = performance.now();
      const response = await fetch(`http://127.0.0.1:${device.httpPort}/infer`, {
        method: 'POST',
        body: JSON.stringify(data[i % data.length]),
        headers: { 'content-type': 'application/json' },
      });
      await response.json();
      latencies.push(performance.now() - t0);
    }
    latencies.sort((a, b) => a - b);
    await device.stop();
    const memory = process.memoryUsage();
    await writeFile(join(dir, 'signing.pub.pem'), BENCH_KEYS.publicKeyPem);
    await cp(join(stateDir, 'models'), join(dir, 'proc-state', 'models'), { recursive: true });
    debug('spawning device process');
    const deviceRssMB = await deviceProcessPeakRssMB(
      join(dir, 'proc-state'),
      csv,
      broker.url,
      join(dir, 'signing.pub.pem'),
      20_000,
    );
    const result = {
      backend,
      model: `${FEATURES}-64-32-${CLASSES} MLP, batches of 512`,
      bareInferencesPerSec: Math.round(median(rounds.map((r) => r.bare))),
      pipelineInferencesPerSec: Math.round(median(rounds.map((r) => r.pipeline))),
      ratio: Number((ratios[Math.floor(ratios.length / 2)] ?? 0).toFixed(3)),
      ratioRange: [Number((ratios[0] ?? 0).toFixed(3)), Number((ratios.at(-1) ?? 0).toFixed(3))],
      target: 0.8,
      endToEnd: {
        results: total,
        producedPerSec: Math.round(produced),
        /** Until every batch got its PUBACK: bounded by the publish pacing (70/s, IoT Core allows 100/s). */
        acknowledgedPerSec: Math.round(acknowledged),
        required: 5_000,
      },
      inferP50Ms: Number(percentile(latencies, 0.5).toFixed(3)),
      inferP99Ms: Number(percentile(latencies, 0.99).toFixed(3)),
      /** Peak RSS of one `edgeloop device` process (CSV replay at 5,000/s, 20,000 readings). */
      deviceProcessPeakRssMB: deviceRssMB,
      /** This bench process: broker, bare model and device together. */
      benchRssMB: Math.round(memory.rss / 2 ** 20),
    };
    console.log(JSON.stringify(result));
    return result;
  } finally {
    model.dispose();
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
