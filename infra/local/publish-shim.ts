/**
 * The IoT data-plane HTTP API, as far as the product uses it: Publish (what the training
 * handler calls to post the retained release notice) plus GetRetainedMessage and
 * ListRetainedMessages (to read release notices back). The AWS SDK's IoTDataPlaneClient
 * talks to it unchanged through AWS_ENDPOINT_URL_IOT_DATA_PLANE. Requests are not
 * authenticated: the shim listens on 127.0.0.1 only, like the other local servers, behind the
 * guard that refuses browser requests.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { guardServer } from '../../shared/request-guard.ts';
import { IOT_MAX_PAYLOAD_BYTES } from '../../shared/topology.ts';
import type { Broker } from './broker.ts';
import { listen } from './endpoints.ts';
import type { RetainedStore } from './retained.ts';

export interface PublishShimOptions {
  port: number;
  broker: Pick<Broker, 'publish'>;
  retained: RetainedStore;
  /** Payload limit of IoT Core's Publish API. */
  maxPayloadBytes?: number;
}

export interface PublishShim {
  port: number;
  close(): Promise<void>;
}

type ErrorType = 'InvalidRequestException' | 'ResourceNotFoundException' | 'RequestEntityTooLargeException';
const STATUS: Record<ErrorType, number> = {
  InvalidRequestException: 400,
  ResourceNotFoundException: 404,
  RequestEntityTooLargeException: 413,
};

class ShimError extends Error {
  constructor(
    readonly type: ErrorType,
    message: string,
  ) {
    super(message);
  }
}

export async function startPublishShim(options: PublishShimOptions): Promise<PublishShim> {
  const maxPayloadBytes = options.maxPayloadBytes ?? IOT_MAX_PAYLOAD_BYTES;
  // Guarded: a page must not post retained release notices (shared/request-guard.ts).
  const server = guardServer(
    createServer((request, response) => {
      route(request, options, maxPayloadBytes).then(
        (body) => send(response, 200, body ?? {}),
        (error: unknown) => {
          if (error instanceof ShimError) {
            send(response, STATUS[error.type], { message: error.message }, error.type);
          } else {
            send(response, 500, { message: (error as Error).message }, 'InternalFailureException');
          }
        },
      );
    }),
  );
  const port = await listen(server, options.port);
  return {
    port,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

async function route(
  request: IncomingMessage,
  { broker, retained }: PublishShimOptions,
  maxPayloadBytes: number,
): Promise<object | undefined> {
  const url = new URL(request.url ?? '/', 'http://local');
  const [, resource, rawTopic, ...rest] = url.pathname.split('/');
  if (rest.length > 0) throw new ShimError('ResourceNotFoundException', `no such resource ${url.pathname}`);
  const topic = rawTopic === undefined ? undefined : decodeURIComponent(rawTopic);

  if (request.method === 'POST' && resource === 'topics' && topic) {
    validateTopicName(topic);
    const qos = parseQos(url.searchParams.get('qos'));
    const retain = url.searchParams.get('retain') === 'true';
    const payload = await readBody(request, maxPayloadBytes);
    await broker.publish(topic, payload, { qos, retain });
    return undefined;
  }
  if (request.method === 'GET' && resource === 'retainedMessage' && topic) {
    const message = retained.get(topic);
    if (!message) throw new ShimError('ResourceNotFoundException', `no retained message on '${topic}'`);
    return {
      topic: message.topic,
      payload: message.payload.toString('base64'),
      qos: message.qos,
      lastModifiedTime: message.lastModifiedTime,
    };
  }
  if (request.method === 'GET' && resource === 'retainedMessage' && topic === undefined) {
    return {
      retainedTopics: retained.list().map((message) => ({
        topic: message.topic,
        payloadSize: message.payload.length,
        qos: message.qos,
        lastModifiedTime: message.lastModifiedTime,
      })),
    };
  }
  throw new ShimError('ResourceNotFoundException', `no such operation: ${request.method} ${url.pathname}`);
}

function validateTopicName(topic: string): void {
  if (/[+#]/.test(topic))
    throw new ShimError('InvalidRequestException', `topic '${topic}' contains a wildcard`);
  if (topic.startsWith('$')) throw new ShimError('InvalidRequestException', `topic '${topic}' is reserved`);
}

function parseQos(raw: string | null): 0 | 1 {
  if (raw === null || raw === '0') return 0;
  if (raw === '1') return 1;
  throw new ShimError('InvalidRequestException', `qos must be 0 or 1, got '${raw}'`);
}

async function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ShimError('RequestEntityTooLargeException', `payload exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(response: ServerResponse, status: number, body: object, errorType?: string): void {
  response.statusCode = status;
  response.setHeader('content-type', 'application/json');
  if (errorType) response.setHeader('x-amzn-errortype', errorType);
  response.end(JSON.stringify(body));
}
