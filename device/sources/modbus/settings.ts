/**
 * The Modbus TCP input's settings: the device.json block and the `modbus://` URL form, checked
 * without loading the Modbus client (a gateway that reads no Modbus never loads it).
 */
import { z } from 'zod';
import { parseSourceSettings, readSourceUrl } from '../live/source-settings.ts';

const TYPES = ['int16', 'uint16', 'int32', 'uint32', 'float32'] as const;
type RegisterType = (typeof TYPES)[number];
export const WIDE_TYPES: readonly RegisterType[] = ['int32', 'uint32', 'float32'];

export const ModbusRegisterSchema = z
  .object({
    /** The reading's field name for this register's value. */
    channel: z.string().min(1),
    unitId: z.number().int().min(0).max(255).default(1),
    /** Zero-based register address (the PDU address: register 40001 is holding address 0). */
    address: z.number().int().min(0).max(65535),
    function: z.enum(['holding', 'input']),
    type: z.enum(TYPES),
    /** For 32-bit types: `big` = high word first (ABCD), `little` = low word first (CDAB). */
    wordOrder: z.enum(['big', 'little']).optional(),
    scale: z.number().finite().default(1),
    offset: z.number().finite().default(0),
  })
  .strict()
  .superRefine((register, ctx) => {
    const wide = WIDE_TYPES.includes(register.type);
    if (register.wordOrder !== undefined && !wide)
      ctx.addIssue({
        code: 'custom',
        path: ['wordOrder'],
        message: `only 32-bit types have a word order; ${register.type} is one register`,
      });
    if (register.address + (wide ? 2 : 1) > 65536)
      ctx.addIssue({ code: 'custom', path: ['address'], message: 'the value runs past register 65535' });
  });
export type ModbusRegister = z.infer<typeof ModbusRegisterSchema>;

export const ModbusSourceSchema = z
  .object({
    kind: z.literal('modbus'),
    /** The name in the device status and the errors log. */
    name: z.string().min(1).default('modbus'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(502),
    /** Time between polls (ms). */
    intervalMs: z.number().int().min(10).default(1000),
    /** How long one request may wait for its answer before the connection is treated as lost (ms). */
    timeoutMs: z.number().int().min(10).default(1000),
    /** The machine these registers belong to; readings carry it. */
    series: z.string().min(1).optional(),
    registers: z.array(ModbusRegisterSchema).min(1),
  })
  .strict()
  .superRefine((settings, ctx) => {
    const seen = new Set<string>();
    settings.registers.forEach((register, index) => {
      if (seen.has(register.channel))
        ctx.addIssue({
          code: 'custom',
          path: ['registers', index, 'channel'],
          message: `channel '${register.channel}' is mapped twice`,
        });
      seen.add(register.channel);
    });
  });
export type ModbusSettings = z.infer<typeof ModbusSourceSchema>;

const SETTINGS_EXAMPLE =
  '{"kind":"modbus","host":"192.168.1.20","intervalMs":1000,"registers":[{"channel":"temp","address":0,"function":"holding","type":"float32","scale":0.1}]}';

/** Settings from device.json (or a parsed URL), or an error naming the field, the fault and an example. */
export function parseModbusSettings(input: unknown, where = 'the modbus source'): ModbusSettings {
  return parseSourceSettings(ModbusSourceSchema, input, where, SETTINGS_EXAMPLE);
}

/**
 * `modbus://HOST[:PORT]?map=ENTRY,ENTRY...` with optional `interval` (ms), `timeout` (ms),
 * `unit` (for every entry, default 1), `series` and `name`. An ENTRY is
 * `channel:function:address:type[:wordOrder][:scale[:offset]]`, the word order only for
 * 32-bit types: `temp:holding:0:float32:little:0.1:-40`.
 */
export function parseModbusUrl(text: string): ModbusSettings {
  const { url, query, fields, fail } = readSourceUrl(text, {
    protocol: 'modbus:',
    example: 'modbus://127.0.0.1:502?interval=1000&map=temp:holding:0:float32:big:0.1,rpm:input:4:uint16',
    params: {
      map: 'own',
      unit: 'own',
      interval: { field: 'intervalMs', type: 'number' },
      timeout: { field: 'timeoutMs', type: 'number' },
      series: { field: 'series', type: 'string' },
      name: { field: 'name', type: 'string' },
    },
  });
  if (!url.hostname) fail('needs a host');
  const map = query.get('map') ?? fail('needs map=channel:function:address:type,...');
  const unit = Number(query.get('unit') ?? 1);
  const settings = {
    kind: 'modbus',
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    ...(url.port ? { port: Number(url.port) } : {}),
    ...fields,
    registers: map.split(',').map((entry) => mapEntry(entry, unit, fail)),
  };
  return parseModbusSettings(settings, `the modbus source URL '${text}'`);
}

function mapEntry(entry: string, unitId: number, fail: (what: string) => never): Record<string, unknown> {
  const [channel, fn, address, type, ...rest] = entry.split(':');
  if (!channel || !fn || !address || !type)
    fail(`map entry '${entry}' needs channel:function:address:type, e.g. rpm:input:4:uint16`);
  const register: Record<string, unknown> = { channel, unitId, function: fn, address: Number(address), type };
  if (rest[0] === 'big' || rest[0] === 'little') register.wordOrder = rest.shift();
  if (rest.length > 2) fail(`map entry '${entry}' has more than a word order, a scale and an offset`);
  const [scale, offset] = rest.map(Number);
  if (scale !== undefined) register.scale = scale;
  if (offset !== undefined) register.offset = offset;
  return register;
}
