/**
 * The OPC UA input's settings: the device.json block and the `opc.tcp://` URL form, checked
 * without loading the OPC UA client (a gateway that reads no OPC UA never loads it).
 */
import { resolveNodeId } from 'node-opcua-nodeid';
import { z } from 'zod';
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
export type OpcuaNode = OpcuaSettings['nodes'][number];

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
