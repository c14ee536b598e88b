/**
 * Turns what an IoT rule delivers into trusted values, or into reasons. Nothing here throws on
 * bad input: a device's garbage must be set aside with a reason, never retried forever, and a
 * bad result never costs the good results travelling in the same batch.
 */
import {
  type DeviceStatus,
  DeviceStatusSchema,
  describeZodError,
  type InferenceResult,
  InferenceResultSchema,
  type ResultBatch,
  ResultBatchSchema,
  type RuleEvent,
  RuleEventSchema,
  type Task,
  ThingName,
} from '../schemas.ts';
import { targetNumber } from '../target.ts';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** How much of a bad payload is kept with its error record. */
export const PAYLOAD_COPY_BYTES = 1024;

/** Results stamped further ahead of the broker's receive time than this are rejected. */
export const MAX_CLOCK_AHEAD_MS = 24 * 3600_000;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeRuleEvent(raw: unknown): Decoded<RuleEvent> {
  const parsed = RuleEventSchema.safeParse(raw);
  if (!parsed.success)
    return { ok: false, reason: `not an IoT rule event: ${describeZodError(parsed.error)}` };
  const thing = ThingName.safeParse(parsed.data.thing);
  if (!thing.success)
    return { ok: false, reason: `topic does not name a valid thing: '${parsed.data.thing}'` };
  return { ok: true, value: parsed.data };
}

export function payloadBytes(event: Pick<RuleEvent, 'payload'>): Buffer {
  return Buffer.from(event.payload, 'base64');
}

/** base64 -> UTF-8 text -> JSON value. */
export function decodeJsonPayload(payloadBase64: string): Decoded<unknown> {
  if (payloadBase64.length % 4 !== 0 || !BASE64.test(payloadBase64))
    return { ok: false, reason: 'payload is not base64 (the rule must SELECT encode(*, "base64"))' };
  const bytes = Buffer.from(payloadBase64, 'base64');
  if (bytes.length === 0) return { ok: false, reason: 'payload is empty' };
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, reason: `payload is not UTF-8 text (${bytes.length} bytes of binary)` };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: `payload is not valid JSON: ${(error as Error).message}` };
  }
}

/** A bounded, printable copy of a payload for the errors table. */
export function payloadCopy(bytes: Uint8Array): { text: string; size: number; truncated: boolean } {
  const head = Buffer.from(bytes.subarray(0, PAYLOAD_COPY_BYTES));
  return { text: head.toString('utf8'), size: bytes.length, truncated: bytes.length > PAYLOAD_COPY_BYTES };
}

export interface RejectedResult {
  index: number;
  id?: string;
  reason: string;
  /** The offending result as sent, for the errors table. */
  raw: unknown;
}

export type BatchEnvelope = Omit<ResultBatch, 'results'> & { results: unknown[] };

export interface CheckedResults {
  results: InferenceResult[];
  rejected: RejectedResult[];
  /** Results whose id repeated an earlier one in the same batch (counted once). */
  repeatedIds: number;
}

export interface ResultRules {
  /** The receive time from the rule; result timestamps far beyond it are rejected. */
  receivedAt: number;
  /** Class names the model can emit; when known, other labels are rejected. */
  labels?: readonly string[];
  /** The model's task, when its manifest is known: a regression result carries a value, not a label. */
  task?: Task;
}

/** Validates the batch envelope; the results inside are checked one by one by checkResults. */
export function decodeBatchEnvelope(value: unknown): Decoded<BatchEnvelope> {
  const envelope = ResultBatchSchema.safeParse(value);
  if (!envelope.success)
    return { ok: false, reason: `invalid result batch: ${describeZodError(envelope.error)}` };
  return { ok: true, value: envelope.data };
}

/** Each result on its own: the good ones are kept even when others in the batch are bad. */
export function checkResults(rawResults: readonly unknown[], rules: ResultRules): CheckedResults {
  const labels = rules.labels ? new Set(rules.labels) : undefined;
  const seen = new Set<string>();
  const results: InferenceResult[] = [];
  const rejected: RejectedResult[] = [];
  let repeatedIds = 0;
  rawResults.forEach((raw, index) => {
    const outcome = resultProblem(
      raw,
      rules.receivedAt,
      rules.task === 'regression' ? undefined : labels,
      rules.task,
    );
    if (typeof outcome === 'string') {
      rejected.push({ index, ...idOf(raw), reason: `results.${index}: ${outcome}`, raw });
      return;
    }
    if (seen.has(outcome.id)) {
      repeatedIds += 1;
      return;
    }
    seen.add(outcome.id);
    results.push(outcome);
  });
  return { results, rejected, repeatedIds };
}

/** The parsed result, or why it cannot be counted. */
function resultProblem(
  raw: unknown,
  receivedAt: number,
  labels: Set<string> | undefined,
  task: Task | undefined,
): InferenceResult | string {
  const parsed = InferenceResultSchema.safeParse(raw);
  if (!parsed.success) return describeZodError(parsed.error);
  const result = parsed.data;
  if (result.ts > receivedAt + MAX_CLOCK_AHEAD_MS)
    return `ts ${result.ts} is more than a day ahead of the broker's clock (${receivedAt})`;
  const { label, value, truth } = result;
  if (result.score !== undefined || result.anomaly !== undefined) {
    if (
      result.score === undefined ||
      result.anomaly === undefined ||
      label !== undefined ||
      value !== undefined
    )
      return "an anomaly model's result carries a score and an anomaly verdict, and no label or value";
    if (task !== undefined && task !== 'anomaly')
      return `this model is a ${task} model: its results carry ${task === 'regression' ? 'a value' : 'a label'}, not a score`;
    return result;
  }
  if (value !== undefined) {
    if (label !== undefined || result.confidence !== undefined)
      return 'a result carries a value (regression) or a label and confidence (classification), not both';
    if (task !== undefined && task !== 'regression')
      return `this model is ${task === 'anomaly' ? 'an anomaly model: its results carry a score' : 'a classifier: its results carry a label'}, not a value`;
    if (truth !== undefined && Number.isNaN(targetNumber(truth)))
      return `truth '${clip(truth)}' is not a number (a regression result's truth is its true value)`;
    return result;
  }
  if (label === undefined || result.confidence === undefined)
    return 'a result needs a label and confidence (classification) or a value (regression)';
  if (task === 'regression' || task === 'anomaly')
    return `this model is ${task === 'anomaly' ? 'an anomaly model: its results carry a score' : 'a regression model: its results carry a value'}, not a label`;
  if (labels && !labels.has(label)) return `label '${clip(label)}' is not a class of this model`;
  if (labels && truth !== undefined && !labels.has(truth))
    return `truth '${clip(truth)}' is not a class of this model`;
  if (!labels && label.length > 64) return 'label is longer than 64 characters';
  return result;
}

function idOf(raw: unknown): { id?: string } {
  if (raw && typeof raw === 'object' && 'id' in raw && typeof raw.id === 'string')
    return { id: clip(raw.id) };
  return {};
}

function clip(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export function decodeDeviceStatus(value: unknown): Decoded<DeviceStatus> {
  const parsed = DeviceStatusSchema.safeParse(value);
  if (!parsed.success)
    return { ok: false, reason: `invalid device status: ${describeZodError(parsed.error)}` };
  return { ok: true, value: parsed.data };
}
