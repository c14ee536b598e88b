/**
 * Readings from a local MQTT broker (Mosquitto on the gateway, a PLC bridge, Node-RED).
 *
 * Delivery: QoS 1 on a persistent session (clean start off, a stable client id, on MQTT 5 a
 * session that outlives the device being stopped). A message is acknowledged only once it
 * is in the received journal (journal.ts): MQTT.js sends the PUBACK when its handleMessage
 * hook calls back, and handles no further packet until then. So the broker holds what the
 * device has not taken: while the device is stopped, while its disk gate is shut, or while
 * the pipeline is behind (the queue is full), the rest stays queued for the session.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { errorMessage } from '../../../shared/errors.ts';
import type { Journal } from '../live/journal.ts';
import { Backoff, type LiveReading, type LiveSource, type SourceSink } from '../live/live-source.ts';
import type { ReceivedQueue } from '../live/received.ts';
import { ChannelMerger, PayloadDecoder, templateFilter } from './decode.ts';
import { decodeOptions, type MqttSourceSettings } from './settings.ts';

/** A journalled MQTT message: its topic and payload (base64, so any bytes come back exactly). */
export interface MqttRecord {
  t: string;
  b: string;
}

export interface MqttSourceDeps {
  thing: string;
  queue: ReceivedQueue;
  journal: Journal<MqttRecord>;
  /** Journalled messages the last run acknowledged but did not answer: read again first. */
  pending: readonly { position: number; span: number; arrivedAt: number; message: MqttRecord }[];
  /** Resolves when the device may take more (its disk gate). */
  gate: () => Promise<void>;
  /** Whether the gate is open right now (the fast path); absent = always ask `gate`. */
  gateOpen?: () => boolean;
  stopped: () => boolean;
  /** Counts readings received (for the source's status). */
  onReceived: (count: number, at: number) => void;
  /** Counts a message dropped as a copy of one just taken. */
  onDuplicate: () => void;
}

/** Recent messages remembered to recognise QoS 1 copies (a lost PUBACK, a publisher's resend). */
const RECENT_MESSAGES = 65_536;

export class MqttSource implements LiveSource {
  readonly name = 'mqtt';
  private client: MqttClient | undefined;
  private readonly decoder: PayloadDecoder;
  private readonly merger: ChannelMerger | undefined;
  private readonly backoff = new Backoff();
  private sink: SourceSink | undefined;
  /** Digests of recent timestamped messages, oldest first. */
  private readonly recent = new Set<string>();
  private corked = false;

  constructor(
    private readonly settings: MqttSourceSettings,
    private readonly deps: MqttSourceDeps,
  ) {
    this.decoder = new PayloadDecoder(decodeOptions(settings));
    if (settings.format === 'value') this.merger = new ChannelMerger(settings.channels);
  }

  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    // What the last run acknowledged and did not answer comes first, in order.
    for (const record of this.deps.pending) {
      const payload = Buffer.from(record.message.b, 'base64');
      const readings = this.readingsOf(record.message.t, payload);
      if (!readings) continue;
      this.isCopy(record.message.t, payload, readings);
      this.deps.queue.add({ ...record, arrivedPerf: performance.now(), readings });
    }
    const s = this.settings;
    const options: IClientOptions = {
      clientId: s.clientId ?? `edgeloop-${this.deps.thing}`,
      protocolVersion: s.protocolVersion,
      clean: false,
      keepalive: 30,
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
      // MQTT.js logs every packet through `debug`, which costs CPU even when off.
      log: () => undefined,
      ...(s.protocolVersion === 5
        ? { properties: { sessionExpiryInterval: s.sessionExpirySeconds, receiveMaximum: s.maxInFlight } }
        : {}),
      ...(s.username ? { username: s.username } : {}),
      ...(s.password !== undefined ? { password: s.password } : {}),
      ...(s.caFile ? { ca: readFileSync(s.caFile) } : {}),
      ...(s.certFile ? { cert: readFileSync(s.certFile) } : {}),
      ...(s.keyFile ? { key: readFileSync(s.keyFile) } : {}),
    };
    sink.state('connecting');
    const client = mqtt.connect(s.url, options);
    this.client = client;
    // The PUBACK goes once this calls back: after the message is journalled.
    client.handleMessage = (packet, callback) => {
      // The usual case, without a promise per message: room in the queue and the gate open.
      if (!this.deps.queue.full && !this.deps.stopped() && (this.deps.gateOpen?.() ?? false)) {
        this.take(packet.topic, packet.payload as Buffer);
        this.corkAcks(client);
        return callback();
      }
      this.accept(packet.topic, packet.payload as Buffer).then(
        () => {
          this.corkAcks(client);
          callback();
        },
        (error: unknown) => {
          // Not taken (the device stops): no acknowledgement, so the broker keeps it.
          sink.log(`mqtt: a message on ${packet.topic} waits for the next run: ${errorMessage(error)}`);
        },
      );
    };
    const topics = s.topics ?? [templateFilter(s.topicTemplate as string)];
    client.on('connect', (connack) => {
      this.backoff.reset();
      client.options.reconnectPeriod = 1_000;
      // A session the broker kept has the subscriptions already (and its queued messages);
      // connected means subscribed: from then on the broker keeps what is published for us.
      if (connack.sessionPresent) return sink.state('connected');
      client.subscribe(topics, { qos: 1 }, (error) => {
        if (error) sink.log(`mqtt: subscribing to ${topics.join(', ')} failed: ${errorMessage(error)}`);
        else sink.state('connected');
      });
    });
    client.on('close', () => {
      if (this.deps.stopped()) return;
      client.options.reconnectPeriod = this.backoff.next();
      sink.state('reconnecting');
    });
    client.on('error', (error) => sink.log(`mqtt: ${s.url}: ${errorMessage(error)}`));
  }

  /**
   * Holds the socket's writes until the event loop's next turn: then the journal lines of the
   * messages taken in this turn are written in one write(2), and only after that their PUBACKs
   * leave, in one write too (bench/device-live.ts: mqtt-spectral). If the journal cannot be
   * written, the connection is dropped unacknowledged and the broker sends them again.
   */
  private corkAcks(client: MqttClient) {
    const stream = client.stream;
    if (this.corked) return;
    if (!stream?.cork) return this.deps.journal.flush();
    this.corked = true;
    stream.cork();
    setImmediate(() => {
      this.corked = false;
      try {
        this.deps.journal.flush();
      } catch (error) {
        this.sink?.log(
          `mqtt: the received journal cannot be written (${errorMessage(error)}): reconnecting unacknowledged`,
        );
        stream.destroy();
        return;
      }
      stream.uncork();
    });
  }

  /** Takes one message: journalled (then it may be acknowledged) and queued for the pipeline. */
  private async accept(topic: string, payload: Buffer): Promise<void> {
    const { queue } = this.deps;
    for (;;) {
      await queue.room();
      await this.deps.gate();
      if (this.deps.stopped()) throw new Error('the device is stopping');
      if (!queue.full) break;
    }
    this.take(topic, payload);
  }

  /** Takes one message the queue has room for: journalled (to be written before its PUBACK) and queued. */
  private take(topic: string, payload: Buffer): void {
    const { queue, journal } = this.deps;
    const arrivedAt = Date.now();
    const readings = this.readingsOf(topic, payload);
    if (!readings) return; // unreadable: counted and sampled, and acknowledged (it would never read)
    if (this.isCopy(topic, payload, readings)) {
      this.deps.onDuplicate();
      return;
    }
    const record = journal.append(
      { t: topic, b: payload.toString('base64') },
      Math.max(1, readings.length),
      arrivedAt,
    );
    queue.add({ ...record, arrivedPerf: performance.now(), readings });
    if (readings.length > 0) this.deps.onReceived(readings.length, arrivedAt);
  }

  /**
   * QoS 1 delivers at least once: after a broker restart or a lost PUBACK the same message
   * comes again. A message whose readings carry their own time is the same reading when its
   * topic and bytes are; without a time, equal payloads may be two real readings, so they pass.
   */
  private isCopy(topic: string, payload: Buffer, readings: readonly LiveReading[]): boolean {
    if (readings.length === 0 || readings.some((reading) => reading.time === undefined)) return false;
    const digest = createHash('sha1').update(topic).update('\n').update(payload).digest('base64');
    if (this.recent.has(digest)) return true;
    this.recent.add(digest);
    if (this.recent.size > RECENT_MESSAGES) this.recent.delete(this.recent.values().next().value as string);
    return false;
  }

  /** A message's readings (merged per series for format value); undefined when unreadable. */
  private readingsOf(topic: string, payload: Buffer): LiveReading[] | undefined {
    let readings: LiveReading[];
    try {
      readings = this.decoder.decode(topic, payload);
    } catch (error) {
      this.sink?.malformed(errorMessage(error), payload.toString('utf8').slice(0, 1_000));
      return undefined;
    }
    return this.merger
      ? readings.flatMap((reading) => (this.merger as ChannelMerger).add(reading))
      : readings;
  }

  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    // What was journalled is acknowledged on the way out; messages still being taken are not,
    // and the session keeps them for the next run.
    const journalled = (() => {
      try {
        this.deps.journal.flush();
        return true;
      } catch {
        return false;
      }
    })();
    const ending = client.endAsync(!journalled || !client.connected);
    if (this.corked && journalled) client.stream?.uncork();
    await Promise.race([ending, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]).catch(
      () => undefined,
    );
    if (!client.disconnected) await client.endAsync(true).catch(() => undefined);
    this.sink?.state('stopped');
  }
}
