/**
 * The embedded local stack: the same handlers and device code that run in AWS, against
 * in-process stand-ins built from shared/topology.ts. Our own S3 (s3/: buckets), dynalite (tables),
 * aedes (IoT Core broker with the thing policy), an IoT data-plane Publish shim, S3 event
 * notifications to the training function, topic rules to the aggregators, kinesalite (the
 * results stream) fed by the Basic Ingest rule and read by an event source mapping into the
 * stream aggregator, and an EMF collector in place of CloudWatch. State lives in the data
 * dir and survives restarts. Every HTTP listener is behind shared/request-guard.ts: no web
 * page in the developer's browser can drive it.
 */

import type { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import dynalite from 'dynalite';
import { resetAwsClients, s3Client } from '../../shared/aws.ts';
import { type EmfSink, setEmfSink } from '../../shared/emf-sink.ts';
import { EdgeloopError, errorMessage } from '../../shared/errors.ts';
import { guardServer } from '../../shared/request-guard.ts';
import {
  buckets,
  type FunctionName,
  modelKeys,
  rolloutSchedule,
  streamMapping,
  streamRules,
  streams,
} from '../../shared/topology.ts';
import { startBroker } from './broker.ts';
import { localCredential } from './credentials.ts';
import { localLiveSource, readLiveSnapshot } from './dashboard/live-snapshot.ts';
import { type DashboardServer, startDashboard } from './dashboard/server.ts';
import { EmfCollector } from './emf-collector.ts';
import {
  acquireLock,
  type Endpoints,
  endpointUrl,
  listen,
  portOf,
  rememberEndpoints,
  rememberedEndpoints,
  type ServiceName,
} from './endpoints.ts';
import { CLEARED_ENV, LOCAL_CREDENTIALS, LOCAL_REGION, localEnv, signingKeyPath } from './env.ts';
import { type MappingFailure, startEventSourceMapping } from './event-source-mapping.ts';
import { FunctionInvoker, importHandler } from './invoker.ts';
import { ensureStreams, localKinesisClient, startKinesalite } from './kinesis.ts';
import { startPublishShim } from './publish-shim.ts';
import { RetainedStore } from './retained.ts';
import { startRuleRouter } from './rule-router.ts';
import { LocalS3 } from './s3/server.ts';
import { accessDenied } from './s3/xml.ts';
import { s3EventListener } from './s3-events.ts';
import { type Schedule, startSchedule } from './schedule.ts';
import { ensureSigningKey } from './signing-key.ts';
import { type Credential, sigV4Refusal } from './sigv4.ts';
import { localBasicIngestPrefix, type StreamRuleError, startStreamRuleRouter } from './stream-rules.ts';
import { ensureTables } from './tables.ts';

export { EmfCollector, type MetricDatapoint } from './emf-collector.ts';
export type { Endpoints } from './endpoints.ts';
export { readEndpoints } from './endpoints.ts';
export { localEnv } from './env.ts';
export type { MappingFailure } from './event-source-mapping.ts';
export type { InvokedEvent, InvokeEvent } from './invoker.ts';
export type { PolicyDecision } from './policy-auth.ts';
export type { StreamRuleError } from './stream-rules.ts';

export interface LocalStackOptions {
  dataDir: string;
  handlers?: Partial<Record<FunctionName, (e: unknown) => Promise<unknown>>>;
  log?: (line: string) => void;
  /**
   * Serve the local dashboard on the stack's data (default off). Its URL goes into
   * `endpoints.dashboard`; a restart reuses the remembered port when it is free.
   */
  dashboard?: boolean;
  /** How often the rollout controller runs (ms); 0 = only through rolloutController.runNow(). */
  rolloutIntervalMs?: number;
  /**
   * The results stream's event source mapping runs with the topology's settings; tests and
   * benches may shorten its batching window and its poll interval (Lambda polls about 1/s).
   */
  resultsStream?: { batchingWindowMs?: number; pollIntervalMs?: number };
}

export interface LocalStack {
  endpoints: Endpoints;
  dataDir: string;
  publicKeyPem: string;
  env: Record<string, string>;
  /**
   * 'invoke' {fn}, 'invoked' {fn, ms, error?}, 'denied' {action, thing, resource},
   * 'rule-error' (StreamRuleError: a stream put failed), 'stream-failure' (MappingFailure:
   * records the event source mapping sent to its on-failure destination).
   */
  events: EventEmitter;
  /** Where a gateway publishes results by Basic Ingest: `<prefix>edgeloop/things/<thing>/results`. */
  resultsBasicIngestPrefix: string;
  metrics: EmfCollector;
  idle(): Promise<void>;
  /** The scheduled rollout controller (rolloutSchedule.localIntervalMs unless configured). */
  rolloutController: Schedule;
  stop(): Promise<void>;
}

/** How long stop() waits for running handlers before closing the servers under them. */
const STOP_GRACE_MS = 30_000;

let running: string | undefined;

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const dataDir = resolve(options.dataDir);
  const log = options.log ?? (() => {});
  if (running) {
    // The stack sets process-wide env vars and AWS clients for its handlers.
    throw new EdgeloopError(
      `a local stack is already running in this process (on ${running}): stop it first`,
    );
  }
  const releaseLock = acquireLock(dataDir);
  running = dataDir;
  const cleanups: (() => Promise<void> | void)[] = [
    () => {
      running = undefined;
    },
    releaseLock,
  ];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`stopping: ${errorMessage(error)}`);
      }
    }
  };

  try {
    const remembered = rememberedEndpoints(dataDir);
    const preferred = (service: ServiceName) => (remembered ? portOf(remembered[service]) : 0);
    const onPort = <T>(service: ServiceName, start: (port: number) => Promise<T>) =>
      startOnPort(service, preferred(service), start, log);

    // S3: our own server (s3/), served from our listener behind the guard and the SigV4 check.
    const localS3 = await LocalS3.open({
      directory: join(dataDir, 's3'),
      buckets: Object.values(buckets).map((bucket) => bucket.localName),
      region: LOCAL_REGION,
      log,
    });
    const credential = localCredential(dataDir);
    const s3 = await onPort('s3', async (port) => {
      const server = localS3Server(localS3, credential);
      return { server, port: await listen(server, port) };
    });
    cleanups.push(() => closeHttp(s3.server, () => promiseClose(s3.server)));

    // Kinesis: the results stream, on LevelDB in the data dir.
    const kinesisServer = await onPort('kinesis', (port) =>
      listenOrClose(guardServer(startKinesalite(join(dataDir, 'kinesis'))), port),
    );
    cleanups.push(() => closeHttp(kinesisServer.server, () => promiseClose(kinesisServer.server)));

    // DynamoDB
    const dynamo = await onPort('dynamodb', (port) => {
      mkdirSync(join(dataDir, 'dynamodb'), { recursive: true });
      return listenOrClose(
        guardServer(dynalite({ path: join(dataDir, 'dynamodb'), createTableMs: 0 })),
        port,
      );
    });
    cleanups.push(() => closeHttp(dynamo.server, () => promiseClose(dynamo.server)));

    // IoT Core: broker with retained messages from the data dir, and the data-plane shim.
    const retained = new RetainedStore(join(dataDir, 'retained'), (file, reason) =>
      log(`skipped retained message ${file}: ${reason}`),
    );
    const invoker = new FunctionInvoker({ ...(options.handlers ? { handlers: options.handlers } : {}), log });
    const events = invoker.events;
    const broker = await onPort('mqtt', (port) =>
      startBroker({
        port,
        retained,
        onDeny: (decision) => {
          log(`policy denied: thing '${decision.thing}' ${decision.action} '${decision.resource}'`);
          events.emit('denied', decision);
        },
        onOversized: (reason) => log(`broker: closed a connection: ${reason}`),
      }),
    );
    cleanups.push(() => broker.close());
    const shim = await onPort('iotData', (port) => startPublishShim({ port, broker, retained }));
    cleanups.push(() => shim.close());

    const endpoints: Endpoints = {
      s3: endpointUrl('s3', s3.port),
      mqtt: endpointUrl('mqtt', broker.port),
      dynamodb: endpointUrl('dynamodb', dynamo.port),
      iotData: endpointUrl('iotData', shim.port),
      kinesis: endpointUrl('kinesis', kinesisServer.port),
    };
    rememberEndpoints(dataDir, endpoints);

    // The environment the handlers read, set process-wide (restored on stop).
    const env = localEnv(endpoints, dataDir);
    cleanups.push(applyEnv(env));
    resetAwsClients();
    cleanups.push(() => resetAwsClients());

    const key = ensureSigningKey(signingKeyPath(dataDir));
    if (key.created) log(`created the manifest signing key ${key.privateKeyPath}`);
    await s3Client().send(
      new PutObjectCommand({
        Bucket: buckets.models.localName,
        Key: modelKeys.signingPublicKey,
        Body: key.publicKeyPem,
        ContentType: 'application/x-pem-file',
      }),
    );

    const ddb = new DynamoDBClient({
      endpoint: endpoints.dynamodb,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    });
    try {
      const created = await ensureTables(ddb);
      if (created.length > 0) log(`created tables: ${created.join(', ')}`);
    } finally {
      ddb.destroy();
    }

    const kinesis = localKinesisClient(endpoints.kinesis);
    cleanups.push(() => kinesis.destroy());
    const createdStreams = await ensureStreams(kinesis);
    if (createdStreams.length > 0) log(`created streams: ${createdStreams.join(', ')}`);

    // CloudWatch: EMF lines from the handlers land in the collector.
    const metrics = new EmfCollector();
    const previousSink: EmfSink | undefined = setEmfSink((line) => metrics.record(line));
    cleanups.push(() => {
      setEmfSink(previousSink);
    });

    if (options.dashboard) {
      const dashboard = await startLocalDashboard(remembered?.dashboard, log);
      cleanups.push(() => dashboard.close());
      endpoints.dashboard = dashboard.url;
      rememberEndpoints(dataDir, endpoints);
    }

    // Triggers: S3 notifications and topic rules. Stopped first, then running handlers drain.
    const router = await startRuleRouter(broker.aedes, invoker);
    const streamRouter = await startStreamRuleRouter({
      aedes: broker.aedes,
      kinesis,
      onError: (error: StreamRuleError) => {
        log(`rule ${error.rule}: could not put '${error.topic}' on its stream: ${error.error}`);
        events.emit('rule-error', error);
      },
    });
    const rule = streamRules.results;
    const mapping = startEventSourceMapping({
      kinesis,
      streamName: streams[rule.stream].localName,
      settings: streamMapping,
      invoke: (event) => invoker.invoke(rule.function, event),
      onFailure: (failure: MappingFailure) => {
        log(
          `${rule.function}: ${failure.batchSize} records of ${failure.shardId} sent to the on-failure destination (${failure.reason})`,
        );
        events.emit('stream-failure', failure);
      },
      checkpointFile: join(dataDir, 'kinesis-checkpoints.json'),
      ...(options.resultsStream?.batchingWindowMs === undefined
        ? {}
        : { batchingWindowMs: options.resultsStream.batchingWindowMs }),
      ...(options.resultsStream?.pollIntervalMs === undefined
        ? {}
        : { pollIntervalMs: options.resultsStream.pollIntervalMs }),
      log,
    });
    const onS3Event = s3EventListener(invoker);
    localS3.on('event', onS3Event);
    // Gateways last: the rules above listen before the first client publish is acknowledged.
    broker.openIntake();
    cleanups.push(async () => {
      localS3.off('event', onS3Event);
      // Gateways first: a publish the broker acknowledged after the rules stopped listening
      // would be lost (the gateway deletes what was acknowledged).
      await broker.stopIntake();
      await router.close();
      await streamRouter.close();
      await mapping.stop();
      await drain(invoker, log);
    });
    /** Quiet when no put is in flight, the stream is read to its end and no handler runs. */
    const idle = async () => {
      await invoker.idle();
      while (streamRouter.inFlight() > 0) await new Promise((done) => setTimeout(done, 10));
      await mapping.idle();
      await invoker.idle();
    };

    // Scheduled: the rollout controller (an EventBridge rate rule in AWS). Stopped first.
    const rolloutOverride = options.handlers?.rolloutController;
    const rolloutController = startSchedule({
      fn: 'rolloutController',
      intervalMs: options.rolloutIntervalMs ?? rolloutSchedule.localIntervalMs,
      load: () => (rolloutOverride ? Promise.resolve(rolloutOverride) : importHandler('rolloutController')),
      log,
    });
    cleanups.push(() => rolloutController.stop());

    let stopping: Promise<void> | undefined;
    return {
      endpoints,
      dataDir,
      publicKeyPem: key.publicKeyPem,
      env,
      events,
      resultsBasicIngestPrefix: localBasicIngestPrefix(rule.ruleName),
      metrics,
      idle,
      rolloutController,
      stop: () => {
        stopping ??= cleanUp();
        return stopping;
      },
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

/**
 * The local S3's listener: the browser guard, then the SigV4 check with the data dir's
 * credential, then the server; refusals in S3's error shape.
 */
export function localS3Server(localS3: LocalS3, credential: Credential): Server {
  return guardServer(createServer(localS3.handle), {
    check: (request) => sigV4Refusal(request, credential),
    refusalBody: accessDenied,
  });
}

/** The dashboard on the live tables, on its remembered port if that is still free. */
async function startLocalDashboard(
  rememberedUrl: string | undefined,
  log: (line: string) => void,
): Promise<DashboardServer> {
  const source = localLiveSource();
  const snapshot = () => readLiveSnapshot(source);
  const port = rememberedUrl ? portOf(rememberedUrl) : 0;
  try {
    return await startDashboard({ port, snapshot });
  } catch (error) {
    if (port === 0) throw error;
    log(`dashboard: port ${port} is taken now; using a free port (${errorMessage(error)})`);
    return startDashboard({ port: 0, snapshot });
  }
}

/** Starts a server on its remembered port, or on a free one if that port is taken now. */
async function startOnPort<T>(
  service: ServiceName,
  port: number,
  start: (port: number) => Promise<T>,
  log: (line: string) => void,
): Promise<T> {
  try {
    return await start(port);
  } catch (error) {
    if (port === 0 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    log(`${service}: port ${port} is taken now; using a free port (CLI commands read the new one)`);
    return start(0);
  }
}

function applyEnv(env: Record<string, string>): () => void {
  const previous = new Map<string, string | undefined>();
  for (const name of [...Object.keys(env), ...CLEARED_ENV]) previous.set(name, process.env[name]);
  for (const name of CLEARED_ENV) delete process.env[name];
  Object.assign(process.env, env);
  return () => {
    for (const [name, value] of previous) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/**
 * Waits for queued and running handlers. A backlog that outlasts the grace is dropped (the
 * servers are closing under it), and the handlers already running get a last grace, so none
 * finds its database closed mid-call.
 */
async function drain(invoker: FunctionInvoker, log: (line: string) => void): Promise<void> {
  if (await finishesWithin(invoker.close(), STOP_GRACE_MS)) return;
  const dropped = invoker.dropQueued();
  log(`stopping: dropped ${dropped} queued invocations after ${STOP_GRACE_MS} ms`);
  if (!(await finishesWithin(invoker.idle(), STOP_GRACE_MS)))
    log(`stopping with handlers still running after another ${STOP_GRACE_MS} ms`);
}

async function finishesWithin(work: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((done) => {
    timer = setTimeout(() => done(false), ms);
  });
  const finished = await Promise.race([work.then(() => true as const), timedOut]);
  clearTimeout(timer);
  return finished;
}

/** Listens on `port`; a server that cannot listen is closed (its database with it). */
async function listenOrClose(server: Server, port: number): Promise<{ server: Server; port: number }> {
  try {
    return { server, port: await listen(server, port) };
  } catch (error) {
    await new Promise((done) => server.close(done));
    throw error;
  }
}

function promiseClose(server: Server): Promise<void> {
  return new Promise((done, reject) => server.close((error) => (error ? reject(error) : done())));
}

/** Closes an HTTP server without waiting for idle keep-alive connections to time out. */
async function closeHttp(server: Server | undefined, close: () => Promise<void>): Promise<void> {
  const closing = close();
  server?.closeIdleConnections();
  server?.closeAllConnections();
  await closing;
}
