/**
 * The gateway device service: wires the MQTT link, the model store and updater, the
 * inference engine and sources, the outbox and publisher, and the status reports.
 * `startDevice` is the one entry point (CLI, fleet-sim, demo and tests all use it).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Refusal } from '../shared/dataset/readings.ts';
import { EdgeloopError, errorMessage } from '../shared/errors.ts';
import type {
  DeviceState,
  DeviceStatus,
  InferenceResult,
  SourceStatus,
  UpdateStep,
} from '../shared/schemas.ts';
import { resultsStreamTopic, topicFor } from '../shared/topology.ts';
import { Engine } from './model/engine.ts';
import type { LoadedModel } from './model/model.ts';
import { ModelStore } from './model/model-store.ts';
import { loadFromSlotFiles, type SwapPoint, signedBy } from './model/updater.ts';
import { ModelUpdates } from './model/updates.ts';
import { createMqttLink, type MqttLink } from './platform/connection.ts';
import { enterStep } from './platform/crash.ts';
import { DiskMonitor, ensureWritableStateDir, removeStaleTemps, storageFault } from './platform/disk.ts';
import { SourceDiskGate } from './platform/disk-gate.ts';
import { HeapTrim } from './platform/heap-trim.ts';
import { deviceS3Client } from './platform/s3-client.ts';
import { AnomalyEventLog } from './results/anomaly-events.ts';
import type { BatcherOptions } from './results/batcher.ts';
import { type HardExampleOptions, HardExampleSampler, hardExampleTaps } from './results/hard-examples.ts';
import { Outbox, type OverflowPolicy } from './results/outbox.ts';
import { Publisher } from './results/publisher.ts';
import { ResultStream } from './results/result-writer.ts';
import { DEFAULT_SUMMARY_INTERVAL_MS } from './results/summary-batcher.ts';
import { SourceRun } from './sources/read-source.ts';
import { Refusals } from './sources/refusals.ts';
import { type InferServer, loadCsvFile, type SourceSpec, startInferServer } from './sources/sources.ts';
import { answerWindowHttp, LiveWindows } from './sources/window-sources.ts';
import type { SeriesLimits, SeriesStats } from './sources/window-stream.ts';
import { DeviceProgress, type DeviceSnapshot, StatusReporter, waitForSnapshot } from './status.ts';

export type { SourceSpec } from './sources/sources.ts';

export interface DeviceOptions {
  thing: string;
  model: string;
  stateDir: string;
  /** mqtt://host:port (local) or the IoT endpoint host (AWS mode, needs `tls`). */
  mqttEndpoint: string;
  /** A local S3 endpoint (the local stack's); absent in AWS mode. */
  s3Endpoint?: string;
  region?: string;
  publicKeyPem: string;
  source?: SourceSpec;
  tls?: { certFile: string; keyFile: string; caFile?: string };
  /** AWS mode: S3 credentials from the IoT credentials provider via a role alias. */
  credentialsProvider?: { endpoint: string; roleAlias: string };
  /** Port for POST /infer on 127.0.0.1 (0 = any free port; absent = no HTTP server). */
  httpPort?: number;
  log?: (line: string) => void;
  /** Stream for the stdin source (default process.stdin) and where its result lines go. */
  stdin?: NodeJS.ReadableStream;
  stdout?: (line: string) => void;
  statusIntervalMs?: number;
  outbox?: { maxBatches?: number; maxBytes?: number; overflow?: OverflowPolicy };
  batch?: BatcherOptions;
  /**
   * How results leave the gateway. `mode`: `detail` (default) sends every result; `summary`
   * sends per-(version, minute) cells, one batch per `summaryIntervalMs` (default 10 s).
   * `basicIngestStage`: publish to the results stream rule of that deployed stage by Basic
   * Ingest (no broker, no messaging charge) instead of the broker's results topic. Summary
   * batches are read by the stream aggregator only, so summary mode needs it.
   */
  results?: ResultsRoute;
  publishRatePerSec?: number;
  /** Reconnect backoff bounds (ms); the floor is 1 s whatever is given. */
  reconnect?: { minMs?: number; maxMs?: number };
  /** Fault-injection hook for tests: called after each swap point of an update. */
  onSwapPoint?: (point: SwapPoint, version: number) => void | Promise<void>;
  /** Upload low-confidence readings as hard examples (absent = off). */
  hardExamples?: HardExampleOptions;
  /** Free space on the state dir's disk the device never writes into (default: see disk.ts). */
  diskReserveBytes?: number;
  /** Windowed models: bounds on the live sources' open series (default DEFAULT_SERIES_LIMITS). */
  series?: SeriesLimits;
}

export interface ResultsRoute {
  mode?: 'detail' | 'summary';
  summaryIntervalMs?: number;
  basicIngestStage?: string;
}

/** The topic result batches go to, and the summary options when in summary mode. */
export function resultsRouteOf(
  thing: string,
  route: ResultsRoute = {},
): { topic: string; summary?: { maxAgeMs: number } } {
  const topic =
    route.basicIngestStage !== undefined
      ? resultsStreamTopic(route.basicIngestStage, thing)
      : topicFor('results', { thing });
  if (route.mode !== 'summary') return { topic };
  if (route.basicIngestStage === undefined)
    throw new EdgeloopError(
      'summary mode needs Basic Ingest: summary batches are read by the results stream rule only (set basicIngestStage; on the command line --results-route basic-ingest)',
    );
  return { topic, summary: { maxAgeMs: route.summaryIntervalMs ?? DEFAULT_SUMMARY_INTERVAL_MS } };
}

export type { DeviceSnapshot } from './status.ts';

export interface Device {
  readonly thing: string;
  readonly httpPort: number | undefined;
  /**
   * Events: 'model' {version}, 'published' {count, bytes} (one per acknowledged batch), 'error'
   * {step, reason}, 'status' snapshot, 'finished'.
   */
  readonly events: EventEmitter;
  status(): DeviceSnapshot;
  waitFor(pred: (snapshot: DeviceSnapshot) => boolean, timeoutMs: number): Promise<DeviceSnapshot>;
  /** Resolves when a limited source is done and acknowledged; never for unlimited ones. */
  readonly finished: Promise<void>;
  /** The hard-example sampler, when hardExamples is configured. */
  readonly hardExamples: HardExampleSampler | undefined;
  /** Saves what can be saved at once (the outbox checkpoint), for an exit on a crash. */
  saveState(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDevice(o: DeviceOptions): Promise<Device> {
  const log = o.log ?? (() => undefined);
  const route = resultsRouteOf(o.thing, o.results);
  const events = new EventEmitter();
  // 'error' carries update failures for observers; with nobody listening it must not throw.
  events.on('error', () => undefined);
  // Start-up writes nothing before the outbox could drain: a full disk still starts, a
  // read-only one is refused with what to do; a crash's temp files go first (their space too).
  await ensureWritableStateDir(o.stateDir);
  const staleTemps = await removeStaleTemps(o.stateDir);
  if (staleTemps > 0) log(`removed ${staleTemps} temp file(s) a crash left in ${o.stateDir}`);
  const refusals = new Refusals(o.stateDir, log);
  /** The live window streams (HTTP, stdin, live inputs), whose open series the status reports. */
  const liveWindows: { readonly series: SeriesStats }[] = [];
  /** The live inputs' status entries (MQTT, OPC UA, Modbus TCP). */
  const sourceStatus: ((now?: number) => SourceStatus)[] = [];
  const stopSignal = new AbortController();
  const disk = await DiskMonitor.open(o.stateDir, {
    ...(o.diskReserveBytes !== undefined ? { reserveBytes: o.diskReserveBytes } : {}),
  });
  const store = new ModelStore(o.stateDir);
  await store.init();
  const outbox = await Outbox.open(join(o.stateDir, 'outbox'), {
    ...o.outbox,
    diskShortfall: () => disk.shortfall,
    onError: log,
  });
  const engine = new Engine();
  const bootId = randomUUID().slice(0, 8);
  let state: DeviceState = 'starting';
  let lastError: DeviceStatus['lastError'] = null;
  let stopped = false;
  let httpSeq = 0;
  let server: InferServer | undefined;
  let versionAtStop: number | undefined;
  /** Release notices to the serving model (made once the stored model was tried). */
  let updates: ModelUpdates | undefined;

  const s3 = deviceS3Client(o);

  const hardExamples = o.hardExamples
    ? await HardExampleSampler.open({
        thing: o.thing,
        model: o.model,
        dir: join(o.stateDir, 'hard-examples'),
        s3,
        options: o.hardExamples,
        log,
      })
    : undefined;
  const { onClassified, onWindowResults, onInferred } = hardExampleTaps(
    o.thing,
    hardExamples,
    () => engine.serving?.manifest,
  );

  const link: MqttLink = createMqttLink({
    clientId: o.thing,
    endpoint: o.mqttEndpoint,
    tls: o.tls,
    log,
    ...(o.reconnect ? { backoff: o.reconnect } : {}),
  });
  const publisher = new Publisher(outbox, link, route.topic, {
    ratePerSec: o.publishRatePerSec,
    log,
  });
  const batcher = new ResultStream(
    outbox,
    {
      thing: o.thing,
      model: o.model,
      ...(o.batch ? { batch: o.batch } : {}),
      ...(route.summary ? { summary: route.summary } : {}),
    },
    (accepted, _count, bytes) => {
      disk.wrote(bytes);
      if (accepted) publisher.kick();
      progress.check();
    },
    (fault) => {
      if (fault) log(`results held in memory: the outbox write failed with ${fault}`);
      disk.setFault(storageFault(fault));
    },
    log,
  );

  // Anomaly models: the event rule over every result, and the event messages on their own topic.
  const anomalyEvents = await AnomalyEventLog.open({
    dir: join(o.stateDir, 'events'),
    thing: o.thing,
    model: o.model,
    link,
    log,
    onSent: () => progress.check(),
  });
  batcher.setTap(anomalyEvents);
  const progress = new DeviceProgress(
    outbox.csvNext,
    o.source !== undefined && o.source.kind !== 'none',
    () => outbox.depth === 0 && batcher.backlog === 0 && anomalyEvents.status().unsent === 0,
    () => {
      statusChanged();
      events.emit('finished');
    },
  );

  // The source pauses before the disk fills and resumes once the outbox drained.
  const diskGate = new SourceDiskGate(disk, batcher, {
    outboxResults: () => outbox.depthResults,
    stopped: () => stopped,
    log,
    onChange: (state) => {
      if (state === 'ok' || state === 'low') updates?.retryDeferred();
      statusChanged();
    },
  });

  /** Serves a model: the engine predicts with it, and summary mode counts with its threshold. */
  const serve = (model: LoadedModel) => {
    batcher.setModel(model.version, model.manifest.lowConfidence);
    anomalyEvents.setModel(model.manifest);
    engine.setModel(model);
  };

  const labelColumn = () => engine.serving?.manifest.preprocessing.label ?? '';

  function snapshot(): DeviceSnapshot {
    const stats = engine.stats();
    const durable = batcher.durableLatencyPercentiles();
    return {
      ts: Date.now(),
      thing: o.thing,
      model: o.model,
      version: engine.version ?? versionAtStop ?? null,
      state,
      outboxDepth: outbox.depth,
      dropped: outbox.dropped,
      inferenceRate: stats.rate,
      latencyP50: stats.p50,
      latencyP99: stats.p99,
      durableLatencyP50: durable.p50,
      durableLatencyP99: durable.p99,
      lastError,
      disk: disk.report(),
      connected: link.connected,
      produced: progress.produced,
      published: progress.published,
      publishedBytes: progress.publishedBytes,
      position: progress.position,
      outboxResults: outbox.depthResults,
      finished: progress.finished,
      httpPort: server?.port,
      ...(refusals.total > 0 ? { refused: refusals.report() } : {}),
      ...(outbox.quarantined > 0 ? { quarantined: outbox.quarantined } : {}),
      ...(liveWindows.length > 0 && engine.serving?.manifest.window ? { series: seriesStats() } : {}),
      ...(sourceStatus.length > 0 ? { sources: sourceStatus.map((status) => status()) } : {}),
      ...(anomalyEvents.active ? { events: anomalyEvents.status() } : {}),
    };
  }

  function seriesStats(): SeriesStats {
    const total: SeriesStats = { open: 0, evicted: 0, refusedAtLimit: 0 };
    for (const live of liveWindows) {
      const stats = live.series;
      total.open += stats.open;
      total.evicted += stats.evicted;
      total.refusedAtLimit += stats.refusedAtLimit;
    }
    return total;
  }

  const status = new StatusReporter(o.thing, snapshot, link, events, log);
  const statusChanged = () => status.changed();
  function setState(next: DeviceState) {
    if (next === state) return;
    state = next;
    statusChanged();
  }
  function reportError(step: UpdateStep, reason: string, version?: number) {
    lastError = { step, reason, at: Date.now(), ...(version !== undefined ? { version } : {}) };
    log(`update failed at ${step}: ${reason}`);
    events.emit('error', { step, reason, version });
    statusChanged();
  }

  publisher.on('published', ({ count, bytes }: { count: number; bytes: number }) => {
    events.emit('published', { count, bytes });
    progress.acknowledged(count, bytes);
  });
  publisher.on('error', (message: string) => log(message));

  // --- model: the slot on disk first, then release notices ------------------------------
  enterStep('load model');
  const slot = await store.loadCurrent(log, signedBy(o.publicKeyPem));
  if (slot) {
    try {
      serve(await loadFromSlotFiles(slot.manifest, slot.files));
      log(`serving model ${o.model} v${slot.manifest.version} from ${store.dir}`);
    } catch (error) {
      reportError('load', `the stored model v${slot.manifest.version} does not load: ${errorMessage(error)}`);
    }
  }
  setState(engine.version ? 'serving' : 'waiting');

  updates = new ModelUpdates({
    thing: o.thing,
    model: o.model,
    publicKeyPem: o.publicKeyPem,
    s3,
    store,
    engine,
    disk,
    log,
    serve,
    setState,
    reportError,
    served: (version) => {
      lastError = null;
      events.emit('model', { version });
    },
    stopped: () => stopped,
    ...(o.onSwapPoint ? { onSwapPoint: o.onSwapPoint } : {}),
  });

  // --- sources ---------------------------------------------------------------------------
  const refuseFrom = (name: string) => (refusal: Refusal, reading: unknown) =>
    refusals.refuse(refusal, name, reading);
  const onHttpResult = (result: InferenceResult, version: number) => {
    progress.produced++;
    batcher.add(version, [result]);
  };
  if (o.httpPort !== undefined) {
    const httpWindows = new LiveWindows(engine, `${o.thing}:http:${bootId}:`, onWindowResults, o.series);
    liveWindows.push(httpWindows);
    server = await startInferServer(o.httpPort, {
      engine,
      onResult: onHttpResult,
      nextId: () => `${o.thing}:http:${bootId}:${httpSeq++}`,
      labelColumn,
      status: snapshot,
      refuse: refuseFrom('http'),
      window: {
        active: () => engine.serving?.manifest.window !== undefined,
        answer: (body) => answerWindowHttp(httpWindows, body, onHttpResult, refuseFrom('http')),
      },
    });
    log(`POST /infer on http://127.0.0.1:${server.port}/infer`);
  }

  // Readings wait for a model; stop() releases the wait so a gateway that never got one stops.
  let releaseModelWait = () => {};
  const modelReady = new Promise<void>((resolve) => {
    releaseModelWait = resolve;
    if (engine.version) resolve();
    else events.once('model', () => resolve());
  });
  const source = o.source;
  const sourceRun =
    source && source.kind !== 'none'
      ? new SourceRun(source, source.kind === 'csv' ? loadCsvFile(source.file) : undefined, {
          modelReady,
          position: () => progress.position,
          onEnded: () => progress.sourceEnded(),
          onFailed: (reason) => {
            log(`source failed: ${reason}`);
            events.emit('error', { step: 'load', reason: `source failed: ${reason}` });
          },
          thing: o.thing,
          stateDir: o.stateDir,
          signal: stopSignal.signal,
          durablePosition: () => outbox.csvNext,
          onSourceStatus: (status) => sourceStatus.push(status),
          bootId,
          engine,
          batcher,
          labelColumn,
          stopped: () => stopped,
          gate: () => diskGate.wait(),
          gateOpen: () => diskGate.mayRun(),
          log,
          stdin: () => (o.stdin ?? process.stdin) as NodeJS.ReadableStream & import('node:stream').Readable,
          stdout: o.stdout ?? ((line) => process.stdout.write(`${line}\n`)),
          ...(o.series ? { series: o.series } : {}),
          onProduced: (count) => {
            progress.produced += count;
          },
          onPosition: (next) => {
            progress.position = next;
          },
          refuse: refuseFrom,
          onWindowStream: (stream) => liveWindows.push(stream),
          ...(onClassified ? { onClassified } : {}),
          ...(onInferred ? { onInferred } : {}),
          ...(onWindowResults ? { onWindowResults } : {}),
        })
      : undefined;
  const finished = new Promise<void>((resolve) => {
    if (progress.finished) resolve();
    else events.once('finished', () => resolve());
  });
  progress.check();

  // --- connection ------------------------------------------------------------------------
  link.on('connected', () => {
    publisher.kick();
    anomalyEvents.kick();
    status.report();
  });
  link.on('resumed', () => {
    publisher.kick();
    anomalyEvents.kick();
    status.report();
  });
  link.on('interrupted', () => events.emit('status', snapshot()));
  for (const { topic, source } of updates.topics())
    await link.subscribe(topic, (_topic, payload) => updates?.offer(source, payload));
  publisher.start();
  const connecting = link.connect().catch((error: unknown) => log(`connect failed: ${errorMessage(error)}`));
  status.start(o.statusIntervalMs ?? 15_000);
  diskGate.start(() => sourceRun?.running ?? false);
  const heapTrim = new HeapTrim();
  heapTrim.start();
  enterStep('serve');

  let stopping: Promise<void> | undefined;
  async function stop(): Promise<void> {
    stopping ??= (async () => {
      enterStep('stop');
      stopped = true;
      stopSignal.abort();
      releaseModelWait();
      status.stopTimer();
      diskGate.stop();
      heapTrim.stop();
      await sourceRun?.done;
      await batcher.flush(true).catch((error: unknown) => log(`outbox flush failed: ${errorMessage(error)}`));
      await anomalyEvents.stop();
      await updates?.settled();
      await publisher.stop();
      state = 'stopped';
      await status.stop();
      await link.disconnect();
      await connecting;
      await server?.close();
      await batcher.close().catch((error: unknown) => log(`outbox flush failed: ${errorMessage(error)}`));
      await hardExamples?.stop().catch((error: unknown) => log(`hard examples: ${errorMessage(error)}`));
      versionAtStop = engine.version;
      engine.dispose();
      s3.destroy();
      events.emit('status', snapshot());
    })();
    return stopping;
  }

  return {
    thing: o.thing,
    get httpPort() {
      return server?.port;
    },
    events,
    status: snapshot,
    waitFor: (pred, timeoutMs) => waitForSnapshot(o.thing, events, snapshot, pred, timeoutMs),
    finished,
    hardExamples,
    saveState: () => outbox.saveCheckpoint(),
    stop,
  };
}
