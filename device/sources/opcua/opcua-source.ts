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
  resolveNodeId,
  SecurityPolicy,
  TimestampsToReturn,
  type UserIdentityInfo,
  UserTokenType,
} from 'node-opcua-client';
import { z } from 'zod';
import { errorMessage } from '../../../shared/errors.ts';
import { Backoff, type LiveSource, type SourceSink, type SourceState } from '../live/live-source.ts';
import { parseSourceSettings, readSourceUrl, withoutCredentials } from '../live/source-settings.ts';

const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
const SECURITY_POLICIES = [
  'None',
  'Basic256Sha256',
  'Aes128_Sha256_RsaOaep',
  'Aes256_Sha256_RsaPss',
] as const;

const SAY_NONE =
  'required, with no default: to run without security say so, "securityMode": "None" and "securityPolicy": "None"';

/** A required choice whose absence is explained (security is never off by default). */
function requiredEnum<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (issue) =>
      issue.input === undefined
        ? SAY_NONE
        : `must be one of ${values.join(', ')} (got ${String(issue.input)})`,
  });
}

export const OpcuaNodeSchema = z
  .object({
    /** `ns=1;s=Temperature`, `ns=2;i=1001`, `nsu=urn:...;s=...`: the variable whose Value is read. */
    nodeId: z.string().refine(
      (text) => {
        try {
          resolveNodeId(text);
          return true;
        } catch {
          return false;
        }
      },
      { message: 'not an OPC UA node id (e.g. ns=1;s=Temperature or ns=2;i=1001)' },
    ),
    /** The reading's field name for this node's value. */
    channel: z.string().min(1),
    /** The machine this node belongs to; else the source's `series`. */
    series: z.string().min(1).optional(),
  })
  .strict();

export const OpcuaSourceSchema = z
  .object({
    kind: z.literal('opcua'),
    /** The name in the device status and the errors log. */
    name: z.string().min(1).default('opcua'),
    endpoint: z
      .string()
      .regex(/^opc\.tcp:\/\/[^/\s:]+(:\d+)?(\/\S*)?$/, { message: 'must be opc.tcp://host:port/path' }),
    securityMode: requiredEnum(SECURITY_MODES),
    securityPolicy: requiredEnum(SECURITY_POLICIES),
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    /** Where the client keeps its certificate and trust lists; else node-opcua's default. */
    pkiDir: z.string().min(1).optional(),
    /** How often the server samples each node (ms); 0 = on every change, where the server can. */
    samplingIntervalMs: z.number().int().min(0).default(100),
    /** How often the server sends what changed (ms); also how long a partial reading is held. */
    publishingIntervalMs: z.number().int().min(10).default(250),
    /** Samples the server keeps per node between two publishes; the oldest go first. */
    queueSize: z.number().int().min(1).max(1000).default(10),
    /** The series of nodes that name none. */
    series: z.string().min(1).optional(),
    nodes: z.array(OpcuaNodeSchema).min(1),
  })
  .strict()
  .superRefine((settings, ctx) => {
    if ((settings.securityMode === 'None') !== (settings.securityPolicy === 'None'))
      ctx.addIssue({
        code: 'custom',
        path: ['securityPolicy'],
        message: `securityMode ${settings.securityMode} needs securityPolicy ${settings.securityMode === 'None' ? 'None' : 'other than None'}`,
      });
    if ((settings.username === undefined) !== (settings.password === undefined))
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'username and password go together' });
    if (
      settings.samplingIntervalMs > 0 &&
      settings.queueSize * settings.samplingIntervalMs < settings.publishingIntervalMs
    )
      ctx.addIssue({
        code: 'custom',
        path: ['queueSize'],
        message: `${settings.queueSize} samples of ${settings.samplingIntervalMs} ms do not last one publishing interval (${settings.publishingIntervalMs} ms): samples would be lost between publishes`,
      });
    const seen = new Set<string>();
    settings.nodes.forEach((node, index) => {
      const key = `${node.series ?? settings.series ?? ''}\u0000${node.channel}`;
      if (seen.has(key))
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', index, 'channel'],
          message: `channel '${node.channel}' is mapped twice for one series`,
        });
      seen.add(key);
    });
  });
export type OpcuaSettings = z.infer<typeof OpcuaSourceSchema>;
type OpcuaNode = OpcuaSettings['nodes'][number];

const SETTINGS_EXAMPLE =
  '{"kind":"opcua","endpoint":"opc.tcp://192.168.1.30:4840/UA/Server","securityMode":"None","securityPolicy":"None","nodes":[{"nodeId":"ns=1;s=Temperature","channel":"temp"}]}';

/** Settings from device.json (or a parsed URL), or an error naming the field, the fault and an example. */
export function parseOpcuaSettings(input: unknown, where = 'the opcua source'): OpcuaSettings {
  return parseSourceSettings(OpcuaSourceSchema, input, where, SETTINGS_EXAMPLE);
}

/**
 * `opc.tcp://[USER:PASSWORD@]HOST:PORT/PATH?security=...&nodes=NODE,NODE...` with optional
 * `series`, `sampling` (ms), `publishing` (ms), `queue` and `name`. `security` is `None` or
 * `MODE:POLICY` (`SignAndEncrypt:Basic256Sha256`). A NODE is `nodeId:channel[@series]`, split
 * at the last colon: `ns=1;s=Line1:Temp:temp@pump-2`.
 */
export function parseOpcuaUrl(text: string): OpcuaSettings {
  const { url, query, fields, fail } = readSourceUrl(text, {
    protocol: 'opc.tcp:',
    example: 'opc.tcp://127.0.0.1:4840/UA/Server?security=None&nodes=ns=1;s=Temp:temp,ns=1;s=Speed:speed',
    params: {
      security: 'own',
      nodes: 'own',
      sampling: { field: 'samplingIntervalMs', type: 'number' },
      publishing: { field: 'publishingIntervalMs', type: 'number' },
      queue: { field: 'queueSize', type: 'number' },
      series: { field: 'series', type: 'string' },
      name: { field: 'name', type: 'string' },
    },
  });
  const security =
    query.get('security') ?? fail('needs security=None (said explicitly) or security=MODE:POLICY');
  const [securityMode, securityPolicy = security === 'None' ? 'None' : undefined] = security.split(':');
  const nodes = (query.get('nodes') ?? fail('needs nodes=nodeId:channel,...')).split(',').map((entry) => {
    const colon = entry.lastIndexOf(':');
    if (colon <= 0) fail(`node '${entry}' needs nodeId:channel, e.g. ns=1;s=Temp:temp`);
    const [channel, series] = entry.slice(colon + 1).split('@');
    return { nodeId: entry.slice(0, colon), channel, ...(series !== undefined ? { series } : {}) };
  });
  const settings = {
    kind: 'opcua',
    endpoint: `opc.tcp://${url.host}${url.pathname}`,
    securityMode,
    securityPolicy,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...fields,
    nodes,
  };
  return parseOpcuaSettings(settings, `the opcua source URL '${withoutCredentials(text)}'`);
}

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
   * publish at the latest; a node that did not change sends nothing). Readings of a series
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
    this.sink?.push(
      due.map(({ time, values }) => ({ time, ...(series !== undefined ? { series } : {}), values })),
      due.at(-1)?.arrivedAt ?? Date.now(),
    );
  }
}
