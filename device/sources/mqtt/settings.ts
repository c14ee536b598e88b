/**
 * The MQTT input's settings: the device.json block and the `mqtt://` URL form, checked without
 * loading the MQTT client (a gateway that reads no MQTT never loads it).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { EdgeloopError, errorMessage } from '../../../shared/errors.ts';
import { parseSourceSettings } from '../live/source-settings.ts';
import { PayloadDecoder } from './decode.ts';

export const MqttSourceSchema = z
  .object({
    kind: z.literal('mqtt'),
    /** mqtt://host:port or mqtts://host:port (TLS). */
    url: z.string().regex(/^mqtts?:\/\/[^/]+/, 'must be mqtt://host:port or mqtts://host:port'),
    /** Subscription filters; absent with a template = the template's filter. */
    topics: z.array(z.string().min(1)).min(1).optional(),
    /** Topic levels that name the series and channel, e.g. plant/{series}/pump/{channel}. */
    topicTemplate: z.string().min(1).optional(),
    format: z.enum(['json', 'csv', 'value']).default('json'),
    csvHeader: z.array(z.string().min(1)).min(1).optional(),
    csvDelimiter: z.string().length(1).optional(),
    seriesField: z.string().min(1).optional(),
    timeField: z.string().min(1).default('time'),
    timeUnit: z.enum(['ms', 's']).default('ms'),
    /** Format value: the channels that make one whole reading (answered as soon as all arrived). */
    channels: z.array(z.string().min(1)).min(1).optional(),
    /** Default edgeloop-<thing>: stable, so the broker keeps this gateway's session. */
    clientId: z.string().min(1).max(128).optional(),
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** Messages the broker may send before the device acknowledges (MQTT 5 receive maximum). */
    maxInFlight: z.number().int().min(1).max(65_535).default(1_000),
    /** Readings received and not answered yet, at most (then acknowledgements wait). */
    queueReadings: z.number().int().min(1).default(10_000),
    /** MQTT 5: how long the broker keeps the session (and its queued messages) while the device is away. */
    sessionExpirySeconds: z
      .number()
      .int()
      .min(0)
      .default(7 * 24 * 3600),
    /** 5 (default) or 4 (MQTT 3.1.1, for brokers without 5; sessions then last as the broker decides). */
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  })
  .strict()
  .refine((s) => s.topics !== undefined || s.topicTemplate !== undefined, {
    message: 'give topics (e.g. ["plant/+/pump"]) or a topicTemplate (e.g. "plant/{series}/pump/{channel}")',
    path: ['topics'],
  });
export type MqttSourceSettings = z.infer<typeof MqttSourceSchema>;

/**
 * `mqtt://[user:pass@]host:port?topic=F[&topic=F2][&template=T][&format=json|csv|value]
 * [&header=a,b,c][&series=FIELD][&time=FIELD][&channels=a,b][&clientId=ID][&protocol=4|5]`.
 */
export function parseMqttUrl(text: string): MqttSourceSettings {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new EdgeloopError(
      `the source '${text}' is not a URL: e.g. mqtt://127.0.0.1:1883?topic=plant/+/pump`,
    );
  }
  const q = url.searchParams;
  const list = (name: string) =>
    q
      .get(name)
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const raw = {
    kind: 'mqtt',
    url: `${url.protocol}//${url.host}`,
    ...(q.getAll('topic').length ? { topics: q.getAll('topic') } : {}),
    ...(q.get('template') ? { topicTemplate: q.get('template') } : {}),
    ...(q.get('format') ? { format: q.get('format') } : {}),
    ...(list('header') ? { csvHeader: list('header') } : {}),
    ...(q.get('series') ? { seriesField: q.get('series') } : {}),
    ...(q.get('time') ? { timeField: q.get('time') } : {}),
    ...(list('channels') ? { channels: list('channels') } : {}),
    ...(q.get('clientId') ? { clientId: q.get('clientId') } : {}),
    ...(q.get('protocol') ? { protocolVersion: Number(q.get('protocol')) } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
  return validateMqttSettings(raw, `the source ${text}`);
}

const SETTINGS_EXAMPLE =
  '{"kind":"mqtt","url":"mqtt://127.0.0.1:1883","topicTemplate":"plant/{series}/pump/{channel}","format":"value"}';

export function validateMqttSettings(raw: unknown, where: string): MqttSourceSettings {
  const tls = parseSourceSettings(MqttSourceSchema, raw, where, SETTINGS_EXAMPLE);
  try {
    new PayloadDecoder(decodeOptions(tls));
  } catch (error) {
    throw new EdgeloopError(`${where}: ${errorMessage(error)}`);
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined))
    throw new EdgeloopError(
      `${where}: certFile and keyFile go together (the client certificate and its private key)`,
    );
  for (const key of ['caFile', 'certFile', 'keyFile'] as const) {
    const file = tls[key];
    if (file !== undefined && !existsSync(file))
      throw new EdgeloopError(`${where}: ${key} ${resolve(file)} does not exist: check the path`);
  }
  return tls;
}

export function decodeOptions(s: MqttSourceSettings) {
  return {
    format: s.format,
    timeField: s.timeField,
    timeUnit: s.timeUnit,
    ...(s.csvHeader ? { csvHeader: s.csvHeader } : {}),
    ...(s.csvDelimiter ? { csvDelimiter: s.csvDelimiter } : {}),
    ...(s.topicTemplate ? { topicTemplate: s.topicTemplate } : {}),
    ...(s.seriesField ? { seriesField: s.seriesField } : {}),
  };
}
