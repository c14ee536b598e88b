/**
 * OPC UA input: a subscription with one monitored item per node id, each mapped to a channel
 * and a series (README.md beside this file). A data change becomes a reading stamped with the
 * value's source timestamp; changes of one series with the same timestamp are merged into
 * one reading. node-opcua's client repairs a dropped connection by itself, including a new
 * session and subscription after a server restart; this source maps its events to the
 * source state and starts over only when the client gives up.
 */
import { OPCUACertificateManager } from 'node-opcua-certificate-manager';
import {
  AttributeIds,
  type ClientSession,
  type DataValue,
  MessageSecurityMode,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  type UserIdentityInfo,
  UserTokenType,
} from 'node-opcua-client';
import { errorMessage } from '../../../shared/errors.ts';
import { Backoff, type LiveSource, type SourceSink, type SourceState } from '../live/live-source.ts';
import type { OpcuaNode, OpcuaSettings } from './settings.ts';

/** A value the model can take: a finite number, or a boolean as 0/1 (a PLC's on/off state). */
function numeric(value: unknown): number | undefined {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** Changes of one series at one timestamp, waiting for the rest of its nodes. */
interface Pending {
  time: number;
  arrivedAt: number;
  values: Record<string, number>;
  hold: NodeJS.Timeout;
}

export class OpcuaSource implements LiveSource {
  readonly name: string;
  private readonly backoff: Backoff;
  private readonly reconnect: { minMs: number; maxMs: number };
  /** How many channels each series has: a merged reading is complete when it has them all. */
  private readonly channelsPerSeries = new Map<string | undefined, number>();
  /** Per series, partial readings in order of time. */
  private readonly pending = new Map<string | undefined, Pending[]>();
  /** Per series, every channel's latest value: a node that did not change keeps it. */
  private readonly latest = new Map<string | undefined, Record<string, number>>();
  private sink: SourceSink | undefined;
  private client: OPCUAClient | undefined;
  private certificates: OPCUACertificateManager | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private current: SourceState | undefined;
  private connectedOnce = false;
  private stopped = false;

  constructor(
    private readonly settings: OpcuaSettings,
    options: { reconnect?: { minMs: number; maxMs: number } } = {},
  ) {
    this.name = settings.name;
    this.reconnect = options.reconnect ?? { minMs: 1_000, maxMs: 30_000 };
    this.backoff = new Backoff(this.reconnect.minMs, this.reconnect.maxMs);
    for (const node of settings.nodes) {
      const series = this.seriesOf(node);
      this.channelsPerSeries.set(series, (this.channelsPerSeries.get(series) ?? 0) + 1);
    }
  }

  /** Returns at once: the first connection is made (and retried) in the background. */
  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    this.setState('connecting');
    void this.open();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.close();
    for (const series of [...this.pending.keys()]) this.flush(series, Number.POSITIVE_INFINITY);
    this.setState('stopped');
  }

  private seriesOf(node: OpcuaNode): string | undefined {
    return node.series ?? this.settings.series;
  }

  private setState(state: SourceState): void {
    if (state === this.current) return;
    this.current = state;
    this.sink?.state(state);
  }

  private log(line: string): void {
    this.sink?.log(`${this.name}: ${line}`);
  }

  /** A client, a session and the subscription, from scratch. Never throws: a failure retries. */
  private async open(): Promise<void> {
    if (this.stopped) return;
    const { settings } = this;
    try {
      if (settings.pkiDir && !this.certificates) {
        // The same trust-on-first-use policy as node-opcua's default store, in a folder the operator chose.
        this.certificates = new OPCUACertificateManager({
          rootFolder: settings.pkiDir,
          automaticallyAcceptUnknownCertificate: true,
        });
      }
      const client = OPCUAClient.create({
        applicationName: 'edgeloop-device',
        securityMode: MessageSecurityMode[settings.securityMode],
        securityPolicy: SecurityPolicy[settings.securityPolicy],
        // Servers often advertise a host name other than the one the gateway dials.
        endpointMustExist: false,
        keepSessionAlive: true,
        connectionStrategy: {
          maxRetry: -1,
          initialDelay: this.reconnect.minMs,
          maxDelay: this.reconnect.maxMs,
          randomisationFactor: 0.25,
        },
        ...(this.certificates ? { clientCertificateManager: this.certificates } : {}),
      });
      this.client = client;
      this.watch(client);
      await client.connect(settings.endpoint);
      const identity: UserIdentityInfo =
        settings.username !== undefined
          ? { type: UserTokenType.UserName, userName: settings.username, password: settings.password ?? '' }
          : { type: UserTokenType.Anonymous };
      const session = await client.createSession(identity);
      await this.subscribe(session);
      if (this.stopped || this.client !== client) return;
      this.backoff.reset();
      this.connectedOnce = true;
      this.setState('connected');
    } catch (error) {
      await this.startOver(error);
    }
  }

  /** Drop the client and open a new one after the back-off (the client gave up, or never got going). */
  private async startOver(error: unknown): Promise<void> {
    if (this.stopped) return;
    await this.close();
    if (this.stopped) return;
    this.setState(this.connectedOnce ? 'reconnecting' : 'connecting');
    const delay = this.backoff.next();
    this.log(`${this.settings.endpoint}: ${errorMessage(error)}; starting over in ${delay} ms`);
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  private async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.disconnect();
      } catch (error) {
        this.log(`disconnect: ${errorMessage(error)}`);
      }
    }
    if (this.stopped && this.certificates) {
      await this.certificates.dispose();
      this.certificates = undefined;
    }
  }

  /** The client's own reconnection (node-opcua's connectionStrategy), mapped to the source state. */
  private watch(client: OPCUAClient): void {
    const current = () => this.client === client && !this.stopped;
    client.on('connection_lost', () => {
      if (current()) this.setState(this.connectedOnce ? 'reconnecting' : 'connecting');
    });
    client.on('backoff', (attempt: number, delay: number) => {
      if (current())
        this.log(`${this.settings.endpoint}: attempt ${attempt + 1} failed; next in ${delay} ms`);
    });
    client.on('after_reconnection', (error?: Error | null) => {
      if (current() && error) this.log(`reconnection: ${errorMessage(error)}`);
    });
    // Only now are the session and its subscription (recreated after a server restart) back.
    client.on('connection_reestablished', () => {
      if (!current()) return;
      this.backoff.reset();
      this.setState('connected');
    });
    // An error on close means the client stopped repairing the connection: start over.
    client.on('close', (error?: Error | null) => {
      if (current() && error) void this.startOver(error);
    });
  }

  private async subscribe(session: ClientSession): Promise<void> {
    const { settings } = this;
    // Keep-alives about every 5 s; the server drops the subscription after 6 missed ones.
    const keepAlive = Math.max(1, Math.ceil(5_000 / settings.publishingIntervalMs));
    const subscription = await session.createSubscription2({
      requestedPublishingInterval: settings.publishingIntervalMs,
      requestedMaxKeepAliveCount: keepAlive,
      requestedLifetimeCount: keepAlive * 6,
      maxNotificationsPerPublish: 0,
      publishingEnabled: true,
      priority: 10,
    });
    subscription.on('error', (error: Error) => this.log(`subscription: ${errorMessage(error)}`));
    subscription.on('internal_error', (error: Error) => this.log(`subscription: ${errorMessage(error)}`));
    const group = await subscription.monitorItems(
      settings.nodes.map((node) => ({ nodeId: node.nodeId, attributeId: AttributeIds.Value })),
      { samplingInterval: settings.samplingIntervalMs, queueSize: settings.queueSize, discardOldest: true },
      TimestampsToReturn.Both,
    );
    group.on('err', (message: string) => this.log(`monitored items: ${message}`));
    group.on('changed', (_item, value: DataValue, index: number) => {
      const node = settings.nodes[index];
      if (node) this.changed(node, value);
    });
    // A node the server does not have (or will not sample) would otherwise never report.
    group.monitoredItems.forEach((item, index) => {
      const node = settings.nodes[index];
      if (node && item.statusCode.isNotGood())
        this.sink?.malformed(
          `${node.nodeId} (channel ${node.channel}): cannot monitor it: ${item.statusCode.name}`,
          {
            nodeId: node.nodeId,
            status: item.statusCode.toString(),
          },
        );
    });
  }

  private changed(node: OpcuaNode, data: DataValue): void {
    const arrivedAt = Date.now();
    if (!data.statusCode.isGood()) {
      this.sink?.malformed(`${node.nodeId} (channel ${node.channel}): status ${data.statusCode.name}`, {
        nodeId: node.nodeId,
        status: data.statusCode.toString(),
      });
      return;
    }
    const value = numeric(data.value.value);
    if (value === undefined) {
      this.sink?.malformed(
        `${node.nodeId} (channel ${node.channel}): ${data.value.dataType} value ${String(data.value.value)} is not a number`,
        { nodeId: node.nodeId, status: data.statusCode.toString(), value: String(data.value.value) },
      );
      return;
    }
    const time = data.sourceTimestamp?.getTime() ?? data.serverTimestamp?.getTime() ?? arrivedAt;
    this.merge(this.seriesOf(node), time, node.channel, value, arrivedAt);
  }

  /**
   * Most PLCs sample all their variables together, so changes of one series with the same
   * timestamp make one reading. It is pushed once every channel of the series has reported
   * that timestamp, or after one publishing interval (the server sends a sample in the next
   * publish at the latest). A node whose value did not change sends nothing, so a reading
   * carries its latest value (sample and hold, as a historian does). Readings of a series
   * leave in time order: pushing one pushes the older partial ones first.
   */
  private merge(series: string | undefined, time: number, channel: string, value: number, arrivedAt: number) {
    const queue = this.pending.get(series) ?? [];
    this.pending.set(series, queue);
    let entry = queue.find((pending) => pending.time === time);
    if (!entry) {
      entry = {
        time,
        arrivedAt,
        values: {},
        hold: setTimeout(() => this.flush(series, time), this.settings.publishingIntervalMs),
      };
      const at = queue.findIndex((pending) => pending.time > time);
      queue.splice(at < 0 ? queue.length : at, 0, entry);
    }
    entry.values[channel] = value;
    if (Object.keys(entry.values).length >= (this.channelsPerSeries.get(series) ?? 1))
      this.flush(series, time);
  }

  /** Pushes the series' partial readings up to `until` (inclusive), oldest first. */
  private flush(series: string | undefined, until: number): void {
    const queue = this.pending.get(series) ?? [];
    const due = queue.filter((pending) => pending.time <= until);
    if (due.length === 0) return;
    const rest = queue.filter((pending) => pending.time > until);
    if (rest.length > 0) this.pending.set(series, rest);
    else this.pending.delete(series);
    for (const pending of due) clearTimeout(pending.hold);
    const readings = due.map(({ time, values }) => {
      const held = { ...this.latest.get(series), ...values };
      this.latest.set(series, held);
      return { time, ...(series !== undefined ? { series } : {}), values: { ...held } };
    });
    this.sink?.push(readings, due.at(-1)?.arrivedAt ?? Date.now());
  }
}
