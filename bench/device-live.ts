/**
 * The gateway at a live rate (#29): the real device service (`edgeloop device`, a process of
 * its own) reads a source paced in real time, predicts, and makes every result durable in
 * its outbox and publishes it to a real MQTT broker (aedes, the local stack's broker) that
 * this process runs. Workloads, each for `--seconds` (default 60):
 *
 * - rows: the 16-64-32-4 MLP of bench/device.ts at 5,000 readings/s;
 * - spectral: a spectral window model over 50 machines x 3 channels x 100 Hz (1 s windows,
 *   0.5 s stride: 100 windows/s), readings interleaved by time as machines send them;
 * - raw: a raw (GRU) window model on the same stream;
 * - mqtt-spectral: the spectral stream published to a real Mosquitto (one JSON reading per
 *   message, QoS 1, by this process at the live rate) and read by the device's MQTT input
 *   (acknowledged once journalled); needs /usr/sbin/mosquitto.
 *
 * Bare baseline, same run, this process, one thread, no I/O: the same model's features and
 * predict on the same inputs, in the batches the live rate gives the device (a paced source
 * hands over 1/20 s of readings at a time: 250 rows, or the windows 250 readings complete).
 *
 * Figures per workload (one JSON line each with --json): the device process's CPU (user +
 * system, every thread, from /proc) per 1,000 results against the bare CPU per 1,000 results
 * (cpuRatio = bare / device), the device's own p50/p99 from a reading's arrival (for a window:
 * its last reading's) to its result being durable in the outbox, its peak RSS (VmHWM), the
 * results it dropped, and `exact`: every expected result reached the broker, each id once.
 * The CPU window runs from the first result at the broker to the last (start-up excluded).
 *
 * The device is the gateway package as gateways install it (built for this machine first), or
 * with `--device repo` the repository's device under tsx.
 *
 *   npx tsx bench/device-live.ts [--json] [--seconds 60] [--workload rows|spectral|raw|mqtt-spectral] [--device package|repo]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { type LoadedModel, loadModelFromBytes } from '../device/model/model.ts';
import { windowBatch } from '../device/model/window-model.ts';
import { parseCsvReadings } from '../shared/dataset/readings.ts';
import { transformRows } from '../shared/preprocess.ts';
import type { DeviceStatus, Manifest } from '../shared/schemas.ts';
import { initTf } from '../shared/tf.ts';
import {
  generateVibrationCsv,
  VIBRATION_CHANNELS,
  VIBRATION_LABEL,
} from '../shared/timeseries/vibration-dataset.ts';
import { type Window, windowsOf } from '../shared/timeseries/windower.ts';
import { topicFilter } from '../shared/topology.ts';
import {
  BENCH_KEYS,
  benchManifest,
  buildModel,
  preprocessing,
  rows,
  storeSignedModel,
  writeCsv,
} from './device.ts';
import { trainBenchWindowModel } from './device-windows.ts';
import { unpackedGateway } from './support/gateway-package.ts';
import { MOSQUITTO, startMosquitto } from './support/mosquitto.ts';

const RATE = 5_000;
const MACHINES = 50;
/** Readings a paced source hands over at a time (ReplayPace: 1/20 s of the rate). */
const CHUNK = RATE / 20;
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

type Workload = 'rows' | 'spectral' | 'raw' | 'mqtt-spectral';

interface LiveFigures {
  bench: 'device-live';
  workload: Workload;
  readingsPerSecond: number;
  results: number;
  cpuPerKiloResultMs: number;
  bareCpuPerKiloResultMs: number;
  cpuRatio: number;
  p50LatencyMs: number | null;
  p99LatencyMs: number | null;
  peakRssMB: number;
  dropped: number;
  exact: boolean;
  /** What ran: the gateway package, or the repository's device under tsx. */
  device: 'package' | 'repo';
}

/** A model ready for the device's state dir, the CSV it replays, and the bare work per result. */
interface Prepared {
  manifest: Manifest;
  modelJson: Buffer;
  weights: Buffer;
  csv: string;
  /** The readings of one pass, in the order the machines send them (windows). */
  stream?: readonly Record<string, string | number>[];
  /** Time one pass's readings span (ms), for shifting later passes of a live stream. */
  passSpanMs?: number;
  /** Readings in one pass over the file. */
  passReadings: number;
  /** Results one pass gives. */
  passResults: number;
  /** The bare side: features + predict for one pass's results, in live-rate batches. */
  bare(model: LoadedModel): void;
}

function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat; 12 and 13 after the pid and name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

function peakRssMBOf(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
}

async function prepareRows(): Promise<Prepared> {
  const { model, modelJson, weights } = await buildModel();
  model.dispose();
  const data = rows(2_048);
  const csv = join(await mkdtemp(join(tmpdir(), 'edgeloop-live-rows-')), 'rows.csv');
  await writeCsv(csv, data);
  const manifest = benchManifest(modelJson, weights, 'bench');
  return {
    manifest,
    modelJson,
    weights,
    csv,
    passReadings: data.length,
    passResults: data.length,
    bare(served) {
      // The device transforms each file row once per model and predicts 250 rows at a time.
      for (let at = 0; at < data.length; at += CHUNK) {
        const batch = data.slice(at, at + CHUNK);
        served.classifyInput(transformRows(preprocessing, batch), batch.length);
      }
    },
  };
}

/**
 * 50 machines' vibration at 100 Hz, aligned to start together and interleaved by time (as a
 * gateway receives them), 20 s per pass; a model trained on 8 other machines.
 */
async function prepareWindows(features: 'spectral' | 'raw'): Promise<Prepared> {
  const { outcome, manifest } = await trainBenchWindowModel(
    generateVibrationCsv({ machines: 8, readings: 1500, seed: 5 }),
    features,
  );
  const window = manifest.window;
  if (!window) throw new Error('the trainer gave no window block');
  const generated = parseCsvReadings(
    generateVibrationCsv({ machines: MACHINES, readings: 2_000, seed: 6, firstMachine: 8 }),
    '',
  ).rows;
  const firstTs = new Map<string, number>();
  for (const row of generated)
    if (!firstTs.has(String(row.machine))) firstTs.set(String(row.machine), Number(row.ts));
  const base = 1_700_000_000_000;
  const stream = generated
    .map((row): Record<string, string | number> & { ts: number } => ({
      ...row,
      ts: base + Number(row.ts) - (firstTs.get(String(row.machine)) ?? 0),
    }))
    .sort((a, b) => a.ts - b.ts || String(a.machine).localeCompare(String(b.machine)));
  const header = ['ts', 'machine', ...VIBRATION_CHANNELS, VIBRATION_LABEL];
  const csv = join(await mkdtemp(join(tmpdir(), `edgeloop-live-${features}-`)), 'stream.csv');
  await writeFile(
    csv,
    [header.join(','), ...stream.map((row) => header.map((h) => row[h]).join(','))].join('\n'),
  );

  // The windows the device should make in one pass: each machine's own, in time order.
  const byMachine = new Map<string, typeof stream>();
  for (const row of stream) {
    const name = String(row.machine);
    const list = byMachine.get(name) ?? [];
    list.push(row);
    byMachine.set(name, list);
  }
  const windows: Window[] = [];
  for (const [name, list] of byMachine) {
    const times = Float64Array.from(list, (row) => row.ts);
    const values = new Float32Array(list.length * window.spec.channels.length);
    const width = window.spec.channels.length;
    list.forEach((row, i) => {
      window.spec.channels.forEach((channel, c) => {
        values[i * width + c] = Number(row[channel]);
      });
    });
    windows.push(
      ...windowsOf(
        name,
        window.spec,
        times,
        values,
        list.map((row) => String(row[VIBRATION_LABEL])),
      ),
    );
  }
  // The live batches: the windows a chunk of readings completes, in the order they complete.
  windows.sort((a, b) => a.end - b.end);
  const batches: Window[][] = [];
  const chunkMs = (CHUNK / RATE) * 1000;
  for (const w of windows) {
    const slot = Math.floor((w.end - base) / chunkMs);
    const last = batches[batches.length - 1];
    if (last && Math.floor(((last[0] as Window).end - base) / chunkMs) === slot) last.push(w);
    else batches.push([w]);
  }
  return {
    manifest,
    modelJson: Buffer.from(outcome.artifacts.modelJson),
    weights: Buffer.from(outcome.artifacts.weights),
    csv,
    stream,
    passSpanMs: (stream.at(-1)?.ts ?? base) - base,
    passReadings: stream.length,
    passResults: windows.length,
    bare(served) {
      for (const batch of batches) served.classifyInput(windowBatch(served, batch), batch.length);
    },
  };
}

/**
 * The machines of a pass publish their readings to the broker at RATE (QoS 1, one JSON reading
 * per message on bench/<machine>), pass after pass; each later pass is shifted a second past
 * the previous one, so its windows start afresh and every pass makes the same windows.
 */
async function publishPasses(url: string, prepared: Prepared, passes: number): Promise<void> {
  const stream = prepared.stream ?? [];
  const client = await mqtt.connectAsync(url, { clientId: 'bench-machines', reconnectPeriod: 500 });
  const start = performance.now();
  let sent = 0;
  let acked: Promise<unknown>[] = [];
  for (let pass = 0; pass < passes; pass++) {
    const shift = pass * ((prepared.passSpanMs ?? 0) + 1_000);
    for (let at = 0; at < stream.length; at += CHUNK) {
      for (const row of stream.slice(at, at + CHUNK)) {
        const reading = { ...row, ts: Number(row.ts) + shift };
        acked.push(client.publishAsync(`bench/${row.machine}`, JSON.stringify(reading), { qos: 1 }));
      }
      sent += Math.min(CHUNK, stream.length - at);
      // A machine's pace: 1/20 s of readings, then wait for their time.
      const wait = start + (sent / RATE) * 1000 - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      if (acked.length > 20 * CHUNK) {
        await Promise.all(acked);
        acked = [];
      }
    }
  }
  await Promise.all(acked);
  await client.endAsync();
}

/** The bare CPU (ms) per 1,000 results: the pass's work repeated for at least 3 s of CPU. */
async function bareCpuPerKilo(prepared: Prepared): Promise<number> {
  const model = await loadModelFromBytes(prepared.modelJson, prepared.weights, prepared.manifest);
  prepared.bare(model); // warm-up
  const start = process.cpuUsage();
  let results = 0;
  let spent = 0;
  while (spent < 3_000) {
    prepared.bare(model);
    results += prepared.passResults;
    const used = process.cpuUsage(start);
    spent = (used.user + used.system) / 1000;
  }
  model.dispose();
  return (spent * 1000) / results;
}

async function startBroker(onResults: (ids: string[]) => void, onStatus: (status: DeviceStatus) => void) {
  const broker = await Aedes.createBroker();
  broker.subscribe(
    topicFilter('status'),
    (packet, done) => {
      onStatus(JSON.parse(packet.payload.toString()) as DeviceStatus);
      done();
    },
    () => undefined,
  );
  broker.subscribe(
    topicFilter('results'),
    (packet, done) => {
      const batch = JSON.parse(packet.payload.toString()) as { results: { id: string }[] };
      onResults(batch.results.map((result) => result.id));
      done();
    },
    () => undefined,
  );
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the broker has no port');
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

/** The model signed, verified and current in a fresh state dir, and the key file to trust. */
async function stateDirServing(prepared: Prepared): Promise<{ stateDir: string; keyFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-live-state-'));
  const keyFile = join(dir, 'signing.pub.pem');
  await writeFile(keyFile, BENCH_KEYS.publicKeyPem);
  const stateDir = join(dir, 'state');
  await storeSignedModel(stateDir, prepared.manifest, prepared.modelJson, prepared.weights);
  return { stateDir, keyFile };
}

/** Which device runs, and how to start it: `[node, script, ...args before the device's flags]`. */
interface DeviceCommand {
  kind: 'package' | 'repo';
  command: readonly string[];
}

async function runLive(
  workload: Workload,
  prepared: Prepared,
  seconds: number,
  device: DeviceCommand,
): Promise<LiveFigures> {
  const passes = Math.max(1, Math.round((RATE * seconds) / prepared.passReadings));
  const limit = passes * prepared.passReadings;
  const expected = passes * prepared.passResults;
  const ids = new Set<string>();
  let received = 0;
  let child: ChildProcess | undefined;
  let cpuAtFirst: number | undefined;
  let cpuAtLast: number | undefined;
  let resultsAtFirst = 0;
  let peak = 0;
  let subscribed = false;
  const mqttInput = workload === 'mqtt-spectral';
  const mosquitto = mqttInput
    ? await startMosquitto(await mkdtemp(join(tmpdir(), 'edgeloop-live-mosquitto-')))
    : undefined;
  const broker = await startBroker(
    (batch) => {
      if (!child?.pid) return;
      if (cpuAtFirst === undefined) {
        cpuAtFirst = cpuMsOf(child.pid);
        resultsAtFirst = ids.size;
      }
      for (const id of batch) ids.add(id);
      received += batch.length;
      if (ids.size >= expected && cpuAtLast === undefined) {
        cpuAtLast = cpuMsOf(child.pid);
        // A live input never ends: the device stops once every result is in.
        if (mqttInput) child.kill('SIGTERM');
      }
    },
    (status) => {
      if (status.sources?.[0]?.state === 'connected') subscribed = true;
    },
  );
  const { stateDir, keyFile } = await stateDirServing(prepared);
  try {
    const [node, ...script] = device.command;
    // biome-ignore format: one flag and its value per line reads best
    child = spawn(node as string, [
      // e.g. BENCH_DEVICE_NODE_ARGS=--cpu-prof to profile the device process
      ...(process.env.BENCH_DEVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      ...script,
      '--thing', `bench-${workload}`,
      '--model', 'bench',
      '--state-dir', stateDir,
      '--mqtt-endpoint', broker.url,
      '--public-key', keyFile,
      ...(mosquitto
        ? ['--source', `${mosquitto.url}?topic=bench/%2B`]
        : ['--source', `csv:${prepared.csv}`, '--rate', String(RATE), '--limit', String(limit)]),
      '--json', '-q',
    ], {
      stdio: ['ignore', 'pipe', process.env.BENCH_DEBUG ? 'inherit' : 'ignore'],
      env: { ...process.env, EDGELOOP_DEVICE_STATUS_INTERVAL_MS: '500' },
    });
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (process.env.BENCH_DEBUG) process.stderr.write(chunk);
    });
    const pid = child.pid as number;
    const poll = setInterval(() => {
      try {
        peak = Math.max(peak, peakRssMBOf(pid));
      } catch {
        // gone
      }
    }, 200);
    const exited = new Promise<number | null>((resolve) => child?.on('exit', resolve));
    if (mosquitto) {
      while (!subscribed) await new Promise((resolve) => setTimeout(resolve, 50));
      await publishPasses(mosquitto.url, prepared, passes);
    }
    const code = await exited;
    clearInterval(poll);
    if (code !== 0) throw new Error(`the device process exited with ${code}: ${stdout}`);
    const summary = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
      dropped: number;
      durableLatencyP50Ms: number | null;
      durableLatencyP99Ms: number | null;
    };
    const bare = await bareCpuPerKilo(prepared);
    const counted = ids.size - resultsAtFirst;
    const cpu = ((cpuAtLast ?? cpuAtFirst ?? 0) - (cpuAtFirst ?? 0)) / Math.max(1, counted / 1000);
    const round = (x: number | null, digits = 2) => (x === null ? null : Number(x.toFixed(digits)));
    return {
      bench: 'device-live',
      workload,
      readingsPerSecond: RATE,
      results: ids.size,
      cpuPerKiloResultMs: round(cpu) ?? 0,
      bareCpuPerKiloResultMs: round(bare) ?? 0,
      cpuRatio: round(bare / cpu, 3) ?? 0,
      p50LatencyMs: round(summary.durableLatencyP50Ms, 1),
      p99LatencyMs: round(summary.durableLatencyP99Ms, 1),
      peakRssMB: Math.round(peak),
      dropped: summary.dropped,
      exact: ids.size === expected && received === expected,
      device: device.kind,
    };
  } finally {
    child?.kill('SIGKILL');
    await broker.close();
    await mosquitto?.stop();
    await rm(join(stateDir, '..'), { recursive: true, force: true });
  }
}

export async function main(argv = process.argv.slice(2)): Promise<LiveFigures[]> {
  const flag = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const json = argv.includes('--json');
  const seconds = Number(flag('--seconds') ?? 60);
  const only = flag('--workload') as Workload | undefined;
  const which = flag('--device') ?? 'package';
  if (which !== 'package' && which !== 'repo') throw new Error(`--device is package or repo, not ${which}`);
  const backend = await initTf();
  const device: DeviceCommand = {
    kind: which,
    command:
      which === 'package'
        ? (await unpackedGateway(await mkdtemp(join(tmpdir(), 'edgeloop-live-gateway-')))).command
        : [process.execPath, join(import.meta.dirname, '..', 'infra', 'cli', 'bin.js'), 'device'],
  };
  const workloads: Workload[] = only
    ? [only]
    : ['rows', 'spectral', 'raw', ...(existsSync(MOSQUITTO) ? (['mqtt-spectral'] as const) : [])];
  if (!json)
    console.log(
      `backend ${backend}; ${RATE} readings/s for ${seconds} s each; device = the ${which === 'package' ? 'gateway package' : "repository's device (tsx)"}, its own process; bare = features + predict in live-rate batches`,
    );
  const out: LiveFigures[] = [];
  for (const workload of workloads) {
    const prepared =
      workload === 'rows'
        ? await prepareRows()
        : await prepareWindows(workload === 'raw' ? 'raw' : 'spectral');
    const figures = await runLive(workload, prepared, seconds, device);
    out.push(figures);
    if (json) console.log(JSON.stringify(figures));
    else
      console.log(
        `${workload}: ${figures.results} results; CPU/1k results device ${figures.cpuPerKiloResultMs} ms vs bare ${figures.bareCpuPerKiloResultMs} ms (cpuRatio ${figures.cpuRatio}); durable p50 ${figures.p50LatencyMs} ms, p99 ${figures.p99LatencyMs} ms; peak RSS ${figures.peakRssMB} MB; dropped ${figures.dropped}; exact ${figures.exact}`,
      );
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
