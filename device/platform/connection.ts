/**
 * The gateway's MQTT link, hidden behind a small interface so the rest of the device never
 * touches the SDK. aws-iot-device-sdk-v2's MQTT 3.1.1 connection is used (aedes, the local
 * broker, does not speak MQTT 5): plain TCP locally, mTLS to IoT Core in AWS mode.
 *
 * Lifecycle, as in the SDK samples: listeners are registered before connect, every wait has
 * a timeout, and shutdown is disconnect then release. Reconnects are ours, not the CRT's:
 * on an interruption the old connection is shut down and a fresh one is opened after an
 * exponential backoff with full jitter, never sooner than 1 s after the previous CONNECT
 * (IoT Core allows one CONNECT per second per client id). QoS 1 publishes resolve on
 * PUBACK; one that is pending when the link drops rejects, and the outbox sends it again.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { io, iot, mqtt } from 'aws-iot-device-sdk-v2';
import { EdgeloopError, errorMessage } from '../../shared/errors.ts';
import { mqttMatches } from '../../shared/topology.ts';

export type MessageHandler = (topic: string, payload: Buffer) => void;

/** What the device needs from MQTT. Events: 'connected', 'interrupted' (reason), 'resumed'. */
export interface MqttLink extends EventEmitter {
  readonly connected: boolean;
  /** Connects, retrying with backoff until connected or `disconnect()` is called. */
  connect(): Promise<void>;
  /** Subscribes at QoS 1; the subscription is renewed after every reconnect. */
  subscribe(filter: string, handler: MessageHandler): Promise<void>;
  /** QoS 1 publish; resolves on PUBACK, rejects when the link is down or the ack times out. */
  publish(topic: string, payload: string | Buffer, options?: { retain?: boolean }): Promise<void>;
  disconnect(): Promise<void>;
}

export interface LinkOptions {
  clientId: string;
  /** `mqtt://host:port` (plain TCP) or `mqtts://host[:port]` / a bare IoT endpoint host (mTLS). */
  endpoint: string;
  tls?: { certFile: string; keyFile: string; caFile?: string };
  keepAliveSec?: number;
  /** PUBACK/SUBACK wait before an operation fails (ms). */
  operationTimeoutMs?: number;
  backoff?: { minMs?: number; maxMs?: number };
  log?: (line: string) => void;
}

export interface ParsedEndpoint {
  host: string;
  port: number;
  tls: boolean;
}

/** Parses the broker endpoint, or throws a message naming what is wrong with it. */
export function parseEndpoint(endpoint: string): ParsedEndpoint {
  const bare = /^[a-zA-Z0-9.-]+$/.test(endpoint);
  let url: URL;
  try {
    url = new URL(bare ? `mqtts://${endpoint}` : endpoint);
  } catch {
    throw new EdgeloopError(
      `bad MQTT endpoint '${endpoint}': use mqtt://host:port for a local broker or the IoT endpoint host name (xxxx-ats.iot.REGION.amazonaws.com)`,
    );
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:')
    throw new EdgeloopError(`bad MQTT endpoint '${endpoint}': the scheme must be mqtt:// or mqtts://`);
  const tls = url.protocol === 'mqtts:';
  const port = url.port ? Number(url.port) : tls ? 8883 : 1883;
  if (!url.hostname || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new EdgeloopError(`bad MQTT endpoint '${endpoint}': needs a host and a port in 1..65535`);
  return { host: url.hostname, port, tls };
}

/** Full-jitter exponential backoff: a random wait in [floor, min(max, base * 2^attempt)]. */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(minMs + random() * (ceiling - minMs));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

let sharedClient: mqtt.MqttClient | undefined;

export function createMqttLink(options: LinkOptions): MqttLink {
  return new CrtMqttLink(options);
}

class CrtMqttLink extends EventEmitter implements MqttLink {
  private connection: mqtt.MqttClientConnection | undefined;
  private readonly subscriptions = new Map<string, MessageHandler>();
  private readonly endpoint: ParsedEndpoint;
  private stopping = false;
  private everConnected = false;
  private lastConnectAt = 0;
  /** The running connect/reconnect loop, if any (disconnect waits for it). */
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  connected = false;

  constructor(private readonly options: LinkOptions) {
    super();
    this.endpoint = parseEndpoint(options.endpoint);
    if (this.endpoint.tls && !options.tls)
      throw new EdgeloopError(
        `the MQTT endpoint ${options.endpoint} needs TLS: give --cert, --key (and --ca) for the thing's certificate`,
      );
  }

  private log(line: string) {
    this.options.log?.(`[mqtt ${this.options.clientId}] ${line}`);
  }

  private buildConfig(): mqtt.MqttConnectionConfig {
    const { host, port, tls } = this.endpoint;
    const keepAlive = this.options.keepAliveSec ?? 30;
    const operationTimeout = this.options.operationTimeoutMs ?? 10_000;
    if (tls && this.options.tls) {
      const builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(
        readFileSync(this.options.tls.certFile, 'utf8'),
        readFileSync(this.options.tls.keyFile, 'utf8'),
      );
      if (this.options.tls.caFile)
        builder.with_certificate_authority(readFileSync(this.options.tls.caFile, 'utf8'));
      return builder
        .with_endpoint(host)
        .with_port(port)
        .with_client_id(this.options.clientId)
        .with_clean_session(true)
        .with_keep_alive_seconds(keepAlive)
        .with_protocol_operation_timeout_ms(operationTimeout)
        .build();
    }
    return {
      client_id: this.options.clientId,
      host_name: host,
      port,
      clean_session: true,
      keep_alive: keepAlive,
      protocol_operation_timeout: operationTimeout,
      socket_options: new io.SocketOptions(io.SocketType.STREAM, io.SocketDomain.IPV4, 5_000),
    };
  }

  async connect(): Promise<void> {
    this.stopping = false;
    this.loop ??= this.connectLoop().finally(() => {
      this.loop = undefined;
    });
    await this.loop;
  }

  private async connectLoop(): Promise<void> {
    const minMs = Math.max(1_000, this.options.backoff?.minMs ?? 1_000);
    const maxMs = Math.max(minMs, this.options.backoff?.maxMs ?? 30_000);
    for (let attempt = 0; !this.stopping; attempt++) {
      const sinceLast = Date.now() - this.lastConnectAt;
      const wait = attempt === 0 ? Math.max(0, 1_000 - sinceLast) : backoffMs(attempt - 1, minMs, maxMs);
      if (wait > 0) await this.interruptibleSleep(wait);
      if (this.stopping) return;
      try {
        await this.openOnce();
        return;
      } catch (error) {
        this.log(`connect attempt ${attempt + 1} failed: ${errorMessage(error)}`);
      }
    }
  }

  private async interruptibleSleep(ms: number) {
    await Promise.race([sleep(ms), new Promise<void>((resolve) => (this.wake = resolve))]);
    this.wake = undefined;
  }

  private async openOnce(): Promise<void> {
    sharedClient ??= new mqtt.MqttClient();
    const connection = sharedClient.new_connection(this.buildConfig());
    connection.on('interrupt', (error) => this.onInterrupt(connection, errorMessage(error)));
    connection.on('error', (error) => this.log(`error: ${errorMessage(error)}`));
    connection.on('message', (topic, payload) => this.dispatch(topic, Buffer.from(payload)));
    this.lastConnectAt = Date.now();
    try {
      await withTimeout(connection.connect(), 10_000, 'CONNACK');
    } catch (error) {
      await this.shutdown(connection);
      throw error;
    }
    if (this.stopping) {
      // disconnect() was called while this CONNECT was in flight.
      await this.shutdown(connection);
      return;
    }
    for (const filter of this.subscriptions.keys()) {
      await withTimeout(connection.subscribe(filter, mqtt.QoS.AtLeastOnce), 10_000, `SUBACK for ${filter}`);
    }
    this.connection = connection;
    this.connected = true;
    const resumed = this.everConnected;
    this.everConnected = true;
    this.log(resumed ? 'resumed' : 'connected');
    this.emit(resumed ? 'resumed' : 'connected');
  }

  private onInterrupt(connection: mqtt.MqttClientConnection, reason: string) {
    if (connection !== this.connection || this.stopping) return;
    this.connection = undefined;
    this.connected = false;
    this.log(`interrupted: ${reason}`);
    this.emit('interrupted', reason);
    // Stop the CRT's own reconnect (no jitter) and run ours instead.
    void this.shutdown(connection);
    this.loop ??= this.connectLoop().finally(() => {
      this.loop = undefined;
    });
  }

  private dispatch(topic: string, payload: Buffer) {
    for (const [filter, handler] of this.subscriptions) {
      if (mqttMatches(filter, topic)) handler(topic, payload);
    }
  }

  async subscribe(filter: string, handler: MessageHandler): Promise<void> {
    this.subscriptions.set(filter, handler);
    if (this.connection)
      await withTimeout(
        this.connection.subscribe(filter, mqtt.QoS.AtLeastOnce),
        10_000,
        `SUBACK for ${filter}`,
      );
  }

  async publish(topic: string, payload: string | Buffer, options?: { retain?: boolean }): Promise<void> {
    const connection = this.connection;
    if (!connection || !this.connected) throw new Error('not connected');
    const timeout = (this.options.operationTimeoutMs ?? 10_000) + 1_000;
    await withTimeout(
      connection.publish(topic, payload, mqtt.QoS.AtLeastOnce, options?.retain ?? false),
      timeout,
      `PUBACK on ${topic}`,
    );
  }

  private async shutdown(connection: mqtt.MqttClientConnection) {
    try {
      await withTimeout(connection.disconnect(), 5_000, 'DISCONNECT');
    } catch {
      // The connection is gone either way; nothing else holds it.
    }
  }

  async disconnect(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    const connection = this.connection;
    this.connection = undefined;
    this.connected = false;
    if (connection) await this.shutdown(connection);
  }
}
